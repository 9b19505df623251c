"""The shared base below everything: the project's errors, atomic file writes, model formats, the
shipped models and their manifests, the one preprocessing contract, temperature, MACs, safe CSV cells
and the HTTP Host guard. numpy, OpenCV and the standard library only."""
