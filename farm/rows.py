"""Turning one run's raw outcome into its result row: status classification, metrics, parameters, fingerprint."""

from __future__ import annotations

import datetime as dt
import json
import posixpath
import re
import shlex
from collections.abc import Mapping
from typing import Any

from actors.host_probe import column_suffix
from actors.messages import RunRequest, RunResult
from farm.errors import OutputParseError
from farm.grid import Scalar
from farm.probes.power import per_unit_columns
from farm.results.schema import slot_device
from farm.specs.job import JobSpec
from farm.specs.loading import is_secret_key
from farm.workloads import WorkloadAdapter

# A benchmark may describe its own environment with lines ``farm-fp: fp_<name>=<value>`` (e.g. the sha256 of the
# model it loaded when the model is not a farm artifact); they become fingerprint columns of its row.
_FP_LINE = re.compile(r"^\s*farm-fp:\s*(fp_[a-z0-9_]{1,60})=(.{0,300}?)\s*$", re.MULTILINE)


def output_fingerprint(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in _FP_LINE.finditer(text)}


#: What an env entry whose name names a secret (``HF_TOKEN``, ``DB_PASSWORD``) is recorded as.
REDACTED = "<redacted>"

#: The columns that say exactly what ran (see :func:`run_columns`); ``farm rerun`` re-creates a run from them.
RUN_COLUMNS: tuple[str, ...] = ("argv", "env", "workdir", "artifacts", "settings")


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the values of secret-named variables replaced by :data:`REDACTED`."""
    return {k: REDACTED if v and is_secret_key(k) else v for k, v in env.items()}


def job_settings(spec: JobSpec) -> dict[str, Any]:
    """The job-level settings a run depends on besides its command line (part of the ``settings`` column)."""
    return {
        "workload": spec.workload,
        "workload_options": dict(spec.workload_options),
        "timeout_s": spec.timeout,
        "cooldown": spec.cooldown.model_dump(mode="json") if spec.cooldown is not None else None,
        "retries": spec.retries,
        "synthetic": spec.synthetic,
        "artifact_count": len(spec.artifacts),
    }


def run_columns(req: RunRequest, res: RunResult, settings: Mapping[str, Any] | None) -> dict[str, str | None]:
    """``argv`` and ``env`` (JSON) as the device executed them — argv after core binding, env with the device's
    own variables, secrets redacted — or as rendered when the command never started; ``workdir``; ``artifacts``
    (JSON: name, sha256, size, dst, mode, src of each file placed); ``settings`` (JSON: the job's workload,
    options, timeout, cooldown, … and the run's ``cores``)."""
    argv = res.argv if res.argv is not None else req.argv
    env = res.env if res.env is not None else req.env
    artifacts = [
        {"name": a.name, "sha256": a.sha256, "size": a.size, "dst": a.dst, "mode": a.mode, "src": a.local_path}
        for a in req.artifacts
    ]
    return {
        "argv": json.dumps(argv),
        "env": json.dumps(redact_env(env), sort_keys=True),
        "workdir": req.workdir,
        "artifacts": json.dumps(artifacts),
        "settings": None if settings is None else json.dumps({**settings, "cores": req.cores}, sort_keys=True),
    }


def build_identity(label: str | None, req: RunRequest, res: RunResult) -> str | None:
    """The ``build`` column: the job's ``build:`` label; else the sha256 of the benchmark binary, i.e. of the file
    the command's ``argv[0]`` names (resolved against the workdir): the artifact pushed there (the bytes that were
    placed, after any ``constants``), else an ``inputs:`` file there, which the device hashed with ``sha256sum``;
    else ``None`` (e.g. ``argv[0]`` is a program on the device's ``PATH``)."""
    if label is not None:
        return label
    if not req.argv:
        return None
    program = posixpath.normpath(posixpath.join(req.workdir or "/", req.argv[0]))
    for art in req.artifacts:
        if posixpath.normpath(art.dst) == program:
            return res.fingerprint.get(f"fp_sha256_{column_suffix(art.name)}", art.sha256)
    for path in req.inputs:
        if posixpath.normpath(posixpath.join(req.workdir or "/", path)) == program:
            return res.fingerprint.get(f"fp_sha256_{column_suffix(posixpath.basename(path))}")
    return None


def classify(res: RunResult, adapter: WorkloadAdapter) -> tuple[str, str | None, dict[str, float]]:
    """(status, error, metrics). Order matters: an infra fault says nothing about the benchmark."""
    if res.infra_error is not None:
        return "infra_error", res.infra_error, {}
    if res.cancelled:
        return "cancelled", "cancelled while running", {}
    if res.timed_out:
        return "timeout", f"killed after {res.duration_s:.1f}s", {}
    if res.exit_code != 0:
        tail = (res.stderr.strip().splitlines() or res.stdout.strip().splitlines() or [""])[-1]
        return "failed", f"exit code {res.exit_code}: {tail[:300]}", {}
    try:
        metrics = adapter.parse(res.stdout + "\n" + res.stderr)
    except OutputParseError as exc:
        return "parse_error", str(exc), {}
    return "ok", None, dict(metrics)


def build_row(
    *,
    job: str,
    req: RunRequest,
    params: Mapping[str, Scalar],
    repeat: int,
    warmup: bool,
    device_kind: str,
    res: RunResult,
    status: str,
    error: str | None,
    metrics: Mapping[str, float],
    log_path: str,
    synthetic: bool,
    settings: Mapping[str, Any] | None = None,
    adapter: WorkloadAdapter | None = None,
    device_id: str | None = None,
    build: str | None = None,
) -> dict[str, Any]:
    """The result row of one run. ``device_id``: the inventory device of the run's slot (default: read from the
    slot id, ``<device>`` or ``<device>/<unit>``)."""
    started = res.started_at or req.dispatched_at
    row: dict[str, Any] = {
        "job": job,
        "run_id": req.run_id,
        "device_id": device_id if device_id is not None else slot_device(req.slot_id),
        "slot": req.slot_id,
        "device_kind": device_kind,
        "node": res.node,
        "status": status,
        "error": error,
        "attempt": req.attempt,
        "repeat": repeat,
        "warmup": warmup,
        "started_at": dt.datetime.fromtimestamp(started, tz=dt.UTC),
        "duration_s": float(res.duration_s),
        "synthetic": bool(synthetic or res.synthetic),
        "command": shlex.join(req.argv),
        "log_path": log_path,
        "exit_code": res.exit_code,
        "bytes_pushed": res.bytes_pushed,
        "build": build_identity(build, req, res),
    }
    if res.dispatch_latency_s is not None:
        row["dispatch_latency_s"] = res.dispatch_latency_s
    for key, value in params.items():
        row[f"p_{key}"] = value
    row.update({k: float(v) for k, v in res.samples.items()})
    row.update({k: float(v) for k, v in metrics.items()})
    row.update(res.energy)  # energy_j, energy_valid, energy_source, … (docs/measurement.md)
    row.update(per_unit_columns(metrics, res.energy))
    row.update(run_columns(req, res, settings))
    row.update(output_fingerprint(res.stdout + "\n" + res.stderr) if status != "infra_error" else {})
    # An adapter may read facts about the environment from the tool's own log (codl_op: the OpenCL runtime).
    tool_fingerprint = getattr(adapter, "fingerprint", None)
    if callable(tool_fingerprint) and status != "infra_error":
        row.update(tool_fingerprint(res.stdout + "\n" + res.stderr))
    row.update(res.fingerprint)  # the device's own facts win over what the benchmark printed
    if res.bench_mode is not None:  # the device state the run was measured in (actors.bench)
        row["bench_mode"] = json.dumps(res.bench_mode, sort_keys=True)
        row["bench_mode_ok"] = bool(res.bench_mode.get("ok"))
        row["bench_mode_warnings"] = json.dumps(res.bench_mode.get("warnings", []))
    return row


def collected_columns(res: RunResult, folder: str | None) -> dict[str, Any]:
    """Columns listing the files copied back from the device: where they are stored, and each one's hash."""
    cols: dict[str, Any] = {}
    if res.collected:
        listing = [{"path": f.path, "sha256": f.sha256, "size_bytes": f.size} for f in res.collected]
        cols["collected_files"] = json.dumps(listing, separators=(",", ":"))
        cols["collected_dir"] = folder or ""
    if res.collect_error:
        cols["collect_error"] = res.collect_error
    return cols


def log_text(req: RunRequest, res: RunResult) -> str:
    head = f"# run {req.run_id} attempt {req.attempt} on {req.slot_id}\n# command: {shlex.join(req.argv)}\n"
    if res.infra_error:
        head += f"# infra error: {res.infra_error}\n"
    return f"{head}# exit code: {res.exit_code}\n--- stdout ---\n{res.stdout}\n--- stderr ---\n{res.stderr}\n"
