"""Scoring trained models: accuracy and confusion on a dataset split (:mod:`.scoring`), temperature
scaling fitted on the validation split (:mod:`.temperature`), Grad-CAM and attention maps
(:mod:`.explain`), end-to-end accuracy on labelled photos through the runtime's detector and
classifier (:mod:`.photos`). Layer 4 of the package: imports edge, data, metrics and keras only.

TensorFlow is imported only when a Keras model is loaded or explained."""

from emoedge.evaluate.explain import attention_maps, explain_grid, grad_cam, last_conv_layer, overlay
from emoedge.evaluate.photos import PhotoEvaluation, evaluate_photos, pad_image, write_photo_evaluation
from emoedge.evaluate.scoring import (
                                      EvaluationRun,
                                      KerasClassifier,
                                      evaluate_model,
                                      load_classifier,
                                      model_class_names,
                                      plot_confusion,
                                      select_split,
                                      write_evaluation,
)
from emoedge.evaluate.temperature import calibrate

__all__ = ["EvaluationRun", "KerasClassifier", "PhotoEvaluation", "attention_maps", "calibrate", "evaluate_model",
           "evaluate_photos", "explain_grid", "pad_image", "write_photo_evaluation",
           "grad_cam", "last_conv_layer", "load_classifier", "model_class_names", "overlay", "plot_confusion",
           "select_split", "write_evaluation"]
