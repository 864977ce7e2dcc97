"""Issue 9, part 6 - the proof, kept in the suite: kill -9 at exact points of a backup and a restore (command
line and page) and continue; a whole small migration under gateway errors, dropped connections and token
expiry; a table of bad inputs, each refused with one line and nothing damaged; every row of the issue's
table as a test of its own.

Kill points are fylrmig's own (FYLRMIG_CRASH_AT="<point>:<n>": SIGKILL the n-th time crash_point(<point>)
is passed); the result of the continued run is compared with an uninterrupted run of the same input."""
import collections
import contextlib
import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

import fylrmig
from tests.conftest import generated_instance
from tests.helpers import (ROOT, backup_argv, free_port, normalized_payloads, run_cli, run_cli_env,
                           tree_digest)
from tests.simulator.dump import canonical_dump
from tests.simulator.faults import FaultPlan
from tests.simulator.server import serve
from tests.test_restore import actual, assert_same, by_reference, expected, one_line, restore_argv

CRASH = "FYLRMIG_CRASH_AT"
PAGE = "/inspect/migration/"


# ----------------------------------------------------------------------------- shared helpers

def quiet_main(*argv):
    """fylrmig's main() in this process for the module's reference runs (log into a file, not stdout)."""
    code = fylrmig.main([str(a) for a in argv])
    assert code == 0, argv
    return code


def pristine_copy(folder, dest):
    """A copy of a backup folder as the backup wrote it (no logs, no restore leftovers, no lock)."""
    shutil.copytree(folder, dest, ignore=shutil.ignore_patterns("*.log", "progress.json", ".restore-tmp",
                                                                fylrmig.LOCK_FILE))
    return dest


def leftovers(folder):
    """Temporary files of cut-short writes anywhere in a backup folder."""
    return [os.path.join(d, n) for d, _, names in os.walk(folder) for n in names if n.startswith(".tmp-")]


def killed(result):
    assert result.returncode == -signal.SIGKILL, (
        f"not killed (exit {result.returncode}): the kill point was never reached\n{result.stderr[-2000:]}")


def finished(result):
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr


# ----------------------------------------------------------------------------- crash matrix: backup

@contextlib.contextmanager
def counted_crash_points():
    """Count how often an in-process run passes each kill point (fylrmig.crash_point replaced by a counter
    for the duration): the matrix names points as first / middle / last, so it follows the engine."""
    counts, lock = collections.Counter(), threading.Lock()

    def count(name):
        with lock:
            counts[name] += 1
    original, fylrmig.crash_point = fylrmig.crash_point, count
    try:
        yield counts
    finally:
        fylrmig.crash_point = original


def nth(where, count):
    """The pass to kill at: "first", "last", "second last", an int, or a fraction of the passes."""
    n = {"first": 1, "last": count, "second last": count - 1}.get(where, where)
    n = max(1, round(count * n)) if isinstance(n, float) else n
    assert count and 1 <= n <= count, f"the uninterrupted run passed this point {count} times, not {where}"
    return n


BACKUP_EXTRA = ["--all-versions", "--include-deleted", "--include-files", "with-versions", "--chunk-size", "5"]

# (source flavour, kill point, which pass). A tiny source with these parameters passes page-done ~70-80 times,
# file-packed ~90-100, payload-written ~60, emitted ~13-18, manifest-written ~16-21 (the last one after the
# ledger says done): the exact counts come from the module's uninterrupted run.
BACKUP_KILLS = [
    ("fylr", "manifest-written", "first"), ("fylr", "step-datamodel", "first"),
    ("fylr", "step-base_config", "first"), ("fylr", "page-spooled", "first"), ("fylr", "page-done", 0.25),
    ("fylr", "page-spooled", 0.5), ("fylr", "page-done", "last"), ("fylr", "file-packed", "first"),
    ("fylr", "file-packed", 0.5), ("fylr", "payload-written", 0.5), ("fylr", "payload-written", "last"),
    ("fylr", "emitted", "first"), ("fylr", "emitted", 0.5), ("fylr", "manifest-written", "second last"),
    ("fylr", "manifest-written", "last"),
    ("easydb5", "page-done", 0.15), ("easydb5", "page-spooled", "last"), ("easydb5", "file-packed", 0.5),
    ("easydb5", "file-packed", "last"), ("easydb5", "payload-written", "last"), ("easydb5", "emitted", "last"),
]


@pytest.fixture(scope="module")
def backup_references(tmp_path_factory):
    """{flavour: (source server, folder of an uninterrupted backup, kill point counts)}, made once."""
    base = tmp_path_factory.mktemp("backup-reference")
    out = {}
    for flavour in ("fylr", "easydb5"):
        server = serve(generated_instance(flavour))
        folder = base / flavour
        with counted_crash_points() as counts:
            quiet_main(*backup_argv(server, folder, base / "data", *BACKUP_EXTRA), "--log",
                       base / f"{flavour}.log")
        out[flavour] = (server, folder, counts)
    yield out
    for server, _, _ in out.values():
        server.shutdown()


