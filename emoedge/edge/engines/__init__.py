"""What runs a model file: LiteRT (TFLite), ONNX Runtime, the numpy HOG+LBP classifier."""
