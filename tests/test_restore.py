"""fylrmig restore into a simulated fylr: round trips compared by canonical dump, resume, faults, bad input.

The expected target state is the source's canonical dump with the documented transformations applied
(parameters.md 6 events, 7 ids, 8.3 file modes) - written here independently of fylrmig's own code."""
import copy
import json
import os
import time

import pytest

from tests.helpers import (actual, assert_one_line_error, assert_same, by_reference, expected,
                           full_backup, kill_at_random_points, ledger, manifest, restore, restore_argv, run_cli,
                           run_main, source_token)
from tests.simulator.dump import canonical_dump
from tests.simulator.faults import FaultPlan

FILE_MODES = ["", "put", "rput", "rput_leave", "rput_bulk", "rput_bulk_leave"]


# ----------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("flavour", ["easydb5", "fylr"])
@pytest.mark.parametrize("file_api", FILE_MODES)
def test_round_trip_tiny_every_file_mode(capsys, make_sim, tmp_path, flavour, file_api):
    source, target = make_sim(flavour), make_sim("fylr", size="empty")
    folder = full_backup(capsys, source, tmp_path)
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", file_api, "--include-password",
            "--include-deleted-linked")
    assert_same(expected(source.sim, flavour, file_api, target=target.sim), actual(target.sim, file_api))
    assert target.sim.reindex_calls == 1


@pytest.mark.parametrize("flavour", ["easydb5", "fylr"])
def test_round_trip_small_with_packed_files(capsys, make_sim, tmp_path, flavour):
    source, target = make_sim(flavour, size="small"), make_sim("fylr", size="empty")
    folder = full_backup(capsys, source, tmp_path, "--include-files", "with-versions", "--chunk-size", "200",
                         "--max-parallel", "2")
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", "rput", "--include-password",
            "--include-deleted-linked", "--max-parallel", "2", "--chunk-size", "250")
    assert_same(expected(source.sim, flavour, target=target.sim), actual(target.sim))


def test_links_to_deleted_records_dropped_by_default(capsys, make_sim, tmp_path):
    source, target = make_sim("fylr"), make_sim("fylr", size="empty")
    folder = full_backup(capsys, source, tmp_path)
    restore(capsys, folder, target, tmp_path, "--purge")
    deleted = {sysid for sysid, r in canonical_dump(source.sim)["records"].items() if r["deleted"]}
    links = [v for r in canonical_dump(target.sim)["records"].values() for ver in r["versions"]
             for v in ver["fields"].values() if isinstance(v, dict) and "_system_object_id" in v]
    assert links and not [l for l in links if str(l["_system_object_id"]) in deleted]
    assert [l for r in canonical_dump(source.sim)["records"].values() for ver in r["versions"]
            for l in ver["fields"].values() if isinstance(l, dict) and str(l.get("_system_object_id")) in deleted]


def test_passwords_only_with_include_password(capsys, make_sim, tmp_path):
    source, target = make_sim("easydb5"), make_sim("fylr", size="empty")
    folder = full_backup(capsys, source, tmp_path)
    restore(capsys, folder, target, tmp_path, "--purge")
    hashed = [u for u in target.sim.users.values() if u.get("_password_hash")
              and u["user"]["reference"] != "system:root"]
    assert not hashed
    restore(capsys, folder, target, tmp_path, "--purge", "--include-password")
    assert len([u for u in target.sim.users.values() if u.get("_password_hash")]) >= 2


def test_file_version_preview_becomes_the_original(capsys, make_sim, tmp_path):
    source, target = make_sim("fylr"), make_sim("fylr", size="empty")
    folder = full_backup(capsys, source, tmp_path, "--include-files", "with-versions")
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", "put", "--file-version", "preview",
            "--include-password", "--include-deleted-linked")
    want = expected(source.sim, "fylr", "put", file_version="preview", target=target.sim)
    got = actual(target.sim)
    originals = lambda dump: sorted(f["versions"].get("original", "") for r in dump["records"].values()
                                    for v in r["versions"] for x in v["fields"].values()
                                    if isinstance(x, list) and x and "original_filename" in x[0] for f in x)
    assert originals(want) == originals(got)


