"""The /inspect/migration/ page (webtest on the bottle app): routes, forms and their validation, JSON
projections, live status, Cancel / Continue, and the safety rules (CSRF, access token, paths, escaping,
secrets)."""
import json
import os
import re
import shutil
import time
import types
import urllib.parse

import pytest
import webtest

import fylrmig
from fylrmig import LOG_TAIL_BYTES, make_web_app
from tests.conftest import generated_instance
from tests.helpers import (PAGE, Web, actual, assert_same, backup_argv, expected, field_error, run_main,
                           started_nothing)
from tests.simulator.faults import FaultPlan
from tests.simulator.server import serve

SECRET_PW = "Pw-7f3c9e-never-shown"


@pytest.fixture
def web(tmp_path):
    return Web(str(tmp_path / "data"))


@pytest.fixture(scope="module")
def e5_backup(tmp_path_factory):
    """A real backup of a tiny simulated easydb 5, made once through the page; tests restore copies of it
    (copy_backup). Its source keeps running for the module, so file URLs in its payloads stay reachable."""
    source = serve(generated_instance("easydb5"))
    web = Web(str(tmp_path_factory.mktemp("e5-backup") / "data"))
    web.backup_form(name="e5", server=source.url, login="root", password="admin", chunk_size="1000").submit(
        status=303)
    assert web.job("e5")["state"] == "done"
    yield types.SimpleNamespace(path=web.runner.folder("e5").path, source=source)
    source.shutdown()


def copy_backup(web, backup, name="e5"):
    """The module's real easydb 5 backup as backup `name` of this test's data folder (without its log)."""
    shutil.copytree(backup.path, web.runner.folder(name).path, ignore=shutil.ignore_patterns("*.log"))
    return web.runner.folder(name)


def params_of(web, name, kind="backup"):
    """The ledger parameters (JSON, secrets ***) of the newest job of that kind."""
    job = web.job(name, kind)
    assert job, f"no {kind} of {name!r} in the ledger"
    return json.loads(job["params"])


def subset(mapping, keys):
    return {k: mapping.get(k) for k in keys}


def log_text(web, name, kind):
    with open(web.runner.folder(name).join(f"{kind}.log"), encoding="utf-8") as fh:
        return fh.read()


def command_lines(web, name, kind):
    """The equivalent command line each run of the page wrote at the top of its part of <kind>.log."""
    return re.findall(rf"^.*? UTC INFO fylrmig \S+: (fylrmig {kind} .*)$", log_text(web, name, kind), re.M)


def has(line, part):
    """`part` (a flag, with its value if any) is on the command line as a whole word."""
    return f" {part} " in f" {line} "


def confirmed_restore(web, target, **values):
    """A purge restore of the first backup through the form, confirmed; the job runs inline."""
    form = web.restore_form(server=target.url, login="root", password="admin", **values)
    form["confirm_purge"] = True
    return form


def fake_backup(runner, name, flavour="easydb5", has_passwords=True, url="http://source.example"):
    """A finished backup folder as far as the page is concerned: a manifest and one payload."""
    folder = runner.folder(name)
    os.makedirs(folder.path, exist_ok=True)
    manifest = {"payloads": ["0001__tags__batch_0001.json"], "has_passwords": has_passwords,
                "source_instance": {"flavour": flavour, "url": url},
                "payload_info": {"0001__tags__batch_0001.json": {"import_type": "tags", "count": 2, "bytes": 99}},
                "counts": {"objecttypes": {"bilder": 3}}, "runs": [{"started_at": "2026-01-01T00:00:00Z"}]}
    with open(folder.manifest_path, "w") as fh:
        json.dump(manifest, fh)
    with open(folder.join("0001__tags__batch_0001.json"), "w") as fh:
        json.dump({"import_type": "tags", "tags": [{}, {}]}, fh)
    return folder


