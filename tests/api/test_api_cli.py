"""``farm api serve`` as a lab runs it: a detached controller on a Ray cluster, the API beside it in its own
process, ``farm submit --api`` from a third; and the refusals that need no cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from tests.runtime.helpers import wait_until


def farm(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "farm.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "RAY_ADDRESS": "", **(env or {})},
        check=False,
    )


def test_serve_refuses_a_missing_or_short_token(tmp_path: Path) -> None:
    env = {"FARM_API_TOKEN": ""}
    done = farm("api", "serve", "--token-env", "FARM_API_TOKEN", env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "--token-env: FARM_API_TOKEN: $FARM_API_TOKEN is not set: give the API token by --token-file PATH or in an "
        "environment variable"
    )
    short = tmp_path / "token"
    short.write_text("abc\n")
    done = farm("api", "serve", "--token-file", str(short), timeout=120)
    assert done.returncode == 2 and "at least 16 characters" in done.stderr
    usage = farm("api", "serve", "--token", "x" * 20, timeout=120)  # no such option: tokens are never arguments
    assert usage.returncode == 2


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.ray
def test_controller_api_and_submit_in_three_processes(tmp_path: Path, head: str) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(yaml.safe_dump({"devices": [{"id": "h", "kind": "host"}]}))
    results = tmp_path / "res"
    token_file = tmp_path / "api-token"
    token_file.write_text("lab-token-0123456789abcdef\n")
    started = farm("controller", "start", "--address", head, "--inventory", str(inv), "--results", str(results))
    assert started.returncode == 0, started.stderr
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "farm.cli.main",
            "api",
            "serve",
            "--address",
            head,
            "--results",
            str(results),
            "--port",
            str(port),
            "--token-file",
            str(token_file),
        ],
        env={**os.environ, "RAY_ADDRESS": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert server.poll() is None, server.communicate()[1]
            try:
                return requests.get(f"{url}/api/openapi.json", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(up, timeout=180, interval=0.5)
        (tmp_path / "job.yaml").write_text(
            yaml.safe_dump(
                {
                    "name": "viaapi",
                    "workload": "regex",
                    "workload_options": {"patterns": {"v_ms": r"v=(\d+)"}},
                    "command": ["sh", "-c", "echo v={i}"],
                    "grid": {"i": [1, 2]},
                }
            )
        )
        env = {"FARM_API_TOKEN": token_file.read_text().strip()}
        done = farm("submit", str(tmp_path / "job.yaml"), "--api", url, "--wait", env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1].endswith(": done: 2 ok")
        status = farm("status", "--address", head).stdout
        assert done.stdout.splitlines()[0] in status  # the same controller, seen over Ray
    finally:
        server.terminate()
        server.wait(30)
        farm("controller", "stop", "--address", head)
