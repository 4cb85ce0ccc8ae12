"""Artifact bytes reach a device actor's node: the submitter's file when readable, else Ray's object store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import ray

from actors import artifacts
from actors.messages import ArtifactRef
from farm.errors import InfraError


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(artifacts, "CACHE_DIR", tmp_path / "cache")
    return tmp_path / "cache"


def _ref(path: Path, data: bytes, ref: object = None) -> ArtifactRef:
    return ArtifactRef(path.name, hashlib.sha256(data).hexdigest(), len(data), "/dst", None, str(path), ref)


def test_readable_local_file_is_used_in_place(tmp_path: Path, cache: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights")
    assert artifacts.local_copy(_ref(src, b"weights")) == src
    assert not cache.exists()


def test_changed_local_file_is_not_mistaken_for_the_artifact(tmp_path: Path, cache: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights")
    art = _ref(src, b"weights")
    src.write_bytes(b"WEIGHTS")  # same size, other content: must not be pushed as if it were the artifact
    with pytest.raises(InfraError, match="not readable on this node"):
        artifacts.local_copy(art)


@pytest.mark.ray
def test_bytes_from_the_object_store_are_cached_once_per_node(tmp_path: Path, cache: Path, local_ray: None) -> None:
    data = b"\x00\x01payload" * 1000
    art = _ref(tmp_path / "elsewhere" / "model.bin", data, ray.put(data))
    first = artifacts.local_copy(art)
    assert first == cache / art.sha256 and first.read_bytes() == data
    assert artifacts.local_copy(_ref(tmp_path / "gone", data)) == first  # no ref needed: already on this node
