"""The trigger forms in a browser: Debian's chromium (headless, through its chromedriver) against the
deployment's UI, logged in as the admin user. Screenshots go to $GOGOKU_TEST_ARTIFACTS (default
`test-artifacts/` in the checkout), one per step, for a reader of a failed run.

- gogoku_training: the form submits with its defaults (an empty `dataset` is not a missing field);
  the run it creates carries the params' defaults.
- gogoku_dataset: `start` and `end` are required dates: the form says so and keeps its Trigger
  button disabled until both are set; with both, the run carries them.

The DAGs are paused for the test (the form's "unpause on trigger" box is cleared), so the runs stay
queued and are deleted at the end: the browser test starts no work.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sched_harness import AirflowRest, Deployment

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Chromium as root on a closed network: no sandbox, no background connections (refused here, slowly).
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1000")


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("GOGOKU_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "ui"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture(scope="module")
def browser(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    if missing:
        pytest.fail(f"the browser test needs Debian's chromium and chromium-driver ({', '.join(missing)} missing; "
                    "bash .ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = Options()
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(15)
    try:
        driver.get(deployment.url + "/")
        driver.find_element(By.NAME, "username").send_keys(deployment.user)
        driver.find_element(By.NAME, "password").send_keys(deployment.password)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until(lambda: "/auth/login" not in driver.current_url, "the login to finish")
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def paused(rest: AirflowRest) -> Iterator[None]:
    """gogoku_training and gogoku_dataset paused for the test, as they were afterwards; the test's runs deleted."""
    dag_ids = ("gogoku_training", "gogoku_dataset")
    was = {d: rest.dags.get_dag(d).is_paused for d in dag_ids}
    before = {d: {r.dag_run_id for r in rest.dag_runs(d)} for d in dag_ids}
    for d in dag_ids:
        rest.pause(d)
    yield
    for d in dag_ids:
        for run in rest.dag_runs(d):
            if run.dag_run_id not in before[d]:
                rest.runs.delete_dag_run(d, run.dag_run_id)
        if not was[d]:
            rest.unpause(d)


def wait_until(check: Any, what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def open_trigger_form(driver: Any, url: str, dag_id: str) -> None:
    """The DAG page's Trigger dialog, with its "unpause on trigger" box cleared."""
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/dags/{dag_id}")
    driver.find_element(By.CSS_SELECTOR, "button[aria-label='Trigger Dag']").click()
    label = driver.find_element(By.XPATH, f"//label[contains(., 'Unpause {dag_id} on trigger')]")
    box = label.find_element(By.TAG_NAME, "input")
    if box.is_selected():
        label.click()
    wait_until(lambda: not box.is_selected(), "the unpause box to clear")


def submit_button(driver: Any) -> Any:
    """The dialog's Trigger button (the page header has another one, first in the document)."""
    from selenium.webdriver.common.by import By

    buttons = [b for b in driver.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Trigger"]
    assert len(buttons) == 2, [b.text for b in buttons]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", buttons[-1])
    return buttons[-1]


def new_run(rest: AirflowRest, dag_id: str, known: set[str]) -> Any:
    return wait_until(lambda: next((r for r in rest.dag_runs(dag_id) if r.dag_run_id not in known), None),
                      f"a new {dag_id} run", 60)


@pytest.mark.usefixtures("paused")
def test_the_training_form_submits_with_its_defaults(browser: Any, rest: AirflowRest, deployment: Deployment,
                                                     artifacts: Path) -> None:
    from selenium.webdriver.common.by import By

    known = {r.dag_run_id for r in rest.dag_runs("gogoku_training")}
    open_trigger_form(browser, deployment.url, "gogoku_training")
    dialog_text = wait_until(lambda: "\n".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, "[role=dialog]")),
                             "the dialog's text")
    assert "Trigger Dag - gogoku_training" in dialog_text
    browser.save_screenshot(str(artifacts / "training_1_form.png"))
    for param in ("dataset", "plan_tier", "model", "overrides", "fold_parallel", "refit", "promote"):
        assert param in dialog_text, param
    assert "This field is required" not in dialog_text
    button = submit_button(browser)
    assert button.is_enabled()
    browser.save_screenshot(str(artifacts / "training_2_ready.png"))
    button.click()
    wait_until(lambda: "successfully triggered" in browser.page_source, "the UI to confirm the run")
    browser.save_screenshot(str(artifacts / "training_3_triggered.png"))
    run = new_run(rest, "gogoku_training", known)
    assert run.run_type == "manual" and run.state in ("queued", "running"), run
    conf = run.conf or {}
    assert conf.get("dataset") in (None, "") and conf["model"] == "lightgbm" and conf["plan_tier"] == "standard", conf
    assert conf["refit"] is True and conf["promote"] == "if_better" and conf["overrides"] == [], conf


@pytest.mark.usefixtures("paused")
def test_the_dataset_form_requires_both_dates(browser: Any, rest: AirflowRest, deployment: Deployment,
                                              artifacts: Path) -> None:
    from selenium.webdriver.common.by import By

    known = {r.dag_run_id for r in rest.dag_runs("gogoku_dataset")}
    open_trigger_form(browser, deployment.url, "gogoku_dataset")
    wait_until(lambda: browser.page_source.count("This field is required") == 2, "the two required dates flagged")
    button = submit_button(browser)
    assert not button.is_enabled()
    browser.save_screenshot(str(artifacts / "dataset_1_required.png"))
    # A date input takes the browser locale's order (en-US: mm/dd/yyyy).
    browser.find_element(By.NAME, "element_start").send_keys("01062025")
    assert not submit_button(browser).is_enabled()  # one date is not enough
    browser.find_element(By.NAME, "element_end").send_keys("01102025")
    wait_until(lambda: submit_button(browser).is_enabled(), "the Trigger button to enable")
    browser.save_screenshot(str(artifacts / "dataset_2_ready.png"))
    submit_button(browser).click()
    wait_until(lambda: "successfully triggered" in browser.page_source, "the UI to confirm the run")
    browser.save_screenshot(str(artifacts / "dataset_3_triggered.png"))
    run = new_run(rest, "gogoku_dataset", known)
    assert run.conf == {"start": "2025-01-06", "end": "2025-01-10", "plan_tier": "standard"}, run.conf
