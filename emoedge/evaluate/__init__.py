"""Scoring trained models: accuracy and confusion on a dataset split (:mod:`.scoring`), temperature
scaling fitted on the validation split (:mod:`.temperature`), Grad-CAM and attention maps
(:mod:`.explain`). Layer 4 of the package: imports edge, data, metrics and keras only.

TensorFlow is imported only when a Keras model is loaded or explained."""

from emoedge.evaluate.explain import attention_maps, explain_grid, grad_cam, last_conv_layer, overlay
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

__all__ = ["EvaluationRun", "KerasClassifier", "attention_maps", "calibrate", "evaluate_model", "explain_grid",
           "grad_cam", "last_conv_layer", "load_classifier", "model_class_names", "overlay", "plot_confusion",
           "select_split", "write_evaluation"]
