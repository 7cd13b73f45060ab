"""Training: prepare data, fit baseline and candidate families, score them."""
