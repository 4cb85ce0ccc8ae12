"""Overhead of the phone sampler (one shell round trip per poll) on a CPU-bound command on a virtual phone,
with energy on: every poll also reads the battery fuel gauge, and each run starts with the idle window's reads.

Starts a private adb server (Debian ``adb``) and one virtual phone in a separate process, pushes a file and
runs ``sha256sum`` over it several times: the phone hashes it for real, so the command is CPU-bound on the
phone. Rounds alternate with and without the sampler (AB, BA, ...), through the real ``Phone`` device's
transport and ``PhoneSampler``. Two measures per run:

* **phone CPU** — user + system CPU seconds the phone's process spent during the run (``/proc/<pid>/stat``):
  the benchmark's hashing plus whatever the polls (and, for the sampled arm, the fuel gauge reads of the idle
  window right before the run) made the phone do. The sampler's share is
  median(with) / median(without) − 1 (target <= 1 %). CPU time does not depend on how busy the machine is, so
  this is the robust figure on a shared machine.
* **wall** — the transport's ``duration_s`` (pid announced → exit frame), medians and paired differences. On a
  loaded machine its run-to-run spread is far larger than the effect.

* **share of one core** — the same rounds with ``sleep`` as the command (the phone does nothing else), so the
  phone's CPU time is the sampler's own: (CPU with − CPU without) / wall time of the sampled run, idle window
  included. The difference of two ~4 s CPU-bound runs varies by ±5 % on a loaded machine; this one does not.

Figures printed last, with the polls per run and the mean round trip of a poll.

    .venv/bin/python bench/phone_sampler.py [--mb 128] [--passes 30] [--rounds 8] [--sleep-s 4] [--sleep-rounds 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.phone import Phone, PhoneSampler
from actors.transports.adb import AdbTransport
from bench.common import virtual_phone_process
from farm.specs.inventory import AndroidDevice


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (the phone), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_share(phone: Phone, transport: AdbTransport, pid: int, sleep_s: float, rounds: int, energy: bool) -> float:
    """Phone CPU seconds the sampler (idle window, polls, last poll) costs per wall second of the sampled run;
    ``energy`` off: as if the phone had no fuel gauge (no gauge reads, no idle window)."""
    layout = phone.layout()
    phone._layout = dataclasses.replace(layout, gauge=energy and layout.gauge)
    cpu: dict[str, list[float]] = {"with": [], "without": []}
    walls: list[float] = []
    for rnd in range(rounds):
        for arm in ("with", "without") if rnd % 2 == 0 else ("without", "with"):
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            sampler = phone.sampler("bench-phone") if arm == "with" else None
            done = transport.run(["sleep", f"{sleep_s:g}"], timeout=600, on_start=sampler.start if sampler else None)
            assert done.exit_code == 0, done.stderr
            if sampler is not None:
                sampler.stop()
                walls.append(time.monotonic() - t0)
            cpu[arm].append(cpu_seconds(pid) - cpu0)
            print(f"sleep round {rnd + 1} {arm:>7} (energy {'on' if energy else 'off'}): "
                  f"phone cpu {cpu[arm][-1]:6.3f} s", flush=True)  # fmt: skip
    phone._layout = layout
    return (statistics.median(cpu["with"]) - statistics.median(cpu["without"])) / statistics.median(walls)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=128, help="size of the file hashed on the phone")
    ap.add_argument("--passes", type=int, default=30, help="how many times one run hashes it")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--sleep-s", type=float, default=4.0, help="length of the idle command of the core-share rounds")
    ap.add_argument("--sleep-rounds", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="farm-bench-sampler-") as tmp:
        root = Path(tmp)
        with virtual_phone_process(root) as vp:
            server, serial = vp.server, vp.serial
            spec = AndroidDevice.model_validate(
                {"id": "bench-phone", "kind": "android", "adb": {"serial": serial, "server_port": server.port}}
            )
            phone = Phone(spec)
            transport = phone.transport(spec.id)
            assert isinstance(transport, AdbTransport)
            blob = root / "blob.bin"
            with blob.open("wb") as fh:
                for _ in range(args.mb):
                    fh.write(os.urandom(1 << 20))
            transport.push(blob, "/data/local/tmp/blob.bin")
            argv = ["sha256sum", *["/data/local/tmp/blob.bin"] * args.passes]
            assert phone.layout().gauge  # read once per device actor, outside any run
            times: dict[str, list[float]] = {"with": [], "without": []}
            cpu: dict[str, list[float]] = {"with": [], "without": []}
            polls: list[float] = []
            rtt_ms: list[float] = []
            for rnd in range(1, args.rounds + 1):
                for arm in ("with", "without") if rnd % 2 else ("without", "with"):
                    cpu0 = cpu_seconds(vp.pid)
                    sampler = phone.sampler(spec.id) if arm == "with" else None  # reads the idle window
                    done = transport.run(argv, timeout=600, on_start=sampler.start if sampler else None)
                    assert done.exit_code == 0, done.stderr
                    if sampler is not None:
                        samples = sampler.stop()  # its last poll (temp_end_c) is part of its cost
                        polls.append(samples["sampler_polls"])
                        assert isinstance(sampler, PhoneSampler)
                        energy = sampler.energy_columns()
                        assert energy.get("energy_valid") is True, energy
                        rtt_ms.append(samples.get("sampler_poll_ms", float("nan")))
                    cpu[arm].append(cpu_seconds(vp.pid) - cpu0)
                    times[arm].append(done.duration_s)
                    print(
                        f"round {rnd} {arm:>7}: {done.duration_s:6.3f} s, phone cpu {cpu[arm][-1]:6.3f} s", flush=True
                    )
            shares = {
                on: core_share(phone, transport, vp.pid, args.sleep_s, args.sleep_rounds, on) for on in (True, False)
            }
    for on, share in shares.items():
        print(
            f"sampler alone, energy {'on' if on else 'off'} (sleep {args.sleep_s:g} s, {args.sleep_rounds} rounds "
            f"per arm): {1000 * share:.2f} ms of phone cpu per second of run = {100 * share:.2f} % of one core"
            + (" (target <= 1 %)" if on else "")
        )
    if not times["with"]:
        return 0
    with_s, without_s = statistics.median(times["with"]), statistics.median(times["without"])
    cpu_with, cpu_without = statistics.median(cpu["with"]), statistics.median(cpu["without"])
    paired = [a / b - 1 for a, b in zip(times["with"], times["without"], strict=True)]
    load1, load5, _ = os.getloadavg()
    poll_rtt = statistics.median(rtt_ms)
    print(f"machine: {os.cpu_count()} cpus, load {load1:.1f}/{load5:.1f}")
    print(f"run: sha256sum of {args.mb} MiB x {args.passes} on a virtual phone, {args.rounds} rounds per arm")
    print(f"sampler: {statistics.median(polls):.0f} polls per run, mean poll round trip {poll_rtt:.1f} ms")
    print(f"wall:  median run time with sampler {with_s:.3f} s, without {without_s:.3f} s")
    print(f"wall:  overhead (median with / median without - 1) = {100 * (with_s / without_s - 1):+.2f} %")
    print(f"wall:  median paired difference {100 * statistics.median(paired):+.2f} %")
    print(f"phone cpu: median per run with sampler {cpu_with:.3f} s, without {cpu_without:.3f} s")
    print(
        f"phone cpu: sampler's share = {100 * (cpu_with / cpu_without - 1):+.2f} % "
        f"({1000 * (cpu_with - cpu_without) / statistics.median(polls):.2f} ms per poll) (target <= 1 %)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
