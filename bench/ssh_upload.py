"""Upload throughput of SshTransport.push (paramiko SFTP) against OpenSSH ``scp`` to the same loopback sshd.

Starts the test sshd (tests/fixtures/ssh.py), then alternates A/B rounds (AB, BA, AB, ...): each round
gives the artifact fresh random content and uploads it once with ``SshTransport.push`` (cache on, to a new
remote name, so its cache check runs and misses as for a new artifact) and once with ``scp`` (which in
OpenSSH 9 speaks SFTP too). Wall clock includes the push's sha256 and marker bookkeeping: they are part of
what a push costs. Prints per-round MB/s, the medians, and last the ratio push/scp (target ≥ 0.8).

    .venv/bin/python bench/ssh_upload.py [--mb 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.transports.ssh import SshTransport
from bench.common import refresh
from tests.fixtures.ssh import make_sshd_box


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    size = args.mb << 20
    with tempfile.TemporaryDirectory(prefix="farm-bench-ssh-") as tmp:
        root = Path(tmp)
        box = make_sshd_box(root / "box")
        try:
            src = root / "artifact.bin"
            refresh(src, size)
            remote_dir = box.workdir
            transport = SshTransport(box.config)
            transport.check_output(["true"])  # connect outside the timed region, as a device actor would be
            scp = [
                "scp", "-q", "-P", str(box.port), "-i", str(box.client_key),
                "-o", f"UserKnownHostsFile={box.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes",
            ]  # fmt: skip
            push_mbs: list[float] = []
            scp_mbs: list[float] = []
            for rnd in range(1, args.rounds + 1):
                order = ("push", "scp") if rnd % 2 else ("scp", "push")
                for which in order:
                    refresh(src, size)
                    # a fresh name per upload: the cache check runs and misses, as for a new artifact
                    dst = remote_dir / f"artifact-{which}-{rnd}.bin"
                    t0 = time.perf_counter()
                    if which == "push":
                        res = transport.push(src, str(dst))
                        assert res.bytes_pushed == size, res
                    else:
                        subprocess.run([*scp, str(src), f"{box.config.user}@127.0.0.1:{dst}"], check=True)
                    secs = time.perf_counter() - t0
                    assert dst.stat().st_size == size
                    dst.unlink()
                    rate = size / secs / 1e6
                    (push_mbs if which == "push" else scp_mbs).append(rate)
                    print(f"round {rnd} {which:>4}: {secs:6.2f} s  {rate:7.1f} MB/s", flush=True)
            transport.close()
        finally:
            box.stop()
    push_med, scp_med = statistics.median(push_mbs), statistics.median(scp_mbs)
    print(f"SshTransport.push median {push_med:.1f} MB/s over {len(push_mbs)} rounds of {args.mb} MB")
    print(f"OpenSSH scp       median {scp_med:.1f} MB/s over {len(scp_mbs)} rounds of {args.mb} MB")
    print(f"ratio push/scp = {push_med / scp_med:.2f} (target >= 0.8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
