"""What every Keras user of the project needs: the TensorFlow environment (:mod:`.tf_env`, imported
first, so TF_ENABLE_ONEDNN_OPTS is set before TensorFlow loads), the custom layers (:mod:`.layers`,
registered for loading) and loading model files with clear errors (:mod:`.io`). Layer 3 of the
package: imports edge, data and metrics only."""

from emoedge.keras import tf_env  # noqa: F401  (first: sets the environment TensorFlow reads at import)
