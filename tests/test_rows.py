"""Result rows from raw outcomes: status classification order, fingerprint lines, parameters as columns."""

from __future__ import annotations

import json
from typing import Any

from actors.messages import ArtifactRef, RunRequest, RunResult
from farm.rows import REDACTED, RUN_COLUMNS, build_row, classify, output_fingerprint
from farm.workloads import make_adapter

ADAPTER = make_adapter("regex", {"patterns": {"value_ms": r"value=(\d+)"}})


def _req() -> RunRequest:
    return RunRequest("j", "rid", 2, "dev", ["bench", "-t", "4"], {}, None, 10.0, dispatched_at=1_700_000_000.0)


def test_classification_order_infra_beats_everything() -> None:
    assert classify(RunResult(infra_error="gone", exit_code=0, stdout="value=1"), ADAPTER)[0] == "infra_error"
    assert classify(RunResult(cancelled=True, exit_code=None), ADAPTER)[0] == "cancelled"
    assert classify(RunResult(timed_out=True, exit_code=None, duration_s=3), ADAPTER)[:2] == (
        "timeout",
        "killed after 3.0s",
    )
    assert classify(RunResult(exit_code=3, stderr="boom\nlast words"), ADAPTER)[:2] == (
        "failed",
        "exit code 3: last words",
    )
    assert classify(RunResult(exit_code=0, stdout="nothing here"), ADAPTER)[0] == "parse_error"
    assert classify(RunResult(exit_code=0, stderr="value=7"), ADAPTER) == ("ok", None, {"value_ms": 7.0})


def test_fingerprint_lines_become_columns_but_never_override_the_device() -> None:
    text = "x\nfarm-fp: fp_model_sha256=abc123\n  farm-fp: fp_cpu_model=liar\nfarm-fp: not_fp=1\n"
    assert output_fingerprint(text) == {"fp_model_sha256": "abc123", "fp_cpu_model": "liar"}
    res = RunResult(exit_code=0, stderr=text + "value=5", fingerprint={"fp_cpu_model": "Real CPU"})
    row = build_row(
        job="j",
        req=_req(),
        params={"threads": 4, "sp": 0.5},
        repeat=1,
        warmup=False,
        device_kind="host",
        res=res,
        status="ok",
        error=None,
        metrics={"value_ms": 5.0},
        log_path="/l",
        synthetic=False,
    )
    assert row["fp_model_sha256"] == "abc123" and row["fp_cpu_model"] == "Real CPU"
    assert row["p_threads"] == 4 and row["p_sp"] == 0.5 and row["attempt"] == 2
    assert row["command"] == "bench -t 4" and row["started_at"].timestamp() == 1_700_000_000.0


def _row(req: RunRequest, res: RunResult, settings: dict[str, object] | None = None, **extra: Any) -> dict[str, object]:
    return build_row(
        job="j",
        req=req,
        params={"threads": 4},
        repeat=0,
        warmup=False,
        device_kind="host",
        res=res,
        status="ok",
        error=None,
        metrics={},
        log_path="/l",
        synthetic=False,
        settings=settings,
        **extra,
    )


def test_a_row_says_exactly_what_ran_with_secrets_redacted() -> None:
    art = ArtifactRef("bench.sh", "ab" * 32, 12, "/data/b/bench.sh", 0o755, "/home/me/bench.sh")
    req = RunRequest("j", "rid", 1, "dev", ["bench", "-t", "4"], {"T": "4"}, "/w", 10.0, artifacts=[art], cores="0,1")
    ran = RunResult(
        exit_code=0,
        argv=["taskset", "-c", "0,1", "bench", "-t", "4"],
        env={"PATH": "/bin", "T": "4", "HF_TOKEN": "hf_abc", "DB_PASSWORD": "pw", "MAX_TOKENS": "8"},
    )
    row = _row(req, ran, {"workload": "regex", "timeout_s": 10.0})
    assert row["command"] == "bench -t 4"  # as rendered: what the job said
    assert json.loads(row["argv"]) == ["taskset", "-c", "0,1", "bench", "-t", "4"]  # as the device ran it
    assert json.loads(row["env"]) == {
        "PATH": "/bin",
        "T": "4",
        "HF_TOKEN": REDACTED,
        "DB_PASSWORD": REDACTED,
        "MAX_TOKENS": "8",  # a parameter that mentions tokens is not a secret
    }
    assert "hf_abc" not in json.dumps(row, default=str) and "pw" not in row["env"]
    assert row["workdir"] == "/w"
    assert json.loads(row["artifacts"]) == [
        {"name": "bench.sh", "sha256": "ab" * 32, "size": 12, "dst": "/data/b/bench.sh", "mode": 0o755,
         "src": "/home/me/bench.sh"}
    ]  # fmt: skip
    assert json.loads(row["settings"]) == {"workload": "regex", "timeout_s": 10.0, "cores": "0,1"}
    assert set(RUN_COLUMNS) <= set(row)


