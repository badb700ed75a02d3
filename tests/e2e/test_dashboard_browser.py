"""The dashboard in a real browser: Debian's Chromium and chromedriver, driven by selenium, headless.

Against a real daemon with live, held-back and removed skills: the table, the
status filter, the refresh after a new deploy without a full page reload, the
page with JavaScript off, and the phone width. Screenshots go to tmp, or to
docs/ (committed, shown in the README) with SKILLSYNC_SCREENSHOTS=docs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_daemon import _deployed, start_daemon  # noqa: F401  (start_daemon: a fixture)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _install_chromium() -> None:
    """Debian's chromium and chromium-driver, as the other peers install themselves."""
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail("the browser tests need Debian's chromium and chromium-driver (apt-get as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
    if subprocess.run(cmd, env=env, capture_output=True, timeout=1200).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600, check=True)
        subprocess.run(cmd, env=env, capture_output=True, timeout=1200, check=True)


@pytest.fixture(scope="session")
def browser_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    _install_chromium()
    from selenium import webdriver

    drivers: list[Any] = []

    def make(width: int = 1200, height: int = 1500, javascript: bool = True) -> Any:
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        profile = tmp_path_factory.mktemp("chromium-profile")
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--disable-quic", f"--user-data-dir={profile}",
                    f"--window-size={width},{height}"):
            opts.add_argument(arg)
        if not javascript:
            opts.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
        driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
        driver.set_page_load_timeout(30)
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.quit()


def shot_dir(tmp_path: Path) -> Path:
    return ROOT / "docs" if os.environ.get("SKILLSYNC_SCREENSHOTS") == "docs" else tmp_path


def statuses(driver: Any) -> dict[str, str]:
    """Folder -> status of every row, read in one script call (the table may be swapped any time)."""
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('#skills tbody tr'))"
        ".map(function(r){return [r.querySelector('td code').textContent, r.getAttribute('data-status')];});")
    return {folder: status for folder, status in rows}


def test_dashboard_in_a_browser(start_daemon: Callable[..., Any], http_git_server: Any, repo: Any,  # noqa: F811
                                browser_factory: Callable[..., Any], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    repo.add_skill("alpha", description="Alpha answers questions about alpha.")
    repo.add_skill("gone", description="Will be removed.")
    first = repo.commit("v1")
    d = start_daemon(http_git_server.url_for(repo))
    _deployed(d, first)
    repo.remove("gone")
    repo.write("broken/SKILL.md", "---\nname: broken\n---\nno description\n")
    repo.add_skill("beta", description="Beta drafts release notes.")
    second = repo.commit("v2")
    mark = len(d.events)
    d.proc.send_signal(signal.SIGHUP)
    _deployed(d, second, start=mark)

    driver = browser_factory()
    driver.get(d.base + "/")
    assert statuses(driver) == {"alpha": "live", "beta": "live", "broken": "held_back", "gone": "removed"}
    assert "[field.required]" in driver.execute_script(
        "return document.querySelector('tr[data-status=held_back]').textContent")
    assert second[:12] in driver.execute_script("return document.getElementById('live').textContent")
    driver.save_screenshot(str(shot_dir(tmp_path) / "dashboard.png"))

    # The filter: a link, so it works with or without JavaScript.
    driver.find_element(By.PARTIAL_LINK_TEXT, "held back").click()
    WebDriverWait(driver, 10).until(lambda drv: "status=held_back" in drv.current_url)
    assert set(statuses(driver).values()) == {"held_back"}

    # A new deploy shows up without a full reload: a marker set on the window survives.
    driver.get(d.base + "/")
    driver.execute_script("window.__notReloaded = true;")
    repo.add_skill("gamma", description="Gamma arrived while the page was open.")
    third = repo.commit("v3")
    mark = len(d.events)
    d.proc.send_signal(signal.SIGHUP)
    _deployed(d, third, start=mark)
    WebDriverWait(driver, 30, poll_frequency=0.2).until(lambda drv: "gamma" in statuses(drv))
    assert driver.execute_script("return window.__notReloaded === true;")
    assert driver.execute_script("return document.querySelector('main').getAttribute('data-refreshed')")
    assert third[:12] in driver.execute_script("return document.getElementById('live').textContent")

    # JavaScript off: the data is all there.
    plain = browser_factory(javascript=False)
    plain.get(d.base + "/")
    assert statuses(plain)["gamma"] == "live" and statuses(plain)["broken"] == "held_back"
    # The page's own script did not run.
    assert plain.find_element(By.TAG_NAME, "html").get_attribute("data-js") is None
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("data-js") == "on"

    # A phone: no sideways scrolling, every skill still listed.
    phone = browser_factory(width=390, height=844)
    phone.get(d.base + "/")
    assert phone.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert set(statuses(phone)) == {"alpha", "beta", "broken", "gamma"}
    phone.save_screenshot(str(shot_dir(tmp_path) / "dashboard-phone.png"))
