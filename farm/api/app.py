"""The routes of the farm's HTTP API and the page it serves (see :mod:`farm.api` for the whole picture).

Every ``/api/`` route but the OpenAPI schema needs ``Authorization: Bearer <token>``. The page and its script
are public files holding no data: the script asks the API, with the token the user gave the page.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from farm.api import intake, models, rows
from farm.api.auth import BodyLimit, token_matches
from farm.errors import ConfigError, ControllerError, FarmError, ResultsError
from farm.errors import farm_error as unwrapped
from farm.results import ResultsStore

if TYPE_CHECKING:
    from farm.client import DeviceStatus, FarmClient, JobStatus

STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 64 << 20
MAX_LOG_BYTES = 1 << 20
MAX_UPLOADS = 64
PARQUET = "application/vnd.apache.parquet"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/plain")


@dataclass(frozen=True)
class ApiSettings:
    token: str
    results: str
    artifact_root: Path | None = None
    max_body_bytes: int = MAX_BODY_BYTES


def create_app(client: FarmClient, settings: ApiSettings) -> FastAPI:
    """The API over ``client`` (a running controller) and the results at ``settings.results``."""
    app = FastAPI(
        title="Farm",
        summary="Submit benchmark jobs to the device farm, follow them, read their rows.",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,  # the interactive docs load scripts from a CDN; the schema is enough
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        # Job names, errors and logs shown by the page come from other people's files: the page sets them as
        # text, and this policy stops any script but its own should one ever slip through.
        response: Response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    store = ResultsStore(settings.results)

    def authorized(request: Request) -> None:
        if not token_matches(request.headers.get("authorization"), settings.token):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    auth = [Depends(authorized)]

    @app.exception_handler(FarmError)
    async def farm_error(request: Request, exc: FarmError) -> JSONResponse:
        # An error the controller raised comes wrapped by Ray (still a FarmError): answer with the one inside.
        return error_response(unwrapped(exc) or exc)

    import ray.exceptions

    @app.exception_handler(ray.exceptions.RayTaskError)
    async def ray_error(request: Request, exc: Exception) -> JSONResponse:
        inner = unwrapped(exc)
        if inner is None:
            return JSONResponse({"detail": f"the controller failed: {type(exc).__name__}"}, status_code=500)
        return error_response(inner)

    def find_job(job_id: str) -> JobStatus:
        for st in client.jobs():
            if st.job_id == job_id:
                return st
        raise HTTPException(404, f"no job {job_id!r}")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.post(
        "/api/jobs",
        status_code=201,
        dependencies=auth,
        openapi_extra={"requestBody": _SUBMIT_BODY},
        response_model=models.Submitted,
        responses={413: {"description": "body too large"}, 422: {"model": models.Refused}},
    )
    async def submit(request: Request, source: str | None = None, rerun: bool = False) -> dict[str, Any]:
        """Submit a job: its YAML as the body, or a multipart form with ``job`` and its ``artifact`` files."""
        job_raw, form_source, uploads = await _read_submission(request)
        name = intake.source_name(form_source or source)
        job = await run_in_threadpool(intake.load_job_text, job_raw, name)  # up to a second for a 1 MiB file
        placed = await run_in_threadpool(intake.place_artifacts, job, name, uploads, settings.artifact_root)
        data = job.model_dump(mode="json", exclude_defaults=True)
        job_id = await run_in_threadpool(client.submit_data, data, name, placed.base_dir, placed.artifacts, rerun=rerun)
        arts = [{"name": a.name, "sha256": a.sha256, "size": a.size, "src": a.local_path} for a in placed.artifacts]
        return {"job_id": job_id, "artifacts": arts}

    @app.get("/api/jobs", dependencies=auth, response_model=list[models.Job])
    def jobs() -> list[dict[str, Any]]:
        """Every job the controller knows, with its progress counts, in submission order."""
        return [job_json(st) for st in client.jobs()]

    @app.get("/api/jobs/{job_id}", dependencies=auth, response_model=models.Job)
    def job(job_id: str) -> dict[str, Any]:
        return job_json(find_job(job_id))

    @app.post("/api/jobs/{job_id}/cancel", dependencies=auth, response_model=models.Job)
    def cancel(job_id: str) -> dict[str, Any]:
        find_job(job_id)
        return job_json(client.cancel(job_id))

    @app.get(
        "/api/jobs/{job_id}/rows",
        dependencies=auth,
        responses={200: {"model": models.RowsPage, "content": {PARQUET: {}}}},
    )
    def job_rows(
        job_id: str,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=rows.MAX_PAGE)] = 500,
        format: Literal["json", "parquet"] = "json",
        failures: bool = False,
    ) -> Response:
        """A page of the job's result rows (``failures``: only those not ok), as JSON or as a Parquet file."""
        pg = rows.page(rows.submission_rows(store, find_job(job_id), failures=failures), offset, limit)
        links = {"X-Total-Rows": str(pg.total)}
        if pg.next_offset is not None:
            links["X-Next-Offset"] = str(pg.next_offset)
        if format == "parquet":
            return Response(pg.parquet(), media_type=PARQUET, headers=links)
        body = {
            "total": pg.total,
            "offset": pg.offset,
            "next_offset": pg.next_offset,
            "headline_metric": pg.headline,
            "rows": pg.json_rows(),
        }
        return JSONResponse(body, headers=links)

    @app.get("/api/jobs/{job_id}/log", dependencies=auth, response_class=PlainTextResponse)
    def run_log(job_id: str, run_id: str, attempt: Annotated[int, Query(ge=1)]) -> str:
        """The raw output of one run of the job (its first MiB), as its row's ``log_path`` names it."""
        table = rows.submission_rows(store, find_job(job_id))
        found = [
            r["log_path"]
            for r in table.select(["run_id", "attempt", "log_path"]).to_pylist()
            if r["run_id"] == run_id and r["attempt"] == attempt
        ]
        if not found:
            raise HTTPException(404, f"no run {run_id!r} attempt {attempt} in job {job_id!r}")
        return read_log(store, str(found[-1]))

    @app.get("/api/devices", dependencies=auth, response_model=list[models.Device])
    def devices() -> list[dict[str, Any]]:
        """Every device slot: state (its health), the reason when not idle, temperature, current run and the job
        holding its lease."""
        return [device_json(d) for d in client.devices()]

    return app


