"""The farm's API served for real on a loopback port (uvicorn in a thread), over a running controller."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import uvicorn

from farm.api.app import ApiSettings, create_app
from farm.client import FarmClient, JobStatus

TOKEN = "test-token-0123456789abcdef"


@dataclass
class Served:
    url: str
    token: str

    def call(
        self, method: str, path: str, *, token: str | None = None, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        auth = {"Authorization": f"Bearer {self.token if token is None else token}"}
        return requests.request(method, self.url + path, headers={**auth, **(headers or {})}, timeout=120, **kwargs)

    def post_yaml(self, text: str, *, token: str | None = None, source: str = "job.yaml") -> requests.Response:
        """Submit a job file as the request body."""
        kind = {"Content-Type": "application/yaml"}
        return self.call("POST", "/api/jobs", token=token, headers=kind, params={"source": source}, data=text.encode())

    def job(self, job_id: str) -> JobStatus:
        resp = self.call("GET", f"/api/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        return JobStatus.from_dict(resp.json())

    def wait(self, job_id: str, timeout: float = 300) -> JobStatus:
        deadline = time.monotonic() + timeout
        while not (st := self.job(job_id)).ended:
            assert time.monotonic() < deadline, st
            time.sleep(0.2)
        return st


@contextmanager
def serve(
    client: FarmClient, results: Path, *, artifact_root: Path | None = None, max_body_bytes: int = 1 << 20
) -> Iterator[Served]:
    app = create_app(client, ApiSettings(TOKEN, str(results), artifact_root, max_body_bytes))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(f"http://127.0.0.1:{port}", TOKEN)
    finally:
        server.should_exit = True
        thread.join(30)
