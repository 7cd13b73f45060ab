"""Serving: the HTTP app, the ONNX predictor and the prediction log.

Imports neither scikit-learn, MLflow, nor anything of training (checked by
import-linter and by a test of the running server's modules).
"""
