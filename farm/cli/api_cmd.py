"""``farm api serve``: the farm's HTTP API and live page, beside a running controller (see :mod:`farm.api`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from farm.cli.common import port, results_root, stderr
from farm.errors import ConfigError

DEFAULT_PORT = 8765


def register(sub: Any) -> None:
    api = sub.add_parser("api", help="serve the farm's HTTP API and live page")
    api_sub = api.add_subparsers(dest="api_action", metavar="ACTION", required=True)
    p = api_sub.add_parser("serve", help="serve the API of the cluster's running controller")
    p.add_argument("--address", metavar="ADDR", help="Ray cluster address (default $RAY_ADDRESS or auto)")
    p.add_argument("--results", metavar="URI", help="the controller's results location (rows and logs are read there)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    p.add_argument("--port", type=port, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    add_token_args(p)
    p.add_argument(
        "--artifact-root",
        metavar="DIR",
        help="folder of the head node a job's artifacts may name (default: none, every artifact is uploaded)",
    )
    p.add_argument("--max-body-mib", type=int, default=64, help="largest request body accepted (default 64 MiB)")
    p.set_defaults(func=serve)


def add_token_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--token-file", metavar="PATH", help="read the API token from this file (first line)")
    p.add_argument("--token-env", metavar="VAR", help="read the API token from this variable (default FARM_API_TOKEN)")


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from farm.api.app import ApiSettings, create_app
    from farm.api.auth import load_token
    from farm.client import FarmClient

    token = load_token(args.token_file, args.token_env)
    root = None
    if args.artifact_root:
        root = Path(args.artifact_root)
        if not root.is_dir():
            raise ConfigError.single("--artifact-root", "", f"not a folder: {root}")
    if args.max_body_mib < 1:
        raise ConfigError.single("--max-body-mib", "", "must be at least 1")
    settings = ApiSettings(token, results_root(args.results), root, args.max_body_mib << 20)
    app = create_app(FarmClient.connect(args.address), settings)
    stderr().print(f"farm API on http://{args.host}:{args.port}/ (OpenAPI schema at /api/openapi.json)")
    if not _loopback(args.host):
        stderr().print("farm: warning: plain HTTP beyond loopback: the token crosses the network in clear unless a")
        stderr().print("TLS proxy is in front (deploy/README.md, 'The HTTP API and the farm page')")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def submit_over_api(args: argparse.Namespace) -> int:
    """``farm submit JOB --api URL``: prints the job id; with ``--wait`` follows it (exit 0 when all ok)."""
    from farm.api.auth import load_token
    from farm.api.remote import ApiClient

    client = ApiClient(args.api, load_token(args.token_file, args.token_env))
    job_id = client.submit(args.job, rerun=args.rerun)
    print(job_id, flush=True)
    if not args.wait:
        return 0
    st = client.wait(job_id)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(st.statuses.items()))
    print(f"{job_id}: {st.state}: {counts or 'no runs'}")
    return 0 if st.all_ok else 1
