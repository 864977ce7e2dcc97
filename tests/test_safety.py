"""Issue 9, part 6 - the proof, kept in the suite: kill -9 at exact points of a backup and a restore (command
line and page) and continue; a whole small migration under gateway errors, dropped connections and token
expiry; a table of bad inputs, each refused with one line and nothing damaged; every row of the issue's
table as a test of its own.

Kill points are fylrmig's own (FYLRMIG_CRASH_AT="<point>:<n>": SIGKILL the n-th time crash_point(<point>)
is passed); the result of the continued run is compared with an uninterrupted run of the same input."""
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

BACKUP_EXTRA = ["--all-versions", "--include-deleted", "--include-files", "with-versions", "--chunk-size", "5"]

# (source flavour, kill point, n-th pass). A tiny fylr source with these parameters passes page-done 81
# times, file-packed 90, payload-written 66, emitted 18, manifest-written 21 (the last one after the ledger
# says done); a tiny easydb 5 source page-done 68, file-packed 99, payload-written 60, emitted 13,
# manifest-written 16.
BACKUP_KILLS = [
    ("fylr", "manifest-written", 1), ("fylr", "step-datamodel", 1), ("fylr", "step-base_config", 1),
    ("fylr", "page-spooled", 1), ("fylr", "page-done", 20), ("fylr", "page-spooled", 40),
    ("fylr", "page-done", 80), ("fylr", "file-packed", 1), ("fylr", "file-packed", 45),
    ("fylr", "payload-written", 30), ("fylr", "payload-written", 66), ("fylr", "emitted", 1),
    ("fylr", "emitted", 18), ("fylr", "manifest-written", 20), ("fylr", "manifest-written", 21),
    ("easydb5", "page-done", 10), ("easydb5", "page-spooled", 68), ("easydb5", "file-packed", 50),
    ("easydb5", "file-packed", 99), ("easydb5", "payload-written", 59), ("easydb5", "emitted", 13),
]


@pytest.fixture(scope="module")
def backup_references(tmp_path_factory):
    """{flavour: (source server, folder of an uninterrupted backup)}, made once for the module."""
    base = tmp_path_factory.mktemp("backup-reference")
    out = {}
    for flavour in ("fylr", "easydb5"):
        server = serve(generated_instance(flavour))
        folder = base / flavour
        quiet_main(*backup_argv(server, folder, base / "data", *BACKUP_EXTRA), "--log", base / f"{flavour}.log")
        out[flavour] = (server, folder)
    yield out
    for server, _ in out.values():
        server.shutdown()


def assert_same_backup(folder, reference):
    assert normalized_payloads(folder) == normalized_payloads(reference)
    assert tree_digest(folder) == tree_digest(reference)
    assert not leftovers(folder) and not os.path.exists(os.path.join(folder, ".spool"))
    manifest = fylrmig.read_json(os.path.join(folder, "manifest.json"))
    assert manifest["state"]["status"] == "done"


@pytest.mark.parametrize("flavour,point,n", BACKUP_KILLS,
                         ids=[f"{f} source killed at {p} #{n}" for f, p, n in BACKUP_KILLS])
def test_a_backup_killed_at_an_exact_point_continues_to_the_uninterrupted_result(backup_references, tmp_path,
                                                                                 flavour, point, n):
    source, reference = backup_references[flavour]
    folder = tmp_path / "b"
    argv = backup_argv(source, folder, tmp_path / "data", *BACKUP_EXTRA)
    killed(run_cli_env({CRASH: f"{point}:{n}"}, *argv))
    finished(run_cli_env({CRASH: None}, *argv, "--continue"))
    assert_same_backup(folder, reference)


# ----------------------------------------------------------------------------- crash matrix: restore

RESTORE_EXTRA = ["--include-password", "--chunk-size", "5"]

# (file api, kill point, n-th pass). The module's backup restored with these parameters passes chunk-sent
# and chunk-done 69 times and file-uploaded and file-settled 38 times.
RESTORE_KILLS = [
    ("rput", "step-purge", 1), ("rput", "step-datamodel", 1), ("rput", "step-reindex", 1),
    ("rput", "chunk-sent", 1), ("rput", "chunk-done", 1), ("rput", "chunk-sent", 12),
    ("rput", "chunk-done", 55), ("rput", "file-uploaded", 1), ("rput", "file-uploaded", 20),
    ("rput", "file-settled", 1), ("rput", "file-settled", 14), ("rput", "file-settled", 38),
    ("put", "step-base_config", 1), ("put", "chunk-sent", 2), ("put", "chunk-done", 25),
    ("put", "chunk-sent", 40), ("put", "chunk-sent", 69), ("put", "file-uploaded", 7),
    ("put", "file-uploaded", 38), ("put", "file-settled", 25), ("put", "chunk-done", 69),
]


class RestoreSetup:
    """The module's source, its backup (never restored from directly: tests restore copies) and the canonical
    dump an uninterrupted restore gives, per file api."""

    def __init__(self, base):
        self.base = base
        self.source = serve(generated_instance("fylr"))
        self.folder = base / "backup"
        quiet_main(*backup_argv(self.source, self.folder, base / "data", "--all-versions", "--include-deleted",
                                "--chunk-size", "5"), "--log", base / "backup.log")
        self._dumps = {}

    def copy(self, dest):
        return pristine_copy(self.folder, dest)

    def reference(self, file_api):
        if file_api not in self._dumps:
            folder = self.copy(self.base / f"reference-{file_api}")
            target = serve(generated_instance("fylr", size="empty"))
            try:
                quiet_main(*restore_argv(folder, target, self.base, "--purge", "--file-api", file_api,
                                         *RESTORE_EXTRA), "--log", self.base / f"reference-{file_api}.log")
                self._dumps[file_api] = by_reference(canonical_dump(target.sim), target.sim)
            finally:
                target.shutdown()
        return copy.deepcopy(self._dumps[file_api])


@pytest.fixture(scope="module")
def restore_setup(tmp_path_factory):
    setup = RestoreSetup(tmp_path_factory.mktemp("restore-reference"))
    yield setup
    setup.source.shutdown()


@pytest.mark.parametrize("file_api,point,n", RESTORE_KILLS,
                         ids=[f"{a} restore killed at {p} #{n}" for a, p, n in RESTORE_KILLS])
def test_a_restore_killed_at_an_exact_point_continues_to_the_uninterrupted_target(restore_setup, make_sim, tmp_path,
                                                                                  file_api, point, n):
    want = restore_setup.reference(file_api)
    folder = restore_setup.copy(tmp_path / "backup")
    target = make_sim("fylr", size="empty")
    argv = restore_argv(folder, target, tmp_path, "--file-api", file_api, *RESTORE_EXTRA)
    killed(run_cli_env({CRASH: f"{point}:{n}"}, *argv, "--purge"))
    finished(run_cli_env({CRASH: None}, *argv, "--continue"))
    assert_same(want, by_reference(canonical_dump(target.sim), target.sim))
    assert target.sim.reindex_calls >= 1
