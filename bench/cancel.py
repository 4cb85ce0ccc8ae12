"""Cancel latency: Ctrl-C of ``farm run`` on a 1,000,000-run sweep, against the same on a 200-run sweep.

Each trial is ``farm run`` as a user starts it (a subprocess, private local Ray, this host as one ``host`` device,
``--no-progress``). Once the progress lines show runs finishing, the script sends one SIGINT and times:

- **cancel**: SIGINT → the ``<job>: cancelled; N runs not started`` line (the controller has stopped the running
  run, recorded the job's cancellation once and the follow loop has seen the job end);
- **exit**: SIGINT → the process exiting (then Ray is stopped and the summary printed).

The baseline, measured in the same session with the same command, is a 200-run sweep cancelled the same way: the
figure is the ratio big/small of the cancel time, which is ~1.0 when a cancel costs nothing per run that never
started (the old behaviour wrote a ``cancelled`` row per unstarted run: minutes for this sweep). Rows and part
files of the big sweep are counted too: only started runs may have a row.

    PYTHONPATH=. .venv/bin/python bench/cancel.py [--trials 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _trial(tmp: Path, name: str, grid: Mapping[str, object]) -> tuple[float, float, int, int]:
    job = tmp / f"{name}.yaml"
    job.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "workload": "regex",
                "workload_options": {"patterns": {"value_count": r"value=(\d+)"}},
                "command": ["sh", "-c", "sleep 0.2; echo value=1"],
                "grid": grid,
            }
        )
    )
    inv = tmp / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"devices": [{"id": "bench-host", "kind": "host"}]}))
    results = tmp / "res"
    env = {**os.environ, "RAY_ADDRESS": "", "FARM_LEASE_DIR": str(tmp / "leases"), "COLUMNS": "200"}
    argv = [sys.executable, "-m", "farm.cli.main", "run", str(job), "--inventory", str(inv)]
    proc = subprocess.Popen(
        [*argv, "--results", str(results), "--no-progress"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append((time.monotonic(), line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    while not any(" ok " in line for _, line in lines):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit(f"{name}: no run finished: {''.join(line for _, line in lines)[-2000:]}")
        time.sleep(0.05)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(120)
    exited = time.monotonic() - t0
    reader.join(10)
    cancelled = next((t for t, line in lines if f"{name}: cancelled;" in line), None)
    if cancelled is None:
        raise SystemExit(f"{name}: no cancellation line: {''.join(line for _, line in lines)[-2000:]}")
    from farm.results import ResultsStore, query

    store = ResultsStore(str(results))
    n_rows = int(query(store, f"SELECT count(*) AS n FROM runs WHERE job = '{name}'").to_pylist()[0]["n"])
    parts = store.part_files(name)
    return cancelled - t0, exited, n_rows, len(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args()
    big = {"a": {"start": 0, "stop": 999}, "b": {"start": 0, "stop": 999}}
    small = {"a": {"start": 0, "stop": 199}}
    got: dict[str, list[tuple[float, float, int, int]]] = {"small": [], "big": []}
    for i in range(args.trials):
        for label, grid in (("small", small), ("big", big)):  # interleaved, so drift hits both alike
            with tempfile.TemporaryDirectory(prefix="farm-cancel-") as tmp:
                got[label].append(_trial(Path(tmp), f"cancel-{label}-{i}", grid))
    load = os.getloadavg()[0]
    for label in ("small", "big"):
        cancel = [t[0] for t in got[label]]
        exited = [t[1] for t in got[label]]
        print(
            f"{label:5} sweep: cancel median {statistics.median(cancel):.2f} s (max {max(cancel):.2f}), "
            f"exit median {statistics.median(exited):.2f} s, rows {[t[2] for t in got[label]]}, "
            f"part files {[t[3] for t in got[label]]}"
        )
    ratio = statistics.median(t[0] for t in got["big"]) / statistics.median(t[0] for t in got["small"])
    print(f"cancel latency 1,000,000-run / 200-run sweep: {ratio:.2f}x   (load average {load:.1f})")


if __name__ == "__main__":
    main()
