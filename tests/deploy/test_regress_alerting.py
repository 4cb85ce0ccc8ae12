"""The regression alert rule passes promtool and its unit tests, reads what `farm regress` writes, and is routed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.test_prometheus_config import PROMETHEUS, REPO, promtool

RULES = PROMETHEUS / "rules/farm-regress.yml"


@pytest.mark.prometheus
def test_rules_check_and_unit_tests() -> None:
    assert "SUCCESS: 2 rules found" in promtool("check", "rules", "rules/farm-regress.yml")
    assert "SUCCESS" in promtool("test", "rules", "farm-regress.test.yml", cwd=PROMETHEUS / "rules")


def test_rules_read_the_metrics_farm_regress_writes(tmp_path: Path) -> None:
    from farm.analysis.regress import Regression, RegressRow
    from farm.cli.regress_cmd import write_textfile

    row = RegressRow("phone-1", "threads=4", 6, 6, 10.0, 9.5, 0.05, 0.001, "regression")
    result = Regression("nightly", "decode_tokens_per_s", True, "bbb", ["aaa"], "aaa", 0.01, 0.02, [row], True)
    text = write_textfile(result, str(tmp_path)).read_text()
    written = {line.split("{")[0] for line in text.splitlines() if line and not line.startswith("#")}
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    for rule in rules:
        assert any(name in rule["expr"] for name in written), rule["alert"]
    labels = 'baseline="aaa",build="bbb",job="nightly",metric="decode_tokens_per_s"'
    assert f"farm_regress_worst_change_ratio{{{labels}}} 0.05" in text


def test_prometheus_loads_the_rules_and_sends_to_alertmanager_which_routes_them() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert "rules/farm-regress.yml" in config["rule_files"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]
    textfile = next(j for j in config["scrape_configs"] if j["job_name"] == "farm-textfile")
    assert textfile["honor_labels"] is True  # keeps the benchmark job's `job` label
    am = yaml.safe_load((REPO / "deploy/alertmanager/alertmanager.yml").read_text())
    labels = {k: v for r in yaml.safe_load(RULES.read_text())["groups"][0]["rules"] for k, v in r["labels"].items()}
    (route,) = am["route"]["routes"]
    assert route["matchers"] == [f'team = "{labels["team"]}"']
    receiver = next(r for r in am["receivers"] if r["name"] == route["receiver"])
    assert "url" not in receiver["webhook_configs"][0] and receiver["webhook_configs"][0]["url_file"]  # by reference
    compose = yaml.safe_load((REPO / "deploy/compose.monitoring.yml").read_text())["services"]
    assert "--web.listen-address=127.0.0.1:9093" in compose["alertmanager"]["command"]
    assert "--web.listen-address=127.0.0.1:9100" in compose["node-exporter"]["command"]


@pytest.mark.prometheus
def test_amtool_accepts_the_routing_and_routes_regressions_to_the_benchmark_team(tmp_path: Path) -> None:
    if shutil.which("amtool") is None:
        pytest.fail("amtool is missing: install the Debian 'prometheus-alertmanager' package (install-system-deps.sh)")
    text = (REPO / "deploy/alertmanager/alertmanager.yml").read_text()
    # Debian's amtool (0.25) predates webhook url_file (the compose file pins Alertmanager 0.27): check the rest
    # of the file with a plain URL in its place.
    config = tmp_path / "alertmanager.yml"
    config.write_text(text.replace("url_file: /run/secrets/benchmarks-webhook-url", "url: http://127.0.0.1:9/hook"))

    def amtool(*args: str) -> str:
        done = subprocess.run(["amtool", *args], capture_output=True, text=True, check=False, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    assert "SUCCESS" in amtool("check-config", str(config))
    route = ["config", "routes", "test", f"--config.file={config}"]
    assert amtool(*route, "team=benchmarks", "alertname=FarmBenchmarkRegression", "job=j").split() == ["benchmarks"]
    assert amtool(*route, "alertname=FarmExporterDown", "severity=critical").split() == ["lab-default"]
