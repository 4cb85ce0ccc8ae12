"""``farm sim artifacts``: labelled placeholders for a job's missing files, never over a real one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from farm.cli.main import main
from farm.cli.sim_cmd import PLACEHOLDER_HEAD

JOBS = Path(__file__).resolve().parents[2] / "jobs"


def test_placeholders_for_missing_files_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "jobs").mkdir()
    job = tmp_path / "jobs" / "elastic-infer-bound.yaml"
    shutil.copy(JOBS / job.name, job)
    arts = tmp_path / "artifacts" / "elastic-infer"
    arts.mkdir(parents=True)
    (arts / "liburing.so.2.8").write_bytes(b"\x7fELF the real one")
    assert main(["sim", "artifacts", str(job)]) == 0
    out = capsys.readouterr().out
    assert f"kept     {arts / 'liburing.so.2.8'}" in out
    assert (arts / "liburing.so.2.8").read_bytes() == b"\x7fELF the real one"
    binary = arts / "mymain-t-aarch64"
    assert f"wrote    {binary} (synthetic placeholder)" in out
    assert binary.read_text().startswith(f"{PLACEHOLDER_HEAD}: not the real mymain-t-aarch64.")
    assert binary.stat().st_mode & 0o777 == 0o755  # the job's mode
    assert (arts / "Llama-2-7b-chat-hf-t-Q4_0.gguf").read_text().startswith(PLACEHOLDER_HEAD)
    assert main(["sim", "artifacts", str(tmp_path / "nope.yaml")]) == 2
