from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import RegistryError
from keel.store import (
    Store,
    atomic_write_bytes,
    publish_dir,
    read_serving_aliases,
    staging_dir,
    write_serving_aliases,
)


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "a" / "file.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_publish_dir_replaces_an_older_directory(tmp_path: Path) -> None:
    final = tmp_path / "bundle"
    for content in (b"old", b"new"):
        staged = staging_dir(final)
        (staged / "x").write_bytes(content)
        publish_dir(staged, final)
    assert (final / "x").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_serving_aliases_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path)
    write_serving_aliases(store, "m", {"champion": "3"}, {"3": "abc"})
    assert read_serving_aliases(store, "m").resolve("champion") == ("3", "abc")
    with pytest.raises(RegistryError, match="has no alias 'canary'"):
        read_serving_aliases(store, "m").resolve("canary")


def test_unknown_model_lists_known_ones(tmp_path: Path) -> None:
    store = Store(tmp_path)
    write_serving_aliases(store, "adult", {"champion": "1"}, {})
    with pytest.raises(RegistryError, match="model 'adlt' has no promoted version.*Models with a champion here: adult"):
        read_serving_aliases(store, "adlt")


def test_corrupt_serving_file_is_reported(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.serving_file("m").parent.mkdir(parents=True)
    store.serving_file("m").write_text("{not json")
    with pytest.raises(RegistryError, match="is corrupt"):
        read_serving_aliases(store, "m")
