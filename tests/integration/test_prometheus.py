"""The real Prometheus scrapes a live farm run; every shipped dashboard and alert query finds its series.

A local Ray runs the controller with its exporter on a free loopback port and two host devices; the Debian
``prometheus`` server, configured from deploy/prometheus/prometheus.yml (targets and intervals rewritten for the
test, rules loaded as shipped), scrapes it every second while a small job runs: a grid of synthetic host runs
with one failing point, an artifact (pushed once per device, then a cache hit) and a device actor killed
mid-run (an infra error, retried). Then every PromQL expression of deploy/grafana/dashboards/*.json and
deploy/prometheus/rules/*.yml is evaluated through Prometheus' HTTP API over the test's time range. The
regression rules read what `farm regress --textfile-dir` wrote, served by Debian's node_exporter.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from farm.cli.main import main as farm_main
from farm.client import ControllerOptions, FarmClient
from farm.sim import free_port
from farm.specs.inventory import Inventory
from farm.specs.job import load_job
from tests.analysis.jobs import write_job as write_rows

pytestmark = [pytest.mark.prometheus, pytest.mark.ray, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "deploy/grafana/dashboards").glob("*.json"))
SHIPPED_CONFIG = REPO / "deploy/prometheus/prometheus.yml"
RULE_FILES = [SHIPPED_CONFIG.parent / f for f in yaml.safe_load(SHIPPED_CONFIG.read_text())["rule_files"]]
# The host's temperature comes from /sys/class/thermal; without a sensor the farm must export no temperature.
HOST_HAS_SENSOR = any(Path("/sys/class/thermal").glob("thermal_zone*/temp"))
SENSOR_METRICS = ("farm_device_temperature_celsius",)
# Grafana's built-in interval for rate windows; a few scrape intervals of the test's 1 s scrapes.
RATE_INTERVAL = "10s"
NODE_EXPORTER = "prometheus-node-exporter"
COMPARISON_AT_END = re.compile(r"^(?P<signal>.*?)\s*(?:==|!=|>=|<=|>|<)\s*-?[0-9.]+(?:e-?[0-9]+)?\s*$", re.S)


class Prometheus:
    """A Debian ``prometheus`` server on loopback with its own storage, and its HTTP API."""

    def __init__(self, config: Path, data: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.proc.returncode}: {self.log_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready after {timeout}s: {self.log_text()}")

    def api(self, path: str, **params: object) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=15) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:  # a bad query answers 400 with the parser's message
            raise AssertionError(f"{path} {params}: {exc.read().decode()}") from exc
        assert body["status"] == "success", body
        return body["data"]

    def instant(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])

    def over(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        return list(self.api("query_range", query=expr, start=start, end=end, step=1)["result"])

    def log_text(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text()[-3000:]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def prometheus_config(tmp_path: Path, farm_address: tuple[str, int], textfile_port: int) -> Path:
    """The shipped prometheus.yml with the test's targets, 1 s intervals and the shipped rule files."""
    cfg = yaml.safe_load(SHIPPED_CONFIG.read_text())
    cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
    cfg["rule_files"] = [str(path.resolve()) for path in RULE_FILES]
    cfg.pop("alerting")  # no Alertmanager here: the rules' own unit tests and amtool cover the routing
    jobs = {job["job_name"]: job for job in cfg["scrape_configs"]}
    host, port = farm_address
    jobs["farm"]["static_configs"][0]["targets"] = [f"{host}:{port}"]
    jobs["farm-textfile"]["static_configs"][0]["targets"] = [f"127.0.0.1:{textfile_port}"]
    # No Ray dashboard in this test, so no discovery file: point at one that stays absent rather than at /tmp/ray,
    # where other Ray clusters on this machine may list their nodes.
    jobs["ray"]["file_sd_configs"][0]["files"] = [str(tmp_path / "ray-sd" / "absent.json")]
    del jobs["prometheus"]
    cfg["scrape_configs"] = list(jobs.values())
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable of the shipped dashboards."""
    found: list[tuple[str, str]] = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{path.name}: {panel['title']}", target["expr"]))
        for var in board["templating"]["list"]:
            if var["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", var["query"])
            assert m, f"{path.name}: variable {var['name']}: unsupported query {var['query']!r}"
            found.append((f"{path.name}: ${var['name']}", f"group by ({m[2]}) ({m[1]})"))
    return found


def alert_signals() -> list[tuple[str, str]]:
    """(where, PromQL) for every alert: its expression without the final threshold comparison."""
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                m = COMPARISON_AT_END.match(rule["expr"].strip())
                assert m, f"{path.name}: {rule['alert']}: expression must end in '<op> <number>'"
                found.append((f"{path.name}: {rule['alert']}", m["signal"]))
    return found


def grafana_to_promql(expr: str) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__interval", "1s")
    return re.sub(r"\$\{?(job|slot|kind|metric)\}?", ".*", expr)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, tuple[str, int]]]:
    import ray

    from farm import runtime

    runtime.init_ray(num_cpus=2)
    results = tmp_path_factory.mktemp("results")
    # h1 has an external power meter (a script printing 3.5 W twenty times a second): its runs have a valid
    # energy, so the power gauge and the dashboard's power panel have data.
    meter = tmp_path_factory.mktemp("meter") / "meter.py"
    meter.write_text("import time\nwhile True:\n    print(3.5, flush=True)\n    time.sleep(0.05)\n")
    h1 = {"id": "h1", "kind": "host", "energy_meter": {"command": [sys.executable, str(meter)]}}
    inventory = Inventory.model_validate({"devices": [h1, {"id": "h2", "kind": "host"}]})
    client = FarmClient.start(inventory, str(results), options=ControllerOptions(metrics_port=0, health_interval_s=1))
    try:
        address = client.info().metrics_address
        assert address is not None, "the controller did not start its exporter"
        yield client, (str(address[0]), int(address[1]))
    finally:
        try:
            client.shutdown(timeout=30)
        finally:
            client.kill()
            ray.shutdown()


@pytest.fixture(scope="module")
def farm_address(farm: tuple[Any, tuple[str, int]]) -> tuple[str, int]:
    return farm[1]


@pytest.fixture
def textfile_port(tmp_path: Path) -> Iterator[int]:
    """Debian's node_exporter serving (textfile collector only) what `farm regress --textfile-dir` wrote for a
    small job whose second build is 5 % slower, as a lab's head node does (deploy/README.md)."""
    if shutil.which(NODE_EXPORTER) is None:
        pytest.fail("the Debian 'prometheus-node-exporter' package is not installed (deploy/install-system-deps.sh)")
    rows = [{"build": b, "repeat": i, "run_id": f"{b}-{i}", "decode_tokens_per_s": v * (0.95 if b == "b2" else 1.0),
             "started_at": datetime.now(UTC) + timedelta(seconds=(b == "b2") * 60 + i)}
            for b in ("b1", "b2") for i, v in enumerate([10.0, 10.1, 9.9, 10.05, 9.95])]  # fmt: skip
    write_rows(tmp_path / "regress-results", "regress-check", rows)
    textfiles = tmp_path / "textfile"
    args = ["regress", "regress-check", "--baseline", "b1", "--results", str(tmp_path / "regress-results")]
    assert farm_main([*args, "--textfile-dir", str(textfiles)]) == 1  # a regression: exit 1, and the file
    port = free_port()
    log = (tmp_path / "node-exporter.log").open("w")
    proc = subprocess.Popen(
        [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
         "--collector.textfile", f"--collector.textfile.directory={textfiles}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/metrics"), 30, "node_exporter")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@pytest.fixture