def wait_for(predicate, timeout=30, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")


# ----------------------------------------------------------------------------- routes and lists

def test_root_and_bare_path_redirect_to_the_overview(web):
    assert web.app.get("/", status=302).location.endswith(PAGE)
    assert web.app.get("/inspect/migration", status=302).location.endswith(PAGE)


def test_empty_overview_and_its_json(web):
    res = web.overview()
    assert "No backups yet." in res.text and "backup-form" in res.forms
    assert web.app.get(PAGE, headers={"Accept": "application/json"}).json == {"Backups": []}
    assert web.app.get(PAGE + "?accept=application/json").json == {"Backups": []}


def test_backup_through_the_form_shows_its_payloads(web, make_sim):
    sim = make_sim("easydb5")
    res = web.backup_form(name="e5", server=sim.url, login="root", password="admin", chunk_size="100").submit(
        status=303)
    assert res.location.endswith(PAGE + "e5?note=started")
    page = res.follow()
    manifest = web.runner.folder("e5").load_manifest()
    rows = page.html.select("#payloads tbody tr")
    assert [r.td.text for r in rows] == manifest["payloads"] and len(rows) > 20
    assert "done" in page.html.select_one("#job-backup h2 .state").text
    assert "backup done" in page.html.select_one("#job-backup pre.log").text

    listing = web.overview()
    row = listing.html.select_one("tr[data-backup=e5]")
    assert row.a["href"] == PAGE + "e5" and sim.url in row.text and "easydb5" in row.text
    item = web.app.get(PAGE, headers={"Accept": "application/json"}).json["Backups"][0]
    assert {"Name", "Dir", "Flavour", "SourceURL", "Created", "Status", "LastAction", "Payloads",
            "HasFiles"} <= set(item)
    assert (item["Name"], item["Flavour"], item["Status"], item["LastAction"], item["Payloads"]) == (
        "e5", "easydb5", "done", "backup", len(manifest["payloads"]))

    status = web.app.get(PAGE + "e5", headers={"Accept": "application/json"}).json
    assert set(status) == {"Backup", "Files", "SubPath"}
    assert status["Backup"]["Manifest"]["payloads"] == manifest["payloads"]
    progress = status["Backup"]["Progress"]["backup"]
    assert progress["State"] == "done" and {p["Name"] for p in progress["Phases"]} >= {"user", "db/bilder"}
    assert all(p["Done"] >= 0 and "Rate" in p and "ETA" in p for p in progress["Phases"])
    params = json.loads(web.job("e5")["params"])
    assert (params["compression"], params["max_count"], params["all_versions"], params["password"]) == (
        9, 0, True, "***")
    assert params["log"] == web.runner.folder("e5").join("backup.log")


def test_packed_files_can_be_browsed(web, make_sim):
    sim = make_sim("easydb5")
    web.backup_form(name="withfiles", server=sim.url, login="root", password="admin",
                    include_files="original").submit(status=303)
    top = web.app.get(PAGE + "withfiles/files/")
    first = top.html.select_one("table.files a")
    assert first.text.endswith("/")
    status = web.app.get(PAGE + "withfiles?accept=application/json").json
    assert status["SubPath"] == "files" and status["Files"][0]["IsDir"]
    # walk down to the first file and download it
    url = PAGE + "withfiles/files/"
    while True:
        res = web.app.get(url, headers={"Accept": "application/json"}).json
        assert res["SubPath"] == ("files/" + url.split("/files/", 1)[1]).rstrip("/")
        entry = res["Files"][0]
        assert set(entry) == {"Name", "Size", "IsDir", "ModTime"}
        url += entry["Name"] + ("/" if entry["IsDir"] else "")
        if not entry["IsDir"]:
            break
    download = web.app.get(url)
    assert download.content_type == "application/octet-stream"
    assert "attachment" in download.headers["Content-Disposition"]
    assert len(download.body) == entry["Size"] > 0


def test_backup_made_on_the_command_line_is_listed(web, make_sim, capsys, tmp_path):
    sim = make_sim("fylr")
    folder = web.runner.folder("cli").path
    code, _, err = run_main(capsys, *backup_argv(sim, folder, web.runner.data_dir))
    assert code == 0, err
    item = web.app.get(PAGE + "?accept=application/json").json["Backups"][0]
    assert (item["Name"], item["Flavour"], item["Status"]) == ("cli", "fylr", "done")
    assert web.app.get(PAGE + "cli").status_int == 200


def test_live_json_carries_facts_jobs_logs_and_payloads(web):
    folder = fake_backup(web.runner, "b")
    with open(folder.join("backup.log"), "w") as fh:
        fh.write("hello\n")
    live = web.app.get(PAGE + "b/live").json
    assert set(live) == {"Item", "Jobs", "Logs", "Payloads", "Check", "Active"}
    assert (live["Item"]["Records"], live["Logs"]["backup"], live["Active"]) == (3, "hello\n", False)
    assert live["Payloads"] == [{"Name": "0001__tags__batch_0001.json", "Type": "tags", "Count": 2, "Size": 99}]
    assert live["Jobs"] == {"backup": None, "restore": None}


def test_odd_file_names_are_linked_and_served(web):
    folder = fake_backup(web.runner, "b")
    os.makedirs(folder.join("files", "0", "a b#c"))
    with open(folder.join("files", "0", "a b#c", "1-Grüße?.jpg"), "wb") as fh:
        fh.write(b"jpeg")
    page = web.app.get(PAGE + "b/files/0/")
    href = page.html.select_one("table.files a")["href"]
    assert href == PAGE + "b/files/0/a%20b%23c/"
    inner = web.app.get(href)
    assert web.app.get(inner.html.select_one("table.files a")["href"]).body == b"jpeg"
    crumbs = [a["href"] for a in inner.html.select("p.muted a")]
    assert crumbs == [PAGE + "b/files/", PAGE + "b/files/0/", PAGE + "b/files/0/a%20b%23c/"]


def test_log_is_downloadable_as_plain_text(web):
    folder = fake_backup(web.runner, "b")
    with open(folder.join("backup.log"), "w") as fh:
        fh.write("line one\n")
    res = web.app.get(PAGE + "b/backup.log")
    assert res.content_type == "text/plain" and res.text == "line one\n"
    web.app.get(PAGE + "b/restore.log", status=404)


def test_log_tail_reads_only_the_end_of_a_long_log(web):
    folder = fake_backup(web.runner, "b")
    with open(folder.join("backup.log"), "w") as fh:
        for i in range(40000):
            fh.write(f"2026-01-01 00:00:00 INFO line {i:06d} of a long backup\n")
    tail = web.app.get(PAGE + "b/live").json["Logs"]["backup"]
    assert len(tail.encode()) <= LOG_TAIL_BYTES
    assert tail.startswith("2026-01-01") and tail.rstrip().endswith("line 039999 of a long backup")


# ----------------------------------------------------------------------------- backup form

BAD_BACKUP_FIELDS = [
    ("name", "", "unsafe backup name"),
    ("name", "../escape", "unsafe backup name"),
    ("name", "a/b", "unsafe backup name"),
    ("name", ".hidden", "unsafe backup name"),
    ("server", "", "required"),
    ("server", "ftp://host", "http(s) URL"),
    ("server", "http://root:admin@host", "not into the URL"),
    ("login", "", "required"),
    ("password", "", "required"),
]


@pytest.mark.parametrize("field,value,message", BAD_BACKUP_FIELDS)
def test_backup_form_field_errors_come_back_next_to_the_field(web, e5_tiny, field, value, message):
    values = {"name": "ok", "server": e5_tiny.url, "login": "root", "password": "admin", field: value}
    res = web.backup_form(**values).submit(status=400)
    assert message in field_error(res, "backup-form", field)
    started_nothing(web)
    form = res.forms["backup-form"]
    assert form["password"].value == ""                        # passwords are never sent back
    kept = {k: v for k, v in values.items() if k not in ("password", field)}
    assert all(form[k].value == v for k, v in kept.items())


@pytest.mark.parametrize("field,value", [("chunk_size", "7"), ("include_files", "zip"), ("mode", "both"),
                                         ("all_versions", "maybe"), ("insecure", "sometimes")])
def test_backup_form_refuses_values_no_control_offers(web, e5_tiny, field, value):
    form = web.backup_form(name="ok", server=e5_tiny.url, login="root", password="admin")
    res = web.post_fields(form, 400, **{field: value})
    assert field_error(res, "backup-form", field)
    started_nothing(web)


def test_chunk_size_above_1000_for_an_easydb5_source_is_refused_by_the_job_and_shown(web, e5_tiny):
    """The page never calls a server inside a request: the job finds the flavour, refuses the chunk size,
    and its refusal is what the status page and the ledger show."""
    web.backup_form(name="big", server=e5_tiny.url, login="root", password="admin", chunk_size="5000").submit(
        status=303)
    job = web.job("big")
    assert job["state"] == "failed" and "easydb 5 returns at most 1000" in job["last_error"]
    page = web.app.get(PAGE + "big")
    assert "easydb 5 returns at most 1000" in page.html.select_one("#job-backup").text
    assert not os.path.exists(web.runner.folder("big").manifest_path)
    web.backup_form(name="big", server=e5_tiny.url, login="root", password="admin",
                    chunk_size="1000").submit(status=303)
    assert web.job("big")["state"] == "done" and params_of(web, "big")["chunk_size"] == 1000
    assert web.runner.folder("big").load_manifest()["batch_size"] == 1000
    assert has(command_lines(web, "big", "backup")[-1], "--chunk-size 1000")


def test_chunk_size_above_1000_for_a_fylr_source_is_left_to_the_engine(web, fylr_tiny):
    web.backup_form(name="big", server=fylr_tiny.url, login="root", password="admin",
                    chunk_size="10000").submit(status=303)
    assert web.job("big")["state"] == "done" and params_of(web, "big")["chunk_size"] == 10000
    assert web.runner.folder("big").load_manifest()["batch_size"] == 10000


def test_a_job_that_cannot_start_leaves_its_error_on_the_status_page_and_in_the_list(web):
    started = time.monotonic()
    web.backup_form(name="x", server="http://127.0.0.1:9", login="root", password="pw",
                    chunk_size="5000").submit(status=303)
    assert time.monotonic() - started < 5
    job = web.job("x")
    assert job["state"] == "failed" and "cannot reach http://127.0.0.1:9" in job["last_error"]
    assert "cannot reach" in web.app.get(PAGE + "x").html.select_one("#job-backup").text
    item = next(i for i in web.app.get(PAGE + "?accept=application/json").json["Backups"] if i["Name"] == "x")
    assert item["Status"] == "failed"


def test_backup_form_maps_onto_job_parameters(web, e5_tiny):
    form = web.backup_form(name="m", server=e5_tiny.url + "/api/v1/", login="root", password="admin",
                           chunk_size="25", all_versions=False, include_deleted=True, include_events=False,
                           include_files="with-versions", insecure=True, mode="continue",
                           client_id="ignored", client_secret="ignored")
    form.submit(status=303)
    job, folder = web.job("m"), web.runner.folder("m")
    assert (job["kind"], job["name"], job["state"]) == ("backup", "m", "done")
    expected = {"server": e5_tiny.url, "login": "root", "password": "***", "chunk_size": 25,
                "insecure": True, "include_events": "-", "client_id": "", "client_secret": "",
                "all_versions": False, "include_deleted": True, "include_files": "with-versions",
                "purge": False, "continue": True, "compression": 9, "max_count": 0}
    assert subset(json.loads(job["params"]), expected) == expected
    manifest = folder.load_manifest()
    assert subset(manifest["parameters"], expected) == expected
    assert manifest["runs"][0]["mode"] == "continue" and os.path.isdir(folder.join("files"))
    line = command_lines(web, "m", "backup")[0]
    for part in (f"--server {e5_tiny.url}", "--login root", "--password ***", "--insecure", "--continue",
                 "--chunk-size 25", "--include-events=-", "--include-deleted", "--include-files with-versions",
                 "--compression 9"):
        assert has(line, part), part
    for flag in ("--purge", "--all-versions", "--client-id", "--client-secret"):
        assert flag not in line
    assert "ignored" not in log_text(web, "m", "backup")


def test_oauth2_fields_count_only_when_ticked(web, fylr_tiny):
    web.backup_form(name="o", server=fylr_tiny.url, login="root", password="admin", oauth2=True,
                    client_id="web-client", client_secret="foo").submit(status=303)
    params = params_of(web, "o")
    assert web.job("o")["state"] == "done"
    assert (params["client_id"], params["client_secret"], params["purge"], params["include_events"]) == (
        "web-client", "***", True, "")
    # the simulated fylr checks the client's secret before it issues a token to that client
    assert {t["client_id"] for t in fylr_tiny.sim.tokens.values()} == {"web-client"}
    line = command_lines(web, "o", "backup")[0]
    assert has(line, "--client-id web-client") and has(line, "--client-secret ***") and has(line, "--purge")
    assert "--include-events" not in line
    assert web.overview().html.select("#backup-form .field.oauth")      # hidden by script, not removed


def test_a_running_backup_cannot_be_started_twice(tmp_path, make_sim):
    web = Web(str(tmp_path / "data"), inline=False)
    sim = make_sim("easydb5", faults=FaultPlan(latency=0.02))
    values = dict(name="busy", server=sim.url, login="root", password="admin", chunk_size="10")
    web.backup_form(**values).submit(status=303)
    wait_for(lambda: (web.job("busy") or {}).get("state") == "running")
    res = web.backup_form(**values).submit(status=400)          # mode purge: would delete the running backup
    assert "is running" in field_error(res, "backup-form", "name")
    assert [j["name"] for j in web.runner.ledger.jobs()] == ["busy"]
    assert len(command_lines(web, "busy", "backup")) == 1
    assert web.runner.cancel("busy", "backup")
    wait_for(lambda: not web.runner.running("busy", "backup"))
    assert web.job("busy")["state"] == "cancelled" and len(command_lines(web, "busy", "backup")) == 1


def test_unknown_action_is_refused(web, e5_tiny):
    form = web.backup_form(name="x", server=e5_tiny.url, login="root", password="admin")
    web.post_fields(form, 400, action="format-disk")
    started_nothing(web)
    fields = [(k, v) for k, v in form.submit_fields() if k != "name"] + [("name", "no-slash")]
    res = web.app.post("/inspect/migration", fields, status=303)
    assert res.location.endswith(PAGE + "no-slash?note=started")
    assert [(j["name"], j["kind"], j["state"]) for j in web.runner.ledger.jobs()] == [("no-slash", "backup", "done")]


# ----------------------------------------------------------------------------- restore form

def test_restore_form_offers_backups_with_a_manifest_and_prefills_renames(web):
    fake_backup(web.runner, "e5")
    fake_backup(web.runner, "fy", flavour="fylr")
    os.makedirs(web.runner.folder("nomanifest").path)
    open(web.runner.folder("nomanifest").join("backup.log"), "w").close()
    res = web.overview()
    options = res.html.select("#restore-form select[name=backup] option")
    assert [o["value"] for o in options] == ["e5", "fy"]
    assert [json.loads(o["data-renames"]) for o in options] == [[["video", "1920p", "1080p"]], []]
    assert [i["value"] for i in res.html.select("#restore-form input[name=rv_class]")] == ["video", ""]
    assert [i["value"] for i in res.html.select("#restore-form input[name=rv_target]")] == ["1080p", ""]
    fy = web.app.get(PAGE + "?restore=fy")
    assert [i["value"] for i in fy.html.select("#restore-form input[name=rv_class]")] == [""]


def test_rename_prefill_comes_from_the_previous_restore(web, e5_backup, make_sim):
    copy_backup(web, e5_backup)
    form = confirmed_restore(web, make_sim("fylr", size="empty"))
    for index, (cls, src, dst) in enumerate([("image", "preview", "640px"), ("video", "full", "")]):
        form.set("rv_class", cls, index=index)
        form.set("rv_source", src, index=index)
        form.set("rv_target", dst, index=index)
    form.submit(status=303)
    assert web.job("e5", "restore")["state"] == "done"
    assert params_of(web, "e5", "restore")["rename_versions"] == "image.preview:640px,video.full:"
    res = web.overview()
    assert [i["value"] for i in res.html.select("#restore-form input[name=rv_source]")] == ["preview", "full", ""]
    assert [i["value"] for i in res.html.select("#restore-form input[name=rv_target]")] == ["640px", "", ""]


def test_restore_purge_needs_an_explicit_confirmation(web, e5_backup, make_sim):
    copy_backup(web, e5_backup)
    target = make_sim("fylr", size="empty")
    form = web.restore_form(server=target.url, login="root", password="admin")
    res = form.submit(status=400)
    assert f'This will destroy all data on "{target.url}"!' in field_error(res, "restore-form", "mode")
    started_nothing(web, ["e5"])
    form = res.forms["restore-form"]
    form["password"] = "admin"
    form["confirm_purge"] = True
    form.submit(status=303)
    job = web.job("e5", "restore")
    params, setup = json.loads(job["params"]), json.loads(job["setup"])
    assert (job["state"], setup["mode"], params["purge"], params["continue"]) == ("done", "purge", True, False)
    assert params["rename_versions"] == "video.1920p:1080p" and params["chunk_size"] == 1000
    assert "step purge done" in log_text(web, "e5", "restore")


def test_restore_form_maps_onto_job_parameters(web, e5_backup, make_sim):
    copy_backup(web, e5_backup)
    target = make_sim("fylr", size="empty")
    confirmed_restore(web, target).submit(status=303)    # sets the target up: datamodel and base config
    first = web.job("e5", "restore")
    assert first["state"] == "done"
    form = web.restore_form(server=target.url, login="root", password="admin", file_api="rput",
                            file_version="preview", upload_versions=True, file_api_access_token="tok-5e8a1d",
                            chunk_size="50", include_password=True, include_events=False,
                            include_deleted_linked=True, mode="nopurge")
    form.set("rv_class", "image", index=1)
    form.set("rv_source", "small", index=1)
    form.set("rv_target", "", index=1)
    form.submit(status=303)
    job = web.job("e5", "restore")
    assert job["id"] != first["id"] and job["state"] == "done"
    expected = {"server": target.url, "login": "root", "password": "***", "chunk_size": 50, "insecure": False,
                "include_events": "-", "client_id": "", "client_secret": "", "file_api": "rput",
                "file_version": "preview", "upload_versions": True,
                "rename_versions": "video.1920p:1080p,image.small:", "file_api_access_token": "***",
                "include_password": True, "include_deleted_linked": True, "purge": False, "continue": False,
                "base_config": "-", "datamodel": "-"}
    assert subset(json.loads(job["params"]), expected) == expected
    setup = json.loads(job["setup"])
    assert subset(setup, ["mode", "base_config", "datamodel"]) == {"mode": "plain", "base_config": "-",
                                                                    "datamodel": "-"}
    line = command_lines(web, "e5", "restore")[-1]
    for part in ("--base-config=-", "--datamodel=-", "--file-api rput", "--file-version preview",
                 "--upload-versions", "--file-api-access-token ***", "--chunk-size 50", "--include-password",
                 "--include-events=-", "--include-deleted-linked", "--rename-versions video.1920p:1080p,image.small:"):
        assert has(line, part), part
    assert "--purge" not in line and "--continue" not in line
    assert "tok-5e8a1d" not in log_text(web, "e5", "restore")


def test_restore_continue_mode_needs_no_confirmation(web, e5_backup, make_sim):
    copy_backup(web, e5_backup)
    target = make_sim("fylr", size="empty")
    confirmed_restore(web, target).submit(status=303)
    first = web.job("e5", "restore")
    web.restore_form(server=target.url, login="root", password="admin", mode="continue").submit(status=303)
    job = web.job("e5", "restore")
    params = json.loads(job["params"])
    assert (job["id"], job["state"]) == (first["id"], "done")              # the same job, continued
    assert params["continue"] and not params["purge"] and params["base_config"] == params["datamodel"] == ""
    line = command_lines(web, "e5", "restore")[-1]
    assert has(line, "--continue") and "--purge" not in line
    assert "--base-config" not in line and "--datamodel" not in line
    assert "continuing: skipping" in log_text(web, "e5", "restore")


@pytest.mark.parametrize("rows,message", [
    ([("video", "1920p", "1080p"), ("video", "1920p", "720p")], "renamed twice"),
    ([("vid eo", "1920p", "1080p")], "file class"),
    ([("video", "19:20p", "1080p")], "may not contain"),
    ([("video", "1920p", "10,80p")], "may not contain"),
])
def test_rename_table_rows_are_validated(web, e5_backup, make_sim, rows, message):
    copy_backup(web, e5_backup)
    target = make_sim("fylr", size="empty")
    form = web.restore_form(server=target.url, login="root", password="admin", mode="continue")
    fields = [(k, v) for k, v in form.submit_fields() if not k.startswith("rv_")]
    for cls, src, dst in rows:
        fields += [("rv_class", cls), ("rv_source", src), ("rv_target", dst)]
    res = web.app.post(PAGE, fields, status=400)
    assert message in field_error(res, "restore-form", "rename_versions")
    kept = [i["value"] for i in res.html.select("#restore-form input[name=rv_class]")]
    assert kept == [r[0] for r in rows] + [""]
    started_nothing(web, ["e5"])


def test_rename_rows_without_class_or_source_are_ignored(web, e5_backup, make_sim):
    copy_backup(web, e5_backup)
    form = confirmed_restore(web, make_sim("fylr", size="empty"))
    form.set("rv_class", "", index=0)
    form.set("rv_target", "only-target", index=1)
    form.submit(status=303)
    job = web.job("e5", "restore")
    assert job["state"] == "done"
    assert json.loads(job["params"])["rename_versions"] == json.loads(job["setup"])["rename_versions"] == ""
    assert "--rename-versions" not in command_lines(web, "e5", "restore")[0]


@pytest.mark.parametrize("field,value,message", [
    ("backup", "ghost", "no manifest"),
    ("backup", "../e5", "unsafe backup name"),
    ("file_api", "rput_bulk", "offered values"),
    ("file_version", "bad version", "version name"),
    ("chunk_size", "3", "offered values"),
    ("include_deleted_linked", "perhaps", "on or off"),
])
def test_restore_form_refuses_bad_values(web, e5_backup, make_sim, field, value, message):
    copy_backup(web, e5_backup)
    target = make_sim("fylr", size="empty")
    form = web.restore_form(server=target.url, login="root", password="admin", mode="continue")
    res = web.post_fields(form, 400, **{field: value})
    assert message in field_error(res, "restore-form", field)
    assert res.forms["restore-form"]["password"].value == ""
    started_nothing(web, ["e5"])


def test_restore_form_refuses_a_chunk_size_above_1000(web, e5_backup, make_sim):
    copy_backup(web, e5_backup)
    target = make_sim("fylr", size="empty")
    for size in ("5000", "10000"):
        res = confirmed_restore(web, target, chunk_size=size).submit(status=400)
        assert "a restore sends at most 1000 objects per request" in field_error(res, "restore-form", "chunk_size")
        assert field_error(res, "restore-form", "mode") is None           # the purge was confirmed
        kept = res.forms["restore-form"]
        assert kept["chunk_size"].value == size and kept["password"].value == ""
        started_nothing(web, ["e5"])


def test_include_password_needs_hashes_in_the_backup(web, make_sim):
    fake_backup(web.runner, "nohash", has_passwords=False)
    target = make_sim("fylr", size="empty")
    form = web.restore_form(server=target.url, login="root", password="admin", mode="continue",
                            include_password=True)
    assert "no password hashes" in field_error(form.submit(status=400), "restore-form", "include_password")
    started_nothing(web, ["nohash"])


def test_restore_from_the_page_starts_the_job_with_the_page_parameters(web, make_sim):
    source, target = make_sim("easydb5"), make_sim("fylr", size="empty")
    web.backup_form(name="e5", server=source.url, login="root", password="admin").submit(status=303)
    form = web.restore_form(server=target.url, login="root", password="admin", file_api="rput")
    form["confirm_purge"] = True
    status = form.submit(status=303).follow()
    log = open(web.runner.folder("e5").join("restore.log")).read()
    first = log.splitlines()[0]
    for part in ("fylrmig restore", "--purge", "--rename-versions video.1920p:1080p", "--file-api rput",
                 "--chunk-size 1000", "--skip-constraints", "--timeout-min 15", "--upload-ignore-files-with-errors",
                 "--password ***"):
        assert part in first
    assert "admin" not in log
    assert status.html.select_one("#job-restore pre.log").text.startswith(log[:40])
    stored = len([f for f in target.sim.files.values() if f.get("status", "done") == "done"])
    assert status.html.select_one("#job-restore [data-k=FilesText]").text == f"{stored:,} done"
    assert_same(expected(source.sim, "easydb5", "rput", include_password=False, target=target.sim),
                actual(target.sim))    # the whole migration from the page, nothing refused or missing


# ----------------------------------------------------------------------------- status page, Cancel, Continue

def test_status_page_of_an_unknown_backup_is_404(web):
    web.app.get(PAGE + "ghost", status=404)
    assert web.app.get(PAGE + "ghost?accept=application/json", status=404).json["Status"] == 404


def test_cancel_continue_and_the_live_status_with_a_real_daemon_thread(tmp_path, make_sim):
    """The job runs in a real daemon thread: the page answers at once while it runs, Cancel stops it,
    Continue asks only for the password and finishes it."""
    web = Web(str(tmp_path / "data"), inline=False)
    sim = make_sim("easydb5", faults=FaultPlan(latency=0.02))
    web.backup_form(name="slow", server=sim.url, login="root", password="admin", chunk_size="10").submit(
        status=303)
    wait_for(lambda: (web.job("slow") or {}).get("state") == "running")
    started = time.monotonic()
    live = web.app.get(PAGE + "slow/live").json
    assert time.monotonic() - started < 1
    assert live["Active"] and live["Jobs"]["backup"]["State"] == "running"
    page = web.app.get(PAGE + "slow")
    assert not page.html.select_one("#job-backup form.cancel").has_attr("hidden")
    csrf = page.html.select_one("#job-backup form.cancel input[name=csrf]")["value"]
    res = web.app.post(PAGE + "slow/cancel", {"kind": "backup", "csrf": csrf}, status=303)
    assert res.location.endswith("?note=cancel")
    wait_for(lambda: web.job("slow")["state"] == "cancelled")
    wait_for(lambda: not web.runner.running("slow", "backup"))
    page = web.app.get(PAGE + "slow")
    assert page.html.select_one("#job-backup h2 .state").text == "cancelled"
    link = page.html.select_one("#job-backup a.continue")
    assert not link.has_attr("hidden")

    form_page = web.app.get(link["href"])
    shown = {tr.find_all("td")[0].text: tr.find_all("td")[1].text for tr in form_page.html.select("tbody tr")}
    assert shown["--server"] == sim.url and shown["--chunk-size"] == "10" and "--password" not in shown
    assert "False" not in form_page.text and "log_network" not in form_page.text
    form = form_page.forms["continue-form"]
    assert [f for f in form.fields if f not in ("csrf", "kind", None)] == ["password"]
    assert form["password"].value == "" and "admin" not in form_page.text
    assert "required" in form.submit(status=400).html.select_one(".error").text
    form["password"] = "admin"
    form.submit(status=303)
    wait_for(lambda: web.job("slow")["state"] == "done" and not web.runner.running("slow", "backup"))
    log = open(web.runner.folder("slow").join("backup.log")).read()
    assert "continuing: skipping" in log
    assert [line for line in log.splitlines() if " fylrmig backup " in line][-1].count("--continue") == 1


def test_cancel_when_nothing_runs_says_so(web):
    fake_backup(web.runner, "idle")
    csrf = web.overview().forms["backup-form"]["csrf"].value
    res = web.app.post(PAGE + "idle/cancel", {"kind": "backup", "csrf": csrf}, status=303).follow()
    assert "Nothing to cancel" in res.html.select_one(".note").text
    web.app.post(PAGE + "idle/cancel", {"kind": "everything", "csrf": csrf}, status=400)


def test_continue_asks_for_every_secret_the_previous_run_had(web, e5_backup, make_sim, capsys, tmp_path):
    """A restore run on the command line (--purge, its own --log, --base-config/--datamodel, an OAuth2 client
    secret and a file token) fails on the target; the page's Continue asks for every secret again and takes
    over everything else but what the runner owns or a --continue forbids."""
    client_secret, file_token = "client-secret-31c7", "file-token-9d02"
    folder = copy_backup(web, e5_backup, "r")
    plan = FaultPlan(error_rate=1.0, only_prefixes=("/api/v1/db/",))        # every record post: 502
    target = make_sim("fylr", size="empty", faults=plan, oauth_clients={"web-client": client_secret})
    elsewhere = str(tmp_path / "elsewhere.log")
    code, _, err = run_main(capsys, "restore", "--server", target.url, "--login", "root", "--password", "admin",
                            "--client-id", "web-client", "--client-secret", client_secret,
                            "--file-api-access-token", file_token, "--rename-versions", "video.a:b", "--purge",
                            "--base-config", folder.join("base_config.json"), "--datamodel",
                            folder.join("datamodel.json"), "--manifest", folder.manifest_path,
                            "--data", web.runner.data_dir, "--log", elsewhere, "--retry-max-count", "0")
    assert code == 1 and "HTTP 502" in err
    previous = web.job("r", "restore")
    assert previous["state"] == "failed" and not os.path.exists(folder.join("restore.log"))

    page = web.app.get(PAGE + "r/continue?kind=restore")
    shown = {tr.find_all("td")[0].text: tr.find_all("td")[1].text for tr in page.html.select("tbody tr")}
    assert (shown["--server"], shown["--client-id"], shown["--rename-versions"]) == (target.url, "web-client",
                                                                                      "video.a:b")
    assert not {"password", "client_secret", "file_api_access_token", "log", "purge"} & set(shown)
    form = page.forms["continue-form"]
    assert {"password", "client_secret", "file_api_access_token"} <= set(form.fields)
    assert client_secret not in page.text and file_token not in page.text
    plan.error_rate = 0.0                                                  # the target takes records again
    form["password"], form["client_secret"], form["file_api_access_token"] = "admin", client_secret, file_token
    form.submit(status=303)

    job = web.job("r", "restore")
    # a taken-over --purge, --base-config or --datamodel would have been refused next to --continue
    assert (job["id"], job["state"]) == (previous["id"], "done")
    params = json.loads(job["params"])
    expected = {"server": target.url, "login": "root", "password": "***", "client_id": "web-client",
                "client_secret": "***", "file_api_access_token": "***", "rename_versions": "video.a:b",
                "base_config": "", "datamodel": "", "purge": False, "continue": True,
                "log": folder.join("restore.log"), "manifest": folder.manifest_path}
    assert subset(params, expected) == expected
    (line,) = command_lines(web, "r", "restore")                          # the log of the page's run only
    for part in ("--continue", "--client-id web-client", "--client-secret ***", "--file-api-access-token ***",
                 "--rename-versions video.a:b", "--password ***"):
        assert has(line, part), part
    assert "--purge" not in line and "--base-config" not in line and "--datamodel" not in line
    assert "elsewhere" not in line and "continuing: skipping" in log_text(web, "r", "restore")
    log = log_text(web, "r", "restore")
    assert client_secret not in log and file_token not in log
    web.app.get(PAGE + "r/continue?kind=backup", status=404)


def test_jobs_running_at_a_restart_show_as_interrupted_and_can_be_continued(tmp_path):
    data = str(tmp_path / "data")
    before = fylrmig.JobRunner(data)
    folder = fake_backup(before, "crashed")
    job_id = before.ledger.create_job("crashed", "backup", folder.path, {"server": "http://s.example"}, {})
    before.ledger.update_job(job_id, state="running", owner="vanished-host:999999")
    web = Web(data)                                   # a new process: a new JobRunner on the same data folder
    page = web.app.get(PAGE + "crashed")
    assert page.html.select_one("#job-backup h2 .state").text == "interrupted"
    assert not page.html.select_one("#job-backup a.continue").has_attr("hidden")
    assert "backup interrupted" in web.overview().html.select_one("tr[data-backup=crashed]").text
    assert web.app.get(PAGE + "crashed/continue?kind=backup").forms["continue-form"]


# ----------------------------------------------------------------------------- safety

def test_a_csrf_pair_the_client_made_up_itself_is_refused(web):
    """Cookies ignore ports: a page on another localhost port can set fylrmig_csrf. Only a token the
    server signed counts."""
    fields = [(k, v) for k, v in web.backup_form(name="x", server="http://s.example", login="l",
                                                 password="p").submit_fields() if k != "csrf"]
    made_up = "A" * 40
    other = webtest.TestApp(web.app.app)
    other.set_cookie("fylrmig_csrf", made_up)
    other.post(PAGE, fields + [("csrf", made_up)], status=403)
    started_nothing(web)


def test_a_real_csrf_pair_posted_from_another_origin_is_refused(web):
    form = web.backup_form(name="x", server="http://s.example", login="l", password="p")
    web.app.post(PAGE, form.submit_fields(), headers={"Origin": "http://evil.example"}, status=403)
    web.app.post(PAGE, form.submit_fields(), headers={"Referer": "http://localhost:9999/attack"}, status=403)
    web.app.post(PAGE, form.submit_fields(), headers={"Origin": "null"}, status=403)
    started_nothing(web)
    web.app.post(PAGE, form.submit_fields(), headers={"Origin": "http://localhost"}, status=303)


def test_a_log_or_files_folder_that_links_out_of_the_data_folder_is_never_served(web, tmp_path):
    folder = fake_backup(web.runner, "linked")
    outside = tmp_path / "outside"
    os.makedirs(outside / "sub")
    (outside / "secret.txt").write_text("outside-secret")
    (outside / "sub" / "x.bin").write_text("outside-file")
    os.symlink(outside / "secret.txt", folder.join("backup.log"))
    os.symlink(outside, folder.join("files"))
    assert "outside-secret" not in web.app.get(PAGE + "linked").text
    web.app.get(PAGE + "linked/backup.log", status=404)
    web.app.get(PAGE + "linked/files/sub/x.bin", status=404)
    web.app.get(PAGE + "linked/files/", status=404)
    assert "outside-secret" not in json.dumps(web.app.get(PAGE + "linked/live").json)


def test_posts_without_the_csrf_token_are_refused(web):
    fake_backup(web.runner, "b")
    form = web.backup_form(name="x", server="http://s.example", login="l", password="p")
    web.post_fields(form, 403, csrf="forged")
    fields = [(k, v) for k, v in form.submit_fields() if k != "csrf"]
    web.app.post(PAGE, fields, status=403)
    web.app.post(PAGE + "b/cancel", {"kind": "backup"}, status=403)
    web.app.post(PAGE + "b/continue", {"kind": "backup", "password": "x"}, status=403)
    fresh = webtest.TestApp(web.app.app)               # a browser that never got the cookie
    fresh.post(PAGE, dict(form.submit_fields()), status=403)


@pytest.mark.parametrize("path", [
    "..%2F..%2Fjobs.sqlite", "..", "b/files/../../../jobs.sqlite", "b/files/..%2F..%2Fmanifest.json",
    "b/files/%2e%2e/manifest.json", "b/files//etc/passwd", "b/files/out/secret.txt", "b/files/..\\manifest.json",
    "outside", "outside/files/", "b/files/0/../../manifest.json"])
def test_paths_never_lead_out_of_the_data_folder(web, tmp_path, path):
    folder = fake_backup(web.runner, "b")
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    (secret_dir / "secret.txt").write_text("top secret")
    os.makedirs(folder.join("files", "0"))
    os.symlink(str(secret_dir), folder.join("files", "out"))
    os.symlink(str(secret_dir), web.runner.folder("outside").path)
    res = web.app.get(PAGE + path, expect_errors=True)
    assert res.status_int in (400, 404) and "top secret" not in res.text


def test_links_out_of_the_data_folder_are_not_listed(web, tmp_path):
    folder = fake_backup(web.runner, "b")
    (tmp_path / "elsewhere").mkdir()
    os.makedirs(folder.join("files", "0"))
    os.symlink(str(tmp_path / "elsewhere"), folder.join("files", "out"))
    os.symlink(str(tmp_path / "elsewhere"), web.runner.folder("outside").path)
    assert [e["Name"] for e in web.app.get(PAGE + "b/files/?accept=application/json").json["Files"]] == ["0"]
    assert [b["Name"] for b in web.app.get(PAGE + "?accept=application/json").json["Backups"]] == ["b"]


def test_everything_from_an_instance_or_a_log_is_escaped(web):
    folder = fake_backup(web.runner, "b", url='http://x/"><script>alert("url")</script>')
    with open(folder.join("backup.log"), "w") as fh:
        fh.write('2026-01-01 ERROR <script>alert("log")</script>\n')
    os.makedirs(folder.join("files", "0"))
    open(folder.join("files", "0", '1-<img src=x onerror=alert(1)>.jpg'), "w").close()
    pages = [web.overview().text, web.app.get(PAGE + "b").text, web.app.get(PAGE + "b/files/0/").text]
    for text in pages:
        assert "<script>alert(" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(&quot;log&quot;)" in pages[1]
    assert "&lt;script&gt;alert(&quot;url&quot;)" in pages[0]
    res = web.backup_form(name="<script>alert(1)</script>", server="http://s.example", login="l",
                          password="p").submit(status=400)
    assert "<script>alert(1)</script>" not in res.text and "&lt;script&gt;alert(1)" in res.text


def test_access_token_is_required_when_set(tmp_path):
    web = Web(str(tmp_path / "data"), access_token="tok-123")
    web.app.get(PAGE, status=401)
    web.app.get(PAGE + "?token=wrong", status=401)
    web.app.get(PAGE, headers={"Authorization": "Bearer wrong"}, status=401)
    res = web.app.get(PAGE + "?token=tok-123&accept=application/json", status=303)
    assert "tok-123" not in res.location
    assert urllib.parse.unquote(res.location).endswith(PAGE + "?accept=application/json")
    cookie = [h for k, h in res.headerlist if k == "Set-Cookie" and h.startswith("fylrmig_token=")][0]
    assert "httponly" in cookie.lower()
    assert web.app.get(PAGE).status_int == 200                 # the cookie now carries it
    bearer = webtest.TestApp(web.app.app)
    assert bearer.get(PAGE, headers={"Authorization": "Bearer tok-123"}).status_int == 200
    webtest.TestApp(web.app.app).get(PAGE + "anything/live", status=401)


def test_secrets_never_appear_in_pages_redirects_or_logs(web, make_sim):
    sim = make_sim("easydb5")
    sim.sim.passwords["root"] = SECRET_PW
    res = web.backup_form(name="s", server=sim.url, login="root", password=SECRET_PW, oauth2=True,
                          client_secret=SECRET_PW + "-client").submit(status=303)
    assert SECRET_PW not in res.location
    urls = [PAGE, PAGE + "s", PAGE + "s/live", PAGE + "s?accept=application/json", PAGE + "s/backup.log",
            PAGE + "s/continue?kind=backup", PAGE + "?accept=application/json"]
    for url in urls:
        assert SECRET_PW not in web.app.get(url).text, url
    assert SECRET_PW not in open(web.runner.folder("s").join("backup.log")).read()
    assert SECRET_PW not in json.dumps(web.runner.ledger.jobs())
    bad = web.backup_form(name="", server=sim.url, login="root", password=SECRET_PW).submit(status=400)
    assert SECRET_PW not in bad.text


def test_pages_send_protective_headers(web):
    res = web.overview()
    assert res.headers["X-Frame-Options"] == "DENY" and res.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in res.headers["Content-Security-Policy"]
    csrf_cookie = [h for k, h in res.headerlist if k == "Set-Cookie" and h.startswith("fylrmig_csrf=")][0]
    assert "httponly" in csrf_cookie.lower() and "samesite=strict" in csrf_cookie.lower()


def test_without_an_access_token_only_loopback_host_names_are_served(tmp_path):
    """A DNS-rebinding page (evil.example resolving to 127.0.0.1) must not read or drive the page."""
    app = webtest.TestApp(make_web_app(str(tmp_path / "data")))
    for host in ("localhost:8080", "127.0.0.1:8080", "[::1]:8080", "localhost"):
        assert app.get(PAGE, headers={"Host": host}).status_int == 200
    res = app.get(PAGE, headers={"Host": "evil.example:8080"}, status=403)
    assert "only to localhost" in res.text
    shared = webtest.TestApp(make_web_app(str(tmp_path / "data2"), access_token="tok-123"))
    assert shared.get(PAGE, headers={"Host": "migration.example:8080", "Authorization": "Bearer tok-123"}).status_int == 200


# ----------------------------------------------------------------------------- incomplete backups

def test_an_incomplete_backup_is_never_preselected_and_needs_an_extra_confirmation(web, e5_backup, make_sim):
    cancelled = copy_backup(web, e5_backup, "cancelled")
    manifest = cancelled.load_manifest()
    manifest["state"]["status"] = "cancelled"
    manifest["source_counts"] = {ot: n * 3 for ot, n in manifest["counts"]["objecttypes"].items()}
    cancelled.save_manifest(manifest)
    copy_backup(web, e5_backup, "whole")
    overview = web.overview()
    select = overview.forms["restore-form"]["backup"]
    assert select.value == "whole"
    labels = {o[0]: text for o, text in zip(select.options, [o.text for o in
                                                                overview.html.select("#restore-backup option")])}
    records = sum(manifest["counts"]["objecttypes"].values())
    assert f"incomplete (cancelled): {records:,} of {3 * records:,} records" in labels["cancelled"]
    target = make_sim("fylr", size="empty")
    form = web.restore_form(backup="cancelled", server=target.url, login="root", password="admin")
    form["confirm_purge"] = True
    res = form.submit(status=400)
    assert "This backup is incomplete (cancelled)" in field_error(res, "restore-form", "backup")
    assert web.job("cancelled", "restore") is None
    form = res.forms["restore-form"]
    form["password"] = "admin"
    form["confirm_purge"] = True
    form["confirm_incomplete"] = True
    form.submit(status=303)
    job = web.job("cancelled", "restore")
    assert job["state"] == "done" and json.loads(job["params"])["allow_incomplete"] is True


# ----------------------------------------------------------------------------- housekeeping

def test_a_backup_is_deleted_after_its_confirmation_and_never_while_a_job_uses_it(web, e5_backup):
    folder = copy_backup(web, e5_backup, "old")
    csrf = web.overview().forms["backup-form"]["csrf"].value
    web.app.post(PAGE + "old/delete", {"csrf": csrf}, status=400)
    assert os.path.isdir(folder.path)
    lock = fylrmig.FolderLock(folder.path).acquire("backup")          # a CLI job holds the folder
    try:
        web.app.post(PAGE + "old/delete", {"csrf": csrf, "confirm_delete": "yes"}, status=409)
    finally:
        lock.release()
    outside = os.path.normpath(folder.join("..", "..", "keep.txt"))
    open(outside, "w").write("outside")
    os.symlink(outside, folder.join("link.txt"))
    res = web.app.post(PAGE + "old/delete", {"csrf": csrf, "confirm_delete": "yes"}, status=303).follow()
    assert not os.path.exists(folder.path) and open(outside).read() == "outside"
    assert "The backup was deleted." in res.text and "old" not in [i["Name"] for i in web.app.get(
        PAGE + "?accept=application/json").json["Backups"]]


def test_a_backup_downloads_as_one_zip_streamed_without_links_lock_or_spool(web, e5_backup, tmp_path):
    import io
    import zipfile
    folder = copy_backup(web, e5_backup, "dl")
    os.symlink("/etc/hostname", folder.join("evil-link"))
    open(folder.join(fylrmig.LOCK_FILE), "w").close()
    res = web.app.get(PAGE + "dl/download")
    assert res.content_type == "application/zip" and 'filename="dl.zip"' in res.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(res.body))
    names = set(archive.namelist())
    wanted = {f"dl/{n}" for n in fylrmig.BackupFolder(folder.path).load_manifest()["payloads"]} | {"dl/manifest.json"}
    assert wanted <= names
    assert "dl/evil-link" not in names and f"dl/{fylrmig.LOCK_FILE}" not in names
    for name in wanted:
        assert archive.read(name) == open(folder.join(name[3:]), "rb").read()


