"""The /inspect/migration/ page in a real Chromium (Playwright), served by waitress on 127.0.0.1: a backup
started from the form and watched live, then a restore with its purge confirmation. Screenshots go to
test-artifacts/."""
import os
import re

import pytest
import webtest.http
from playwright.sync_api import expect

import fylrmig
from fylrmig import make_web_app
from tests.helpers import ROOT
from tests.simulator.faults import FaultPlan

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = os.path.join(ROOT, "test-artifacts")

# Skipped on a developer machine without Chromium; in CI (.ci/run installs it) a missing browser fails.
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
                                 reason="Debian's chromium is not installed")]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's Chromium: Playwright must not look for a browser of its own (there is no download here)."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run"]}


@pytest.fixture
def served(tmp_path):
    """(page URL, JobRunner) of the app served by waitress in a daemon thread; jobs run in daemon threads."""
    runner = fylrmig.JobRunner(str(tmp_path / "data"))
    server = webtest.http.StopableWSGIServer.create(make_web_app(runner.data_dir, runner=runner))
    assert server.wait()
    yield server.application_url.rstrip("/") + "/inspect/migration/", runner
    server.shutdown()


def screenshot(page, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, name), full_page=True)


def state_of(page, kind):
    return page.locator(f"#job-{kind} h2 .state").inner_text()


def test_backup_from_the_form_is_watched_live(page, served, make_sim):
    url, runner = served
    source = make_sim("easydb5", faults=FaultPlan(latency=0.02))     # slow enough to watch it run
    page.goto(url)
    page.fill("#backup-name", "e5-browser")
    page.fill("#backup-server", source.url)
    page.fill("#backup-login", "root")
    page.fill("#backup-password", "admin")
    page.select_option("#backup-chunk_size", "10")
    assert page.is_hidden("#backup-client_id")                         # OAuth2 fields only when ticked
    page.check("#backup-oauth2")
    assert page.is_visible("#backup-client_id")
    page.uncheck("#backup-oauth2")
    page.click("#backup-form button[type=submit]")
    page.wait_for_url(url + "e5-browser?note=started")

    page.evaluate("window.notReloaded = true")
    assert "backup done" not in page.locator("#job-backup pre.log").inner_text()
    expect(page.locator("#job-backup h2 .state")).to_have_text("done", timeout=30000)
    assert page.evaluate("window.notReloaded") is True                  # updated in place, no reload
    assert "backup done" in page.locator("#job-backup pre.log").inner_text()
    manifest = runner.folder("e5-browser").load_manifest()
    assert page.locator("#payloads tbody tr").count() == len(manifest["payloads"]) > 20
    assert page.is_hidden("#job-backup form.cancel")
    assert page.locator("[data-item=Flavour]").inner_text() == "easydb5"
    assert page.is_visible("#restore-link")
    screenshot(page, "status.png")

    page.goto(url)
    row = page.locator("tr[data-backup='e5-browser']")
    assert "backup done" in row.inner_text() and "easydb5" in row.inner_text()
    screenshot(page, "overview.png")


def test_restore_from_the_form_asks_before_purging(page, served, make_sim):
    url, runner = served
    source, target = make_sim("easydb5"), make_sim("fylr", size="empty")
    runner.start("backup", "e5", {"server": source.url, "login": "root", "password": "admin"}, inline=True)
    page.goto(url)

    rows = page.locator("#restore-rename_versions tbody tr")
    assert rows.count() == 2 and rows.nth(0).locator("input").nth(0).input_value() == "video"
    rows.nth(1).locator("input[name=rv_class]").fill("image")              # filling the last row adds one
    assert rows.count() == 3
    rows.nth(1).locator("input[name=rv_source]").fill("preview")
    rows.nth(1).locator("input[name=rv_target]").fill("640px")

    page.fill("#restore-server", target.url)
    page.fill("#restore-login", "root")
    page.fill("#restore-password", "admin")
    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.click("#restore-form button[type=submit]")
    assert dialogs == [f'This will destroy all data on "{target.url}"!']
    assert page.url == url                                               # dismissed: nothing started
    assert not os.path.exists(runner.folder("e5").join("restore.log"))

    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.click("#restore-form button[type=submit]")
    page.wait_for_url(url + "e5?note=started")
    expect(page.locator("#job-restore h2 .state")).not_to_have_text(re.compile("^(starting|queued|running)$"),
                                                                     timeout=30000)
    log = page.locator("#job-restore pre.log").inner_text()
    assert "--purge" in log and "--rename-versions video.1920p:1080p,image.preview:640px" in log
    assert "admin" not in log
    if "not implemented yet" in log:
        pytest.xfail("restore is not implemented yet (RestoreJob is being written)")
    assert state_of(page, "restore") == "done", log


