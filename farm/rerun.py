"""Re-creating one recorded run from its result row alone (``farm rerun RUN_ID``).

A row says exactly what ran (:func:`farm.rows.run_columns`): the device slot, the rendered command, the env and
working directory as the device set them, the artifacts by name, sha256 and destination, the grid point and
repeat, and the job's workload, timeout and cooldown. :func:`load_rerun` reads them back; :func:`job_data` turns
them into a one-run job (every value literal, braces escaped so nothing is rendered twice) that the controller
runs as the next attempt of the same run id, in the same job: the original row is never touched. Artifacts are
found by hash — the file the row names, else the node's artifact cache — and refused if the bytes differ.
Secret-named env entries are recorded redacted; a rerun takes them from the caller's environment.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from actors.artifacts import CACHE_DIR
from actors.host_probe import file_sha256
from actors.messages import ArtifactRef
from farm.errors import ConfigError
from farm.results.query import connect
from farm.results.store import ResultsStore
from farm.rows import REDACTED, RUN_COLUMNS

SOURCE = "farm rerun"


@dataclass(frozen=True)
class Rerun:
    """One recorded run, as its row describes it."""

    job: str
    run_id: str
    attempt: int
    slot_id: str
    device_kind: str
    command: list[str]  # the rendered command (before core binding)
    argv: list[str]  # what the device executed
    env: dict[str, str]  # as the device set it; secret-named values redacted
    workdir: str | None
    artifacts: list[dict[str, Any]]
    settings: dict[str, Any]
    params: dict[str, Any]
    repeat: int
    warmup: bool

    @property
    def redacted(self) -> list[str]:
        return sorted(k for k, v in self.env.items() if v == REDACTED)


def find_row(root: str, run_id: str, attempt: int | None = None) -> dict[str, Any]:
    """The row of ``run_id`` (its latest attempt, or ``attempt``); :class:`ConfigError` when there is none."""
    store = ResultsStore(root)
    con = connect(store)
    try:
        jobs = [r[0] for r in con.execute("SELECT DISTINCT job FROM runs WHERE run_id = $1", [run_id]).fetchall()]
    finally:
        con.close()
    if not jobs:
        raise ConfigError.single(SOURCE, "RUN_ID", f"no run {run_id!r} in the results at {root}")
    if len(jobs) > 1:
        raise ConfigError.single(SOURCE, "RUN_ID", f"run {run_id!r} is in several jobs ({', '.join(sorted(jobs))})")
    table = store.table(jobs[0])
    rows = table.filter(pc.equal(table.column("run_id"), run_id)).to_pylist()
    if attempt is not None:
        rows = [r for r in rows if r["attempt"] == attempt]
        if not rows:
            raise ConfigError.single(SOURCE, "--attempt", f"run {run_id!r} has no attempt {attempt}")
    return max(rows, key=lambda r: r["attempt"])


def from_row(row: Mapping[str, Any]) -> Rerun:
    """The run a row describes; :class:`ConfigError` when the row lacks what a rerun needs."""
    where = f"run {row['run_id']} attempt {row['attempt']}"
    missing = [c for c in ("argv", "env", "artifacts", "settings") if row.get(c) is None]
    if missing:
        raise ConfigError.single(
            SOURCE,
            "RUN_ID",
            f"{where}: the row has no {', '.join(missing)} column(s): it was recorded before rows carried "
            f"what ran ({', '.join(RUN_COLUMNS)}), so it cannot be re-created from the row alone",
        )
    command = shlex.split(row["command"])
    artifacts = json.loads(row["artifacts"])
    settings = json.loads(row["settings"])
    if not command or len(artifacts) != settings.get("artifact_count", len(artifacts)):
        raise ConfigError.single(
            SOURCE,
            "RUN_ID",
            f"{where} ({row['status']}) never reached its device, so its row does not hold all it would have run; "
            "rerun an attempt that ran (--attempt) or submit the job again",
        )
    return Rerun(
        job=row["job"],
        run_id=row["run_id"],
        attempt=row["attempt"],
        slot_id=row["slot"],
        device_kind=row["device_kind"],
        command=command,
        argv=json.loads(row["argv"]),
        env=json.loads(row["env"]),
        workdir=row.get("workdir"),
        artifacts=artifacts,
        settings=settings,
        params={k[2:]: v for k, v in row.items() if k.startswith("p_") and v is not None},
        repeat=row["repeat"],
        warmup=row["warmup"],
    )


def load_rerun(root: str, run_id: str, attempt: int | None = None) -> Rerun:
    return from_row(find_row(root, run_id, attempt))


def command_line(run: Rerun) -> str:
    """The run as one shell line: ``cd WORKDIR && env K=V … ARGV`` (redacted secrets as ``"$NAME"``)."""
    env = [f'{k}="${k}"' if v == REDACTED else f"{k}={shlex.quote(v)}" for k, v in sorted(run.env.items())]
    line = shlex.join(run.argv)
    if env:
        line = "env " + " ".join(env) + " " + line
    if run.workdir:
        line = f"cd {_quote_path(run.workdir)} && {line}"
    return line


def _quote_path(path: str) -> str:
    """``path`` quoted for a shell, a leading ``~/`` left for the shell to expand (as the device does)."""
    if path == "~":
        return path
    return "~/" + shlex.quote(path[2:]) if path.startswith("~/") else shlex.quote(path)


def describe(run: Rerun) -> list[str]:
    """Comment lines naming the run, its device and its artifacts (what ``--print`` shows above the line)."""
    point = ", ".join(f"{k}={v}" for k, v in run.params.items()) or "no grid"
    lines = [
        f"# job {run.job}, run {run.run_id} (attempt {run.attempt}), repeat {run.repeat}, {point}",
        f"# device {run.slot_id} ({run.device_kind}); workload {run.settings.get('workload')}, "
        f"timeout {run.settings.get('timeout_s')} s",
    ]
    lines += [f"# artifact {a['name']} sha256:{a['sha256']} -> {a['dst']}" for a in run.artifacts]
    return lines


def _literal(text: str) -> str:
    """``text`` as a template that renders to itself."""
    return text.replace("{", "{{").replace("}", "}}")


def _env(run: Rerun, environ: Mapping[str, str]) -> dict[str, str]:
    unset = [k for k in run.redacted if not environ.get(k)]
    if unset:
        raise ConfigError.single(
            SOURCE,
            "env",
            f"{', '.join(unset)} {'was' if len(unset) == 1 else 'were'} recorded redacted (a secret): "
            "set it in this shell's environment to rerun",
        )
    return {k: environ[k] if v == REDACTED else v for k, v in run.env.items()}


def job_data(run: Rerun, artifact_paths: list[Path], environ: Mapping[str, str]) -> dict[str, Any]:
    """A job (as :func:`farm.specs.job.job_from_dict` takes it) whose single run is ``run``, pinned to its slot."""
    s = run.settings
    data: dict[str, Any] = {
        "name": run.job,
        "workload": s["workload"],
        "workload_options": s.get("workload_options") or {},
        "devices": {"ids": [run.slot_id]},
        "command": [_literal(a) for a in run.command],
        "env": {k: _literal(v) for k, v in _env(run, environ).items()},
        "artifacts": [
            {"src": str(p), "dst": _literal(a["dst"]), **({"mode": a["mode"]} if a.get("mode") is not None else {})}
            for a, p in zip(run.artifacts, artifact_paths, strict=True)
        ],
        "timeout": s["timeout_s"],
        "retries": s.get("retries", 2),
        "synthetic": bool(s.get("synthetic")),
        "record_warmup": True,  # a rerun of a warm-up row is recorded too, flagged as one
    }
    if run.workdir is not None:
        data["workdir"] = _literal(run.workdir)
    if s.get("cooldown") is not None:
        data["cooldown"] = s["cooldown"]
    return data


def single(run: Rerun) -> dict[str, Any]:
    """The controller's ``single`` argument: the run id, slot, point and repeat the new attempt keeps."""
    return {
        "run_id": run.run_id,
        "slot_id": run.slot_id,
        "params": run.params,
        "repeat": run.repeat,
        "warmup": run.warmup,
    }


def find_artifacts(run: Rerun, cache_dir: Path = CACHE_DIR) -> list[Path]:
    """A local file with each artifact's recorded bytes: the recorded source, else ``<cache>/<sha256>``."""
    found: list[Path] = []
    for i, art in enumerate(run.artifacts):
        candidates = [Path(art["src"]), cache_dir / art["sha256"]] if art.get("src") else [cache_dir / art["sha256"]]
        for path in candidates:
            try:
                if path.is_file() and path.stat().st_size == art["size"] and file_sha256(path) == art["sha256"]:
                    found.append(path)
                    break
            except OSError:
                continue
        else:
            raise ConfigError.single(
                SOURCE,
                f"artifacts[{i}]",
                f"no file with the recorded bytes of {art['name']} (sha256 {art['sha256']}): looked at "
                f"{', '.join(str(p) for p in candidates)}",
            )
    return found


def artifact_refs(run: Rerun, paths: list[Path]) -> list[ArtifactRef]:
    """The artifacts as the controller takes them, under their recorded names (so ``fp_sha256_<name>`` matches)."""
    return [
        ArtifactRef(a["name"], a["sha256"], a["size"], a["dst"], a.get("mode"), str(p))
        for a, p in zip(run.artifacts, paths, strict=True)
    ]
