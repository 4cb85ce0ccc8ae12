"""A built wheel carries the stand-ins docs/boxes.md puts on a test box's PATH, and they run from it.

Builds the wheel the way pip does for an install (an isolated build from ``[build-system]`` of a copy of the
sources), then checks every file of ``farm/sim/boxes`` and ``farm/sim/lightcode`` is inside it, the tools called by
name keep their exec bits, and a tool run from the unpacked wheel still labels its output synthetic.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from farm.sim.synthetic import BOX_TOOLS, BOXES_DIR, LIGHTCODE_DIR, SYNTHETIC_LINE

ROOT = Path(__file__).resolve().parents[2]
SIM_DIR = ROOT / "farm" / "sim"


def _standin_files() -> list[Path]:
    return sorted(
        p for d in (BOXES_DIR, LIGHTCODE_DIR) for p in d.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("farm", "actors"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    (built,) = dist.glob("farm-*.whl")
    return zipfile.ZipFile(built)


def test_the_source_tree_has_every_documented_tool() -> None:
    for tool in BOX_TOOLS:
        path = BOXES_DIR / tool
        assert path.is_file(), tool
        assert path.stat().st_mode & stat.S_IXUSR, f"{tool} is not executable in the source tree"
    assert BOXES_DIR == SIM_DIR / "boxes"
    assert (LIGHTCODE_DIR / "lightcode" / "main.py").is_file()


def test_every_standin_is_in_the_wheel_with_its_exec_bit(wheel: zipfile.ZipFile) -> None:
    entries = {info.filename: info for info in wheel.infolist()}
    files = _standin_files()
    assert len(files) >= len(BOX_TOOLS) + 5  # the tools, _boxsim.py, the lightcode package and its README
    for path in files:
        name = path.relative_to(ROOT).as_posix()
        assert name in entries, f"{name} is missing from the wheel"
        # The tools called by name (npu-smi, docker…) must stay executable; the .py scripts are run as
        # ``python3 pipeline.py`` on a box, as with the real ones, and setuptools does not keep their bits.
        if path.suffix != ".py" and path.stat().st_mode & stat.S_IXUSR:
            mode = entries[name].external_attr >> 16
            assert mode & stat.S_IXUSR, f"{name} lost its exec bit in the wheel ({mode:o})"
    assert "farm/sim/synthetic.py" in entries


def test_a_tool_from_the_wheel_labels_its_output(wheel: zipfile.ZipFile, tmp_path: Path) -> None:
    wheel.extractall(tmp_path)
    done = subprocess.run(
        [sys.executable, "-S", str(tmp_path / "farm" / "sim" / "boxes" / "npu-smi"), "info"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "FARM_SIM_STATE": str(tmp_path / "state")},
    )
    assert done.returncode == 0, done.stderr
    assert SYNTHETIC_LINE in done.stderr
    assert "npu-smi" in done.stdout
