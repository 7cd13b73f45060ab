"""Build the feature transforms of a pipeline from its input schema.

Every transform here must convert to ONNX (export checks it), because the
fitted pipeline, transforms included, is what the server runs.
"""

from __future__ import annotations

from typing import Any

from keel.schema import CATEGORICAL, NUMERIC, InputSchema


def build_preprocessor(schema: InputSchema, scale: bool = False) -> Any:
    """Median imputation (then standard scaling when ``scale``, for linear models) for numeric
    columns, one-hot encoding for categorical ones.

    Unknown categories at prediction time encode as all zeros rather than fail;
    missing categorical values arrive as their own category (see keel.schema).
    """
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c.name for c in schema.columns if c.kind == NUMERIC]
    categorical = [c.name for c in schema.columns if c.kind == CATEGORICAL]
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        imputer = SimpleImputer(strategy="median", keep_empty_features=True)
        transformers.append(("numeric", make_pipeline(imputer, StandardScaler()) if scale else imputer, numeric))
    if categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)
        transformers.append(("categorical", encoder, categorical))
    return ColumnTransformer(transformers, remainder="drop")


def build_pipeline(schema: InputSchema, estimator: Any, scale: bool = False) -> Any:
    """The whole model: feature transforms, then the estimator, as one Pipeline."""
    from sklearn.pipeline import Pipeline

    return Pipeline([("features", build_preprocessor(schema, scale)), ("model", estimator)])
