"""Host probes on real processes: peak RSS of process trees, the sampler's own cost, the fingerprint."""

from __future__ import annotations

import hashlib
import math
import os
import platform
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

import pytest

from actors.host_probe import cpu_governors, descendants, file_sha256, host_fingerprint
from actors.rss_watch import PeakRssSampler
from actors.transports.local import LocalTransport

# Each child allocates and touches N MiB, says "ready", and holds it until stdin closes.
_HOLD = """
import sys
buf = bytearray({mib} * 1024 * 1024)
for i in range(0, len(buf), 4096):
    buf[i] = 1
print("ready", flush=True)
sys.stdin.read()
"""

# A parent that starts two holders and waits for both.
_TREE = """
import subprocess, sys
code = {hold!r}
pipe = subprocess.PIPE
kids = [subprocess.Popen([sys.executable, "-c", code], stdin=pipe, stdout=pipe, text=True) for _ in range(2)]
for k in kids:
    k.stdout.readline()
print("ready", flush=True)
sys.stdin.read()
for k in kids:
    k.stdin.close()
    k.wait()
"""


def _start(code: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _watch(sampler: PeakRssSampler, seconds: float) -> None:
    """Start ``sampler`` and poll it for ``seconds``, as the local transport's wait loop does (every 20 ms)."""
    before = threading.active_count()
    poll = sampler.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        poll()
        time.sleep(0.02)
    assert threading.active_count() == before  # it samples in the caller's thread: no thread of its own


def _finish(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=30)


def test_sums_rss_over_the_process_tree() -> None:
    proc = _start(_TREE.format(hold=_HOLD.format(mib=120)))
    try:
        assert len(descendants(proc.pid)) == 3
        sampler = PeakRssSampler(proc.pid, interval_s=0.05)
        _watch(sampler, 0.3)
        peak = sampler.stop()
    finally:
        _finish(proc)
    # Two children at >= 120 MiB each: only the sum over the tree can exceed 240 MiB.
    assert 240 <= peak < 240 + 3 * 60, peak
    assert sampler.samples >= 3


def test_vmhwm_catches_a_peak_between_samples() -> None:
    code = (
        "import sys, time\n"
        "buf = bytearray(150 * 1024 * 1024)\n"
        "for i in range(0, len(buf), 4096): buf[i] = 1\n"
        "del buf\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = _start(code)
    try:
        sampler = PeakRssSampler(proc.pid, interval_s=0.05)
        _watch(sampler, 0.2)
        peak = sampler.stop()
        status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        rss_now_kib = int(next(x for x in status if x.startswith("VmRSS")).split()[1])
    finally:
        _finish(proc)
    assert rss_now_kib / 1024 < 100  # the buffer is freed: sampled RSS alone would miss the peak
    assert peak >= 150, peak


def test_is_an_on_start_callback_for_the_local_transport() -> None:
    sampler = PeakRssSampler(interval_s=0.02)
    code = "import time\nb = bytearray(80 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\ntime.sleep(0.3)"
    done = LocalTransport().run([sys.executable, "-c", code], on_start=sampler)
    peak = sampler.stop()
    assert done.exit_code == 0
    assert 80 <= peak < 200, peak


def test_process_gone_before_the_first_sample_is_nan() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    sampler = PeakRssSampler(proc.pid)
    sampler.start()
    assert math.isnan(sampler.stop())


def test_sampler_cpu_cost_at_50_ms_is_small() -> None:
    proc = _start(_TREE.format(hold=_HOLD.format(mib=1)))
    try:
        sampler = PeakRssSampler(proc.pid, interval_s=0.05)
        _watch(sampler, 2.0)
        sampler.stop()
    finally:
        _finish(proc)
    print(f"sampler cpu: {sampler.cpu_fraction:.2%} of one core over {sampler.samples} samples")
    assert sampler.samples >= 30
    assert 0 < sampler.cpu_fraction < 0.03


def test_fingerprint_has_the_host_columns() -> None:
    fp = host_fingerprint(packages=["pytest", "farm-no-such-dist"])
    assert fp["fp_cpu_count"] == str(os.cpu_count())
    assert fp["fp_kernel"] == platform.release()
    assert fp["fp_python"] == platform.python_version()
    assert fp["fp_cpu_model"] and fp["fp_os"] and fp["fp_hostname"]
    assert fp["fp_pkg_pytest"] == metadata.version("pytest")
    assert fp["fp_pkg_farm_no_such_dist"] == "not-installed"
    assert all(isinstance(v, str) for v in fp.values())


def test_fingerprint_hashes_files_once_per_size_and_mtime(tmp_path: Path) -> None:
    model = tmp_path / "Gemma-3.gguf"
    model.write_bytes(b"A" * 4096)
    fp = host_fingerprint(paths_to_hash=[model, tmp_path / "absent.bin"])
    assert fp["fp_sha256_gemma_3_gguf"] == hashlib.sha256(b"A" * 4096).hexdigest()
    assert fp["fp_sha256_absent_bin"] == "missing"

    # Same size and mtime: the cached digest is returned without reading the file again.
    st = model.stat()
    model.write_bytes(b"B" * 4096)
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert file_sha256(model) == hashlib.sha256(b"A" * 4096).hexdigest()

    # A new mtime is a new key.
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert file_sha256(model) == hashlib.sha256(b"B" * 4096).hexdigest()


@pytest.mark.parametrize("interval", [0.0, -1.0])
def test_rejects_a_non_positive_interval(interval: float) -> None:
    with pytest.raises(ValueError):
        PeakRssSampler(1, interval_s=interval)


def test_cpu_governors_where_cpufreq_is_readable(tmp_path: Path) -> None:
    for cpu, governor in (("cpu0", "schedutil"), ("cpu1", "performance"), ("cpu2", "schedutil")):
        (tmp_path / cpu / "cpufreq").mkdir(parents=True)
        (tmp_path / cpu / "cpufreq" / "scaling_governor").write_text(governor + "\n")
    (tmp_path / "cpufreq").mkdir()  # not a CPU
    assert cpu_governors(tmp_path) == "performance,schedutil"
    assert cpu_governors(tmp_path / "missing") is None  # containers and many VMs have no cpufreq
