"""The Airflow UI in a real browser (Debian's chromium and chromedriver, driven by Selenium): log in, open a finished
run's report tab, read its figures off the page and compare them with the staged manifest and validation report,
ask the index a question, check the trigger form's sections and bounds, and read the trends page of several runs.

Screenshots go to LATECHUNK_SCREENSHOTS (docs/img to refresh the README's) or a temporary folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
from stack_support import TOPICS, new_corpus, run_and_wait

pytestmark = pytest.mark.slow
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SECTIONS = ["Source", "Chunking", "Model and embedding", "Index", "Validation", "Staging"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver_path, "install Debian's chromium and chromium-driver (scripts/test.sh does as root)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium try to download a browser or driver
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.implicitly_wait(2)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("LATECHUNK_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def wait_for(driver, by, value, timeout: float = 60):
    return WebDriverWait(driver, timeout).until(expected_conditions.presence_of_element_located((by, value)))


def log_in(driver, stack) -> None:
    """Log in afresh, whatever an earlier test of the module left in the browser."""
    driver.get(f"{stack.url}/")
    driver.delete_all_cookies()
    driver.get(f"{stack.url}/")
    wait_for(driver, By.NAME, "username").send_keys(stack.user)
    driver.find_element(By.NAME, "password").send_keys(stack.password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, 60).until(lambda d: "/auth/login" not in d.current_url)


@pytest.fixture(scope="module")
def finished_run(stack, s3_client, es_client, minilm):
    """A real run with three documents and one empty object (quarantined), for the UI to show."""
    with new_corpus(s3_client, es_client, minilm, "ui") as corpus:
        for name in ("reef.txt", "bread.txt", "comet.txt"):
            corpus.put(f"incoming/{name}", TOPICS[name])
        corpus.put("incoming/empty.txt", "")
        conf = corpus.run_conf(partition_by_date=False, max_bad_fraction=0.5)
        yield corpus, run_and_wait(stack, "latechunk_ingest", conf)


def test_run_report_in_the_ui_matches_the_staged_files(stack, browser, shots, finished_run):
    from latechunk.staging.tables import read_json

    corpus, run = finished_run
    run_id = run["dag_run_id"]
    log_in(browser, stack)
    browser.get(f"{stack.url}/dags/latechunk_ingest/runs/{run_id}")
    wait_for(browser, By.XPATH, "//*[contains(text(), 'publish')]")
    browser.save_screenshot(str(shots / "ui-grid.png"))

    tab = "//button[normalize-space(.)='Run report'] | //a[normalize-space(.)='Run report']"
    browser.find_element(By.XPATH, tab).click()
    frame = wait_for(browser, By.CSS_SELECTOR, "iframe[src*='/latechunk/runs/']")
    browser.switch_to.frame(frame)
    wait_for(browser, By.ID, "objects")
    browser.switch_to.default_content()
    browser.save_screenshot(str(shots / "ui-report-tab.png"))
    browser.switch_to.frame(frame)

    def count(name: str) -> int:  # shown for people: 1,234
        return int(browser.find_element(By.CSS_SELECTOR, f"#objects td[data-count={name}]").text.replace(",", ""))

    manifest = read_json(corpus.s3, stack.xcom("latechunk_ingest", run_id, "extract", key="manifest"))
    report = read_json(corpus.s3, stack.xcom("latechunk_ingest", run_id, "validate")["report"])
    assert (count("listed"), count("new"), count("changed"), count("unchanged")) == (4, 3, 0, 0)
    assert count("quarantined") == 1 == len([e for e in manifest["quarantine"] if e["key"] == "incoming/empty.txt"])
    assert count("deleted") == len(manifest["deleted_keys"]) == 0
    chunks = corpus.chunks()
    assert count("chunks_written") == len(chunks) > 0
    quarantine = browser.find_element(By.ID, "quarantine").text
    assert "incoming/empty.txt" in quarantine and manifest["quarantine"][0]["reason"] in quarantine
    for check in report["checks"]:
        row = browser.find_element(By.CSS_SELECTOR, f"#validation tr[data-check='{check['name']}']")
        shown = row.find_element(By.CSS_SELECTOR, "td[data-value]").get_attribute("data-value")
        assert shown == ("None" if check["value"] is None else str(check["value"])), check["name"]
        assert check["description"] in row.text
    assert browser.find_element(By.ID, "verdict").text.startswith("passed")

    search = browser.find_element(By.CSS_SELECTOR, "#search input[name=q]")
    search.send_keys("Why do comet tails point away from the sun?")
    browser.find_element(By.CSS_SELECTOR, "#search button").click()
    top = wait_for(browser, By.CSS_SELECTOR, "#hits tr.hit td[data-key]")
    assert top.get_attribute("data-key") == "incoming/comet.txt"
    browser.switch_to.default_content()
    browser.get(f"{stack.url}/latechunk/runs/latechunk_ingest/{run_id}?q=How+is+sourdough+leavened%3F")
    wait_for(browser, By.ID, "hits")
    browser.save_screenshot(str(shots / "ui-report.png"))


def test_the_report_needs_airflows_login(stack, finished_run):
    import httpx

    _, run = finished_run
    url = f"{stack.url}/latechunk/runs/latechunk_ingest/{run['dag_run_id']}"
    assert httpx.get(url).status_code in (401, 403)
    token = httpx.post(f"{stack.url}/auth/token", json={"username": stack.user, "password": stack.password})
    page = httpx.get(url, headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert page.status_code == 200 and "Late chunking run report" in page.text


def test_trigger_form_has_sections_and_refuses_out_of_range_values(stack, browser, shots):
    from airflow_client import AirflowError

    log_in(browser, stack)
    browser.get(f"{stack.url}/dags/latechunk_ingest")
    wait_for(browser, By.XPATH, "//button[normalize-space(.)='Trigger']").click()
    form = "//*[@role='dialog'][.//*[contains(text(), 'Trigger Dag')]]"
    wait_for(browser, By.XPATH, form)
    for section in SECTIONS:
        wait_for(browser, By.XPATH, f"{form}//button[normalize-space(.)='{section}']")
    submit = browser.find_element(By.XPATH, f"{form}//button[normalize-space(.)='Trigger']")
    assert submit.is_enabled(), "the form with its defaults can be submitted"
    browser.save_screenshot(str(shots / "ui-trigger-form.png"))

    browser.find_element(By.XPATH, f"{form}//button[normalize-space(.)='Chunking']").click()
    for name, typed, kept in (("chunk_size", "0", "1"), ("sentences_per_chunk", "-4", "1")):
        field = wait_for(browser, By.NAME, f"element_{name}")
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(typed, Keys.TAB)
        WebDriverWait(browser, 20).until(lambda _, field=field, kept=kept: field.get_attribute("value") == kept)
    browser.find_element(By.XPATH, f"{form}//button[normalize-space(.)='Validation']").click()
    field = wait_for(browser, By.NAME, "element_recall_threshold")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys("7", Keys.TAB)
    WebDriverWait(browser, 20).until(lambda _: field.get_attribute("value") == "1")

    # What the form clamps, the API refuses outright: the same schema guards automation.
    with pytest.raises(AirflowError, match="chunk_size"):
        stack.trigger("latechunk_ingest", {"chunk_size": 0})


@pytest.fixture(scope="module")
def several_runs(stack, s3_client, es_client, minilm):
    """Two runs of one corpus: new objects; then a changed, a new, a deleted and an empty (quarantined) one."""
    with new_corpus(s3_client, es_client, minilm, "trends") as corpus:
        conf = corpus.run_conf(partition_by_date=False, max_bad_fraction=0.5, delete_missing=True)
        runs = []
        for name in ("reef.txt", "bread.txt", "comet.txt"):
            corpus.put(f"incoming/{name}", TOPICS[name])
        runs.append(run_and_wait(stack, "latechunk_ingest", conf))
        corpus.put("incoming/bread.txt", TOPICS["bread.txt"] + " It is baked in a hot oven.")
        corpus.put("incoming/engine.txt", TOPICS["engine.txt"])
        corpus.delete("incoming/comet.txt")
        corpus.put("incoming/empty.txt", "")
        runs.append(run_and_wait(stack, "latechunk_ingest", conf))
        yield corpus, [run["dag_run_id"] for run in runs]


def test_trends_page_plots_every_run_and_links_to_its_report(stack, browser, shots, several_runs, minilm):
    from latechunk.reporting.display import model_label
    from latechunk.staging.tables import read_json

    corpus, run_ids = several_runs
    log_in(browser, stack)
    browser.get(f"{stack.url}/dags/latechunk_ingest")
    tab = "//button[normalize-space(.)='Trends'] | //a[normalize-space(.)='Trends']"
    wait_for(browser, By.XPATH, tab).click()
    frame = wait_for(browser, By.CSS_SELECTOR, "iframe[src*='/latechunk/dags/latechunk_ingest/trends']")
    browser.switch_to.frame(frame)
    wait_for(browser, By.ID, "chart-documents")
    browser.switch_to.default_content()
    browser.save_screenshot(str(shots / "ui-trends.png"))

    # The page itself, with every run of the DAG on this stack (other tests' runs too): ours are among the last.
    browser.get(f"{stack.url}/latechunk/dags/latechunk_ingest/trends?runs=200")
    wait_for(browser, By.ID, "chart-documents")

    def plotted(chart: str, series: str, run_id: str) -> float:
        dot = browser.find_element(
            By.CSS_SELECTOR, f"[id='chart-{chart}'] circle[data-series='{series}'][data-run='{run_id}']"
        )
        return float(dot.get_attribute("data-value"))

    expected = [(3, 0, 0, 0), (1, 1, 1, 1)]  # new, changed, deleted, quarantined
    for run_id, (new, changed, deleted, quarantined) in zip(run_ids, expected, strict=True):
        summary = stack.xcom("latechunk_ingest", run_id, "extract", key="summary")
        manifest = read_json(corpus.s3, stack.xcom("latechunk_ingest", run_id, "extract", key="manifest"))
        index = stack.xcom("latechunk_ingest", run_id, "index")
        assert (summary["objects_new"], summary["objects_modified"]) == (new, changed), run_id
        assert plotted("documents", "new", run_id) == new
        assert plotted("documents", "changed", run_id) == changed
        assert plotted("documents", "deleted", run_id) == deleted == len(manifest["deleted_keys"])
        assert plotted("documents", "quarantined", run_id) == quarantined
        assert plotted("chunks", "chunks written", run_id) == index["chunks_indexed"]
        report = read_json(corpus.s3, stack.xcom("latechunk_ingest", run_id, "validate")["report"])
        for check in report["checks"]:
            if not check["skipped"]:
                assert plotted(f"check-{check['name']}", check["name"], run_id) == pytest.approx(check["value"])
        row = browser.find_element(By.CSS_SELECTOR, f"#runs tr[data-run='{run_id}']")
        link = row.find_element(By.TAG_NAME, "a").get_attribute("href")
        assert link.endswith(f"/latechunk/runs/latechunk_ingest/{quote(run_id, safe='')}")
    last = read_json(corpus.s3, stack.xcom("latechunk_ingest", run_ids[-1], "validate")["report"])
    drawn = browser.find_element(By.CSS_SELECTOR, "#chart-check-self_retrieval line.threshold")
    assert float(drawn.get_attribute("data-threshold")) == next(
        check["threshold"] for check in last["checks"] if check["name"] == "self_retrieval"
    )
    assert model_label(minilm) in browser.find_element(By.ID, "models").text
    if minilm.startswith("/"):
        assert minilm not in browser.page_source, "a local checkpoint is named, not located"

    # From a run's report to the trends page, and from the trends page back to the report.
    browser.find_element(By.CSS_SELECTOR, f"#runs tr[data-run='{run_ids[-1]}'] a").click()
    wait_for(browser, By.ID, "objects")
    browser.find_element(By.ID, "link-trends").click()
    wait_for(browser, By.ID, "chart-documents")
    assert browser.current_url.endswith("/latechunk/dags/latechunk_ingest/trends")


def test_trends_pages_are_in_the_plugins_menu(stack):
    views = [view for plugin in stack.request("GET", "/plugins")["plugins"] for view in plugin["external_views"]]
    hrefs = {view["href"]: view["destination"] for view in views}
    assert hrefs["/latechunk/dags/{DAG_ID}/trends"] == "dag"
    for dag_id in ("latechunk_ingest", "latechunk_reindex"):
        assert hrefs[f"/latechunk/dags/{dag_id}/trends"] == "nav"
