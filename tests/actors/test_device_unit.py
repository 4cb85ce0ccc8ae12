"""The generic run of a device (:mod:`actors.device`) on the in-memory fake transport: no server, no Ray.

What a run reports for each way it can end (the status the results store records, through
:func:`farm.rows.classify`), what reaches the transport (argv, env, workdir, pushes), and the thermal gate.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors import exec_wrap
from actors.device import Device
from actors.lease import LEASE_DIR_ENV
from actors.messages import ArtifactRef, RunRequest, RunResult, ThermalGate, pack_requests, unpack_results
from actors.ray_actor import DeviceActor
from actors.transports.base import Transport
from actors.transports.fake import FakeProcess, FakeTransport, Reply, block_until_killed
from farm.errors import ConnectionLostError, DeviceOfflineError
from farm.rows import classify
from farm.specs.inventory import HostDevice, Slot
from farm.workloads import make_adapter

ADAPTER = make_adapter("regex", {"patterns": {"value_count": r"value=(\d+)"}})


class Recorder:
    """A sampler that records what it was told."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.stopped = 0

    def start(self, pid: int) -> None:
        self.started.append(pid)

    def stop(self) -> dict[str, float]:
        self.stopped += 1
        return {"sampled_pid": float(self.started[-1])} if self.started else {}


class FakeDevice(Device):
    """A device kind as a user would write one, on the fake transport; temperatures come from a list."""

    kind = "fake"

    def __init__(self, fake: FakeTransport, temps: list[float | None] | None = None) -> None:
        super().__init__(HostDevice.model_validate({"kind": "host", "id": f"d-{uuid.uuid4().hex[:6]}"}))
        self.fake = fake
        self.temps = list(temps or [])
        self.temp_reads = 0
        self.on_temperature: list[object] = []
        self.recorder = Recorder()

    def transport(self, slot_id: str) -> Transport:
        return self.fake

    def slot_env(self, slot: Slot) -> dict[str, str]:
        return {"SLOT_VAR": "from-slot", "SHARED": "slot"}

    def sampler(self, slot_id: str) -> Recorder:
        self.recorder = Recorder()
        return self.recorder

    def temperature_c(self) -> float | None:
        self.temp_reads += 1
        for hook in self.on_temperature:
            hook()  # type: ignore[operator]
        if not self.temps:
            return None
        return self.temps.pop(0) if len(self.temps) > 1 else self.temps[0]

    def device_fingerprint(self) -> dict[str, str]:
        return {"fp_kind": "fake"}


@pytest.fixture(autouse=True)
def private_leases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(LEASE_DIR_ENV, str(tmp_path / "leases"))
    yield


def request(dev: Device, argv: list[str], **kw: object) -> RunRequest:
    fields: dict[str, object] = {"env": {}, "workdir": None, "timeout_s": 60.0, "run_id": "r", "attempt": 1}
    fields.update(kw)
    return RunRequest(job="t", slot_id=dev.spec.id, argv=argv, **fields)  # type: ignore[arg-type]


def status(res: RunResult) -> str:
    return classify(res, ADAPTER)[0]


# -- how a run ends -----------------------------------------------------------------------------------------------


def test_a_run_reaches_the_transport_with_merged_env_and_workdir_and_is_ok() -> None:
    seen: list[FakeProcess] = []

    def bench(proc: FakeProcess) -> Reply:
        seen.append(proc)
        return Reply(0, "value=7\n", "log line\n")

    fake = FakeTransport(programs={"bench": bench})
    fake.mkdir("/work dir")
    dev = FakeDevice(fake)
    res = dev.execute(request(dev, ["bench", "-n", "it's"], env={"SHARED": "job", "X": "$HOME"}, workdir="/work dir",
                              dispatched_at=1.0))  # fmt: skip
    assert status(res) == "ok" and classify(res, ADAPTER)[2] == {"value_count": 7.0}
    assert (res.exit_code, res.stdout, res.stderr) == (0, "value=7\n", "log line\n")
    (proc,) = seen
    assert proc.argv == ("bench", "-n", "it's") and proc.workdir == "/work dir"
    assert proc.env == {"SLOT_VAR": "from-slot", "SHARED": "job", "X": "$HOME"}  # the job's env wins
    assert res.argv == ["bench", "-n", "it's"] and res.env == proc.env
    assert dev.recorder.started == [proc.pid] and dev.recorder.stopped == 1
    assert res.samples["sampled_pid"] == proc.pid
    assert res.dispatch_latency_s is not None and res.dispatch_latency_s > 0
    assert res.fingerprint["fp_kind"] == "fake" and res.infra_error is None and not res.synthetic


