"""Monitoring: the prediction log against the model's reference profile."""
