"""The live farm page in Debian's Chromium (headless, through chromedriver and Selenium) over a real controller.

Set ``FARM_PAGE_SCREENSHOTS=docs/images`` to keep the page's screenshots there (docs/api.md shows them).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from farm.client import FarmClient
from tests.api.served import Served, serve
from tests.runtime.helpers import hosts, start, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.ray]

webdriver = pytest.importorskip("selenium.webdriver")


@pytest.fixture(scope="module")
def api(local_ray: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, FarmClient]]:
    results = tmp_path_factory.mktemp("results")
    client = start(hosts("phone-lab-1", "board-2"), results, flush_seconds=0.2, flush_rows=1)
    client.info()
    with serve(client, results) as served:
        yield served, client
    client.shutdown()
    client.kill()


@pytest.fixture
def browser() -> Iterator[object]:
    driver_path = shutil.which("chromedriver")
    chromium = shutil.which("chromium")
    if not driver_path or not chromium:
        pytest.fail("chromium and chromedriver are needed: run deploy/install-system-deps.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def post(api: Served, data: dict[str, object]) -> str:
    resp = api.post_yaml(yaml.safe_dump(data))
    assert resp.status_code == 201, resp.text
    return str(resp.json()["job_id"])


def script(driver: Any, js: str, *args: object) -> Any:
    return driver.execute_script(js, *args)


def job_row(driver: Any, job_id: str) -> dict[str, str]:
    js = (
        "const r = document.querySelector(`#jobs tr[data-job-id='${arguments[0]}']`); return r ? {...r.dataset} : null;"
    )
    return script(driver, js, job_id) or {}


def shot(driver: object, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    keep = os.environ.get("FARM_PAGE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)


def test_page_shows_progress_and_cancel(api: tuple[Served, FarmClient], browser: object, tmp_path: Path) -> None:
    served, _ = api
    regex = {"workload": "regex", "workload_options": {"patterns": {"latency_ms": r"latency=(\d+)"}}}
    done_id = post(
        served,
        {
            "name": "warm",
            **regex,
            "command": ["sh", "-c", "echo latency=$(( {i} * 3 + 10 ))"],
            "grid": {"i": list(range(12))},
        },
    )
    failing = {
        "name": "broken",
        **regex,
        "command": ["sh", "-c", "echo 'no such model: m{i}.gguf' >&2; exit 2"],
        "grid": {"i": [1]},
        "retries": 0,
    }
    fail_id = post(served, failing)
    wait_until(lambda: served.job(done_id).ended and served.job(fail_id).ended, timeout=300)
    slow_id = post(
        served,
        {
            "name": "sweep",
            **regex,
            "command": ["sh", "-c", "sleep 1; echo latency={i}"],
            "grid": {"i": list(range(40))},
        },
    )

    browser.get(f"{served.url}/#token={served.token}")  # type: ignore[attr-defined]
    wait_until(lambda: job_row(browser, slow_id).get("state") == "running", timeout=120)
    assert "token" not in browser.current_url  # type: ignore[attr-defined]
    first = int(job_row(browser, slow_id)["done"])
    wait_until(lambda: int(job_row(browser, slow_id)["done"]) >= first + 2, timeout=180)  # progress advances
    held = "return [...document.querySelectorAll('#devices tbody tr')].map(r => r.cells[6].textContent)"
    wait_until(lambda: slow_id in script(browser, held), timeout=60)

    # the finished job's headline metric as a chart, and a failure's log one click away (the page re-renders every
    # second: elements are found and clicked inside the page, in one script each)
    script(browser, "document.querySelector(`#jobs tr[data-job-id='${arguments[0]}'] button`).click()", done_id)
    points = "return document.querySelectorAll('#chart svg circle').length"
    wait_until(lambda: script(browser, points) == 24, timeout=60)
    assert script(browser, "return document.getElementById('chart-title').textContent") == "latency_ms per run"
    shot(browser, tmp_path, "farm-page.png")

    script(browser, "document.querySelector(`#jobs tr[data-job-id='${arguments[0]}'] button`).click()", fail_id)
    wait_until(lambda: script(browser, "return document.querySelectorAll('#failures tbody tr').length") == 2, 60)
    script(browser, "document.querySelector('#failures tbody button').click()")
    log = "return document.getElementById('log').textContent"
    wait_until(lambda: "no such model: m1.gguf" in script(browser, log), timeout=60)
    assert script(browser, "return document.getElementById('chart-title').textContent") == "no measurement yet"
    script(browser, "document.getElementById('failures').scrollIntoView()")
    shot(browser, tmp_path, "farm-page-failure-log.png")

    cancel = "document.querySelector(`#jobs tr[data-job-id='${arguments[0]}'] td:last-child button:last-child`).click()"
    script(browser, cancel, slow_id)
    wait_until(lambda: job_row(browser, slow_id).get("state") == "cancelled", timeout=180)
    cell = "return document.querySelector(`#jobs tr[data-job-id='${arguments[0]}'] td.state`).textContent"
    assert script(browser, cell, slow_id) == "cancelled"
    assert served.job(slow_id).state == "cancelled"
    shot(browser, tmp_path, "farm-page-cancelled.png")

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]  # type: ignore[attr-defined]
    assert errors == []