def test_the_list_shows_runtime_disk_use_and_the_free_space_of_the_data_folder(web, e5_backup):
    copy_backup(web, e5_backup, "sized")
    data = web.app.get(PAGE + "?accept=application/json").json
    item = next(i for i in data["Backups"] if i["Name"] == "sized")
    assert item["DiskUsed"] >= item["Size"] > 0 and item["Runtime"]
    free = web.overview().html.select_one("#disk").text
    assert "free of" in free and web.runner.data_dir in free


def test_the_forms_speak_fylrs_words(web, e5_backup):
    """Labels as fylr's own /inspect/migration/ page spells them (parameters.md 5.1, 5.2)."""
    copy_backup(web, e5_backup)
    page = web.overview()
    labels = lambda form: [el.text.strip() for el in page.html.select(f"#{form} .field label")]
    assert labels("backup-form") == [
        "Name of backup", "URL of server", "Login", "Password", "Backup chunk size", "Include object history",
        "Include soft-deleted objects", "Include events", "Include Files", "OAuth2", "OAuth2 Client Id",
        "OAuth2 Client Secret", "Allow Insecure Connection", "Purge or Continue"]
    assert labels("restore-form") == [
        "Backup", "URL of server", "Login", "Password", "File Mode", "File Version", "Copy file preview versions",
        "Rename Versions", "Access Token for file URLs", "Chunk size", "Include Password", "Include events",
        "Include links to soft-deleted objects", "OAuth2", "OAuth2 Client Id", "OAuth2 Client Secret",
        "Allow Insecure Connection", "Purge or Continue"]
    modes = [o.text for o in page.html.select("#restore-file_api option")]
    assert modes == ["(no files)", "Copy files from source (through browser) - put",
                     "Copy files from source (via server) - rput", "Use files from source - rput_leave"]
    assert [o.text for o in page.html.select("#backup-include_files option")] == [
        "URLs only (do not pack)", "Originals", "Originals + versions"]
