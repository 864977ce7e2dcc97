"""fylrmig restore into a simulated fylr: round trips compared by canonical dump, resume, faults, bad input.

The expected target state is the source's canonical dump with the documented transformations applied
(parameters.md 6 events, 7 ids, 8.3 file modes) - written here independently of fylrmig's own code."""
import copy
import json
import os
import re
import sqlite3
import time

import pytest

from tests.helpers import backup_argv, kill_at_random_points, manifest, run_cli, run_main
from tests.simulator.dump import canonical_dump
from tests.simulator.faults import FaultPlan

NEVER_BACKED_UP = {"OBJECT_INDEX", "SESSION_INVALID", "FRONTEND_ERROR", "COLLECTION_OWNER_RIGHTS_ERROR"}
# parameters.md 6.1: easydb 5 type -> (fylr type, basetype set by the migration or None)
E5_EVENTS = {
    "ASSET_DOWNLOAD_CONFIRMATION_MESSAGE": ("ASSET_DOWNLOAD_CONFIRMATION_MESSAGE", "message"),
    "CUSTOM_TYPE_UPDATER_RESPONSE": ("CUSTOM_DATA_TYPE_UPDATER", None),
    "CUSTOM_TYPE_UPDATER_START": ("CUSTOM_DATA_TYPE_UPDATER", None),
    "CUSTOM_TYPE_UPDATER_RESPONSE_ERROR": ("CUSTOM_DATA_TYPE_UPDATER_ERROR", None),
    "CUSTOM_TYPE_UPDATER_RESPONSE_FAILED": ("CUSTOM_DATA_TYPE_UPDATER_ERROR", None),
    "SCHEMA_COMMIT": ("DATAMODEL_COMMIT", None), "DETAIL_VIEW": ("DETAIL_VIEW", None),
    "EMAIL_SENT": ("EMAIL_SENT", None), "DOWNLOAD_EXPORT": ("EXPORT_DOWNLOAD", None),
    "ASSET_DOWNLOAD": ("FILE_DOWNLOAD", "file"), "ASSET_EXPORT_DOWNLOAD": ("FILE_DOWNLOAD", "file"),
    "OBJECT_DELETE": ("OBJECT_DELETE", None), "OBJECT_INSERT": ("OBJECT_INSERT", None),
    "OBJECT_UPDATE": ("OBJECT_UPDATE", None), "SEARCH": ("SEARCH", None),
    "USER_CREATED": ("USER_INSERT", "user"), "USER_LOGIN": ("USER_LOGIN", "user"),
    "USER_LOGOUT": ("USER_LOGOUT", "user"), "WEBHOOK_OK": ("WEBHOOK", None), "WEBHOOK_ERROR": ("WEBHOOK_ERROR", None),
}
FILE_MODES = ["", "put", "rput", "rput_leave", "rput_bulk", "rput_bulk_leave"]


# ----------------------------------------------------------------------------- running

def make_backup(capsys, server, tmp_path, *extra, name="b"):
    folder = tmp_path / name
    code, _, err = run_main(capsys, *backup_argv(server, folder, tmp_path / "data", "--all-versions",
                                                 "--include-deleted", *extra))
    assert code == 0, err
    return folder


def restore_argv(folder, target, tmp_path, *extra):
    return ["restore", "--manifest", folder / "manifest.json", "--server", target.api_url, "--login", "root",
            "--password", "admin", "--data", tmp_path / "data", "--retry-sleep-between", "0", *extra]


def restore(capsys, folder, target, tmp_path, *extra):
    code, out, err = run_main(capsys, *restore_argv(folder, target, tmp_path, *extra))
    assert code == 0, err
    return out


# ----------------------------------------------------------------------------- expected target state

def expected(source, flavour, file_api="put", include_password=True, file_version="original", target=None):
    want = copy.deepcopy(canonical_dump(source))
    ids = new_ids(source, target)
    rename_home_collections(want, source)
    if flavour == "easydb5":
        drop_shared_emails(want, source)
    want["events"] = sorted((e for e in map(lambda e: expected_event(e, flavour, ids), want["events"]) if e),
                            key=lambda e: json.dumps(e, sort_keys=True))
    for record in want["records"].values():
        for version in record["versions"]:
            version["fields"] = {k: expected_value(v, file_api, file_version) for k, v in version["fields"].items()}
            version["fields"] = {k: v for k, v in version["fields"].items() if v not in (None, [], {})}
    if not include_password:
        for user in want["users"].values():
            user["has_password"] = False
    if flavour == "easydb5":
        want["config"] = expected_e5_config(want["config"]["system"])
    return want


