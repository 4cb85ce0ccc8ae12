"""The HTTP side of ``farm submit --api URL``: upload a job and its artifacts, follow it, over the farm's API.

The job is checked here first with the loader the server uses (a bad file never leaves the machine); a job the
server refuses comes back as the same ``<file>: <field>: <reason>`` lines, raised as :class:`ConfigError`.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

import requests

from farm.client import JobStatus
from farm.errors import ConfigError, ControllerError
from farm.specs.job import load_job

TIMEOUT_S = 120.0


class ApiClient:
    """The farm's HTTP API at ``url`` (``http://head:8765``), authenticated by ``token``."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def submit(self, job_file: str, *, rerun: bool = False) -> str:
        """Upload the job file (named as given, for messages) and each artifact under its ``src``; the job id."""
        job = load_job(job_file, check_artifacts=True)
        with ExitStack() as stack:
            files: list[tuple[str, tuple[str, Any]]] = [("job", (job_file, stack.enter_context(open(job_file, "rb"))))]
            for art in job.artifacts:
                files.append(("artifact", (art.src, stack.enter_context(job.artifact_path(art).open("rb")))))
            answer = self._call("POST", "/api/jobs", files=files, data={"source": job_file}, params={"rerun": rerun})
        return str(answer["job_id"])

    def status(self, job_id: str) -> JobStatus:
        return JobStatus.from_dict(self._call("GET", f"/api/jobs/{job_id}"))

    def wait(self, job_id: str, poll_s: float = 1.0) -> JobStatus:
        """Poll the job until it has ended."""
        while not (st := self.status(job_id)).ended:
            time.sleep(poll_s)
        return st

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.session.request(method, self.url + path, timeout=TIMEOUT_S, **kwargs)
        except requests.RequestException as exc:
            raise ControllerError(f"cannot reach the farm API at {self.url}: {exc}") from exc
        if resp.status_code == 422 and isinstance(_json(resp).get("lines"), list):
            body = _json(resp)
            raise ConfigError(str(body["source"]), [(i["path"], i["reason"]) for i in body["issues"]])
        if resp.status_code >= 400:
            detail = _json(resp).get("detail") or resp.text[:500]
            raise ControllerError(f"the farm API refused {method} {path}: {resp.status_code}: {detail}")
        return resp.json()


def _json(resp: requests.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