def assert_same_backup(folder, reference):
    assert normalized_payloads(folder) == normalized_payloads(reference)
    assert tree_digest(folder) == tree_digest(reference)
    assert not leftovers(folder) and not os.path.exists(os.path.join(folder, ".spool"))
    manifest = fylrmig.read_json(os.path.join(folder, "manifest.json"))
    assert manifest["state"]["status"] == "done"


@pytest.mark.parametrize("flavour,point,where", BACKUP_KILLS,
                         ids=[f"{f} source killed at {p} ({w} pass)" for f, p, w in BACKUP_KILLS])
def test_a_backup_killed_at_an_exact_point_continues_to_the_uninterrupted_result(backup_references, tmp_path,
                                                                                 flavour, point, where):
    source, reference, counts = backup_references[flavour]
    folder = tmp_path / "b"
    argv = backup_argv(source, folder, tmp_path / "data", *BACKUP_EXTRA)
    killed(run_cli_env({CRASH: f"{point}:{nth(where, counts[point])}"}, *argv))
    finished(run_cli_env({CRASH: None}, *argv, "--continue"))
    assert_same_backup(folder, reference)


# ----------------------------------------------------------------------------- crash matrix: restore

RESTORE_EXTRA = ["--include-password", "--chunk-size", "5"]

# (file api, kill point, which pass). The module's backup restored with these parameters passes chunk-sent
# and chunk-done ~70 times and file-uploaded and file-settled ~38 times (counted in the reference run).
RESTORE_KILLS = [
    ("rput", "step-purge", "first"), ("rput", "step-datamodel", "first"), ("rput", "step-reindex", "first"),
    ("rput", "chunk-sent", "first"), ("rput", "chunk-done", "first"), ("rput", "chunk-sent", 0.2),
    ("rput", "chunk-done", 0.8), ("rput", "file-uploaded", "first"), ("rput", "file-uploaded", 0.5),
    ("rput", "file-settled", "first"), ("rput", "file-settled", 0.4), ("rput", "file-settled", "last"),
    ("put", "step-base_config", "first"), ("put", "chunk-sent", 2), ("put", "chunk-done", 0.35),
    ("put", "chunk-sent", 0.6), ("put", "chunk-sent", "last"), ("put", "file-uploaded", 0.2),
    ("put", "file-uploaded", "last"), ("put", "file-settled", 0.65), ("put", "chunk-done", "last"),
]


class RestoreSetup:
    """The module's source, its backup (never restored from directly: tests restore copies), and per file
    api the canonical dump an uninterrupted restore gives and the kill point counts of that run."""

    def __init__(self, base):
        self.base = base
        self.source = serve(generated_instance("fylr"))
        self.folder = base / "backup"
        quiet_main(*backup_argv(self.source, self.folder, base / "data", "--all-versions", "--include-deleted",
                                "--chunk-size", "5"), "--log", base / "backup.log")
        self._references = {}

    def copy(self, dest):
        return pristine_copy(self.folder, dest)

    def reference(self, file_api):
        """(canonical dump by reference, kill point counts) of an uninterrupted restore."""
        if file_api not in self._references:
            folder = self.copy(self.base / f"reference-{file_api}")
            target = serve(generated_instance("fylr", size="empty"))
            try:
                with counted_crash_points() as counts:
                    quiet_main(*restore_argv(folder, target, self.base, "--purge", "--file-api", file_api,
                                             *RESTORE_EXTRA), "--log", self.base / f"reference-{file_api}.log")
                self._references[file_api] = (by_reference(canonical_dump(target.sim), target.sim), counts)
            finally:
                target.shutdown()
        dump, counts = self._references[file_api]
        return copy.deepcopy(dump), counts


@pytest.fixture(scope="module")
def restore_setup(tmp_path_factory):
    setup = RestoreSetup(tmp_path_factory.mktemp("restore-reference"))
    yield setup
    setup.source.shutdown()


@pytest.mark.parametrize("file_api,point,where", RESTORE_KILLS,
                         ids=[f"{a} restore killed at {p} ({w} pass)" for a, p, w in RESTORE_KILLS])
def test_a_restore_killed_at_an_exact_point_continues_to_the_uninterrupted_target(restore_setup, make_sim, tmp_path,
                                                                                  file_api, point, where):
    want, counts = restore_setup.reference(file_api)
    folder = restore_setup.copy(tmp_path / "backup")
    target = make_sim("fylr", size="empty")
    argv = restore_argv(folder, target, tmp_path, "--file-api", file_api, *RESTORE_EXTRA)
    killed(run_cli_env({CRASH: f"{point}:{nth(where, counts[point])}"}, *argv, "--purge"))
    finished(run_cli_env({CRASH: None}, *argv, "--continue"))
    assert_same(want, by_reference(canonical_dump(target.sim), target.sim))
    assert target.sim.reindex_calls >= 1


# ----------------------------------------------------------------------------- crash matrix: the page

