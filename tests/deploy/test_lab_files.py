"""Lab deployment files agree with the code: the Ray node script places like farm/placement.py, compose mounts
exist, KubeRay manifests turn token authentication on."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

from farm.placement import NODE_LABEL, resolve_node

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def node_command(**env: str) -> list[str]:
    done = subprocess.run(
        ["bash", "-c", 'eval "arr=($("$0"))"; printf "%s\\n" "${arr[@]}"', str(DEPLOY / "ray/farm-ray-node.sh")],
        env={"PATH": os.environ["PATH"], "FARM_RAY_DRY_RUN": "1", **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_worker_node_carries_the_label_and_resource_placement_resolves() -> None:
    argv = node_command(
        FARM_RAY_ROLE="worker", FARM_NODE="phone-node-1", RAY_HEAD_ADDRESS="10.0.0.10:6379", RAY_AUTH_MODE="token"
    )
    assert argv[:3] == ["ray", "start", "--block"]
    assert flag(argv, "--address") == "10.0.0.10:6379"
    assert "--head" not in argv
    label_key, _, label_value = flag(argv, "--labels").partition("=")
    resources = json.loads(flag(argv, "--resources"))
    assert (label_key, label_value) == (NODE_LABEL, "phone-node-1")
    # A Ray node started so resolves by either mechanism, as ray.nodes() reports it.
    by_label = {"NodeID": "a" * 8, "Alive": True, "Labels": {label_key: label_value}, "Resources": {}}
    by_resource = {"NodeID": "b" * 8, "Alive": True, "Labels": {}, "Resources": resources}
    other = {"NodeID": "c" * 8, "Alive": True, "Labels": {}, "Resources": {"CPU": 4.0}}
    assert resolve_node("phone-node-1", [by_label, other]) == "a" * 8
    assert resolve_node("phone-node-1", [by_resource, other]) == "b" * 8


def test_head_keeps_the_dashboard_on_loopback() -> None:
    argv = node_command(FARM_RAY_ROLE="head", FARM_NODE="head", FARM_RAY_ARGS="--node-ip-address=10.0.0.10")
    assert "--head" in argv
    assert flag(argv, "--dashboard-host") == "127.0.0.1"
    assert argv[-1] == "--node-ip-address=10.0.0.10"


def test_node_script_refuses_bad_input() -> None:
    for env in (
        {"FARM_RAY_ROLE": "head"},
        {"FARM_RAY_ROLE": "boss", "FARM_NODE": "n"},
        {"FARM_RAY_ROLE": "worker", "FARM_NODE": "n"},
        {"FARM_RAY_ROLE": "head", "FARM_NODE": "a b"},
    ):
        done = subprocess.run(
            ["bash", str(DEPLOY / "ray/farm-ray-node.sh")],
            env={"PATH": os.environ["PATH"], "FARM_RAY_DRY_RUN": "1", **env},
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode != 0, env


def test_compose_mounts_exist_and_services_listen_on_loopback() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.monitoring.yml").read_text())
    for name, service in compose["services"].items():
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
    assert "--web.listen-address=127.0.0.1:9090" in compose["services"]["prometheus"]["command"]
    assert compose["services"]["grafana"]["environment"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"
    provisioning = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/farm.yml").read_text())
    farm = next(p for p in provisioning["providers"] if p["name"] == "farm")
    assert any(v.endswith(":" + farm["options"]["path"] + ":ro") for v in compose["services"]["grafana"]["volumes"])


def test_kuberay_manifests_enable_token_auth_and_place_by_node_name() -> None:
    cluster = yaml.safe_load((DEPLOY / "ray/kuberay/raycluster.yaml").read_text())
    job = yaml.safe_load((DEPLOY / "ray/kuberay/rayjob.yaml").read_text())
    for spec in (cluster["spec"], job["spec"]["rayClusterSpec"]):
        assert spec["authOptions"] == {"mode": "token"}
    for group in cluster["spec"]["workerGroupSpecs"]:
        params = group["rayStartParams"]
        assert params["labels"] == f"{NODE_LABEL}={group['groupName']}"
        assert json.loads(json.loads(params["resources"])) == {group["groupName"]: 1}
