"""Registry logic that needs no MLflow: references, the champion stack."""

from __future__ import annotations

import pytest

from keel.errors import ConfigError
from keel.registry.champion import champion_stack
from keel.registry.refs import parse_ref


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (None, ("adult", None)),
        ("3", ("adult", "3")),
        ("v3", ("adult", "3")),
        ("@3", ("adult", "3")),
        ("other", ("other", None)),
        ("other@12", ("other", "12")),
        ("other@champion", ("other", "champion")),
    ],
)
def test_parse_ref(ref: str | None, expected: tuple[str, str | None]) -> None:
    assert parse_ref(ref, "adult") == expected


def test_parse_ref_refuses_nonsense() -> None:
    with pytest.raises(ConfigError, match="not a model reference"):
        parse_ref("m@1.2", "adult")


def test_champion_stack_replays_promotions_and_rollbacks() -> None:
    events = [{"action": "promote", "version": v} for v in ("1", "2", "3")]
    events.append({"action": "rollback", "version": "2"})
    events.append({"action": "refused", "version": "5"})  # a refusal moves nothing
    events.append({"action": "promote", "version": "4"})
    assert champion_stack(events) == ["1", "2", "4"]
