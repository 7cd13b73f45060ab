"""Build the feature transforms of a pipeline from its input schema.

Every transform here must convert to ONNX (export checks it), because the
fitted pipeline, transforms included, is what the server runs.
"""

from __future__ import annotations

from typing import Any

from keel.schema import CATEGORICAL, NUMERIC, InputSchema


def build_preprocessor(schema: InputSchema, scale: bool = False, native_categorical: bool = False) -> Any:
    """Median imputation (then standard scaling when ``scale``, for linear models) for numeric
    columns, one-hot encoding for categorical ones, or, with ``native_categorical`` (for
    LightGBM's categorical splits), one ordinal code per category in one column each.

    Unknown categories at prediction time encode as all zeros (one-hot) or as missing
    (ordinal) rather than fail; missing categorical values arrive as their own category
    (see keel.schema). Numeric columns come first, then categorical ones, in schema order
    (``categorical_indices`` relies on it).
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
    if categorical and native_categorical:
        from sklearn.preprocessing import OrdinalEncoder

        ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, dtype=np.float32)
        transformers.append(("categorical", ordinal, categorical))
    elif categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)
        transformers.append(("categorical", encoder, categorical))
    return ColumnTransformer(transformers, remainder="drop")


def categorical_indices(schema: InputSchema) -> list[int]:
    """Positions of the categorical columns in the preprocessor's output, when ordinal-coded."""
    numeric = sum(1 for c in schema.columns if c.kind == NUMERIC)
    categorical = sum(1 for c in schema.columns if c.kind == CATEGORICAL)
    return list(range(numeric, numeric + categorical))


def build_pipeline(schema: InputSchema, estimator: Any, scale: bool = False, native_categorical: bool = False) -> Any:
    """The whole model: feature transforms, then the estimator, as one Pipeline."""
    from sklearn.pipeline import Pipeline

    return Pipeline([("features", build_preprocessor(schema, scale, native_categorical)), ("model", estimator)])
