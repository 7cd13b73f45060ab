from __future__ import annotations

import json
from pathlib import Path

import pytest

from keel.errors import BundleError
from keel.exporting.bundle import load_bundle, write_bundle
from keel.schema import NUMERIC, Column, InputSchema


def make_bundle(path: Path) -> str:
    schema = InputSchema((Column("x", NUMERIC, input_name="x"),))
    docs = {
        "schema.json": schema.to_dict(),
        "metadata.json": {"model": "m", "version": "1"},
        "profile.json": {},
        "parity.json": {"parity": {"max_diff": 0.0}},
    }
    return write_bundle(path, b"onnx-bytes", docs)


def test_bundle_round_trip(tmp_path: Path) -> None:
    digest = make_bundle(tmp_path / "b")
    bundle = load_bundle(tmp_path / "b", digest)
    assert (bundle.model, bundle.version, bundle.digest) == ("m", "1", digest)
    assert bundle.schema.names == ["x"]


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    make_bundle(tmp_path / "b")
    (tmp_path / "b" / "model.onnx").write_bytes(b"evil")
    with pytest.raises(BundleError, match="model.onnx is tampered or truncated"):
        load_bundle(tmp_path / "b")


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    make_bundle(tmp_path / "b")
    data = (tmp_path / "b" / "schema.json").read_bytes()
    (tmp_path / "b" / "schema.json").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="schema.json is tampered or truncated"):
        load_bundle(tmp_path / "b")


def test_rewritten_manifest_is_refused_when_the_registry_digest_is_known(tmp_path: Path) -> None:
    digest = make_bundle(tmp_path / "b")
    (tmp_path / "b" / "model.onnx").write_bytes(b"evil")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    import hashlib

    manifest["files"]["model.onnx"] = hashlib.sha256(b"evil").hexdigest()
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))
    load_bundle(tmp_path / "b")  # self-consistent again...
    with pytest.raises(BundleError, match="does not match the registry"):
        load_bundle(tmp_path / "b", digest)  # ...but not what the registry recorded


def test_missing_bundle_says_to_export(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no model bundle at .*keel export"):
        load_bundle(tmp_path / "nothing")


def test_reference_sample_is_verified_and_only_read_when_listed(tmp_path: Path) -> None:
    schema = InputSchema((Column("x", NUMERIC, input_name="x"),))
    docs = {
        "schema.json": schema.to_dict(),
        "metadata.json": {"model": "m", "version": "1"},
        "profile.json": {},
        "parity.json": {},
    }
    digest = write_bundle(tmp_path / "with", b"onnx", docs, {"reference.parquet": b"rows"})
    bundle = load_bundle(tmp_path / "with", digest)
    assert bundle.reference_file == tmp_path / "with" / "reference.parquet"
    (tmp_path / "with" / "reference.parquet").write_bytes(b"other rows")
    with pytest.raises(BundleError, match="reference.parquet is tampered"):
        load_bundle(tmp_path / "with", digest)
    make_bundle(tmp_path / "without")
    (tmp_path / "without" / "reference.parquet").write_bytes(b"planted")  # not in the manifest: ignored
    assert load_bundle(tmp_path / "without").reference_file is None