def restored_user_reference(user):
    """parameters.md 7.1: a restored user has its reference, or the fallback user:<source id>."""
    return user["user"].get("reference") or f"user:{user['user']['_id']}"


def rename_home_collections(want, source):
    """lookups.en.md: a user's home collection is named when the user is created - on the target the user
    has a reference (its own or the fallback), so its home is user:ref:<that reference>, whatever the
    source called it (user:login:..., user:id:...)."""
    renamed = {}
    for entry in source.collections.values():
        if entry["collection"].get("type") == "user":
            owner = source.users[entry["_owner"]["user"]["_id"]]
            renamed[entry["collection"]["reference"]] = f"user:ref:{restored_user_reference(owner)}"
    want["collections"] = {renamed.get(k, k): v for k, v in want["collections"].items()}
    for collection in want["collections"].values():
        if collection.get("parent") in renamed:
            collection["parent"] = renamed[collection["parent"]]
    for event in want["events"]:
        if event.get("basetype") == "collection" and event.get("object_id") in renamed:
            event["object_id"] = renamed[event["object_id"]]


def drop_shared_emails(want, source):
    """fylr keeps one user per e-mail address (409 UserDuplicateEmail, compared case-insensitively): of
    easydb 5 users sharing one, the first restored keeps it."""
    seen = set()
    for uid in sorted(source.users):
        user = source.users[uid]["user"]
        email = (user.get("email") or "").lower()
        key = user.get("reference") or f"user:{uid}"
        if email and email in seen and key in want["users"]:
            want["users"][key].pop("email", None)
        seen.add(email)


def expected_e5_config(e5):
    """parameters.md 9: only the listed easydb 5 keys reach fylr."""
    login, password = {}, {}
    pairs = [(login, "guest", e5.get("login.internet", {}).get("value")),
             (login, "info", e5.get("login.welcome_info", {}).get("message")),
             (login, "label", e5.get("login.welcome_text", {}).get("value")),
             (password, "hint", e5.get("login.password_policy", {}).get("hint")),
             (password, "check", [{"regexp": p["expression"]} for p in
                                  e5.get("login.password_policy", {}).get("policy", [])] or None)]
    for section, key, value in pairs:
        if value is not None:
            section[key] = value
    return {"system": {k: v for k, v in (("login", login), ("password", password)) if v}}


def new_ids(source, target):
    """Where the source's file and user ids went in the target: files by the reference a restore gives them
    (<source host>:eas:<id>:original), users by their reference (or the documented user:<id> fallback)."""
    files = {}
    for target_id, info in target.files.items():
        match = re.match(r"^[^:]+:eas:(\d+):original$", info.get("reference") or "")
        if match:
            files[int(match.group(1))] = target_id
    by_reference = {u["user"].get("reference"): uid for uid, u in target.users.items()}
    users = {uid: by_reference.get(u["user"].get("reference") or f"user:{uid}") for uid, u in source.users.items()}
    return files, users


def expected_info(etype, info, ids):
    """parameters.md 6.1, row by row: a file download names its exporting user (new id) and its export
    (not migrated: null); a download confirmation names its files (new ids); nothing else changes."""
    files, users = ids
    info = dict(info)
    if etype == "FILE_DOWNLOAD":
        if isinstance(info.get("export"), dict):
            info["export"] = dict(info["export"], _id=None)
        if "export_user_id" in info:
            info["export_user_id"] = users.get(info["export_user_id"])
    if etype == "ASSET_DOWNLOAD_CONFIRMATION_MESSAGE" and isinstance(info.get("assets"), list):
        info["assets"] = [dict(a, id=files.get(a.get("id"))) for a in info["assets"]]
    return info


def expected_event(event, flavour, ids):
    etype = event["type"]
    if etype in NEVER_BACKED_UP:
        return None
    if flavour == "easydb5":
        if etype not in E5_EVENTS:
            return None
        event = dict(event, type=E5_EVENTS[etype][0])
        if E5_EVENTS[etype][1]:
            event["basetype"] = E5_EVENTS[etype][1]
    if event["type"].startswith("TASK"):
        return None   # the TASK group is always refused by fylr (EventTypeNotAllowed)
    return dict(event, info=expected_info(event["type"], event.get("info") or {}, ids))


