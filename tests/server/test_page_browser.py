"""Drive the inspection page in headless Chromium (Debian's chromium + chromium-driver).

Skipped, with the reason, only when Chromium, its driver or Selenium are not installed.
Set ``MOGRAG_SCREENSHOT=/path/shot.png`` to keep a screenshot of the page.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from importlib.util import find_spec
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server needs the 'serve' extra (fastapi)")
if not (find_spec("python_multipart") or find_spec("multipart")):
    pytest.skip("the server needs the 'serve' extra (python-multipart)", allow_module_level=True)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip(
        "headless browser test skipped: chromium and chromedriver are not installed "
        "(apt-get install -y chromium chromium-driver)", allow_module_level=True,
    )
webdriver = pytest.importorskip(
    "selenium.webdriver", reason="browser test skipped: pip install selenium"
)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from mograg.index.core import Index  # noqa: E402
from mograg.server.app import create_app, running_server  # noqa: E402
from mograg.types import Document  # noqa: E402

DOCS = {
    "heron.md": (
        "# The grey heron\n\n"
        "The grey heron hunts in shallow water along rivers and lakes. "
        "In winter the heron eats small fish, frogs and voles when the ponds freeze. "
        "It stands motionless for long minutes before striking.\n\n"
        "Herons nest in colonies called heronries, high in tall trees. "
        "A pair raises three to five chicks each spring."
    ),
    "otter.md": (
        "# The river otter\n\n"
        "Otters are playful mammals of rivers and coasts. They eat crayfish, fish and "
        "amphibians. An otter's dense fur keeps it warm in cold water.\n\n"
        "Otters mark their territory with spraints along the river bank."
    ),
    "beaver.md": (
        "# Beavers\n\n"
        "Beavers build dams from branches and mud, creating ponds where they shelter. "
        "They eat bark, leaves and water plants. In autumn they store branches underwater "
        "to feed on during winter."
    ),
}


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("page") / "ix"
    ix = Index.create(root)
    ix.add([Document(i, t, {"title": t.splitlines()[0].lstrip("# ")}) for i, t in DOCS.items()])
    app = create_app(root)
    with running_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="mograg-chromium-")
    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-extensions",
                 "--window-size=1440,900", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    except Exception as exc:  # pragma: no cover - depends on the machine
        shutil.rmtree(profile, ignore_errors=True)
        pytest.skip(f"headless browser test skipped: chromium did not start ({exc})")
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_page_shows_weights_levels_and_highlighted_spans(
    page_url: str, browser, tmp_path: Path
) -> None:
    d = browser
    d.get(page_url + "/")
    wait = WebDriverWait(d, 60)
    wait.until(lambda drv: "documents" in drv.find_element(By.ID, "index-info").text)
    assert "3 documents" in d.find_element(By.ID, "index-info").text

    box = d.find_element(By.ID, "q")
    assert d.switch_to.active_element == box  # focus starts in the question box
    label = d.find_element(By.CSS_SELECTOR, "label[for='q']")
    assert label.text == "Question"
    box.send_keys("What does the heron eat in winter?")
    d.find_element(By.ID, "go").click()

    # the router's weight bars, one per granularity, one of them chosen
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#weights .bar-row")))
    rows = d.find_elements(By.CSS_SELECTOR, "#weights .bar-row")
    assert [r.get_attribute("data-name") for r in rows] == [
        f"level:{s}" for s in (32, 64, 128, 256, 512)
    ]
    assert len(d.find_elements(By.CSS_SELECTOR, "#weights .bar-row.chosen")) >= 1
    widths = [r.find_element(By.CSS_SELECTOR, ".bar-fill").size["width"] for r in rows]
    assert max(widths) > 50
    values = [float(r.find_element(By.CSS_SELECTOR, ".bar-value").text) for r in rows]
    assert sum(values) == pytest.approx(1, abs=0.01)

    # a column per level with its top hits
    columns = d.find_elements(By.CSS_SELECTOR, "#levels .level")
    assert len(columns) == 5
    assert all(c.find_elements(By.CSS_SELECTOR, "button.hit") for c in columns)

    # the final context, and the top document with the kept spans highlighted
    final = d.find_elements(By.CSS_SELECTOR, "#final button.hit")
    assert final and "heron" in final[0].text.lower()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#doc mark.kept")))
    kept = " ".join(m.text for m in d.find_elements(By.CSS_SELECTOR, "#doc mark.kept"))
    assert "small fish" in kept
    assert "heron.md" in d.find_element(By.ID, "doc-meta").text

    # selecting a hit in another column shows it as the focused span in its document
    hit = columns[-1].find_element(By.CSS_SELECTOR, "button.hit")
    hit.click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#doc mark.focus")))
    assert hit.get_attribute("aria-pressed") == "true"
    assert d.switch_to.active_element.get_attribute("id") == "h-doc"
    start, end = int(hit.get_attribute("data-start")), int(hit.get_attribute("data-end"))
    assert f"{start}–{end}" in d.find_element(By.ID, "doc-meta").text

    assert not [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]
    shot = os.environ.get("MOGRAG_SCREENSHOT") or str(tmp_path / "page.png")
    final[0].click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#doc mark.focus")))
    d.execute_script("window.scrollTo(0, 0)")  # selenium scrolled to click; show the top
    assert d.save_screenshot(shot)


def test_page_reports_errors(page_url: str, browser) -> None:
    d = browser
    d.get(page_url + "/")
    WebDriverWait(d, 30).until(
        lambda drv: "documents" in drv.find_element(By.ID, "index-info").text)
    d.find_element(By.ID, "q").send_keys("anything")
    d.find_element(By.CSS_SELECTOR, "details.options-box summary").click()
    router = d.find_element(By.ID, "router")
    router.send_keys("no-such-router")
    d.find_element(By.ID, "go").click()
    WebDriverWait(d, 30).until(lambda drv: "no router" in drv.find_element(By.ID, "status").text)
    assert "error" in d.find_element(By.ID, "status").get_attribute("class")


def test_page_marks_the_level_a_fixed_search_used(page_url: str, browser) -> None:
    """``router=level:64`` searches one level: the page marks that level's column chosen."""
    d = browser
    d.get(page_url + "/")
    wait = WebDriverWait(d, 30)
    wait.until(lambda drv: "documents" in drv.find_element(By.ID, "index-info").text)
    d.find_element(By.ID, "q").send_keys("What do beavers eat?")
    d.find_element(By.CSS_SELECTOR, "details.options-box summary").click()
    d.find_element(By.ID, "router").send_keys("level:64")
    d.find_element(By.ID, "go").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#levels .level")))
    chosen = d.find_elements(By.CSS_SELECTOR, "#levels .level.chosen")
    assert [c.get_attribute("data-level") for c in chosen] == ["64"]