def test_cores_wrap_the_command_in_taskset() -> None:
    fake = FakeTransport(programs={"taskset": lambda proc: Reply(0, "value=1\n")})
    dev = FakeDevice(fake)
    res = dev.execute(request(dev, ["bench"], cores="4-7"))
    assert status(res) == "ok"
    assert [c.argv for c in fake.calls_of("run")] == [("taskset", "f0", "bench")]


def test_a_non_zero_exit_is_a_failed_run_with_the_last_stderr_line() -> None:
    dev = FakeDevice(FakeTransport(programs={"bench": lambda proc: Reply(3, "value=1\n", "warming\nout of memory\n")}))
    res = dev.execute(request(dev, ["bench"]))
    assert status(res) == "failed" and classify(res, ADAPTER)[1] == "exit code 3: out of memory"
    assert res.infra_error is None


def test_a_missing_program_is_a_failed_run_not_an_infra_error() -> None:
    dev = FakeDevice(FakeTransport())
    res = dev.execute(request(dev, ["no-such-bench"]))
    assert res.exit_code == 127 and status(res) == "failed"


def test_timeout_kills_the_command_and_is_a_timeout() -> None:
    fake = FakeTransport(programs={"bench": block_until_killed})
    dev = FakeDevice(fake)
    res = dev.execute(request(dev, ["bench"], timeout_s=0.2))
    assert status(res) == "timeout" and res.timed_out and res.exit_code is None
    (proc,) = fake.processes
    assert proc.killed.is_set() and proc.state == "killed" and fake.running() == []
    assert dev.recorder.stopped == 1  # the sampler is stopped whatever the outcome


def test_cancel_while_running_kills_the_command_and_is_cancelled() -> None:
    dev: FakeDevice

    def bench(proc: FakeProcess) -> Reply:
        proc.write("value=1\n")
        assert dev.cancel("c")  # from the controller, while the command runs
        return block_until_killed(proc)

    fake = FakeTransport(programs={"bench": bench})
    dev = FakeDevice(fake)
    res = dev.execute(request(dev, ["bench"], run_id="c"))
    assert status(res) == "cancelled" and res.cancelled and res.exit_code is None
    assert res.stdout == "value=1\n"  # output up to the kill is kept
    assert fake.running() == [] and not dev.cancel("c")  # the run is forgotten once it ended


def test_a_dropped_link_is_an_infra_error_and_the_retry_succeeds() -> None:
    attempts: list[int] = []

    def bench(proc: FakeProcess) -> Reply:
        attempts.append(proc.pid)
        if len(attempts) == 1:
            proc.device.drop_link()
            return block_until_killed(proc)
        return Reply(0, "value=2\n")

    fake = FakeTransport(programs={"bench": bench})
    dev = FakeDevice(fake)
    first = dev.execute(request(dev, ["bench"]))
    assert status(first) == "infra_error" and first.infra_error is not None and "connection lost" in first.infra_error
    assert dev.recorder.stopped == 1
    orphan = fake.processes[0]
    assert orphan.state == "orphaned" and fake.running() == [orphan]  # still running on the device
    orphan.kill()
    retry = dev.execute(request(dev, ["bench"], attempt=2))
    assert status(retry) == "ok" and len(attempts) == 2