def expected_value(value, file_api, file_version):
    if isinstance(value, list) and value and isinstance(value[0], dict) and "original_filename" in value[0]:
        if not file_api:
            return None
        return [expected_file(f, file_api, file_version) for f in value]
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [{k: expected_value(v, file_api, file_version) for k, v in row.items()} for row in value]
    return value


def expected_file(entry, file_api, file_version):
    entry = dict(entry)
    if file_api.endswith("leave"):
        entry["leave"] = True          # every original becomes a remote reference: compared by presence only
        entry["versions"] = {k: v for k, v in entry["versions"].items() if k != "original"}
    if file_version != "original" and file_version in entry["versions"] and not entry.get("leave"):
        entry["versions"] = dict(entry["versions"], original=entry["versions"][file_version])
    return entry


def actual(target, file_api="put"):
    got = copy.deepcopy(canonical_dump(target))
    for record in got["records"].values():
        for version in record["versions"]:
            for key, value in version["fields"].items():
                if isinstance(value, list) and value and "original_filename" in value[0] and file_api.endswith("leave"):
                    for f in value:
                        if str(f["versions"].get("original", "")).startswith("remote:") and f["leave"]:
                            f["versions"] = {k: v for k, v in f["versions"].items() if k != "original"}
    return got


def by_reference(dump, sim):
    """Two targets number their files and users differently: name those inside event info by reference."""
    file_ref = lambda fid: (sim.files.get(fid) or {}).get("reference")
    for event in dump["events"]:   # only the ids parameters.md 6.1 rewrites are the target's
        info = event["info"]
        if event["type"] == "FILE_DOWNLOAD" and "export_user_id" in info:
            info["export_user_id"] = (sim.users.get(info["export_user_id"]) or {}).get("user", {}).get("reference")
        if event["type"] == "ASSET_DOWNLOAD_CONFIRMATION_MESSAGE" and isinstance(info.get("assets"), list):
            info["assets"] = [dict(a, id=file_ref(a.get("id"))) for a in info["assets"]]
    dump["events"] = sorted(dump["events"], key=lambda e: json.dumps(e, sort_keys=True))
    return dump


def without_system_entities(dump):
    """System pools/users/collections exist on every instance and are referenced, never migrated."""
    for section in ("pools", "users", "collections", "groups"):
        dump[section] = {k: v for k, v in dump[section].items() if not str(k).startswith("system:")}
    return dump


def assert_same(want, got):
    want, got = without_system_entities(copy.deepcopy(want)), without_system_entities(copy.deepcopy(got))
    assert set(want) == set(got)
    for section in want:
        if want[section] != got[section]:
            if isinstance(want[section], dict):
                only = set(want[section]) ^ set(got[section])
                assert not only, f"{section}: keys on one side only: {sorted(map(str, only))[:10]}"
                for key in want[section]:
                    assert want[section][key] == got[section][key], f"{section}/{key}"
            assert want[section] == got[section], section


# ----------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("flavour", ["easydb5", "fylr"])
@pytest.mark.parametrize("file_api", FILE_MODES)
def test_round_trip_tiny_every_file_mode(capsys, make_sim, tmp_path, flavour, file_api):
    source, target = make_sim(flavour), make_sim("fylr", size="empty")
    folder = make_backup(capsys, source, tmp_path)
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", file_api, "--include-password",
            "--include-deleted-linked")
    assert_same(expected(source.sim, flavour, file_api, target=target.sim), actual(target.sim, file_api))
    assert target.sim.reindex_calls == 1


@pytest.mark.parametrize("flavour", ["easydb5", "fylr"])
def test_round_trip_small_with_packed_files(capsys, make_sim, tmp_path, flavour):
    source, target = make_sim(flavour, size="small"), make_sim("fylr", size="empty")
    folder = make_backup(capsys, source, tmp_path, "--include-files", "with-versions", "--chunk-size", "200",
                         "--max-parallel", "2")
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", "rput", "--include-password",
            "--include-deleted-linked", "--max-parallel", "2", "--chunk-size", "250")
    assert_same(expected(source.sim, flavour, target=target.sim), actual(target.sim))


