"""The public verbs (analyze, train, export, promote, ...), each wiring stages together.

Import the verb's module, not this package: ``keel.api.serving`` must stay
free of scikit-learn and MLflow, so nothing here imports its siblings.
"""
