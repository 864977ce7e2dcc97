"""Issue 16: every request fylrmig makes survives a transient fault, the first one too.

FaultPlan(fail_first=N) answers the first N requests of EVERY request kind (method + normalised path: the
flavour probe GET /api/v1/settings and the OAuth2 token route included) with 502/503/504, once each. A backup
and a restore, from both source flavours, must complete against such a source and target and equal a
fault-free run, with a retry logged for each kind of request around the chunks: flavour probe, login,
purge, commit, reindex, a download, an upload. A server that keeps answering 502 is named for what it did,
not judged; 423 DatabaseLockError is retried; fylr's 503 while it purges is waited out, not retried."""
import dataclasses
import json
import re
import threading
import time

import pytest

import fylrmig
from tests.helpers import (actual, assert_one_line_error, assert_same, backup_argv, expected, normalized_payloads,
                           restore_argv, run_cli, run_cli_env, tree_digest)
from tests.simulator.dump import canonical_dump
from tests.simulator.faults import FaultPlan

FLAVOURS = ["easydb5", "fylr"]
BACKUP_EXTRA = ["--all-versions", "--include-deleted", "--include-files", "with-versions", "--chunk-size", "10"]
RESTORE_EXTRA = ["--purge", "--file-api", "put", "--include-password", "--include-deleted-linked",
                 "--chunk-size", "10"]


def run(argv, log):
    """fylrmig in this process with its log in a file; the log's text."""
    code = fylrmig.main([str(a) for a in argv] + ["--log", str(log)])
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "admin" not in text
    return text


def retried(log_text, method, path_pattern):
    """The retry lines of the log for requests matching METHOD and a path regular expression."""
    return [m.group(0) for m in re.finditer(rf"retry \d+/\d+ of {method} {path_pattern}: .*", log_text)]


def assert_retried(log_text, what, method, path_pattern):
    assert retried(log_text, method, path_pattern), f"no retry of the {what} ({method} {path_pattern}) logged"


def login_retried(log_text, flavour):
    if flavour == "fylr":
        assert_retried(log_text, "login", "POST", "/api/oauth2/token")
    else:
        assert_retried(log_text, "login", "(GET|POST)", "/api/v1/session(/authenticate)?")


# ----------------------------------------------------------------------------- backup

@pytest.mark.parametrize("flavour,n", [("easydb5", 1), ("fylr", 1), ("fylr", 2)])
def test_a_backup_whose_source_fails_the_first_requests_of_every_kind_equals_a_fault_free_backup(
        make_sim, tmp_path, flavour, n):
    source = make_sim(flavour, faults=FaultPlan())
    reference = tmp_path / "reference"
    run(backup_argv(source, reference, tmp_path / "data", *BACKUP_EXTRA), tmp_path / "reference.log")
    source.faults.fail_first = n                    # from now on the first n requests of every kind fail
    folder = tmp_path / "b"
    text = run(backup_argv(source, folder, tmp_path / "data", *BACKUP_EXTRA), tmp_path / "b.log")
    assert normalized_payloads(folder) == normalized_payloads(reference)
    assert tree_digest(folder) == tree_digest(reference)
    failures = source.faults.first_failures
    assert len(failures) > 10 and set(failures.values()) == {n}
    assert_retried(text, "flavour probe", "GET", "/api/v1/settings")
    login_retried(text, flavour)
    assert_retried(text, "datamodel read", "GET", "/api/v1/schema/user/CURRENT")
    assert_retried(text, "file download", "GET", r"/(api/v1/eas|eas|remote)/\S+")
    assert len(re.findall(r"retry \d+/\d+ of ", text)) >= sum(failures.values())


# ----------------------------------------------------------------------------- restore

