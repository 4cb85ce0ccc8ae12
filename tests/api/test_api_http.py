"""The farm's HTTP API over real HTTP, against a real local Ray controller with two host devices."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from farm.client import FarmClient, JobState
from tests.api.served import TOKEN, Served, serve
from tests.runtime.helpers import hosts, start, wait_until

pytestmark = pytest.mark.ray

REGEX = {"workload": "regex", "workload_options": {"patterns": {"value_ms": r"value=(\d+)"}}}


@pytest.fixture(scope="module")
def farm(local_ray: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FarmClient, Path]]:
    results = tmp_path_factory.mktemp("results")
    client = start(hosts("a", "b"), results, flush_seconds=0.2, flush_rows=1)
    client.info()
    yield client, results
    client.shutdown()
    client.kill()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("lab")
    (base / "root").mkdir()
    (base / "root" / "tool.sh").write_text("echo value=$1\n")
    (base / "secret").write_text("s3cret\n")
    (base / "root" / "escape").symlink_to(base / "secret")
    return base / "root"


@pytest.fixture(scope="module")
def api(farm: tuple[FarmClient, Path], root: Path) -> Iterator[Served]:
    client, results = farm
    with serve(client, results, artifact_root=root, max_body_bytes=256 << 10) as served:
        yield served


def job(name: str, **over: Any) -> str:
    return yaml.safe_dump(
        {"name": name, **REGEX, "command": ["sh", "-c", "echo value={i}"], "grid": {"i": [1, 2, 3]}, **over}
    )


def test_auth_and_schema(api: Served) -> None:
    assert api.call("GET", "/api/jobs", token="").status_code == 401
    wrong = api.call("GET", "/api/devices", token="x" * len(TOKEN))
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    assert api.post_yaml(job("noauth"), token="nope" * 8).status_code == 401
    schema = api.call("GET", "/api/openapi.json", token="").json()
    assert {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/rows", "/api/devices"} <= set(schema["paths"])
    assert "multipart/form-data" in schema["paths"]["/api/jobs"]["post"]["requestBody"]["content"]
    assert {"Job", "Device", "RowsPage", "Submitted", "Refused"} <= set(schema["components"]["schemas"])
    page = api.call("GET", "/", token="")
    assert page.status_code == 200 and "farm.js" in page.text
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_submit_wait_and_page_rows(api: Served) -> None:
    answer = api.post_yaml(job("http-sweep", repeat=2))
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["job_id"]
    st = api.wait(job_id)
    assert st.state is JobState.DONE and st.total == 12 and st.count("ok") == 12  # 3 points x 2 repeats x 2 devices
    listed = api.call("GET", "/api/jobs").json()
    assert next(j for j in listed if j["job_id"] == job_id)["done"] == 12

    first = api.call("GET", f"/api/jobs/{job_id}/rows", params={"limit": 5}).json()
    assert (first["total"], first["offset"], first["next_offset"], len(first["rows"])) == (12, 0, 5, 5)
    assert first["headline_metric"] == "value_ms"
    seen = [r["run_id"] for r in first["rows"]]
    offset = first["next_offset"]
    while offset is not None:
        pg = api.call("GET", f"/api/jobs/{job_id}/rows", params={"limit": 5, "offset": offset})
        assert pg.headers["X-Total-Rows"] == "12"
        seen += [r["run_id"] for r in pg.json()["rows"]]
        offset = pg.json()["next_offset"]
    assert len(seen) == 12 and len(set(seen)) == 12  # every row once, none twice across the pages

    parquet_ids: list[str] = []
    for off in (0, 7):
        resp = api.call("GET", f"/api/jobs/{job_id}/rows", params={"format": "parquet", "limit": 7, "offset": off})
        assert resp.headers["content-type"] == "application/vnd.apache.parquet"
        table = pq.read_table(io.BytesIO(resp.content))
        assert set(table["status"].to_pylist()) == {"ok"}
        assert sorted(table["value_ms"].to_pylist()) == sorted(table["p_i"].to_pylist())
        parquet_ids += table["run_id"].to_pylist()
    assert parquet_ids == seen
    assert "X-Next-Offset" not in resp.headers

    # a second submission of the same job has rows of its own; the first keeps its twelve
    again = api.call(
        "POST",
        "/api/jobs",
        params={"rerun": "true"},
        headers={"Content-Type": "application/yaml"},
        data=job("http-sweep", repeat=2).encode(),
    ).json()["job_id"]
    assert api.wait(again).count("ok") == 12
    for submission in (job_id, again):
        pg = api.call("GET", f"/api/jobs/{submission}/rows", params={"limit": 100}).json()
        assert pg["total"] == 12 and {r["job_id"] for r in pg["rows"]} == {submission}


def test_multipart_upload_is_hashed_and_run(api: Served, tmp_path: Path) -> None:
    script = b"echo value=$(( $1 * 10 ))\n"
    remote = tmp_path / "remote"
    text = job(
        "uploaded",
        artifacts=[{"src": "bench/run.sh", "dst": f"{remote}/{{device.id}}/"}],
        command=["sh", f"{remote}/{{device.id}}/run.sh", "{i}"],
    )
    resp = api.call(
        "POST",
        "/api/jobs",
        files=[("job", ("lab/uploaded.yaml", text.encode())), ("artifact", ("bench/run.sh", script))],
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["artifacts"] == [
        {
            "name": "run.sh",
            "sha256": hashlib.sha256(script).hexdigest(),
            "size": len(script),
            "src": "upload:bench/run.sh",
        }
    ]
    assert api.wait(body["job_id"]).count("ok") == 6
    rows = api.call("GET", f"/api/jobs/{body['job_id']}/rows").json()["rows"]
    assert sorted(r["value_ms"] for r in rows) == [10, 10, 20, 20, 30, 30]
    placed = json.loads(rows[0]["artifacts"])
    assert placed[0]["sha256"] == hashlib.sha256(script).hexdigest() and placed[0]["src"] == "upload:bench/run.sh"
    assert (remote / "a" / "run.sh").read_bytes() == script


def test_artifact_from_the_root(api: Served, root: Path, tmp_path: Path) -> None:
    text = job(
        "fromroot",
        artifacts=[{"src": "tool.sh", "dst": f"{tmp_path}/{{device.id}}.sh"}],
        command=["sh", f"{tmp_path}/{{device.id}}.sh", "{i}"],
        grid={"i": [4]},
    )
    resp = api.post_yaml(text)
    assert resp.status_code == 201, resp.text
    assert resp.json()["artifacts"][0]["src"] == str(root / "tool.sh")
    assert api.wait(resp.json()["job_id"]).count("ok") == 2


@pytest.mark.parametrize(
    ("src", "reason"),
    [
        ("/etc/shadow", "must be a relative path"),
        ("../../etc/passwd", "must not contain '..'"),
        ("escape", "resolves outside the artifact root (through a symlink)"),
    ],
)
def test_hostile_artifact_paths_are_refused(api: Served, src: str, reason: str) -> None:
    before = len(api.call("GET", "/api/jobs").json())
    resp = api.post_yaml(job("hostile", artifacts=[{"src": src, "dst": "/tmp/x/"}]), source="lab/hostile.yaml")
    assert resp.status_code == 422
    [line] = resp.json()["lines"]
    assert line.startswith(f"lab/hostile.yaml: artifacts[0].src: {reason}")
    assert len(api.call("GET", "/api/jobs").json()) == before  # nothing submitted


def test_bad_job_gets_the_cli_lines(api: Served, tmp_path: Path) -> None:
    text = job("bad", repeat=0, timeout="soon")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    cli = subprocess.run(
        [sys.executable, "-m", "farm.cli.main", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert cli.returncode == 2
    resp = api.post_yaml(text, source=str(path))
    assert resp.status_code == 422
    assert resp.json()["lines"] == cli.stderr.strip().splitlines()
    # Refused by the controller itself (no device matches): the same line `farm submit` prints.
    nomatch = api.post_yaml(job("nomatch", devices={"kind": "android"}), source="nomatch.yaml")
    assert nomatch.status_code == 422 and nomatch.json()["lines"] == [
        "nomatch.yaml: devices: matches no device of the farm"
    ]


def test_body_size_limit(api: Served) -> None:
    big = job("big", description="x" * (300 << 10))
    assert api.post_yaml(big).status_code == 413  # declared by Content-Length

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield job("big2").encode()
        for _ in range(40):
            yield b"#" * (16 << 10) + b"\n"

    import requests

    resp = requests.post(
        f"{api.url}/api/jobs",
        data=chunks(),
        timeout=120,
        headers={"Authorization": f"Bearer {api.token}", "Content-Type": "application/yaml"},
    )
    assert resp.status_code == 413
    assert "larger than the limit" in resp.json()["detail"]


def test_cancel_devices_failures_and_log(api: Served) -> None:
    slow = job("slowhttp", command=["sh", "-c", "sleep 1; echo value={i}"], grid={"i": list(range(30))})
    job_id = api.post_yaml(slow).json()["job_id"]
    wait_until(lambda: any(d["holder"] == job_id for d in api.call("GET", "/api/devices").json()), timeout=120)
    devices = {d["device_id"]: d for d in api.call("GET", "/api/devices").json()}
    assert set(devices) == {"a", "b"} and {"state", "reason", "temperature_c", "current_run", "node"} <= set(
        devices["a"]
    )
    busy = [d for d in devices.values() if d["holder"] == job_id]
    assert busy and all(d["state"] == "busy" and d["current_run"].startswith(job_id + ":") for d in busy)
    cancelled = api.call("POST", f"/api/jobs/{job_id}/cancel").json()
    assert cancelled["state"] in ("cancelling", "cancelled")
    st = api.wait(job_id)
    assert st.state is JobState.CANCELLED and st.not_started > 0
    assert api.call("POST", "/api/jobs/nosuch-123/cancel").status_code == 404

    failing = job("failing", command=["sh", "-c", "echo boom-{i} >&2; exit 3"], grid={"i": [1]}, retries=0)
    fid = api.post_yaml(failing).json()["job_id"]
    assert api.wait(fid).count("failed") == 2
    failures = api.call("GET", f"/api/jobs/{fid}/rows", params={"failures": "true"}).json()["rows"]
    assert len(failures) == 2 and {r["status"] for r in failures} == {"failed"}
    log = api.call("GET", f"/api/jobs/{fid}/log", params={"run_id": failures[0]["run_id"], "attempt": 1})
    assert log.status_code == 200 and "boom-1" in log.text
    missing = api.call("GET", f"/api/jobs/{fid}/log", params={"run_id": "../../etc/passwd", "attempt": 1})
    assert missing.status_code == 404


def test_farm_submit_over_the_api(api: Served, tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_text("echo value=7\n")
    (tmp_path / "jobs").mkdir()
    path = tmp_path / "jobs" / "cli.yaml"
    path.write_text(
        job(
            "clihttp",
            artifacts=[{"src": "../run.sh", "dst": f"{tmp_path}/remote/{{device.id}}/"}],  # uploaded as named
            command=["sh", f"{tmp_path}/remote/{{device.id}}/run.sh"],
            grid=None,
        )
    )
    env = {**os.environ, "LAB_TOKEN": api.token, "RAY_ADDRESS": ""}

    def farm_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "farm.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            check=False,
        )

    done = farm_cli("submit", str(path), "--api", api.url, "--token-env", "LAB_TOKEN", "--wait")
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.splitlines()[0]
    assert job_id.startswith("clihttp-") and f"{job_id}: done: 2 ok" in done.stdout
    assert (tmp_path / "remote" / "a" / "run.sh").read_text() == "echo value=7\n"

    env["LAB_TOKEN"] = "wrong-token-0123456789"
    refused = farm_cli("submit", str(path), "--api", api.url, "--token-env", "LAB_TOKEN")
    assert refused.returncode == 1 and "401" in refused.stderr
    nomatch = tmp_path / "nomatch.yaml"
    nomatch.write_text(job("nomatch2", devices={"kind": "android"}))
    env["LAB_TOKEN"] = api.token
    bad = farm_cli("submit", str(nomatch), "--api", api.url, "--token-env", "LAB_TOKEN")
    assert bad.returncode == 2 and bad.stderr.splitlines() == [f"{nomatch}: devices: matches no device of the farm"]