def test_links_to_deleted_records_dropped_by_default(capsys, make_sim, tmp_path):
    source, target = make_sim("fylr"), make_sim("fylr", size="empty")
    folder = make_backup(capsys, source, tmp_path)
    restore(capsys, folder, target, tmp_path, "--purge")
    deleted = {sysid for sysid, r in canonical_dump(source.sim)["records"].items() if r["deleted"]}
    links = [v for r in canonical_dump(target.sim)["records"].values() for ver in r["versions"]
             for v in ver["fields"].values() if isinstance(v, dict) and "_system_object_id" in v]
    assert links and not [l for l in links if str(l["_system_object_id"]) in deleted]
    assert [l for r in canonical_dump(source.sim)["records"].values() for ver in r["versions"]
            for l in ver["fields"].values() if isinstance(l, dict) and str(l.get("_system_object_id")) in deleted]


def test_passwords_only_with_include_password(capsys, make_sim, tmp_path):
    source, target = make_sim("easydb5"), make_sim("fylr", size="empty")
    folder = make_backup(capsys, source, tmp_path)
    restore(capsys, folder, target, tmp_path, "--purge")
    hashed = [u for u in target.sim.users.values() if u.get("_password_hash")
              and u["user"]["reference"] != "system:root"]
    assert not hashed
    restore(capsys, folder, target, tmp_path, "--purge", "--include-password")
    assert len([u for u in target.sim.users.values() if u.get("_password_hash")]) >= 2


def test_file_version_preview_becomes_the_original(capsys, make_sim, tmp_path):
    source, target = make_sim("fylr"), make_sim("fylr", size="empty")
    folder = make_backup(capsys, source, tmp_path, "--include-files", "with-versions")
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
    folder = make_backup(capsys, source, tmp_path, "--include-files", "with-versions")
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
    folder = make_backup(capsys, source, tmp_path)
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
    folder = make_backup(capsys, source, tmp_path, "--chunk-size", "50")
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


def test_resending_a_chunk_never_duplicates(capsys, make_sim, tmp_path):
    source, target = make_sim("fylr"), make_sim("fylr", size="empty")
    folder = make_backup(capsys, source, tmp_path)
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", "put", "--include-password")
    before = canonical_dump(target.sim)
    db = sqlite3.connect(tmp_path / "data" / "jobs.sqlite")
    with db:   # pretend every chunk was in flight when the process died
        db.execute("UPDATE chunks SET state = 'running' WHERE key LIKE 'post/%'")
        db.execute("UPDATE jobs SET state = 'interrupted' WHERE kind = 'restore'")
    out = restore(capsys, folder, target, tmp_path, "--continue", "--file-api", "put", "--include-password")
    assert "stored already" in out
    assert_same(before, canonical_dump(target.sim))


@pytest.mark.parametrize("flavour", ["easydb5", "fylr"])
def test_restore_survives_5xx_and_token_expiry(capsys, make_sim, tmp_path, flavour):
    source = make_sim(flavour)
    folder = make_backup(capsys, source, tmp_path)
    plan = FaultPlan(seed=4, error_rate=0.10, expire_tokens_after=30)
    target = make_sim("fylr", size="empty", faults=plan)
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", "rput", "--include-password",
            "--include-deleted-linked", "--chunk-size", "5", "--log", tmp_path / "r.log")
    assert plan.errors > 3 and plan.token_expiries == 1
    log_text = (tmp_path / "r.log").read_text()
    assert log_text.count("retry ") >= plan.errors and "admin" not in log_text
    assert_same(expected(source.sim, flavour, "rput", target=target.sim), actual(target.sim))


# ----------------------------------------------------------------------------- bad input

def one_line(result, fragment):
    assert result.returncode != 0
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert "Traceback" not in result.stderr and len(lines) == 1 and fragment in lines[0], result.stderr
    assert "admin" not in result.stderr


def test_bad_inputs_give_one_line_and_leave_the_target_alone(capsys, make_sim, tmp_path):
    source, e5 = make_sim("fylr"), make_sim("easydb5")
    folder = make_backup(capsys, source, tmp_path)
    no_hashes = make_backup(capsys, make_sim("fylr"), tmp_path, "--include-files", "original", name="orig")
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
        one_line(run_cli(*argv), fragment)
    assert canonical_dump(target.sim) == before
    os.unlink(folder / manifest(folder)["payloads"][3])
    one_line(run_cli(*restore_argv(folder, make_sim("fylr", size="empty"), tmp_path, "--purge")),
             "listed in the manifest is missing")