def test_upload_versions_and_rename_versions(capsys, make_sim, tmp_path):
    source, target = make_sim("fylr"), make_sim("fylr", size="empty")
    folder = full_backup(capsys, source, tmp_path, "--include-files", "with-versions")
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", "put", "--upload-versions",
            "--rename-versions", "image.preview:640px,image.small:")
    images = [f for f in target.sim.files.values() if f["class"] == "image" and not f.get("leave")]
    assert images
    for f in images:
        assert "640px" in f["versions"] and "preview" not in f["versions"] and "small" not in f["versions"]
        assert f["produce_versions"] is False


# ----------------------------------------------------------------------------- modes

def post_datamodel(target, folder):
    """Set a target up by hand (what an admin does before a No Purge restore)."""
    import requests
    token = requests.post(target.url + "/api/oauth2/token", data={"grant_type": "password", "username": "root",
                          "password": "admin", "client_id": "fylr-web-frontend"}).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    datamodel = json.load(open(folder / "datamodel.json"))
    head = requests.get(target.api_url + "/schema/user/HEAD", headers=auth).json()
    schema = dict(datamodel["schema"], version=head["version"], based_on_version=head.get("based_on_version"))
    for path, body in (("/schema/user/HEAD", schema), ("/mask/HEAD", datamodel["mask"]),
                       ("/l10n/user/HEAD", datamodel["keys"])):
        assert requests.post(target.api_url + path, json=body, headers=auth).status_code == 200
    assert requests.post(target.api_url + "/schema/commit?confirm=yes&reindex=skip", headers=auth).ok


def test_no_purge_mode_uploads_only_basetypes_and_records(capsys, make_sim, tmp_path):
    source, target = make_sim("fylr"), make_sim("fylr", size="empty")
    folder = full_backup(capsys, source, tmp_path)
    post_datamodel(target, folder)
    config_before = copy.deepcopy(target.sim.config)
    restore(capsys, folder, target, tmp_path, "--datamodel=-", "--base-config=-", "--include-password",
            "--include-deleted-linked", "--file-api", "rput")
    assert target.sim.config == config_before
    assert len(target.sim.schema_commits) == 1          # only the hand-made one
    want, got = expected(source.sim, "fylr", "rput", target=target.sim), actual(target.sim)
    assert want["records"] == got["records"] and want["users"] == got["users"]
    # No Purge again into the target that holds it all now: said at the start, nothing duplicated, and fast
    # (one search per chunk finds what it holds)
    import time as clock
    started, log = clock.monotonic(), tmp_path / "again.log"
    restore(capsys, folder, target, tmp_path, "--datamodel=-", "--base-config=-", "--include-password",
            "--include-deleted-linked", "--file-api", "rput", "--include-events=-", "--log", log)
    text = log.read_text()
    assert "the target holds" in text and "records already (No Purge)" in text
    assert clock.monotonic() - started < 60
    assert actual(target.sim)["records"] == got["records"]


# ----------------------------------------------------------------------------- resume and idempotency

def test_kill_9_then_continue_gives_the_uninterrupted_state(capsys, make_sim, tmp_path):
    source = make_sim("fylr", size="small")
    folder = full_backup(capsys, source, tmp_path, "--chunk-size", "50")
    reference_target = make_sim("fylr", size="empty")
    restore(capsys, folder, reference_target, tmp_path, "--purge", "--file-api", "rput", "--chunk-size", "20",
            "--include-password")
    reference_dump = by_reference(canonical_dump(reference_target.sim), reference_target.sim)
    target = make_sim("fylr", size="empty", faults=FaultPlan(seed=2, latency=0.01))
    argv = restore_argv(folder, target, tmp_path, "--file-api", "rput", "--chunk-size", "20", "--include-password",
                        "--max-parallel", "2")
    kills = kill_at_random_points(argv, ["--purge"], seed=3, low=0.5, high=2.5)
    assert kills >= 2, "the restore finished before it could be killed: make the target slower"
    target.faults.latency = 0
    result = run_cli(*argv, "--continue")
    assert result.returncode == 0, result.stderr
    assert "skipping" in result.stdout
    assert_same(reference_dump, by_reference(canonical_dump(target.sim), target.sim))


