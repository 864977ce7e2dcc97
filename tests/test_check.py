"""fylrmig check: a migration proven side by side (issue 14). The situations are built with fylrmig's own
backup and restore on simulated instances; what the check must name is taken from the simulators' state."""
import json

import pytest

import fylrmig
from tests.helpers import free_port, full_backup, restore

RESTORE_FLAGS = ("--purge", "--file-api", "rput", "--include-password", "--include-deleted-linked")


def run_check(capsys, *argv):
    """`fylrmig check ...` in this process: (exit code, stdout, stderr)."""
    code = fylrmig.main(["check", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def check_argv(source, target, *extra, target_password="admin"):
    return ["--source", source.api_url, "--source-login", "root", "--source-password", "admin",
            "--target", target.api_url, "--target-login", "root", "--target-password", target_password,
            "--retry-sleep-between", "0", "--retry-max-count", "1", *extra]


def migrated(capsys, make_sim, tmp_path, flavour, *backup_flags):
    """A tiny source of `flavour` migrated into an empty fylr: (source, target, backup folder)."""
    source, target = make_sim(flavour), make_sim("fylr", size="empty")
    folder = full_backup(capsys, source, tmp_path, *backup_flags)
    restore(capsys, folder, target, tmp_path, *RESTORE_FLAGS)
    return source, target, folder


def format_table(report):
    return fylrmig.format_report(report)


def line(report, name):
    return next(l for l in report["lines"] if l["name"] == name)


# ----------------------------------------------------------------------------- a complete round trip

@pytest.mark.parametrize("flavour", ["easydb5", "fylr"])
def test_complete_round_trip_is_clean(capsys, make_sim, tmp_path, flavour):
    source, target, _ = migrated(capsys, make_sim, tmp_path, flavour)
    code, out, err = run_check(capsys, *check_argv(source, target, "--deep"))
    assert code == 0, out + err
    assert out.strip().splitlines()[-1].startswith("OK: nothing of the source is missing")
    for name in ("users", "groups", "pools", "tag groups", "tags", "collections", "collection objects",
                 "messages", "files") + tuple(f"{kind} {ot}" for kind in ("records", "versions")
                                              for ot in source.sim.records):
        assert any(row.split("  ")[0] == name for row in out.splitlines()), name
    code, out, _ = run_check(capsys, *check_argv(source, target, "--json"))
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["missing"] == 0
    live = {ot: [r for r in records.values() if not r.get("deleted_at")] for ot, records in source.sim.records.items()}
    for ot, records in live.items():
        assert line(report, f"records {ot}")["source"] == len(records) == line(report, f"records {ot}")["target"]
        assert line(report, f"versions {ot}")["source"] == sum(len(r["versions"]) for r in records)
    assert line(report, "files")["source"] > 0 and line(report, "users")["source"] > 0
    events = [l for l in report["lines"] if l["name"].startswith("events ")]
    assert sum(l["source"] for l in events) == len(source.sim.events)
    assert any(l["accounted"] for l in events)   # never-migrated types are accounted for, not missing


# ----------------------------------------------------------------------------- losses behind the check's back

def test_removed_records_user_and_file_are_named(capsys, make_sim, tmp_path):
    source, target, _ = migrated(capsys, make_sim, tmp_path, "fylr")
    sim = target.sim
    with sim.lock:
        orte = sorted(sim.records["orte"].values(), key=lambda r: -r["_system_object_id"])
        lost = [r for r in orte if not r.get("deleted_at")][:2]
        for record in lost:          # leaves of the hierarchy (highest ids): nothing else changes
            del sim.records["orte"][record["_id"]]
            del sim.sysids[record["_system_object_id"]]
        uid, user = next((i, u) for i, u in sim.users.items() if u["user"]["login"] not in ("root",))
        del sim.users[uid]
        holder, file_id = next(((ot, r), v[0]["_id"]) for ot, records in sorted(sim.records.items())
                               for r in records.values() if not r.get("deleted_at")
                               for v in r["versions"][-1]["fields"].values()
                               if isinstance(v, list) and v and isinstance(v[0], dict) and v[0].get("_id") in sim.files)
        info = sim.files.pop(file_id)

    code, out, err = run_check(capsys, *check_argv(source, target))
    assert code == 1, out + err
    assert out.strip().splitlines()[-1].startswith("MISSING: ")
    for record in lost:   # named by objecttype, system object id and uuid
        assert f"orte {record['_system_object_id']} {record['_uuid']}" in out
    assert user["user"]["login"] in out
    assert f"{holder[0]} {holder[1]['_system_object_id']} {info['original_filename']}" in out

    code, out, _ = run_check(capsys, *check_argv(source, target, "--json"))
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    assert sorted(line(report, "records orte")["missing"]) == sorted(
        f"orte {r['_system_object_id']} {r['_uuid']}" for r in lost)
    assert line(report, "users")["missing"] == [user["user"]["login"]]
    lost_file = f"{holder[0]} {holder[1]['_system_object_id']} {info['original_filename']}"
    assert line(report, "files")["missing"] == [lost_file]
    assert line(report, "versions orte")["missing_count"] == sum(len(r["versions"]) for r in lost)
    assert report["missing"] == sum(l["missing_count"] for l in report["lines"])
    assert {l["name"] for l in report["lines"] if l["missing_count"]} == {"records orte", "versions orte", "users",
                                                                          "files"}
    print(format_table(report))


# ----------------------------------------------------------------------------- what the backup left out on purpose

@pytest.mark.parametrize("left_out", [("--include", "^(orte|personen)$"), ("--max-count", "3")])
def test_left_out_on_purpose_is_accounted_with_the_manifest(capsys, make_sim, tmp_path, left_out):
    source, target, folder = migrated(capsys, make_sim, tmp_path, "easydb5", *left_out)
    code, out, err = run_check(capsys, *check_argv(source, target, "--manifest", folder / "manifest.json", "--json"))
    report = json.loads(out)
    assert code == 0, [(l["name"], l["missing"]) for l in report["lines"] if l["missing_count"]]
    assert line(report, "records bilder")["accounted"] == line(report, "records bilder")["source"] - \
        line(report, "records bilder")["target"] > 0

    code, out, _ = run_check(capsys, *check_argv(source, target, "--json"))
    report = json.loads(out)
    assert code == 1
    bilder = line(report, "records bilder")
    assert bilder["missing_count"] == bilder["source"] - bilder["target"] > 0 and bilder["accounted"] == 0
    assert line(report, "records orte")["missing_count"] == (0 if left_out[0] == "--include" else
                                                              line(report, "records orte")["source"] - 3)


# ----------------------------------------------------------------------------- bad input

def test_wrong_target_password_names_the_target(capsys, make_sim, tmp_path):
    source, target = make_sim("fylr"), make_sim("fylr", size="empty")
    log_file = tmp_path / "check.log"
    code, out, err = run_check(capsys, *check_argv(source, target, "--log", log_file, target_password="s3cr3t-pw"))
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("fylrmig: error: target: login as 'root'"), err
    assert "Traceback" not in err
    text = log_file.read_text()
    assert "--target-password ***" in text
    assert "s3cr3t-pw" not in err + text


def test_unreachable_source_names_the_source(capsys, make_sim, monkeypatch):
    target = make_sim("fylr", size="empty")
    monkeypatch.setenv("FYLRMIG_SOURCE_PASSWORD", "from-env-pw")
    argv = ["--source", f"http://127.0.0.1:{free_port()}", "--source-login", "root", "--target", target.api_url,
            "--target-login", "root", "--target-password", "admin", "--retry-max-count", "0"]
    code, out, err = run_check(capsys, *argv)
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("fylrmig: error: source: cannot reach"), err
    assert "from-env-pw" not in err and "Traceback" not in err


def test_missing_password_is_one_line(capsys, make_sim, monkeypatch):
    source = make_sim("fylr")
    monkeypatch.delenv("FYLRMIG_TARGET_PASSWORD", raising=False)
    code, _, err = run_check(capsys, "--source", source.api_url, "--source-login", "root", "--source-password",
                             "admin", "--target", source.api_url, "--target-login", "root")
    assert code == 1 and err.strip() == "fylrmig: error: missing --target-password"


# ----------------------------------------------------------------------------- the page's Check button

def test_the_status_page_checks_a_finished_restore_and_shows_the_report(capsys, make_sim, tmp_path):
    from tests.helpers import PAGE, Web
    source, target = make_sim("fylr"), make_sim("fylr", size="empty")
    folder = full_backup(capsys, source, tmp_path, name="data/backups/x")   # where the page finds it
    restore(capsys, folder, target, tmp_path, *RESTORE_FLAGS)
    web = Web(str(tmp_path / "data"))
    page = web.app.get(PAGE + "x")
    form = next(f for f in page.forms.values() if f.action.endswith("/x/check"))
    assert form["source"].value == source.url and form["target"].value == target.api_url
    assert form["source_login"].value == "root" and form["source_password"].value == ""   # never prefilled
    form["source_password"], form["target_password"] = "admin", "admin"
    answer = form.submit().follow()                   # the check ran inline (tests), its report is on the page
    assert "OK: nothing of the source is missing" in answer.text
    assert json.loads((folder / "check.json").read_text())["ok"] is True
    assert (folder / "check.txt").read_text().strip().endswith(json.loads((folder / "check.json").read_text())["verdict"])
    for path in ("check.json", "check.txt", "check.state.json", "check.log"):
        assert "admin" not in (folder / path).read_text(), path      # the passwords are kept nowhere
    live = web.app.get(PAGE + "x/live").json["Check"]
    assert live["State"] == "done" and "OK:" in live["Report"] and not live["Error"]
    # a wrong password is the check's failure, by side, on the page
    form = next(f for f in web.app.get(PAGE + "x").forms.values() if f.action.endswith("/x/check"))
    form["source_password"], form["target_password"] = "admin", "wrong"
    answer = form.submit().follow()
    assert web.app.get(PAGE + "x/live").json["Check"]["State"] == "failed"
    assert "target: " in web.app.get(PAGE + "x/live").json["Check"]["Error"]
    # a form without passwords starts nothing
    form = next(f for f in web.app.get(PAGE + "x").forms.values() if f.action.endswith("/x/check"))
    assert form.submit(expect_errors=True).status_int == 400