def test_an_offline_device_is_an_infra_error_before_anything_runs(tmp_path: Path) -> None:
    fake = FakeTransport(programs={"bench": lambda proc: Reply(0, "value=1\n")})
    fake.set_offline(reason="adb server lists the phone as offline")
    dev = FakeDevice(fake)
    res = dev.execute(request(dev, ["bench"], artifacts=[_artifact(tmp_path, "model.bin", b"w" * 10)]))
    assert status(res) == "infra_error" and res.infra_error is not None and "offline" in res.infra_error
    assert fake.processes == [] and res.argv is None
    fake.set_offline(False)
    assert status(dev.execute(request(dev, ["bench"]))) == "ok"


def test_a_failed_push_is_an_infra_error_and_the_command_does_not_run(tmp_path: Path) -> None:
    fake = FakeTransport(programs={"bench": lambda proc: Reply(0, "value=1\n")})
    fake.fail_next("push", ConnectionLostError("fake: link dropped during push"))
    dev = FakeDevice(fake)
    res = dev.execute(request(dev, ["bench"], artifacts=[_artifact(tmp_path, "model.bin", b"w" * 10)]))
    assert res.infra_error == "fake: link dropped during push" and fake.processes == []


def test_a_run_the_transport_refuses_is_a_failed_run_not_retried() -> None:
    fake = FakeTransport(programs={"bench": lambda proc: Reply(0, "value=1\n")})
    dev = FakeDevice(fake)
    res = dev.execute(request(dev, ["bench"], env={"BAD-NAME": "1"}))
    assert status(res) == "failed" and res.infra_error is None
    assert res.exit_code == 255 and "environment variable name" in res.stderr and fake.processes == []


def test_a_bug_below_the_device_is_a_failed_run_naming_it() -> None:
    def broken(proc: FakeProcess) -> Reply:
        raise KeyError("parser state")

    dev = FakeDevice(FakeTransport(programs={"bench": broken}))
    res = dev.execute(request(dev, ["bench"]))
    assert status(res) == "failed" and res.infra_error is None
    assert "the device actor raised KeyError" in res.stderr


def test_a_device_error_raised_by_the_command_is_an_infra_error() -> None:
    def gone(proc: FakeProcess) -> Reply:
        raise DeviceOfflineError("fake: unauthorized")

    res = (dev := FakeDevice(FakeTransport(programs={"bench": gone}))).execute(request(dev, ["bench"]))
    assert status(res) == "infra_error" and res.infra_error == "fake: unauthorized"


# -- artifacts ----------------------------------------------------------------------------------------------------


def _artifact(
    tmp_path: Path, name: str, data: bytes, dst: str = "/data/models/", mode: int | None = 0o640
) -> ArtifactRef:
    path = tmp_path / name
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    return ArtifactRef(name=name, sha256=digest, size=len(data), dst=dst, mode=mode, local_path=str(path))


def test_artifacts_are_pushed_before_the_run_once_per_content(tmp_path: Path) -> None:
    fake = FakeTransport(programs={"bench": lambda proc: Reply(0, "value=1\n")})
    dev = FakeDevice(fake)
    art = _artifact(tmp_path, "model.bin", b"weights" * 1000)
    first = dev.execute(request(dev, ["bench"], artifacts=[art]))
    assert status(first) == "ok" and first.bytes_pushed == art.size
    assert [c.verb for c in fake.calls if c.verb in ("push", "run")] == ["push", "run"]
    assert fake.read("/data/models/model.bin") == b"weights" * 1000
    assert fake.files["/data/models/model.bin"].mode == 0o640
    assert first.fingerprint["fp_sha256_model_bin"] == art.sha256
    again = dev.execute(request(dev, ["bench"], artifacts=[art]))
    assert again.bytes_pushed == 0 and again.fingerprint["fp_sha256_model_bin"] == art.sha256


# -- the thermal gate ---------------------------------------------------------------------------------------------


def _gate(**kw: float | None) -> ThermalGate:
    fields: dict[str, float | None] = {"max_temp_c": None, "margin_c": 2.0, "max_wait_s": 60.0, "poll_s": 0.01}
    fields.update(kw)
    return ThermalGate(**fields)  # type: ignore[arg-type]