def test_a_shared_e_mail_stays_with_the_first_user_whatever_order_parallel_chunks_arrive_in(capsys, make_sim,
                                                                                            tmp_path):
    """easydb 5 users 3 and 8 share an address (by case); fylr keeps one user per address. With users in
    chunks of 5 sent 4 at a time and the first POST /user answered 502 (retried), the chunk of user 8
    reaches the target first: the address must still go to user 3, the earlier in the backup, as in a
    restore with one worker."""
    source = make_sim("easydb5")
    addresses = [str(u["user"]["email"]).lower() for u in source.sim.users.values() if u["user"].get("email")]
    assert len(addresses) > len(set(addresses))   # some address is shared
    folder = full_backup(capsys, source, tmp_path)
    for run in range(3):
        target = make_sim("fylr", size="empty", faults=FaultPlan(seed=run, latency=0.01, fail_first=1))
        restore(capsys, folder, target, tmp_path / str(run), "--purge", "--file-api", "", "--max-parallel", "4",
                "--chunk-size", "5", "--include-password")
        got, want = actual(target.sim)["users"], expected(source.sim, "easydb5", target=target.sim)["users"]
        assert {k: v.get("email") for k, v in got.items()} == {k: v.get("email") for k, v in want.items()}


def test_resending_a_chunk_never_duplicates(capsys, make_sim, tmp_path):
    source, target = make_sim("fylr"), make_sim("fylr", size="empty")
    folder = full_backup(capsys, source, tmp_path)
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", "put", "--include-password")
    before = canonical_dump(target.sim)
    with ledger(tmp_path / "data") as db:   # pretend every chunk was in flight when the process died
        db.execute("UPDATE chunks SET state = 'running' WHERE key LIKE 'post/%'")
        db.execute("UPDATE jobs SET state = 'interrupted' WHERE kind = 'restore'")
    out = restore(capsys, folder, target, tmp_path, "--continue", "--file-api", "put", "--include-password")
    assert "stored already" in out
    assert_same(before, canonical_dump(target.sim))


@pytest.mark.parametrize("flavour", ["easydb5", "fylr"])
def test_restore_survives_5xx_and_token_expiry(capsys, make_sim, tmp_path, flavour):
    source = make_sim(flavour)
    folder = full_backup(capsys, source, tmp_path)
    plan = FaultPlan(seed=4, error_rate=0.10, expire_tokens_after=30)
    target = make_sim("fylr", size="empty", faults=plan)
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", "rput", "--include-password",
            "--include-deleted-linked", "--chunk-size", "5", "--log", tmp_path / "r.log")
    assert plan.errors > 3 and plan.token_expiries == 1
    log_text = (tmp_path / "r.log").read_text()
    assert log_text.count("retry ") >= plan.errors and "admin" not in log_text
    assert_same(expected(source.sim, flavour, "rput", target=target.sim), actual(target.sim))


# ----------------------------------------------------------------------------- bad input