def form_fields(html, form_id):
    """The fields a browser submits for a form as the page rendered it (defaults, ticked boxes, chosen
    options)."""
    from bs4 import BeautifulSoup
    form = BeautifulSoup(html, "html.parser").find(id=form_id)
    assert form is not None, f"no #{form_id} on the page"
    fields = []
    for element in form.find_all(["input", "select", "textarea"]):
        name = element.get("name")
        if not name or element.has_attr("disabled"):
            continue
        if element.name == "select":
            options = element.find_all("option")
            chosen = [o for o in options if o.has_attr("selected")] or options[:1]
            fields += [(name, o.get("value", o.text)) for o in chosen]
        elif element.name == "textarea":
            fields.append((name, element.text))
        elif element.get("type", "text") in ("checkbox", "radio"):
            if element.has_attr("checked"):
                fields.append((name, element.get("value", "on")))
        elif element.get("type") not in ("submit", "button", "image", "reset"):
            fields.append((name, element.get("value", "")))
    return fields


def filled(fields, **values):
    """Form fields with some replaced (True ticks a box, False unticks it)."""
    out = [(k, v) for k, v in fields if k not in values]
    for key, value in values.items():
        if value is True:
            out.append((key, "on"))
        elif value is not False:
            out.append((key, value))
    return out


class ServedPage:
    """`python -m fylrmig serve` in a process of its own (what a sysadmin starts), driven over HTTP the way a
    browser does: CSRF cookie and hidden field from the page, Origin of the page itself."""

    def __init__(self, data, tmp_path, env=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {k: v for k, v in os.environ.items() if k != CRASH}
        full.update(env or {})
        self.errors = open(tmp_path / f"serve-{self.port}.err", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "fylrmig", "serve", "--data", str(data), "--port",
                                      str(self.port)], cwd=ROOT, env=full, stdout=subprocess.DEVNULL,
                                     stderr=self.errors)
        self.http = requests.Session()
        deadline = time.monotonic() + 20
        while True:
            try:
                self.http.get(self.url + PAGE, timeout=2)
                break
            except requests.ConnectionError:
                assert self.proc.poll() is None and time.monotonic() < deadline, "fylrmig serve did not start"
                time.sleep(0.05)

    def get(self, path="", **params):
        response = self.http.get(self.url + PAGE + path, params=params, timeout=10)
        assert response.status_code == 200, (path, response.status_code, response.text[:500])
        return response

    def status(self, name):
        return self.get(name, accept="application/json").json()["Backup"]

    def post(self, path, fields, status=303):
        response = self.http.post(self.url + PAGE + path, data=fields, headers={"Origin": self.url},
                                  allow_redirects=False, timeout=10)
        assert response.status_code == status, (response.status_code, response.text[:1000])
        return response

    def start_backup(self, **values):
        return self.post("", filled(form_fields(self.get().text, "backup-form"), **values))

    def continue_job(self, name, kind="backup", **secrets):
        fields = form_fields(self.get(f"{name}/continue", kind=kind).text, "continue-form")
        return self.post(f"{name}/continue", filled(fields, **secrets))

    def wait_for_state(self, name, kind, states, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = (self.status(name)["Progress"] or {}).get(kind) or {}
            if job.get("State") in states:
                return job
            time.sleep(0.1)
        raise AssertionError(f"the {kind} of {name} did not reach {states}: {job}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.http.close()
        self.errors.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


PAGE_BACKUP = dict(name="paged", login="root", password="admin", chunk_size="10", include_files="with-versions")
PAGE_KILLS = [("page-done", 4), ("file-packed", 30), ("emitted", 6)]


@pytest.fixture(scope="module")
def page_reference(tmp_path_factory):
    """(source, folder of an uninterrupted backup started from the page with PAGE_BACKUP's values)."""
    from tests.test_web import Web
    source = serve(generated_instance("fylr"))
    web = Web(str(tmp_path_factory.mktemp("page-reference") / "data"))
    web.backup_form(server=source.url, **PAGE_BACKUP).submit(status=303)
    assert web.job("paged")["state"] == "done"
    yield source, web.runner.folder("paged").path
    source.shutdown()


@pytest.mark.parametrize("point,n", PAGE_KILLS, ids=[f"page killed at {p} #{n}" for p, n in PAGE_KILLS])
def test_a_backup_from_the_page_killed_with_its_server_shows_interrupted_and_continues_to_the_same_result(
        page_reference, tmp_path, point, n):
    source, reference = page_reference
    data = tmp_path / "data"
    with ServedPage(data, tmp_path, {CRASH: f"{point}:{n}"}) as page:
        page.start_backup(server=source.url, **PAGE_BACKUP)
        try:
            assert page.proc.wait(timeout=60) == -signal.SIGKILL
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the page's server was not killed at {point} #{n}") from None
    with ServedPage(data, tmp_path) as page:
        job = page.status("paged")["Progress"]["backup"]
        assert job["State"] == "interrupted" and "interrupted" in job["Error"] and job["CanContinue"], job
        assert "interrupted" in page.get("paged").text
        listed = next(i for i in page.get(accept="application/json").json()["Backups"] if i["Name"] == "paged")
        assert listed["Status"] == "interrupted"
        page.continue_job("paged", password="admin")
        done = page.wait_for_state("paged", "backup", ("done", "failed"))
        assert done["State"] == "done", done
    assert_same_backup(data / "backups" / "paged", reference)