def _bench() -> FakeTransport:
    return FakeTransport(programs={"bench": lambda proc: Reply(0, "value=1\n")})


def test_the_gate_waits_until_the_device_is_back_near_idle() -> None:
    dev = FakeDevice(_bench(), temps=[50.0, 47.0, 43.0, 41.5, 30.0])
    dev._idle_temp_c = 40.0
    res = dev.execute(request(dev, ["bench"], thermal=_gate()))
    assert status(res) == "ok"
    assert res.samples["cooldown_target_c"] == 42.0 and res.samples["temp_gate_first_c"] == 50.0
    assert res.samples["temp_start_c"] == 41.5 and res.samples["cooldown_capped"] == 0.0
    assert dev.temp_reads == 4  # stopped reading once cool; the run's start temperature is the gate's last


def test_the_gate_takes_the_first_reading_as_idle_when_none_is_known() -> None:
    dev = FakeDevice(_bench(), temps=[36.0])
    res = dev.execute(request(dev, ["bench"], thermal=_gate()))
    assert res.samples["cooldown_target_c"] == 38.0 and res.samples["cooldown_wait_s"] < 1.0
    assert res.samples["cooldown_capped"] == 0.0


def test_the_gate_gives_up_after_max_wait_and_says_so() -> None:
    dev = FakeDevice(_bench(), temps=[60.0])
    dev._idle_temp_c = 40.0
    res = dev.execute(request(dev, ["bench"], thermal=_gate(max_wait_s=0.2)))
    assert status(res) == "ok"  # the run goes ahead, marked
    assert res.samples["cooldown_capped"] == 1.0 and res.samples["cooldown_wait_s"] >= 0.2
    assert res.samples["temp_start_c"] == 60.0


def test_an_absolute_limit_replaces_the_idle_margin() -> None:
    dev = FakeDevice(_bench(), temps=[48.0, 44.0])
    dev._idle_temp_c = 30.0
    res = dev.execute(request(dev, ["bench"], thermal=_gate(max_temp_c=45.0)))
    assert res.samples["cooldown_target_c"] == 45.0 and res.samples["temp_start_c"] == 44.0


def test_cancel_during_the_gate_runs_nothing() -> None:
    fake = _bench()
    dev = FakeDevice(fake, temps=[60.0])
    dev._idle_temp_c = 40.0
    dev.on_temperature.append(lambda: dev.temp_reads == 2 and dev.cancel("g"))
    res = dev.execute(request(dev, ["bench"], run_id="g", thermal=_gate(max_wait_s=600.0)))
    assert status(res) == "cancelled" and fake.processes == []


def test_a_device_without_a_sensor_is_not_gated() -> None:
    dev = FakeDevice(_bench(), temps=[])
    res = dev.execute(request(dev, ["bench"], thermal=_gate()))
    assert status(res) == "ok" and "cooldown_wait_s" not in res.samples and "temp_start_c" not in res.samples


def test_cancel_wakes_a_waiting_gate_at_once() -> None:
    # the gate sleeps on the cancel event, not in time.sleep: a cancel from another thread ends a long wait
    dev = FakeDevice(_bench(), temps=[60.0])
    dev._idle_temp_c = 40.0
    waiting = threading.Event()
    dev.on_temperature.append(waiting.set)
    out: list[RunResult] = []
    runner = threading.Thread(target=lambda: out.append(dev.execute(request(dev, ["bench"], run_id="w",
                                                                            thermal=_gate(poll_s=600.0)))))  # fmt: skip
    runner.start()
    assert waiting.wait(60)
    assert dev.cancel("w")  # registered before the gate's first reading
    runner.join(60)
    assert not runner.is_alive() and status(out[0]) == "cancelled"


# -- in a container -----------------------------------------------------------------------------------------------