def test_bad_inputs_give_one_line_and_leave_the_target_alone(capsys, make_sim, tmp_path):
    source, e5 = make_sim("fylr"), make_sim("easydb5")
    folder = full_backup(capsys, source, tmp_path)
    no_hashes = full_backup(capsys, make_sim("fylr"), tmp_path, "--include-files", "original", name="orig")
    m = json.load(open(no_hashes / "manifest.json"))
    m["has_passwords"] = False
    json.dump(m, open(no_hashes / "manifest.json", "w"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    target = make_sim("fylr", size="tiny", allow_purge=False)
    before = canonical_dump(target.sim)
    cases = [
        (restore_argv(no_hashes, target, tmp_path, "--purge", "--include-password"), "has_passwords is false"),
        (restore_argv(no_hashes, target, tmp_path, "--purge", "--upload-versions"), "--include-files=original"),
        (restore_argv(broken, target, tmp_path, "--purge"), "broken manifest"),
        (restore_argv(tmp_path / "nowhere", target, tmp_path, "--purge"), "does not exist"),
        (restore_argv(folder, target, tmp_path, "--continue", "--base-config", "x.json"), "not allowed with --continue"),
        (restore_argv(folder, target, tmp_path, "--purge", "--continue"), "mutually exclusive"),
        (restore_argv(folder, e5, tmp_path, "--purge"), "a restore target must be fylr"),
        (restore_argv(folder, target, tmp_path, "--purge", "--rename-versions", "image-preview"),
         "is not <class>.<version>:<new version>"),
        (restore_argv(folder, target, tmp_path, "--purge", "--file-api", "rput_bulk",
                      "--upload-ignore-files-with-errors"), "not available with --file-api rput_bulk"),
        (restore_argv(folder, target, tmp_path, "--purge"), "PurgeNotAllowed"),
        (["restore", "--manifest", folder / "manifest.json", "--server", "http://127.0.0.1:9", "--login", "root",
          "--password", "admin", "--data", tmp_path / "data"], "cannot reach"),
        (["restore", "--manifest", folder / "manifest.json", "--server", target.url, "--login", "root",
          "--password", "nope", "--data", tmp_path / "data"], "login as 'root'"),
    ]
    for argv, fragment in cases:
        assert_one_line_error(run_cli(*argv), fragment)
    assert canonical_dump(target.sim) == before
    os.unlink(folder / manifest(folder)["payloads"][3])
    assert_one_line_error(run_cli(*restore_argv(folder, make_sim("fylr", size="empty"), tmp_path, "--purge")),
             "listed in the manifest is missing")


def test_events_skipped_are_counted_in_the_log(capsys, make_sim, tmp_path):
    source, target = make_sim("easydb5"), make_sim("fylr", size="empty")
    folder = full_backup(capsys, source, tmp_path)
    restore(capsys, folder, target, tmp_path, "--purge", "--log", tmp_path / "r.log", "--skip-reindex")
    log_text = (tmp_path / "r.log").read_text()
    assert '"skipped_events": {' in log_text and "JANITOR_SESSION_PURGE" in log_text
    assert target.sim.reindex_calls == 0
    progress = json.load(open(folder / "progress.json"))
    assert progress["status"] == "done" and progress["params"]["password"] == "***"


# ----------------------------------------------------------------------------- files: tokens, duplicates, errors

@pytest.mark.parametrize("file_api", ["put", "rput"])
def test_access_token_replaces_expired_signatures(capsys, make_sim, tmp_path, file_api):
    source = make_sim("fylr", signature_lifetime=1)
    folder = full_backup(capsys, source, tmp_path)
    time.sleep(1.5)   # every x-fylr-signature in the backup has expired now
    target = make_sim("fylr", size="empty")
    before = canonical_dump(target.sim)
    failed = run_cli(*restore_argv(folder, target, tmp_path, "--purge", "--file-api", file_api))
    assert_one_line_error(failed, "answers HTTP 403")   # the preflight fetched a file URL as the restore will, before the purge
    assert "x-fylr-signature" in failed.stderr and "--file-api-access-token" in failed.stderr
    assert canonical_dump(target.sim) == before
    target = make_sim("fylr", size="empty")
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", file_api, "--include-password",
            "--include-deleted-linked", "--file-api-access-token", source_token(source))
    assert_same(expected(source.sim, "fylr", file_api, target=target.sim), actual(target.sim))
    token = source_token(source)
    assert not [f for f in target.sim.files.values() if token in (f.get("remote_url") or "")]


def test_duplicate_file_reference_reuses_the_stored_file(capsys, make_sim, tmp_path):
    """kill -9 between a file upload and its ledger row: the upload is refused as a duplicate reference
    and the file the target already holds is linked."""
    source, target = make_sim("fylr"), make_sim("fylr", size="empty")
    folder = full_backup(capsys, source, tmp_path)
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", "put", "--include-password",
            "--include-deleted-linked")
    files_before = len(target.sim.files)
    with ledger(tmp_path / "data") as db:
        db.execute("DELETE FROM files")
        db.execute("UPDATE chunks SET state = 'running' WHERE key LIKE 'post/%\\_\\_db\\_\\_%' ESCAPE '\\'")
    out = restore(capsys, folder, target, tmp_path, "--continue", "--file-api", "put", "--include-password",
                  "--include-deleted-linked")
    assert '"duplicate_refs": 0' not in out and '"duplicate_refs"' in out
    assert len(target.sim.files) == files_before
    assert_same(expected(source.sim, "fylr", "put", target=target.sim), actual(target.sim))


