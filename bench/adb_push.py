"""Artifact push throughput of AdbTransport.push against the ``adb push`` CLI, to the same virtual phone.

Starts a private adb server (Debian ``adb``) and one virtual phone in a **separate process** (so the phone's
Python does not compete with the pushing client for one interpreter lock), then alternates rounds of three
pushes in rotating order: ``adb push`` (CLI), ``AdbTransport.push`` with the artifact's sha256 not yet known
(*cold*: hashed while sending) and with it already known (*warm*: what a device actor does, since
``actors.artifacts.local_copy`` hashes the artifact in the same process before the push). Each push gets
fresh content and a new remote name, so the cache check runs and misses as for a new artifact. The push's wall
clock includes the check round trip, the rename and the marker. Then the same artifact is pushed again to the
same place: it must move 0 bytes. Figures are printed last: medians, the ratios push/CLI (target >= 0.9) and
the repeat push time (target <= 50 ms). The phone side is Python on the same cores, so on a loaded machine the
spread between rounds is large: read the medians.

    .venv/bin/python bench/adb_push.py [--mb 150] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.host_probe import file_sha256
from actors.transports.adb import AdbTransport
from bench.common import refresh, virtual_phone_process
from farm.specs.inventory import AdbConnection


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    size = args.mb << 20
    with tempfile.TemporaryDirectory(prefix="farm-bench-adb-") as tmp:
        root = Path(tmp)
        with virtual_phone_process(root) as vp:
            server, serial = vp.server, vp.serial
            transport = AdbTransport(AdbConnection(serial=serial, server_port=server.port), "bench-phone")
            transport.check_output(["mkdir", "-p", "/data/local/tmp/bench"])
            src = root / "artifact.bin"
            rates: dict[str, list[float]] = {"cli": [], "cold": [], "warm": []}
            kinds = list(rates)
            for rnd in range(1, args.rounds + 1):
                order = kinds[rnd % 3 :] + kinds[: rnd % 3]
                for which in order:
                    refresh(src, size)
                    if which == "warm":
                        file_sha256(src)
                    dst = f"/data/local/tmp/bench/artifact-{which}-{rnd}.bin"
                    t0 = time.perf_counter()
                    if which == "cli":
                        server.run("-s", serial, "push", str(src), dst, timeout=300, check=True)
                    else:
                        res = transport.push(src, dst)
                        assert res.bytes_pushed == size, res
                    secs = time.perf_counter() - t0
                    got = transport.check_output(["stat", "-c", "%s", dst]).strip()
                    assert got == str(size), (which, got)
                    transport.check_output(["rm", "-f", dst, f"{dst}.farm-sha256"])
                    rate = size / secs / 1e6
                    rates[which].append(rate)
                    print(f"round {rnd} {which:>4}: {secs:6.2f} s  {rate:7.1f} MB/s", flush=True)
            dst = "/data/local/tmp/bench/model.bin"
            transport.push(src, dst)
            repeats: list[float] = []
            for _ in range(5):
                t0 = time.perf_counter()
                res = transport.push(src, dst)
                repeats.append(time.perf_counter() - t0)
                assert res.bytes_pushed == 0, res
            adb_version = server.run("version").stdout.splitlines()[1].strip()
    med = {k: statistics.median(v) for k, v in rates.items()}
    load1, load5, _ = os.getloadavg()
    print(f"machine: {os.cpu_count()} cpus, load {load1:.1f}/{load5:.1f}, {adb_version}")
    print(f"adb push CLI               median {med['cli']:6.1f} MB/s over {args.rounds} rounds of {args.mb} MiB")
    print(f"AdbTransport.push, cold    median {med['cold']:6.1f} MB/s (sha256 computed while sending)")
    print(f"AdbTransport.push, warm    median {med['warm']:6.1f} MB/s (sha256 known, as in a device actor)")
    print(f"ratio push/CLI: cold {med['cold'] / med['cli']:.2f}, warm {med['warm'] / med['cli']:.2f} (target >= 0.9)")
    rep_med, rep_max = statistics.median(repeats) * 1000, max(repeats) * 1000
    print(
        f"repeat push of an unchanged {args.mb} MiB artifact: 0 bytes, median {rep_med:.1f} ms,"
        f" max {rep_max:.1f} ms over {len(repeats)} (target <= 50 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
