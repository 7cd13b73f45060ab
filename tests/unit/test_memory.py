from __future__ import annotations

import pytest

from keel.errors import ConfigError
from keel.planning.memory import GIB, estimate, parse_parameters, recommend


def test_parse_parameter_counts() -> None:
    assert parse_parameters("7B") == 7e9
    assert parse_parameters("350m") == 350e6
    assert parse_parameters("1.5b") == 1.5e9
    with pytest.raises(ConfigError, match="is not a parameter count"):
        parse_parameters("seven billion")


def test_seven_billion_in_bf16_needs_about_fifteen_gib_to_serve() -> None:
    total = estimate(7e9, "bf16", "inference").total / GIB
    assert 13.5 < total < 17.5  # 13 GiB of weights, a 2k-token KV cache, overhead


def test_training_modes_are_ordered_by_memory() -> None:
    sizes = {mode: estimate(7e9, "bf16", mode, batch=2, seq_len=1024).total for mode in ("full", "lora", "qlora")}
    assert sizes["full"] > sizes["lora"] > sizes["qlora"]
    assert sizes["full"] / GIB > 100  # 16 bytes per parameter before activations


def test_recommendation_picks_the_best_strategy_that_fits() -> None:
    assert recommend(1.3e9, 80, training=True).startswith("full")
    assert recommend(7e9, 80, training=True).startswith("lora")  # full needs > 100 GiB
    assert recommend(7e9, 24, training=True).startswith("lora")
    assert recommend(7e9, 12, training=True).startswith("qlora")
    assert recommend(70e9, 8, training=True).startswith("nothing fits")
    assert recommend(7e9, 10, training=False).startswith("inference at int8")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"precision": "fp8"}, "unknown precision"), ({"mode": "distill"}, "unknown mode"), ({"batch": 0}, "at least 1")],
)
def test_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        estimate(7e9, **kwargs)
