"""The committed Grafana dashboards: generated from build_dashboards.py, valid per grafana-foundation-sdk."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("grafana_foundation_sdk", reason="dev dependency grafana-foundation-sdk is not installed")

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy/grafana"
METRIC_NAME = re.compile(r"\b(farm_[a-z_]+)")


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dashboards", GRAFANA / "build_dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def builder() -> ModuleType:
    return load_builder()


def committed() -> dict[str, dict[str, object]]:
    return {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def test_committed_dashboards_are_what_the_generator_writes(builder: ModuleType) -> None:
    generated = builder.rendered()
    on_disk = {p.name: p.read_text() for p in sorted((GRAFANA / "dashboards").glob("*.json"))}
    assert set(on_disk) == set(generated), "dashboards/ and build_dashboards.DASHBOARDS list different files"
    stale = [name for name, text in generated.items() if on_disk[name] != text]
    assert not stale, f"out of date, run deploy/grafana/build_dashboards.py: {stale}"
    assert builder.main(["--check"]) == 0


def test_check_mode_reports_a_stale_file(builder: ModuleType, tmp_path: Path) -> None:
    assert builder.main(["--out", str(tmp_path)]) == 0
    first = sorted(tmp_path.glob("*.json"))[0]
    first.write_text(first.read_text().replace("Farm", "Frm", 1))
    assert builder.main(["--check", "--out", str(tmp_path)]) == 1


def test_dashboards_round_trip_through_the_sdk_schema() -> None:
    # Decoding into the SDK's Grafana 11.6 models and encoding again drops anything the schema does not know:
    # an unchanged round trip means every field is one the schema defines.
    register_default_plugins()
    for name, raw in committed().items():
        again = json.loads(JSONEncoder(sort_keys=True).encode(Dashboard.from_json(raw)))
        assert again == raw, name


def test_panels_have_unique_ids_datasource_variable_and_ref_ids() -> None:
    for name, board in committed().items():
        panels = board["panels"]
        assert isinstance(panels, list)
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), name
        variables = [v["name"] for v in board["templating"]["list"]]  # type: ignore[index]
        assert variables[0] == "datasource", name
        for panel in panels:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (name, panel["title"])
            refs = [t["refId"] for t in panel["targets"]]
            assert refs and len(refs) == len(set(refs)) and all(refs), (name, panel["title"])
            for ref in re.findall(r"\$\{?(\w+)\}?", json.dumps(panel["targets"])):
                assert ref.startswith("__") or ref in variables, (name, panel["title"], ref)


def test_every_metric_a_dashboard_reads_is_documented() -> None:
    documented = set(METRIC_NAME.findall((REPO / "docs/metrics.md").read_text()))
    for name, board in committed().items():
        for metric in METRIC_NAME.findall(json.dumps(board)):
            base = re.sub(r"_(bucket|count|sum)$", "", metric)
            assert base in documented, f"{name}: {metric} is not in docs/metrics.md"
