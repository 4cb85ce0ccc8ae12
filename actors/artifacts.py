"""Making an artifact's bytes available on the device actor's node: the submitter's file, or the Ray object store.

Content is addressed by sha256; a node-local cache (``~/.cache/farm/artifacts/<sha256>``) means bytes shipped
through the object store are written to disk once per node, whatever the number of runs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from actors.host_probe import file_sha256
from actors.messages import ArtifactRef
from farm.errors import InfraError

CACHE_DIR = Path(os.environ.get("FARM_ARTIFACT_CACHE", "~/.cache/farm/artifacts")).expanduser()


def local_copy(art: ArtifactRef) -> Path:
    """A readable local file holding the artifact's exact bytes."""
    path = Path(art.local_path)
    try:
        if path.is_file() and path.stat().st_size == art.size and file_sha256(path) == art.sha256:
            return path
    except OSError:
        pass
    cached = CACHE_DIR / art.sha256
    if cached.is_file() and cached.stat().st_size == art.size:
        return cached
    if art.ref is None:
        raise InfraError(f"artifact {art.name} ({art.local_path}) is not readable on this node and was not shipped")
    import ray

    data: bytes = ray.get(art.ref)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=CACHE_DIR, prefix=".incoming-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, cached)
    return cached
