"""Finding and following faces: detectors (Haar, BlazeFace, SSD), their model files, tracking."""
