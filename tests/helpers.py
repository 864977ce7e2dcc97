"""The one home of the helpers tests share: running fylrmig (in this process, as a separate one), its
one-line errors, reading a backup folder and the job ledger (every sqlite connection opened here is closed
here), the page through webtest, what a simulated instance holds and what a restore must leave on a target."""
import contextlib
import copy
import glob
import gzip
import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys

import requests
import webtest

import fylrmig
from tests.simulator.dump import canonical_dump

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = "/inspect/migration/"     # where `fylrmig serve` shows its page
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


def run_main(capsys, *argv):
    """fylrmig's main() in this process: (exit code, stdout, stderr)."""
    code = fylrmig.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def run_cli(*argv, timeout=300, cwd=ROOT, env=None):
    """fylrmig as a separate process, the way a sysadmin runs it."""
    return subprocess.run([sys.executable, "-m", "fylrmig", *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def assert_one_line_error(result, fragment, secrets=("admin",)):
    """fylrmig refused: exit 1 and one line `fylrmig: error: ...` naming the problem, no traceback, no secret."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("fylrmig: error: ") and fragment in lines[0], result.stderr
    for secret in secrets:
        assert secret not in result.stderr, f"{secret!r} in the error"


def backup_argv(server, folder, data, *extra):
    return ["backup", "--server", server.api_url, "--login", "root", "--password", "admin", "--dir", folder,
            "--data", data, "--retry-sleep-between", "0", *extra]


def backup(capsys, server, tmp_path, *extra, name="b"):
    """A backup of `server` into tmp_path/name (ledger in tmp_path/data), run in this process; its folder."""
    folder = tmp_path / name
    code, _, err = run_main(capsys, *backup_argv(server, folder, tmp_path / "data", *extra))
    assert code == 0, err
    return folder


def full_backup(capsys, server, tmp_path, *extra, name="b"):
    """backup() of every version, deleted records included."""
    return backup(capsys, server, tmp_path, "--all-versions", "--include-deleted", *extra, name=name)


def restore_argv(folder, target, tmp_path, *extra):
    return ["restore", "--manifest", folder / "manifest.json", "--server", target.api_url, "--login", "root",
            "--password", "admin", "--data", tmp_path / "data", "--retry-sleep-between", "0", *extra]


def restore(capsys, folder, target, tmp_path, *extra):
    """A restore of the backup in `folder` into `target`, run in this process; its stdout."""
    code, out, err = run_main(capsys, *restore_argv(folder, target, tmp_path, *extra))
    assert code == 0, err
    return out


def source_token(server):
    """An access token of root on a simulated fylr."""
    return requests.post(server.url + "/api/oauth2/token", data={
        "grant_type": "password", "username": "root", "password": "admin",
        "client_id": "fylr-web-frontend"}).json()["access_token"]


@contextlib.contextmanager
def ledger(data_dir):
    """The job ledger of a data folder (its jobs.sqlite) for one block: committed when the block ends
    without an error, closed always."""
    db = sqlite3.connect(os.path.join(data_dir, "jobs.sqlite"))
    try:
        with db:
            yield db
    finally:
        db.close()


def ledger_rows(data_dir, sql, *args):
    """The rows a query of the job ledger answers (the connection is closed before they are returned)."""
    with ledger(data_dir) as db:
        return db.execute(sql, args).fetchall()


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as fh:
        return json.loads(fh.read().decode("utf-8"))


def manifest(folder):
    return load(os.path.join(folder, "manifest.json"))


def payloads(folder):
    """[(name, envelope)] in manifest order."""
    return [(name, load(os.path.join(folder, name))) for name in manifest(folder)["payloads"]]


def entries(folder, import_type):
    key = fylrmig.IMPORT_TYPE_ARRAYS[import_type]
    return [e for _, env in payloads(folder) if env["import_type"] == import_type for e in env[key]]


def records_by_sysid(folder):
    """{system object id: [payload entries in payload order]}."""
    out = {}
    for entry in entries(folder, "db"):
        out.setdefault(entry["_system_object_id"], []).append(entry)
    return out


def normalized_payloads(folder):
    """Payload contents with the time-dependent parts (file URL signatures) blanked, for equality checks."""
    text = json.dumps(payloads(folder), sort_keys=True, ensure_ascii=False)
    return re.sub(r"x-fylr-signature=[^&\"]+", "x-fylr-signature=X", text)


def tree_digest(folder, sub="files"):
    """{relative path: sha256} of every file under folder/sub."""
    out = {}
    for path in glob.glob(os.path.join(folder, sub, "**", "*"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def expected_records(sim, all_versions=False, include_deleted=False):
    """{sysid: (objecttype, [stored versions a backup must hold])}."""
    out = {}
    for ot, records in sim.records.items():
        for record in records.values():
            if record.get("deleted_at") and not include_deleted:
                continue
            versions = record["versions"] if all_versions else record["versions"][-1:]
            out[record["_system_object_id"]] = (ot, versions)
    return out


def reference(entry, kind):
    body = entry[kind]
    return body.get("reference") or f"{kind}:{body['_id']}"


def plain(value):
    """A stored field value is 'plain' when the backup must carry it unchanged."""
    return not (isinstance(value, dict) and "_system_object_id" in value) and not (
        isinstance(value, list) and value and isinstance(value[0], dict))


def kill_at_random_points(argv, first_mode, seed, low, high, rounds=4):
    """Run fylrmig `rounds` times (first with `first_mode`, then with --continue), each killed with
    SIGKILL after a random delay in [low, high] s; returns how many runs were really killed."""
    import random
    import signal
    import time
    rnd, kills = random.Random(seed), 0
    for attempt in range(rounds):
        mode = first_mode if attempt == 0 else ["--continue"]
        proc = subprocess.Popen([sys.executable, "-m", "fylrmig", *map(str, argv), *mode], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(low, high))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    return kills


def run_cli_env(env, *argv, timeout=300):
    """run_cli with extra environment variables (a value of None removes one), e.g.
    {"FYLRMIG_CRASH_AT": "chunk-sent:3"} to SIGKILL the process at an exact point."""
    full = {k: v for k, v in os.environ.items() if k not in env}
    full.update({k: v for k, v in env.items() if v is not None})
    return run_cli(*argv, timeout=timeout, env=full)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------- the page (webtest)

class Web:
    """The page of a data folder, served by webtest; its jobs run inline unless told otherwise."""
    def __init__(self, data_dir, runner=None, inline=True, access_token=""):
        self.runner = runner or fylrmig.JobRunner(data_dir)
        self.app = webtest.TestApp(fylrmig.make_web_app(data_dir, access_token=access_token, runner=self.runner,
                                                        inline=inline))

    def overview(self):
        return self.app.get(PAGE)

    def backup_form(self, **values):
        form = self.overview().forms["backup-form"]
        for key, value in values.items():
            form[key] = value
        return form

    def restore_form(self, **values):
        form = self.app.get(PAGE, {"restore": values.pop("backup", "")} if "backup" in values else {}).forms[
            "restore-form"]
        for key, value in values.items():
            form[key] = value
        return form

    def post_fields(self, form, status, **overrides):
        """Submit a form's fields with some replaced by values no browser control would send."""
        fields = [(k, v) for k, v in form.submit_fields() if k not in overrides]
        fields += list(overrides.items())
        return self.app.post(PAGE, fields, status=status)

    def job(self, name, kind="backup"):
        return self.runner.ledger.latest_job(self.runner.folder(name).path, kind)


def started_nothing(web, folders=()):
    """Nothing was started: no job in the ledger, no job log, no backup folder but the given ones."""
    assert web.runner.ledger.jobs() == []
    assert sorted(os.listdir(web.runner.backups_dir)) == sorted(folders)
    assert glob.glob(os.path.join(web.runner.backups_dir, "*", "*.log")) == []


def field_error(res, form_id, field):
    """The error a form shows beside one field, or None."""
    node = res.html.select_one(f"#{form_id} [data-field={field}] .error")
    return node.text if node else None


# ----------------------------------------------------------------------------- what a restore must leave on the target
# The source's canonical dump with the documented transformations applied (parameters.md 6 events, 7 ids,
# 8.3 file modes) - written here independently of fylrmig's own code.

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
    if not file_api:
        without_files_outside_records(want)
    if file_api.endswith("leave"):
        left_on_the_source(want)
    return want


def file_values(node):
    """Every file value outside records ({original_filename, sha256}, as the dump writes them) in node."""
    for value in (node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()):
        if isinstance(value, dict) and set(value) == {"original_filename", "sha256"}:
            yield value
        elif isinstance(value, (dict, list)):
            yield from file_values(value)


def left_on_the_source(want):
    """rput_leave / rput_bulk_leave: files outside records stay on the source too (the target holds no
    bytes, so no sha256), except plugin zips, which fylr installs only from a file it holds."""
    for section in want:
        if section not in ("records", "events", "datamodel", "plugins"):
            for value in file_values(want[section]):
                del value["sha256"]


def without_files_outside_records(want):
    """--file-api '': a file that is not a record field (logo, watermark, plugin zip) cannot reach the target:
    its value is null there, and a zip plugin is not installed (issue 12: each is named in the log)."""
    def strip(node):
        """Remove file values (and what is left empty by that, as the dump leaves empty values out)."""
        for key, value in list(node.items() if isinstance(node, dict) else enumerate(node)):
            if isinstance(value, dict) and set(value) == {"original_filename", "sha256"}:
                node[key] = None
            elif isinstance(value, (dict, list)) and value:
                strip(value)
                if not value:
                    node[key] = None
            if isinstance(node, dict) and node[key] is None and value is not None:
                del node[key]
    want["plugins"] = {k: v for k, v in want["plugins"].items() if v.get("type") != "zip"}
    for section in want:
        if section not in ("records", "events", "datamodel"):
            strip(want[section])


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
    # the logo (parameters.md 9) and the publish collectors (their items have fylr's shape; fylrmig maps
    # them so that publish records can arrive), file values as the dump writes them
    appearance = {"logo": e5["logo"]} if e5.get("logo") else {}
    publish = {"collectors": e5["publish.collectors"]["collectors"]} if e5.get("publish.collectors") else {}
    return {"system": {k: v for k, v in (("login", login), ("password", password), ("appearance", appearance),
                                         ("publish", publish)) if v}}


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

