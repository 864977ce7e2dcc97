"""A restore is done when the target holds every file: eas/rput answers before the target fetches, so
fylrmig follows each file's state until it is done or failed, names the failed ones, retries them, and a
--continue fetches exactly those again (api.md 6.8)."""
import re

import pytest

from tests.helpers import (actual, assert_one_line_error, assert_same, expected, full_backup, ledger_rows, restore,
                           restore_argv, run_cli)
from tests.simulator.faults import FaultPlan


def last_file(source):
    """A record's file the preflight does not probe (it fetches the first one of the backup)."""
    sim = source.sim
    outside = set(ids_in([sim.config, sim.pools, sim.objecttypes, sim.plugins]))   # logo, watermarks, zips
    return max(fid for fid, f in sim.files.items() if not f["leave"] and fid not in outside)


def ids_in(value):
    if isinstance(value, dict):
        if isinstance(value.get("_id"), int):
            yield value["_id"]
        for child in value.values():
            yield from ids_in(child)
    elif isinstance(value, list):
        for child in value:
            yield from ids_in(child)


def file_rows(tmp_path):
    """{source file reference: its state in the ledger} of the newest restore."""
    return dict(ledger_rows(tmp_path / "data", "SELECT source_id, state FROM files WHERE job_id = "
                                               "(SELECT MAX(id) FROM jobs WHERE kind = 'restore')"))


@pytest.mark.parametrize("file_api", ["rput", "rput_bulk"])
def test_a_file_the_target_cannot_fetch_stops_the_restore_by_name_and_continue_fetches_only_it(
        capsys, make_sim, tmp_path, file_api):
    source = make_sim("fylr")
    folder = full_backup(capsys, source, tmp_path)
    gone = last_file(source)
    kept = source.sim.files.pop(gone)                 # the source lost it after the backup
    target = make_sim("fylr", size="empty")
    argv = restore_argv(folder, target, tmp_path, "--purge", "--file-api", file_api, "--include-password",
                        "--include-deleted-linked", "--retry-max-count", "2")
    failed = run_cli(*argv)
    assert_one_line_error(failed, "could not be fetched by the target")
    assert f"file {gone} (" in failed.stderr and "x-fylr-signature=***" in failed.stderr
    assert "files: 0" not in failed.stderr
    ref = next(r for r in file_rows(tmp_path) if f":eas:{gone}:" in r)
    assert file_rows(tmp_path)[ref] == "failed"
    assert sum(1 for f in target.sim.files.values() if (f.get("reference") or "").startswith(ref)) == 3, \
        "the first try and two retries, each under a freed reference"

    source.sim.files[gone] = kept                     # back at the source: --continue fetches it, and only it
    log = tmp_path / "continue.log"
    result = run_cli(*restore_argv(folder, target, tmp_path, "--continue", "--file-api", file_api,
                                   "--include-password", "--include-deleted-linked", "--retry-max-count", "2",
                                   "--log-network", "--log", log))
    assert result.returncode == 0, result.stderr
    assert len(re.findall(r"POST \S+/eas/rput", log.read_text())) == 1
    assert file_rows(tmp_path)[ref] == "done"
    assert_same(expected(source.sim, "fylr", file_api, target=target.sim), actual(target.sim))


def test_with_upload_ignore_files_with_errors_a_failed_file_is_left_out_counted_and_named(
        capsys, make_sim, tmp_path):
    source = make_sim("fylr")
    folder = full_backup(capsys, source, tmp_path)
    gone = last_file(source)
    del source.sim.files[gone]
    target = make_sim("fylr", size="empty")
    log = tmp_path / "r.log"
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", "rput", "--upload-ignore-files-with-errors",
            "--retry-max-count", "1", "--log", log)
    text = log.read_text()
    assert f"file {gone} (" in text and "left out of its record" in text and '"file_errors": 1' in text
    linked = {f["_id"] for recs in target.sim.records.values() for r in recs.values() for v in r["versions"]
              for value in v["fields"].values() if isinstance(value, list) for f in value
              if isinstance(f, dict) and "preferred" in f}
    assert all(target.sim.files[i].get("status", "done") == "done" for i in linked), "no record links a failed file"


def test_a_source_that_refuses_some_file_fetches_is_retried_until_every_file_arrives(capsys, make_sim, tmp_path):
    plan = FaultPlan(seed=4, error_rate=0.05, error_statuses=(503,), only_prefixes=("/api/v1/eas/download",))
    source = make_sim("fylr", size="small", faults=plan)     # file downloads only: the backup reads none
    folder = full_backup(capsys, source, tmp_path, "--chunk-size", "250")
    target = make_sim("fylr", size="empty")
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", "rput", "--include-password",
            "--include-deleted-linked", "--chunk-size", "250")
    assert source.faults.errors > 0
    assert_same(expected(source.sim, "fylr", "rput", target=target.sim), actual(target.sim))
    assert not [f for f in target.sim.files.values() if f.get("status") == "failed"
                and not (f.get("reference") or "").count(":failed:")]


def test_expired_signatures_without_a_token_are_refused_before_the_purge(capsys, make_sim, tmp_path):
    import time
    from tests.simulator.dump import canonical_dump
    source = make_sim("fylr", signature_lifetime=1)
    folder = full_backup(capsys, source, tmp_path)
    time.sleep(1.5)
    for file_api in ("rput_bulk", "rput_leave"):
        target = make_sim("fylr", size="empty")
        before = canonical_dump(target.sim)
        result = run_cli(*restore_argv(folder, target, tmp_path, "--purge", "--file-api", file_api))
        assert_one_line_error(result, "answers HTTP 403")
        assert "--file-api-access-token" in result.stderr
        assert canonical_dump(target.sim) == before