def test_runtime_and_overall_progress_move_while_a_backup_runs(page, served, make_sim):
    url, runner = served
    source = make_sim("easydb5", faults=FaultPlan(latency=0.03))
    runner.start("backup", "slow", {"server": source.url, "login": "root", "password": "admin", "chunk_size": 5})
    page.goto(url + "slow")
    expect(page.locator("#job-backup h2 .state")).to_have_text("running", timeout=20000)
    runtime = page.locator("#job-backup [data-k=Runtime]")
    first = runtime.inner_text()
    page.wait_for_timeout(2500)
    assert runtime.inner_text() != first, "the runtime counts while the job runs"
    expect(page.locator("#job-backup .overall-text")).to_contain_text("%", timeout=20000)
    screenshot(page, "running.png")
    expect(page.locator("#job-backup h2 .state")).to_have_text("done", timeout=60000)
    assert page.locator("#job-backup .overall-text").inner_text().startswith("100")


def test_an_incomplete_backup_needs_its_own_confirmation_in_the_browser(page, served, make_sim):
    url, runner = served
    source, target = make_sim("easydb5"), make_sim("fylr", size="empty")
    runner.start("backup", "whole", {"server": source.url, "login": "root", "password": "admin"}, inline=True)
    runner.start("backup", "partial", {"server": source.url, "login": "root", "password": "admin"}, inline=True)
    folder = runner.folder("partial")
    manifest = folder.load_manifest()
    manifest["state"]["status"] = "cancelled"
    folder.save_manifest(manifest)
    page.goto(url)
    assert page.locator("#restore-backup").input_value() == "whole"
    assert "incomplete (cancelled)" in page.locator("#restore-backup option[value=partial]").inner_text()
    page.select_option("#restore-backup", "partial")
    page.fill("#restore-server", target.url)
    page.fill("#restore-login", "root")
    page.fill("#restore-password", "admin")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#restore-form button[type=submit]")
    expect(page.locator("[data-field=backup] .error")).to_contain_text("This backup is incomplete")
    assert runner.ledger.latest_job(folder.path, "restore") is None
    screenshot(page, "incomplete.png")


def test_a_backup_is_downloaded_and_deleted_from_its_page(page, served, make_sim, tmp_path):
    url, runner = served
    source = make_sim("easydb5")
    runner.start("backup", "gone", {"server": source.url, "login": "root", "password": "admin"}, inline=True)
    page.goto(url + "gone")
    with page.expect_download() as info:
        page.click("#download")
    path = tmp_path / "gone.zip"
    info.value.save_as(path)
    import zipfile
    assert "gone/manifest.json" in zipfile.ZipFile(path).namelist()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-form button")
    page.wait_for_url(url + "?note=deleted")
    assert "The backup was deleted." in page.locator(".note").first.inner_text()
    assert not os.path.exists(runner.folder("gone").path)


def test_the_pages_fit_a_400_pixel_screen(page, served, make_sim):
    url, runner = served
    source = make_sim("easydb5")
    runner.start("backup", "narrow-screen-backup-name", {"server": source.url, "login": "root", "password": "admin"},
                 inline=True)
    page.set_viewport_size({"width": 400, "height": 800})
    for path, shot in (("", "narrow-overview.png"), ("narrow-screen-backup-name", "narrow-status.png")):
        page.goto(url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, f"{path or 'overview'} is {width} px wide at 400 px"
        screenshot(page, shot)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
