"""Several Ray nodes on one machine (``ray.cluster_utils.Cluster``): each device actor runs on its own node."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from farm import runtime
from tests.runtime.helpers import hosts, rows, start, write_job

pytestmark = pytest.mark.ray


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"lab-head": 1}})
    c.add_node(num_cpus=1, resources={"lab-a": 1})
    c.add_node(num_cpus=1, resources={"lab-b": 1})
    c.wait_for_nodes()
    runtime.init_ray(c.address)
    yield c
    ray.shutdown()
    c.shutdown()


def test_device_actors_run_on_their_nodes_and_all_runs_land(tmp_path: Path, cluster: Cluster) -> None:
    node_of = {
        name: n["NodeID"] for n in ray.nodes() for name in ("lab-head", "lab-a", "lab-b") if name in n["Resources"]
    }
    assert len(set(node_of.values())) == 3
    inv = hosts("dev-head", "dev-a", "dev-b", nodes=["lab-head", "lab-a", "lab-b"])
    job, src = write_job(
        tmp_path,
        {
            "name": "multinode",
            "workload": "regex",
            "workload_options": {"patterns": {"value_ms": r"value=(\d+)"}},
            "command": ["sh", "-c", "echo value={i}"],
            "grid": {"i": [1, 2, 3]},
            "repeat": 2,
        },
    )
    client = start(inv, tmp_path / "res")
    try:
        infos = {d.device_id: d.node_id for d in client.devices()}
        assert infos == {
            "dev-head": node_of["lab-head"],
            "dev-a": node_of["lab-a"],
            "dev-b": node_of["lab-b"],
        }
        st = client.wait(client.submit(job, src, ship=True), 120)
        assert st.state == "done" and st.statuses == {"ok": 18}
    finally:
        client.shutdown()
        client.kill()
    got = rows(tmp_path / "res", "multinode")
    assert Counter(r["device_id"] for r in got) == {"dev-head": 6, "dev-a": 6, "dev-b": 6}
    assert len({(r["run_id"], r["attempt"]) for r in got}) == 18
