"""The shipped Prometheus config and alert rules pass promtool: syntax, and the rules' own unit tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from farm.metrics import FarmMetrics

pytestmark = pytest.mark.prometheus

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy/prometheus"


def promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: install the Debian 'prometheus' package (deploy/install-system-deps.sh)")
    done = subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_promtool_check_config() -> None:
    out = promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in out


def test_promtool_check_rules() -> None:
    out = promtool("check", "rules", "rules/farm-alerts.yml")
    assert re.search(r"SUCCESS: [1-9]\d* rules found", out), out


def test_promtool_rule_unit_tests() -> None:
    out = promtool("test", "rules", "farm-alerts.test.yml", cwd=PROMETHEUS / "rules")
    assert "SUCCESS" in out


def test_a_broken_rule_is_caught(tmp_path: Path) -> None:
    # The checks above can fail: promtool rejects a rule with a PromQL syntax error.
    bad = tmp_path / "bad.yml"
    bad.write_text("groups: [{name: x, rules: [{alert: X, expr: 'sum(farm_runs_total'}]}]\n")
    done = subprocess.run(["promtool", "check", "rules", str(bad)], capture_output=True, text=True, check=False)
    assert done.returncode != 0


def test_every_alert_reads_only_exported_metrics() -> None:
    exported = {m.name for m in FarmMetrics().registry.collect()} | {
        "farm_device_state",
        "farm_device_temperature_celsius",
        "farm_device_power_watts",
        "farm_job_queued_runs",
        "farm_devices",
    }
    rules = yaml.safe_load((PROMETHEUS / "rules/farm-alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            for metric in re.findall(r"\b(farm_[a-z_]+)", rule["expr"]):
                family = re.sub(r"_(total|bucket|count|sum|created)$", "", metric)
                assert family in exported or metric in exported, f"{rule['alert']}: unknown metric {metric}"


def test_farm_scrape_keeps_the_benchmark_job_label() -> None:
    cfg = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["farm"]["honor_labels"] is True
    files = jobs["ray"]["file_sd_configs"][0]["files"]
    assert files == ["/tmp/ray/prom_metrics_service_discovery.json"]