def prometheus(tmp_path: Path, farm_address: tuple[str, int], textfile_port: int) -> Iterator[Prometheus]:
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        pytest.fail("the Debian 'prometheus' package is not installed (bash deploy/install-system-deps.sh)")
    config = prometheus_config(tmp_path, farm_address, textfile_port)
    check = subprocess.run(["promtool", "check", "config", str(config)], check=False, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    server = Prometheus(config, tmp_path / "data", tmp_path / "prometheus.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def write_job(tmp: Path) -> tuple[Any, str]:
    payload = tmp / "payload.bin"
    payload.write_bytes(os.urandom(64 * 1024))
    points = list(range(1, 7))
    data = {
        "name": "prom-check",
        "description": "synthetic host runs for the Prometheus integration test",
        "workload": "regex",
        "workload_options": {
            "patterns": {
                "decode_tokens_per_s": r"tps=(\d+)",
                "ttft_ms": r"ttft_ms=([\d.]+)",
                "kv_cache_mb": r"kv_mb=(\d+)",
            }
        },
        "artifacts": [{"src": payload.name, "dst": f"{tmp}/device-{{device.id}}/"}],
        # n=3 exits 1: a failed run on each device. Output numbers are synthetic, not measurements.
        "command": ["sh", "-c", "echo tps=$((40 + {n})) ttft_ms=12.5 kv_mb={n}; sleep 0.6; [ {n} -ne 3 ]"],
        "grid": {"n": points},
        "order": "grid",
        "retries": 5,  # the killed run's retries may reach the actor while Ray is still restarting it
        "synthetic": True,
    }
    path = tmp / "prom-check.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_job(path), str(path)


def test_prometheus_scrapes_a_live_run_and_every_shipped_query_has_data(
    tmp_path: Path, farm: tuple[Any, tuple[str, int]], prometheus: Prometheus
) -> None:
    import ray

    client, (host, _port) = farm
    assert host == "127.0.0.1"  # loopback unless asked otherwise
    t0 = time.time() - 5
    wait_for(lambda: prometheus.instant('up{job="farm"} == 1'), 30, "the first scrape of the farm exporter")

    job, source = write_job(tmp_path)
    job_id = client.submit(job, source, ship=False)

    # Kill h2's device actor while it runs: an infra error, retried once the actor is back (Ray restarts it).
    def h2_running() -> bool:
        return any(d.device_id == "h2" and d.current_run for d in client.devices())

    wait_for(h2_running, 30, "a run on h2")
    victim = client.device_handles()["h2"]
    os.kill(ray.get(victim.pid.remote()), signal.SIGKILL)

    status = client.wait(job_id, 120)
    assert status.state == "done", status
    assert status.statuses == {"ok": 10, "failed": 2}, status
    # At least the killed run; a retry sent while Ray is still restarting the actor fails the same way.
    retried = status.retries
    assert retried >= 1, status

    # Every outcome, each retried infra error included, reaches Prometheus with the controller's numbers.
    expected = {"ok": 10, "failed": 2, "infra_error": retried}

    def scraped_counts() -> dict[str, int]:
        return {
            r["metric"]["status"]: round(float(r["value"][1]))
            for r in prometheus.instant('sum by (status) (farm_runs_total{job="prom-check"}) > 0')
        }

    deadline = time.monotonic() + 30
    while scraped_counts() != expected and time.monotonic() < deadline:
        time.sleep(0.25)
    assert scraped_counts() == expected
    retries = prometheus.instant('sum(farm_run_retries_total{job="prom-check"})')
    assert float(retries[0]["value"][1]) == retried
    # One push per device (its first run), every other placed artifact found on the device by its sha256.
    # The killed attempt may have pushed before dying: then h2's retry finds the content and counts a hit.
    placed = float(prometheus.instant('sum(farm_artifacts_placed_total{job="prom-check"})')[0]["value"][1])
    hits = float(prometheus.instant('sum(farm_artifact_cache_hits_total{job="prom-check"})')[0]["value"][1])
    pushed = float(prometheus.instant('sum(farm_artifact_pushed_bytes_total{job="prom-check"})')[0]["value"][1])
    pushes = pushed / (64 * 1024)
    assert placed == 12
    assert pushes in (1, 2)
    assert hits + pushes == placed
    throughput = prometheus.instant('farm_run_throughput_per_second{metric="decode_tokens_per_s"}')
    assert {float(r["value"][1]) for r in throughput} <= {40.0 + n for n in range(1, 7)}
    assert len(throughput) == 2  # one last value per device
    ttft = prometheus.instant('farm_run_latency_seconds{metric="ttft_ms"}')
    assert {float(r["value"][1]) for r in ttft} == {0.0125}
    power = prometheus.instant("farm_device_power_watts")
    assert ("h1", 3.5) in [(r["metric"]["slot"], float(r["value"][1])) for r in power]  # h2 too, with RAPL

    # Each shipped query finds series over the run (temperature only where the host has a sensor).
    end = time.time()
    empty, missing_sensor = [], []
    for where, expr in dashboard_queries() + alert_signals():
        promql = grafana_to_promql(expr)
        result = prometheus.over(promql, t0, end)
        if any(m in promql for m in SENSOR_METRICS) and not HOST_HAS_SENSOR:
            if result:
                missing_sensor.append(f"{where}: {promql} has series on a host without a sensor")
        elif not result:
            empty.append(f"{where}: {promql}")
    assert not empty, "queries without data:\n" + "\n".join(empty)
    assert not missing_sensor, "\n".join(missing_sensor)

    # Prometheus loaded the shipped alert rules and evaluates each without error.
    groups = prometheus.api("rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {r["name"] for r in rules} == {w.split(": ")[1] for w, _ in alert_signals()}
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
