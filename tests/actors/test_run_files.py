"""Files around a run on the real local transport: rendered copies, input hashes, collect globs, and a command in
a container (the ``docker`` stand-in of ``farm/sim/boxes``) killed on timeout."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from actors import exec_wrap, run_files
from actors.transports.local import LocalTransport
from farm.errors import ConfigError, RunRefused
from farm.script_constants import render_constants
from tests.fixtures.ssh import BOXES_DIR

DEMO = """import time

DEVICE_ID = 0
BATCH_SIZE: int = 5  # edit me
INFER_LOOP = 5
LLAMA_DIR = "/path/to/LLaMA/"


def main():
    BATCH_SIZE = 3  # a local, not the module constant
    return BATCH_SIZE == 3
"""


def test_render_constants_rewrites_only_module_level_assignments() -> None:
    out = render_constants(DEMO, {"BATCH_SIZE": "1", "INFER_LOOP": "25", "LLAMA_DIR": "/data/llama's"})
    assert "\nBATCH_SIZE = 1\n" in out and "\nINFER_LOOP = 25\n" in out
    assert '\nLLAMA_DIR = "/data/llama\'s"\n' in out and "    BATCH_SIZE = 3" in out
    namespace: dict[str, object] = {}
    exec(compile(out, "demo", "exec"), namespace)
    assert (namespace["BATCH_SIZE"], namespace["LLAMA_DIR"]) == (1, "/data/llama's")


@pytest.mark.parametrize(
    ("text", "reason"),
    [("X = 1\n", "BATCH_SIZE is not assigned"), ("BATCH_SIZE = 1\nBATCH_SIZE = 2\n", "assigned 2 times")],
)
def test_render_constants_refuses_a_name_not_assigned_exactly_once(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as err:
        render_constants(text, {"BATCH_SIZE": "5"}, "demo_bsz.py")
    assert err.value.issues[0][0] == "constants.BATCH_SIZE"


def test_rendered_copy_is_cached_by_content(tmp_path: Path) -> None:
    src = tmp_path / "demo.py"
    src.write_text(DEMO)
    a, sha_a = run_files.rendered_copy(src, {"BATCH_SIZE": "1"}, tmp_path / "cache", "demo.py")
    _b, sha_b = run_files.rendered_copy(src, {"BATCH_SIZE": "5"}, tmp_path / "cache", "demo.py")
    again, sha_again = run_files.rendered_copy(src, {"BATCH_SIZE": "1"}, tmp_path / "cache", "demo.py")
    assert sha_a != sha_b and (again, sha_again) == (a, sha_a)
    assert hashlib.sha256(a.read_bytes()).hexdigest() == sha_a and a.suffix == ".py"


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("output_*.npz", "output_0.npz", True),
        ("output_*.npz", "sub/output_0.npz", False),  # '*' never crosses a folder
        ("*/output_*.npz", "sub/output_0.npz", True),
        ("*.npz", ".hidden.npz", False),  # as in the shell
        (".*.npz", ".hidden.npz", True),
        ("out?.txt", "out1.txt", True),
    ],
)
def test_glob_matches_like_the_shell(pattern: str, path: str, hit: bool) -> None:
    assert run_files.glob_matches(pattern, path) is hit


def test_inputs_are_hashed_once_per_version(tmp_path: Path) -> None:
    transport = LocalTransport()
    model = tmp_path / "a b.bmodel"  # a space: arguments are passed as words, never re-split
    model.write_bytes(os.urandom(4096))
    hasher = run_files.InputHasher()
    got = hasher.hashes(transport, ["a b.bmodel"], str(tmp_path))
    assert got == {"a b.bmodel": hashlib.sha256(model.read_bytes()).hexdigest()}
    assert len(hasher._cache) == 1
    model.write_bytes(os.urandom(4097))  # changed on the device: size differs → hashed again
    assert (
        hasher.hashes(transport, ["a b.bmodel"], str(tmp_path))["a b.bmodel"]
        == hashlib.sha256(model.read_bytes()).hexdigest()
    )
    with pytest.raises(RunRefused, match=r"input gone\.bmodel \(relative to .*\) is not a file"):
        hasher.hashes(transport, ["gone.bmodel"], str(tmp_path))


def test_collect_takes_new_and_changed_files_only(tmp_path: Path) -> None:
    transport = LocalTransport()
    (tmp_path / "output_0.npz").write_bytes(b"old")
    (tmp_path / "output_9.npz").write_bytes(b"untouched")
    (tmp_path / "readme.txt").write_text("not matched")
    globs = ["output_*.npz", "dumps/*.npz"]
    before = run_files.list_matches(transport, str(tmp_path), globs)
    assert set(before) == {"output_0.npz", "output_9.npz"}
    time.sleep(1.1)  # mtimes have whole-second resolution
    (tmp_path / "output_0.npz").write_bytes(b"rewritten")
    (tmp_path / "dumps").mkdir()
    (tmp_path / "dumps" / "x.npz").write_bytes(b"x" * 10)
    files, problem = run_files.collect(transport, str(tmp_path), globs, before)
    assert problem == ""
    assert [(f.path, f.data, f.size) for f in files] == [
        ("dumps/x.npz", b"x" * 10, 10),
        ("output_0.npz", b"rewritten", 9),
    ]
    assert files[1].sha256 == hashlib.sha256(b"rewritten").hexdigest()
    run_files.clear(transport, str(tmp_path), run_files.list_matches(transport, str(tmp_path), ["output_*.npz"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dumps", "readme.txt"]


def _alive(needle: str) -> bool:
    out = subprocess.run(["ps", "-eo", "args"], check=True, capture_output=True, text=True).stdout
    return any(needle in line and "ps -eo" not in line for line in out.splitlines())


def test_docker_exec_quotes_words_and_a_timeout_reaches_the_process_in_the_container(tmp_path: Path) -> None:
    transport = LocalTransport(kill_grace_s=0.5)
    env = {"PATH": f"{BOXES_DIR}{os.pathsep}{os.environ['PATH']}", "FARM_SIM_CONTAINERS": "cann"}
    pidfile = exec_wrap.pid_file(f"t{uuid.uuid4().hex[:8]}", 1)
    words = exec_wrap.docker_argv("cann", ["printf", "%s|", "a b", "$HOME", "*"], {"K": "v w"}, str(tmp_path), pidfile)
    done = transport.run(words, env=env, timeout=30)
    assert (done.exit_code, done.stdout) == (0, "a b|$HOME|*|"), done.stderr
    shown = transport.run(exec_wrap.docker_argv("cann", ["sh", "-c", 'echo "$K@$PWD"'], {"K": "v w"}, str(tmp_path),
                                                pidfile), env=env, timeout=30)  # fmt: skip
    assert shown.stdout.strip() == f"v w@{tmp_path}"

    marker = f"{uuid.uuid4().int % 10_000 + 1000}.{os.getpid()}"
    stuck = exec_wrap.docker_argv("cann", ["sh", "-c", f"sleep {marker} & sleep {marker}"], {}, None, pidfile)
    killed = transport.run(stuck, env=env, timeout=1.0)
    assert killed.timed_out
    assert _alive(f"sleep {marker}")  # killing the docker client does not reach into the container …
    assert transport.run(exec_wrap.kill_argv("cann", pidfile), env=env, timeout=30).exit_code == 0
    deadline = time.monotonic() + 15
    while _alive(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(f"sleep {marker}") and not Path(pidfile).exists()  # … the kill inside it does
