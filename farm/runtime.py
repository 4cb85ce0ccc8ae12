"""Starting Ray and the controller, finding a running one, describing a job's artifacts for it.

The calls to a running controller are :class:`farm.client.FarmClient`'s; this module is what it stands on.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from actors.host_probe import file_sha256
from actors.messages import ArtifactRef
from farm.controller import CONTROLLER_NAME, NAMESPACE, Controller, ControllerOptions
from farm.errors import ControllerError
from farm.specs.inventory import Inventory
from farm.specs.job import JobSpec

log = logging.getLogger(__name__)


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to ``address`` (a running cluster) or start a private local Ray (embedded mode)."""
    import ray

    if ray.is_initialized():
        return
    # Ray runs its workers at nice 15 by default, and a benchmark started by a device actor inherits that: on a
    # busy machine it then loses the CPU to everything else (measured: -37 % decode tokens/s). Workers of a Ray
    # we start run at normal priority; lab nodes set the same variable before `ray start` (deploy/ray/).
    os.environ.setdefault("RAY_worker_niceness", "0")
    kwargs: dict[str, Any] = {
        "namespace": NAMESPACE,
        "log_to_driver": os.environ.get("FARM_RAY_LOGS", "") == "1",
        "configure_logging": False,
    }
    if address:
        ray.init(address=address, **kwargs)
    else:
        with _loopback_node_ip():
            ray.init(
                address="local",  # a private Ray: never attach to another one that happens to run on this machine
                num_cpus=num_cpus or os.cpu_count() or 1,
                include_dashboard=False,
                **kwargs,
            )


@contextlib.contextmanager
def _loopback_node_ip() -> Iterator[None]:
    """Start the private Ray as node ``127.0.0.1``: its GCS, raylet, object manager and agents then listen on
    loopback only (Ray binds every interface for any other node address). ``ray.init(_node_ip_address=…)``
    cannot say so — it turns a loopback address into the machine's outward one — so the node address is taken
    the way Ray takes it where it starts single-machine clusters only (macOS, Windows), for this call only."""
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def start_controller(
    inventory: Inventory,
    results_root: str,
    *,
    detached: bool = False,
    options: ControllerOptions | None = None,
) -> Any:
    """Create the named controller actor and its device actors; returns the controller handle."""
    import ray

    existing = find_controller()
    if existing is not None:
        raise ControllerError(f"a controller is already running in namespace {NAMESPACE!r}")
    actor_opts: dict[str, Any] = {
        "name": CONTROLLER_NAME,
        "namespace": NAMESPACE,
        "num_cpus": 0,
        "max_concurrency": 1000,
    }
    if detached:
        actor_opts["lifetime"] = "detached"
    # On the node of the process that starts it (the head in cluster mode): its metrics exporter binds there and
    # its results path is that node's.
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor_opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
        node_id=ray.get_runtime_context().get_node_id(), soft=False
    )
    handle = (
        ray.remote(Controller)
        .options(**actor_opts)
        .remote(inventory.model_dump(mode="json"), _absolute(results_root), options)
    )
    ray.get(handle.start.remote())  # type: ignore[attr-defined]
    return handle


def find_controller() -> Any | None:
    import ray

    try:
        return ray.get_actor(CONTROLLER_NAME, namespace=NAMESPACE)
    except ValueError:
        return None


def controller() -> Any:
    handle = find_controller()
    if handle is None:
        raise ControllerError(
            "no controller is running on this Ray cluster; start one with "
            "`farm controller start --address ADDR --inventory INV`"
        )
    return handle


def artifact_refs(job: JobSpec, ship: bool) -> list[ArtifactRef]:
    """Describe the job's artifacts by content; with ``ship`` put their bytes into Ray's object store so device
    actors on other machines can read them."""
    refs = []
    for art in job.artifacts:
        path = job.artifact_path(art)
        ref = None
        if ship:
            import ray

            ref = ray.put(path.read_bytes())
        refs.append(
            ArtifactRef(
                name=path.name,
                sha256=file_sha256(path),
                size=path.stat().st_size,
                dst=art.remote_path(),
                mode=art.mode,
                local_path=str(path),
                ref=ref,
            )
        )
    return refs


def _absolute(root: str) -> str:
    return root if "://" in root else str(Path(root).expanduser().resolve())