def test_a_failing_file_stops_the_job_or_is_left_out_when_asked(capsys, make_sim, tmp_path):
    source = make_sim("easydb5")
    folder = full_backup(capsys, source, tmp_path)
    gone = next(iter(source.sim.files))
    del source.sim.files[gone]          # the source lost a file after the backup
    untouched = make_sim("fylr", size="empty")
    before = canonical_dump(untouched.sim)
    failed = run_cli(*restore_argv(folder, untouched, tmp_path, "--purge", "--file-api", "put"))
    assert_one_line_error(failed, f"the source's file {gone} (")   # found by the preflight, before the purge
    assert "answers HTTP 404" in failed.stderr and canonical_dump(untouched.sim) == before
    target = make_sim("fylr", size="empty")
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", "put", "--upload-ignore-files-with-errors",
            "--log", tmp_path / "r.log")
    assert f"file {gone} (" in (tmp_path / "r.log").read_text()
    assert '"file_errors": 1' in (tmp_path / "r.log").read_text()
    stored = {f["original_filename"] for f in target.sim.files.values()}
    wanted = {f["original_filename"] for i, f in source.sim.files.items()}
    assert wanted <= stored


def test_restore_verify_checks_the_backup(capsys, make_sim, tmp_path):
    source = make_sim("fylr")
    folder = full_backup(capsys, source, tmp_path)
    verify = ["restore", "--verify", "--manifest", folder / "manifest.json", "--data", tmp_path / "data"]
    assert run_main(capsys, *verify)[0] == 0
    name = manifest(folder)["payloads"][4]
    (folder / name).write_text("{}")
    code, _, err = run_main(capsys, *verify)
    assert code == 1 and name in err


@pytest.mark.parametrize("flavour", ["easydb5", "fylr"])
@pytest.mark.parametrize("file_api", ["", "put", "rput", "rput_leave", "rput_bulk", "rput_bulk_leave"])
def test_round_trip_small_every_file_mode(capsys, make_sim, tmp_path, flavour, file_api):
    source, target = make_sim(flavour, size="small"), make_sim("fylr", size="empty")
    folder = full_backup(capsys, source, tmp_path, "--chunk-size", "500")
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", file_api, "--include-password",
            "--include-deleted-linked", "--chunk-size", "500")
    assert_same(expected(source.sim, flavour, file_api, target=target.sim), actual(target.sim, file_api))


def test_max_count_restores_that_many_records_per_objecttype_with_all_their_versions(capsys, make_sim, tmp_path):
    source, target = make_sim("fylr"), make_sim("fylr", size="empty")
    folder = full_backup(capsys, source, tmp_path)
    restore(capsys, folder, target, tmp_path, "--purge", "--max-count", "3", "--include-deleted-linked")
    want = canonical_dump(source.sim)["records"]
    got = canonical_dump(target.sim)["records"]
    per_type = {}
    for sysid, record in got.items():
        per_type[record["objecttype"]] = per_type.get(record["objecttype"], 0) + 1
        assert len(record["versions"]) == len(want[sysid]["versions"])
    assert per_type == {ot: 3 for ot in per_type} and len(per_type) == 4


def test_the_cli_refuses_an_incomplete_backup_unless_allowed(capsys, make_sim, tmp_path):
    source = make_sim("fylr")
    folder = full_backup(capsys, source, tmp_path)
    data = json.load(open(folder / "manifest.json"))
    data["state"]["status"] = "failed"
    json.dump(data, open(folder / "manifest.json", "w"))
    target = make_sim("fylr", size="empty")
    before = canonical_dump(target.sim)
    result = run_cli(*restore_argv(folder, target, tmp_path, "--purge"))
    records = sum(data["counts"]["objecttypes"].values())
    assert_one_line_error(result, f"this backup is incomplete (failed): {records:,} of ")
    assert "--allow-incomplete" in result.stderr and canonical_dump(target.sim) == before
    restore(capsys, folder, target, tmp_path, "--purge", "--allow-incomplete")