@pytest.mark.parametrize("flavour,n", [("easydb5", 1), ("fylr", 1), ("fylr", 2)])
def test_a_restore_whose_source_and_target_fail_the_first_requests_of_every_kind_equals_a_fault_free_restore(
        make_sim, tmp_path, flavour, n):
    source = make_sim(flavour, faults=FaultPlan())
    folder = tmp_path / "b"
    run(backup_argv(source, folder, tmp_path / "data", "--all-versions", "--include-deleted"), tmp_path / "b.log")
    source.faults.fail_first = n                    # file downloads (put) and the target's fetches fail first
    target = make_sim("fylr", size="empty", faults=FaultPlan(fail_first=n))
    text = run(restore_argv(folder, target, tmp_path, *RESTORE_EXTRA), tmp_path / "r.log")
    assert_same(expected(source.sim, flavour, "put", target=target.sim), actual(target.sim))
    assert set(target.faults.first_failures.values()) == {n}
    assert_retried(text, "flavour probe", "GET", "/api/v1/settings")
    login_retried(text, "fylr")
    assert_retried(text, "purge", "POST", "/api/v1/system/purgeall")
    assert_retried(text, "datamodel commit", "POST", "/api/v1/schema/commit")
    assert_retried(text, "reindex", "POST", "/api/v1/system/reindex")
    downloads = retried(text, "GET", r"/(api/v1/eas|eas|remote)/\S+")
    assert [line for line in downloads if "the source answered" in line], "no retry of a file download logged"
    assert_retried(text, "file upload", "POST", "/api/v1/eas/put")
    assert_retried(text, "record chunk", "POST", r"/api/v1/db/\w+")


def test_423_database_lock_errors_are_retried(make_sim, tmp_path):
    source = make_sim("fylr", faults=FaultPlan())
    folder = tmp_path / "b"
    run(backup_argv(source, folder, tmp_path / "data", "--all-versions", "--include-deleted"), tmp_path / "b.log")
    locked = FaultPlan(fail_first=1, fail_first_statuses=(423,))
    target = make_sim("fylr", size="empty", faults=locked)
    text = run(restore_argv(folder, target, tmp_path, "--purge", "--file-api", "rput", "--include-password",
                            "--include-deleted-linked"), tmp_path / "r.log")
    assert_same(expected(source.sim, "fylr", "rput", target=target.sim), actual(target.sim))
    assert locked.errors_by_status == {423: len(locked.first_failures)} and len(locked.first_failures) > 10
    assert "answered HTTP 423 DatabaseLockError" in text
    assert_retried(text, "record chunk", "POST", r"/api/v1/db/\w+")


def test_the_purge_window_is_waited_out_without_using_up_retries(make_sim, tmp_path):
    """fylr answers 503 with x-fylr-status: purge for a while after a purge: that is the server at work, not a
    fault; with --retry-max-count 0 a single counted retry would end the restore."""
    source = make_sim("fylr")
    folder = tmp_path / "b"
    run(backup_argv(source, folder, tmp_path / "data", "--all-versions", "--include-deleted"), tmp_path / "b.log")
    target = make_sim("fylr", size="empty", purge_busy_seconds=1.5)
    started = time.monotonic()
    text = run(restore_argv(folder, target, tmp_path, "--purge", "--file-api", "rput", "--include-password",
                            "--include-deleted-linked", "--retry-max-count", "0"), tmp_path / "r.log")
    assert time.monotonic() - started >= 1.5
    assert "is busy (purge): waiting until it is ready" in text and "retry " not in text
    assert_same(expected(source.sim, "fylr", "rput", target=target.sim), actual(target.sim))


# ----------------------------------------------------------------------------- what the message says

def settings_always_502():
    return FaultPlan(error_rate=1.0, error_statuses=(502,), exempt_paths=(), only_prefixes=("/api/v1/settings",))


@pytest.mark.parametrize("retries,times", [(None, 11), ("4", 5)])
def test_a_source_whose_settings_keep_answering_502_is_named_for_what_it_did(make_sim, tmp_path, retries, times):
    source = make_sim("easydb5", faults=settings_always_502())
    extra = ["--retry-max-count", retries] if retries else []
    result = run_cli(*backup_argv(source, tmp_path / "b", tmp_path / "data", *extra))
    assert_one_line_error(result, f"the source answered HTTP 502 {times} times in a row (GET /api/v1/settings)")
    assert "is not an easydb 5 or fylr instance" not in result.stderr
    assert source.faults.errors == times
    assert not (tmp_path / "b").exists()