def test_events_skipped_are_counted_in_the_log(capsys, make_sim, tmp_path):
    source, target = make_sim("easydb5"), make_sim("fylr", size="empty")
    folder = make_backup(capsys, source, tmp_path)
    restore(capsys, folder, target, tmp_path, "--purge", "--log", tmp_path / "r.log", "--skip-reindex")
    log_text = (tmp_path / "r.log").read_text()
    assert '"skipped_events": {' in log_text and "JANITOR_SESSION_PURGE" in log_text
    assert target.sim.reindex_calls == 0
    progress = json.load(open(folder / "progress.json"))
    assert progress["status"] == "done" and progress["params"]["password"] == "***"


# ----------------------------------------------------------------------------- files: tokens, duplicates, errors

def source_token(server):
    import requests
    return requests.post(server.url + "/api/oauth2/token", data={
        "grant_type": "password", "username": "root", "password": "admin",
        "client_id": "fylr-web-frontend"}).json()["access_token"]


@pytest.mark.parametrize("file_api", ["put", "rput"])
def test_access_token_replaces_expired_signatures(capsys, make_sim, tmp_path, file_api):
    source = make_sim("fylr", signature_lifetime=1)
    folder = make_backup(capsys, source, tmp_path)
    time.sleep(1.5)   # every x-fylr-signature in the backup has expired now
    target = make_sim("fylr", size="empty")
    before = canonical_dump(target.sim)
    failed = run_cli(*restore_argv(folder, target, tmp_path, "--purge", "--file-api", file_api))
    one_line(failed, "answers HTTP 403")   # the preflight fetched a file URL as the restore will, before the purge
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
    folder = make_backup(capsys, source, tmp_path)
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", "put", "--include-password",
            "--include-deleted-linked")
    files_before = len(target.sim.files)
    db = sqlite3.connect(tmp_path / "data" / "jobs.sqlite")
    with db:
        db.execute("DELETE FROM files")
        db.execute("UPDATE chunks SET state = 'running' WHERE key LIKE 'post/%\\_\\_db\\_\\_%' ESCAPE '\\'")
    out = restore(capsys, folder, target, tmp_path, "--continue", "--file-api", "put", "--include-password",
                  "--include-deleted-linked")
    assert '"duplicate_refs": 0' not in out and '"duplicate_refs"' in out
    assert len(target.sim.files) == files_before
    assert_same(expected(source.sim, "fylr", "put", target=target.sim), actual(target.sim))


def test_a_failing_file_stops_the_job_or_is_left_out_when_asked(capsys, make_sim, tmp_path):
    source = make_sim("easydb5")
    folder = make_backup(capsys, source, tmp_path)
    gone = next(iter(source.sim.files))
    del source.sim.files[gone]          # the source lost a file after the backup
    untouched = make_sim("fylr", size="empty")
    before = canonical_dump(untouched.sim)
    failed = run_cli(*restore_argv(folder, untouched, tmp_path, "--purge", "--file-api", "put"))
    one_line(failed, f"the source's file {gone} (")   # found by the preflight, before the purge
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
    folder = make_backup(capsys, source, tmp_path)
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
    folder = make_backup(capsys, source, tmp_path, "--chunk-size", "500")
    restore(capsys, folder, target, tmp_path, "--purge", "--file-api", file_api, "--include-password",
            "--include-deleted-linked", "--chunk-size", "500")
    assert_same(expected(source.sim, flavour, file_api, target=target.sim), actual(target.sim, file_api))


def test_max_count_restores_that_many_records_per_objecttype_with_all_their_versions(capsys, make_sim, tmp_path):
    source, target = make_sim("fylr"), make_sim("fylr", size="empty")
    folder = make_backup(capsys, source, tmp_path)
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
    folder = make_backup(capsys, source, tmp_path)
    data = json.load(open(folder / "manifest.json"))
    data["state"]["status"] = "failed"
    json.dump(data, open(folder / "manifest.json", "w"))
    target = make_sim("fylr", size="empty")
    before = canonical_dump(target.sim)
    result = run_cli(*restore_argv(folder, target, tmp_path, "--purge"))
    records = sum(data["counts"]["objecttypes"].values())
    one_line(result, f"this backup is incomplete (failed): {records:,} of ")
    assert "--allow-incomplete" in result.stderr and canonical_dump(target.sim) == before
    restore(capsys, folder, target, tmp_path, "--purge", "--allow-incomplete")
