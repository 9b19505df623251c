"""Faces to labels: the face classifier, ensembles of models, the deployment class prior."""
