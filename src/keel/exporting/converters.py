"""ONNX converters keel registers with skl2onnx before converting a pipeline.

LightGBM and XGBoost use onnxmltools' converters through skl2onnx (not onnxmltools' direct
API, capped at an old opset). LightGBM's thresholds are doubles compared with float32
inputs; the ONNX tree holds float32 thresholds, and rounding a threshold to the nearest
float32 sends inputs equal to the rounded value down the wrong branch (measured on
california_housing: 35 of 5,640 rows off, by up to 2.3% of the range). keel rounds every
threshold *down* to the largest float32 not above it, which makes ``x <= t`` identical
for every float32 ``x`` (relative error then 1.3e-6, float32 summation only).
scikit-learn's Dummy estimators, keel's
baselines, have no converter upstream: theirs is a constant broadcast to N rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_REGISTERED = False


def register_converters() -> None:
    """Register keel's converters once per process."""
    global _REGISTERED
    if _REGISTERED:
        return
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from xgboost import XGBClassifier, XGBRegressor

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        _convert_lightgbm,
        options=classifier_options,
    )
    update_registered_converter(
        LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        _convert_lightgbm,
        options={"split": None},
    )
    update_registered_converter(
        DummyClassifier,
        "KeelDummyClassifier",
        calculate_linear_classifier_output_shapes,
        _convert_dummy_classifier,
        options=classifier_options,
    )
    update_registered_converter(
        DummyRegressor, "KeelDummyRegressor", calculate_linear_regressor_output_shapes, _convert_dummy_regressor
    )
    update_registered_converter(
        XGBClassifier,
        "XGBoostXGBClassifier",
        calculate_linear_classifier_output_shapes,
        convert_xgboost,
        options=classifier_options,
    )
    update_registered_converter(
        XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, convert_xgboost
    )
    _REGISTERED = True


def _convert_lightgbm(scope: Any, operator: Any, container: Any) -> None:
    """onnxmltools' LightGBM converter, fed a model dump whose thresholds are float32-exact."""
    from onnxmltools.convert.lightgbm.operator_converters import LightGbm

    dump = LightGbm.dump_booster_model

    def float32_dump(*args: Any, **kwargs: Any) -> Any:
        text, info = dump(*args, **kwargs)
        for tree in text["tree_info"]:
            _round_thresholds_down(tree["tree_structure"])
        return text, info

    # The converter reads the dump through this module global; restore it whatever happens.
    LightGbm.dump_booster_model = float32_dump
    try:
        LightGbm.convert_lightgbm(scope, operator, container)
    finally:
        LightGbm.dump_booster_model = dump


def _round_thresholds_down(node: dict[str, Any]) -> None:
    stack = [node]
    while stack:
        node = stack.pop()
        if "split_index" not in node:
            continue
        threshold = node.get("threshold")
        if node.get("decision_type") == "<=" and isinstance(threshold, float | int):
            node["threshold"] = float32_floor(float(threshold))
        stack.extend((node["left_child"], node["right_child"]))


def float32_floor(value: float) -> float:
    """The largest float32 that is not above ``value``."""
    with np.errstate(over="ignore"):
        rounded = np.float32(value)  # beyond float32's range: +-inf, then stepped down below
    if float(rounded) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return float(rounded)


def _convert_dummy_classifier(scope: Any, operator: Any, container: Any) -> None:
    estimator = operator.raw_operator
    if estimator.strategy not in ("prior", "most_frequent"):
        raise NotImplementedError(f"DummyClassifier(strategy={estimator.strategy!r}) has no ONNX converter")
    prior = np.asarray(estimator.class_prior_, dtype=np.float32).reshape(1, -1)
    rows = _row_count(scope, operator, container)
    label = np.array([int(np.argmax(prior))], dtype=np.int64)
    _expand(scope, container, _const(scope, container, "label", label), rows, operator.outputs[0].full_name)
    shape = _concat_shape(scope, container, rows, prior.shape[1])
    _expand(scope, container, _const(scope, container, "prior", prior), shape, operator.outputs[1].full_name)


def _convert_dummy_regressor(scope: Any, operator: Any, container: Any) -> None:
    estimator = operator.raw_operator
    constant = np.asarray(estimator.constant_, dtype=np.float32).reshape(1, -1)
    rows = _row_count(scope, operator, container)
    shape = _concat_shape(scope, container, rows, constant.shape[1])
    _expand(scope, container, _const(scope, container, "constant", constant), shape, operator.outputs[0].full_name)


def _row_count(scope: Any, operator: Any, container: Any) -> str:
    """A 1-element int64 tensor holding N, the number of input rows."""
    shape = scope.get_unique_variable_name("input_shape")
    container.add_node("Shape", operator.inputs[0].full_name, shape, name=scope.get_unique_operator_name("Shape"))
    rows = scope.get_unique_variable_name("rows")
    zero = _const(scope, container, "zero", np.array([0], dtype=np.int64))
    container.add_node("Gather", [shape, zero], rows, axis=0, name=scope.get_unique_operator_name("Gather"))
    return rows


def _concat_shape(scope: Any, container: Any, rows: str, width: int) -> str:
    out = scope.get_unique_variable_name("out_shape")
    k = _const(scope, container, "width", np.array([width], dtype=np.int64))
    container.add_node("Concat", [rows, k], out, axis=0, name=scope.get_unique_operator_name("Concat"))
    return out


def _expand(scope: Any, container: Any, value: str, shape: str, output: str) -> None:
    container.add_node("Expand", [value, shape], output, name=scope.get_unique_operator_name("Expand"))


def _const(scope: Any, container: Any, hint: str, value: np.ndarray) -> str:
    from onnx import numpy_helper

    name = scope.get_unique_variable_name(hint)
    tensor = numpy_helper.from_array(value)
    container.add_initializer(name, tensor.data_type, list(value.shape), value.flatten().tolist())
    return name
