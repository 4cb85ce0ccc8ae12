"""Shared helpers of the scripted box tools: the synthetic-output label and per-device memory state.

The tools run on the (simulated) box with whatever ``python3`` it has, so this module is standard library
only. While a demo runs it records the device memory it "holds" in a small state file; ``npu-smi`` and
``bm-smi`` add it to their idle figures, so memory sampled during a run differs from memory sampled at rest,
as on real hardware.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from farm.sim.synthetic import SYNTHETIC_LINE
else:  # Farm need not be importable on the box: load the one definition from the file beside this folder
    _spec = importlib.util.spec_from_file_location(
        "_farm_sim_synthetic", Path(__file__).resolve().parents[1] / "synthetic.py"
    )
    _synthetic = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_synthetic)
    SYNTHETIC_LINE = _synthetic.SYNTHETIC_LINE


def state_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"farm-sim-boxes-{os.getuid()}"
    path = Path(os.environ.get("FARM_SIM_STATE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def label_synthetic(stream: str = "stdout") -> None:
    print(SYNTHETIC_LINE, file=sys.stdout if stream == "stdout" else sys.stderr, flush=True)


def stable_fraction(*parts: object) -> float:
    """A deterministic number in [0, 1) from the given values (same inputs → same synthetic figures)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def held_mb(kind: str, devid: int) -> int:
    """Device memory (MB) currently held by running demos on device ``devid``."""
    total = 0
    for path in state_dir().glob(f"{kind}-{devid}-*.mem"):
        pid = int(path.stem.rsplit("-", 1)[1])
        if not Path(f"/proc/{pid}").exists():  # a killed demo leaves its file behind
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        with contextlib.suppress(OSError, ValueError):
            total += int(path.read_text())
    return total


@contextlib.contextmanager
def holding(kind: str, devid: int, mb: int) -> Iterator[None]:
    """Record ``mb`` MB as held on device ``devid`` for the duration of the block."""
    path = state_dir() / f"{kind}-{devid}-{os.getpid()}.mem"
    path.write_text(str(mb))
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def device_count(var: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(var, default)))
    except ValueError:
        return default