_SUBMIT_BODY = {
    "required": True,
    "content": {
        "application/yaml": {"schema": {"type": "string", "description": "the job file"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["job"],
                "properties": {
                    "job": {"type": "string", "format": "binary", "description": "the job file"},
                    "source": {"type": "string", "description": "the job file's name, for messages"},
                    "artifact": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "artifact files, each uploaded under its src as file name",
                    },
                },
            }
        },
    },
}


async def _read_submission(request: Request) -> tuple[bytes, str | None, dict[str, bytes]]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in _YAML_TYPES:
        return await request.body(), None, {}
    if kind != "multipart/form-data":
        raise HTTPException(415, f"send the job as application/yaml or multipart/form-data, not {kind or 'nothing'}")
    form = await request.form(max_files=MAX_UPLOADS + 1, max_fields=8)
    job = form.get("job")
    if job is None:
        raise HTTPException(422, "the form has no 'job' field")
    job_raw = await job.read() if isinstance(job, UploadFile) else job.encode()
    source = form.get("source")
    uploads: dict[str, bytes] = {}
    for item in form.getlist("artifact"):
        if not isinstance(item, UploadFile) or not item.filename:
            raise HTTPException(422, "each 'artifact' must be a file named by its artifact's src")
        if item.filename in uploads:
            raise HTTPException(422, f"artifact {item.filename!r} uploaded twice")
        uploads[item.filename] = await item.read()
    default = job.filename if isinstance(job, UploadFile) else None
    return job_raw, source if isinstance(source, str) else default, uploads


def error_response(exc: FarmError) -> JSONResponse:
    """A Farm error as its 4xx (or 5xx) answer; a bad job gives the lines ``farm submit`` prints."""
    if isinstance(exc, ConfigError):
        body = {
            "detail": "\n".join(exc.lines()),
            "lines": exc.lines(),
            "source": exc.source,
            "issues": [{"path": p, "reason": r} for p, r in exc.issues],
        }
        return JSONResponse(body, status_code=422)
    status = 409 if isinstance(exc, ControllerError) else 503 if isinstance(exc, ResultsError) else 500
    return JSONResponse({"detail": str(exc)}, status_code=status)


def read_log(store: ResultsStore, log_path: str) -> str:
    path = log_path.split("://", 1)[1] if "://" in log_path else log_path
    if not path.startswith(f"{store.base_path}/logs/"):
        raise HTTPException(404, "the run's log is not in this API's results store")
    with store.filesystem.open_input_stream(path) as fh:
        data: bytes = fh.read(MAX_LOG_BYTES + 1)
    text = data[:MAX_LOG_BYTES].decode("utf-8", errors="replace")
    return text + ("\n[… log cut at 1 MiB]\n" if len(data) > MAX_LOG_BYTES else "")


def job_json(st: JobStatus) -> dict[str, Any]:
    out = dataclasses.asdict(st)
    out["statuses"] = {str(k): v for k, v in st.statuses.items()}
    out["state"] = str(st.state)
    out["done"] = st.done
    return out


def device_json(d: DeviceStatus) -> dict[str, Any]:
    out = dataclasses.asdict(d)
    out["state"] = str(d.state)
    return out