def test_a_timed_out_run_in_a_container_is_killed_inside_it() -> None:
    def docker(proc: FakeProcess) -> Reply:
        if "farm-kill" in proc.argv:
            return Reply(0)
        return block_until_killed(proc)  # docker exec: killing the client leaves the command running inside

    fake = FakeTransport(programs={"docker": docker})
    fake.mkdir("/w")
    dev = FakeDevice(fake)
    res = dev.execute(request(dev, ["bench"], docker="cann", env={"K": "v"}, workdir="/w", timeout_s=0.2))
    assert status(res) == "timeout"
    started, killed = fake.calls_of("run")
    pidfile = exec_wrap.pid_file("r", 1)
    assert list(started.argv) == exec_wrap.docker_argv("cann", ["bench"], {"SLOT_VAR": "from-slot", "SHARED": "slot",
                                                                          "K": "v"}, "/w", pidfile)  # fmt: skip
    assert started.env == {} and started.workdir is None  # both go inside the container, not to docker itself
    assert list(killed.argv) == exec_wrap.kill_argv("cann", pidfile)


# -- a batch: several short runs in one call to the device actor (farm.batching) ----------------------------------


def _actor(dev: Device) -> DeviceActor:
    actor = DeviceActor({"kind": "host", "id": dev.spec.id})  # outside Ray: a plain object
    actor.device = dev
    return actor


def _batch(actor: DeviceActor, reqs: list[RunRequest]) -> list[RunResult | None]:
    data, refs = pack_requests(reqs)
    return unpack_results(actor.execute(data, refs))


def test_a_batch_runs_its_requests_in_order_each_timed_from_when_the_previous_ended() -> None:
    order: list[str] = []

    def bench(proc: FakeProcess) -> Reply:
        order.append(proc.argv[1])
        return Reply(0, "value=1\n")

    dev = FakeDevice(FakeTransport(programs={"bench": bench}))
    long_ago = time.time() - 100
    reqs = [request(dev, ["bench", f"r{i}"], run_id=f"r{i}", dispatched_at=long_ago) for i in range(3)]
    results = _batch(_actor(dev), reqs)
    assert order == ["r0", "r1", "r2"] and all(r is not None and status(r) == "ok" for r in results)
    latencies = [r.dispatch_latency_s for r in results if r is not None]
    assert latencies[0] is not None and latencies[0] >= 100  # the call's own wait
    assert all(lat is not None and lat < 50 for lat in latencies[1:])  # queued behind the previous run


def test_an_infra_fault_stops_the_batch_and_the_rest_come_back_not_started() -> None:
    def bench(proc: FakeProcess) -> Reply:
        if proc.argv[1] == "r1":
            raise DeviceOfflineError("fake: gone")
        return Reply(0, "value=1\n")

    dev = FakeDevice(FakeTransport(programs={"bench": bench}))
    results = _batch(_actor(dev), [request(dev, ["bench", f"r{i}"], run_id=f"r{i}") for i in range(4)])
    assert results[0] is not None and status(results[0]) == "ok"
    assert results[1] is not None and results[1].infra_error == "fake: gone"
    assert results[2:] == [None, None]


def test_a_cancel_keeps_a_batch_run_from_starting_and_stops_the_running_one() -> None:
    holder: list[DeviceActor] = []

    def bench(proc: FakeProcess) -> Reply:
        if proc.argv[1] == "r0":
            assert holder[0].cancel(["r1"]) == 1  # r1 waits in the batch: it will not start
            return Reply(0, "value=1\n")
        if proc.argv[1] == "r2":
            threading.Thread(target=holder[0].cancel, args=(["r2", "r3"],)).start()
            return block_until_killed(proc)
        return Reply(0, "value=1\n")

    dev = FakeDevice(FakeTransport(programs={"bench": bench}))
    holder.append(actor := _actor(dev))
    results = _batch(actor, [request(dev, ["bench", f"r{i}"], run_id=f"r{i}") for i in range(4)])
    assert results[0] is not None and status(results[0]) == "ok"
    assert results[1] is None and results[3] is None
    assert results[2] is not None and status(results[2]) == "cancelled"
    assert actor.cancel(["r0"]) == 0  # the call is over: nothing of it is left to cancel
