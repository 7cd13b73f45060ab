"""Experiment tracking: the Tracker seam, its MLflow implementation, run manifests."""