def test_a_target_whose_settings_keep_answering_502_is_named_for_what_it_did(make_sim, tmp_path):
    source = make_sim("fylr")
    folder = tmp_path / "b"
    run(backup_argv(source, folder, tmp_path / "data"), tmp_path / "b.log")
    target = make_sim("fylr", faults=settings_always_502())
    before = canonical_dump(target.sim)
    result = run_cli(*restore_argv(folder, target, tmp_path, "--purge", "--file-api", "rput"))
    assert_one_line_error(result, "the target answered HTTP 502 11 times in a row (GET /api/v1/settings)")
    assert "is not an easydb 5 or fylr instance" not in result.stderr
    assert canonical_dump(target.sim) == before


def test_a_continued_restore_retries_its_lookups_of_what_the_target_holds(make_sim, tmp_path):
    source = make_sim("fylr")
    folder = tmp_path / "b"
    run(backup_argv(source, folder, tmp_path / "data", "--all-versions", "--include-deleted"), tmp_path / "b.log")
    target = make_sim("fylr", size="empty", faults=FaultPlan())
    argv = restore_argv(folder, target, tmp_path, "--file-api", "rput", "--include-password",
                        "--include-deleted-linked")
    killed = run_cli_env({"FYLRMIG_CRASH_AT": "chunk-sent:1"}, *argv, "--purge")
    assert killed.returncode == -9, killed.stderr
    target.faults.fail_first = 1
    text = run(argv + ["--continue"], tmp_path / "r.log")
    assert "redoing 1 that were in flight" in text
    assert_same(expected(source.sim, "fylr", "rput", target=target.sim), actual(target.sim))
    assert_retried(text, "flavour probe", "GET", "/api/v1/settings")
    assert_retried(text, "session check", "GET", "/api/v1/user/session")
    assert_retried(text, "lookup of records stored already", "GET", r"/api/v1/db/\w+/_all_fields/system_object_id/\d+")
    assert len(target.faults.first_failures) > 10


# ----------------------------------------------------------------------------- writes whose effect is unknown

@dataclasses.dataclass
class CutOneAnswer(FaultPlan):
    """Cuts the answer to the n-th request for one exact path: the server did the work, the client sees the
    connection break half-way through the answer (nothing else is disturbed)."""
    cut_path: str = ""
    cut_nth: int = 1
    seen: int = 0

    def __post_init__(self):
        super().__post_init__()
        self._path = threading.local()

    def applies_to(self, path):
        self._path.value = path
        return True

    def decide(self, sim):
        with self._lock:
            if self._path.value != self.cut_path:
                return None, False
            self.seen += 1
            cut = self.seen == self.cut_nth
            self.drops += cut
            return None, cut


def test_a_record_chunk_whose_answer_was_cut_after_it_was_stored_is_not_stored_twice(make_sim, tmp_path):
    """The 11th request to /api/v1/db/bilder of this restore (version 3 of some records, whose version 1 the
    target indexed a while ago) is stored, its answer cut: fylrmig must find what the target holds and go on,
    and the target equal a fault-free restore."""
    source = make_sim("fylr")
    folder = tmp_path / "b"
    run(backup_argv(source, folder, tmp_path / "data", "--all-versions", "--include-deleted"), tmp_path / "b.log")
    cut = CutOneAnswer(cut_path="/api/v1/db/bilder", cut_nth=11)
    target = make_sim("fylr", size="empty", faults=cut, index_lag=0.05)
    run(restore_argv(folder, target, tmp_path, "--purge", "--file-api", "put", "--include-password",
                     "--include-deleted-linked", "--chunk-size", "5"), tmp_path / "r.log")
    assert cut.drops == 1
    assert_same(expected(source.sim, "fylr", "put", target=target.sim), actual(target.sim))


def test_a_dead_token_that_eas_answers_with_403_is_renewed_and_the_read_repeated(make_sim):
    """fylr's /eas routes treat a dead token as an anonymous caller (403, never 401): fylrmig asks the
    session check, logs in again and repeats the read instead of failing the restore."""
    from tests.simulator.auth import expire_all_tokens
    server = make_sim("fylr")
    file_id = min(server.sim.files)
    api = fylrmig.Api(server.url, "root", "admin", retry_sleep_between=0)
    api.connect()
    expire_all_tokens(server.sim, include_refresh=True)
    answer = api.get("/eas", ids=json.dumps([file_id]), format="standard")
    assert str(file_id) in answer