def test_a_run_that_never_started_records_its_rendered_command_and_env() -> None:
    req = RunRequest("j", "rid", 1, "dev", ["bench"], {"API_KEY": "k", "X": "1"}, None, 10.0)
    row = _row(req, RunResult(cancelled=True))
    assert json.loads(row["argv"]) == ["bench"] and json.loads(row["env"]) == {"API_KEY": REDACTED, "X": "1"}
    assert row["workdir"] is None and row["artifacts"] == "[]" and row["settings"] is None


def test_an_adapter_reads_facts_from_the_tool_log_into_the_fingerprint() -> None:
    text = (
        "I mace/core/runtime/opencl/opencl_runtime.cc:604] OpenCL device: Mali-G77 MC9 r0p1\n"
        "I x.cc:1] Stat: si 10, stat [2.5], std_pect [1]\n"
    )
    res = RunResult(exit_code=0, stderr=text, fingerprint={"fp_soc": "mt6983"})
    adapter = make_adapter("codl_op")
    status, error, metrics = classify(res, adapter)
    fixed = {"job": "j", "req": _req(), "params": {}, "repeat": 0, "warmup": False, "device_kind": "android"}
    row = build_row(**fixed, res=res, status=status, error=error, metrics=metrics, log_path="/l", synthetic=False,
                    adapter=adapter)  # fmt: skip
    assert row["fp_opencl_device"] == "Mali-G77 MC9 r0p1" and row["fp_soc"] == "mt6983" and row["latency_ms"] == 2.5


def test_a_row_names_the_inventory_device_and_the_slot_it_leased() -> None:
    chip = RunRequest("j", "rid", 1, "tpu-box/chip1", ["bench"], {}, None, 10.0, dispatched_at=1_700_000_000.0)
    row = _row(chip, RunResult(exit_code=0))
    assert (row["device_id"], row["slot"]) == ("tpu-box", "tpu-box/chip1")
    phone = _row(_req(), RunResult(exit_code=0))
    assert (phone["device_id"], phone["slot"]) == ("dev", "dev")
    given = _row(chip, RunResult(exit_code=0), device_id="from-the-inventory")
    assert (given["device_id"], given["slot"]) == ("from-the-inventory", "tpu-box/chip1")


def test_build_is_the_label_else_the_binary_argv0_names_else_none() -> None:
    import dataclasses

    art = ArtifactRef("bench", "ab" * 32, 12, "/data/b/bench", 0o755, "/home/me/bench")
    pushed = RunResult(exit_code=0, fingerprint={"fp_sha256_bench": "cd" * 32})
    req = dataclasses.replace(_req(), argv=["./bench", "-t", "4"], workdir="/data/b", artifacts=[art])
    assert _row(req, pushed)["build"] == "cd" * 32  # the bytes the device got
    assert _row(req, RunResult(infra_error="gone"))["build"] == "ab" * 32  # never pushed: the source's hash
    absolute = dataclasses.replace(req, argv=["/data/b/bench"], workdir=None)
    assert _row(absolute, pushed)["build"] == "cd" * 32
    # argv[0] is not the artifact (a helper script is): no identity unless the device hashed argv[0] itself
    other = dataclasses.replace(req, argv=["sh", "bench"])
    assert _row(other, pushed)["build"] is None
    hashed = RunResult(exit_code=0, fingerprint={"fp_sha256_llama_cli": "ef" * 32})
    on_device = dataclasses.replace(_req(), argv=["bin/llama-cli"], workdir="/opt/l", inputs=["/opt/l/bin/llama-cli"])
    assert _row(on_device, hashed)["build"] == "ef" * 32
    labelled = build_row(job="j", req=req, params={}, repeat=0, warmup=False, device_kind="host", res=pushed,
                         status="ok", error=None, metrics={}, log_path="/l", synthetic=False, build="v1.2")  # fmt: skip
    assert labelled["build"] == "v1.2"


def test_energy_columns_keep_their_types_and_give_work_per_joule() -> None:
    from farm.probes.power import EnergyReading
    from farm.results.schema import validate_row

    energy = EnergyReading("fuel_gauge", 20.0, 4.0, 9, 0.45, 0.6).columns()
    res = RunResult(exit_code=0, energy=energy)
    metrics = {"prefill_tokens": 8.0, "decode_tokens": 32.0, "decode_tokens_per_s": 9.0}
    row = build_row(job="j", req=_req(), params={}, repeat=0, warmup=False, device_kind="android", res=res,
                    status="ok", error=None, metrics=metrics, log_path="/l", synthetic=True)  # fmt: skip
    assert row["energy_valid"] is True and row["energy_source"] == "fuel_gauge"
    assert (row["energy_j"], row["avg_power_w"], row["idle_power_w"]) == (20.0, 5.0, 0.6)
    assert row["tokens_per_j"] == 2.0 and row["j_per_token"] == 0.5
    validate_row(row)  # bool and string extras are allowed as they are
    charging = EnergyReading("fuel_gauge", 20.0, 4.0, 9, 0.45, 0.6, problem="charging").columns()
    row = build_row(job="j", req=_req(), params={}, repeat=0, warmup=False, device_kind="android",
                    res=RunResult(exit_code=0, energy=charging), status="ok", error=None, metrics=metrics,
                    log_path="/l", synthetic=True)  # fmt: skip
    assert row["energy_valid"] is False and row["energy_invalid_reason"] == "charging" and "j_per_token" not in row
