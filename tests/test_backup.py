"""fylrmig backup against simulated easydb 5 and fylr sources: completeness, resume, faults, bad input."""
import json
import os
import re

import pytest

from tests.helpers import (NEVER_BACKED_UP, assert_one_line_error, backup, backup_argv, entries, expected_records,
                           kill_at_random_points, ledger_rows, manifest, normalized_payloads, payloads, plain,
                           records_by_sysid, reference, run_cli, run_cli_env, run_main, tree_digest)
from tests.simulator.faults import FaultPlan

FLAVOURS = ["easydb5", "fylr"]


# ----------------------------------------------------------------------------- completeness

def assert_records_complete(folder, sim, all_versions, include_deleted=False):
    got = records_by_sysid(folder)
    want = expected_records(sim, all_versions, include_deleted)
    assert set(got) == set(want)
    for sysid, (ot, versions) in want.items():
        entries_ = got[sysid]
        assert [e[ot]["_version"] for e in entries_] == list(range(1, len(versions) + 1))
        for stored, entry in zip(versions, entries_):
            assert entry["_objecttype"] == ot and entry["_mask"] == "_all_fields"
            assert entry["_uuid"] == sim.records[ot][sim.sysids[sysid][1]]["_uuid"]
            assert "_id" not in entry[ot] and "_global_object_id" not in entry
            assert_fields_equal(stored["fields"], entry[ot])


def assert_fields_equal(stored, body):
    for name, value in stored.items():
        if value is None:
            continue
        got = body[name]
        if plain(value):
            assert got == value, name
        elif isinstance(value, dict):          # link -> deferred lookup by system object id
            assert got[value["_objecttype"]]["lookup:_id"] == {"_system_object_id": value["_system_object_id"],
                                                               "_allow_defer": True}
        elif name.startswith("_nested:"):
            assert [r["_uuid"] for r in got] == [r["_uuid"] for r in value]
            for row, row_got in zip(value, got):
                assert_fields_equal({k: v for k, v in row.items() if k != "_uuid"}, row_got)
        else:                                  # file field
            assert [f["reference"].split(":")[-2] for f in got] == [str(f["_id"]) for f in value]
            assert [f["preferred"] for f in got] == [f["preferred"] for f in value]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("size", ["tiny", "small"])
def test_backup_holds_every_record_and_version(capsys, make_sim, tmp_path, flavour, size):
    server = make_sim(flavour, size=size)
    folder = backup(capsys, server, tmp_path, "--all-versions", "--chunk-size", "100", "--max-parallel", "4")
    assert_records_complete(folder, server.sim, all_versions=True)
    m = manifest(folder)
    assert m["source_instance"]["flavour"] == flavour and m["state"]["status"] == "done"
    assert m["has_passwords"] is True
    assert not os.path.exists(os.path.join(folder, ".spool"))


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_latest_only_backup_writes_version_one(capsys, make_sim, tmp_path, flavour):
    server = make_sim(flavour)
    folder = backup(capsys, server, tmp_path)
    assert_records_complete(folder, server.sim, all_versions=False)


def test_deleted_records_only_with_include_deleted(capsys, make_sim, tmp_path):
    server = make_sim("fylr")
    deleted = {r["_system_object_id"] for recs in server.sim.records.values() for r in recs.values()
               if r.get("deleted_at")}
    assert deleted
    folder = backup(capsys, server, tmp_path, "--all-versions", name="without")
    assert not deleted & set(records_by_sysid(folder))
    folder = backup(capsys, server, tmp_path, "--all-versions", "--include-deleted", name="with")
    assert_records_complete(folder, server.sim, all_versions=True, include_deleted=True)
    for sysid in deleted:
        assert records_by_sysid(folder)[sysid][0]["_latest_version_deleted_at"]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_basetypes_and_events(capsys, make_sim, tmp_path, flavour):
    server = make_sim(flavour)
    sim = server.sim
    folder = backup(capsys, server, tmp_path)
    users = {reference(u, "user") for u in sim.users.values() if not reference(u, "user").startswith("system:")}
    assert {u["user"]["reference"] for u in entries(folder, "user")} == users
    groups = {reference(g, "group") for g in sim.groups.values() if g["group"].get("type") != "system"}
    assert {g["group"]["reference"] for g in entries(folder, "group")} == groups
    pools = {reference(p, "pool") for p in sim.pools.values() if not reference(p, "pool").startswith("system:")}
    assert {p["pool"]["reference"] for p in entries(folder, "pool")} == pools
    tag_ids = {t["tag"]["_id"] for tg in sim.taggroups.values() for t in tg["_tags"]}
    assert {t["tag"]["_id"] for tg in entries(folder, "tags") for t in tg["_tags"]} == tag_ids
    colls = {reference(c, "collection") for c in sim.collections.values()
             if not reference(c, "collection").startswith("system:") and c["collection"].get("type") != "user"}
    assert {c["collection"]["reference"] for c in entries(folder, "collection")} == colls
    homes = {f"user:ref:{reference(sim.users[c['_owner']['user']['_id']], 'user')}" for c in sim.collections.values()
             if c["collection"].get("type") == "user"}
    parents = {c["collection"].get("lookup:_id_parent", {}).get("reference") for c in entries(folder, "collection")}
    assert parents & homes, "workfolders under home collections name them as the target will: user:ref:<reference>"
    assert not {p for p in parents if p and p.startswith(("user:login:", "user:id:"))}
    assert len(entries(folder, "message")) == len(sim.messages)
    want_events = [e["event"]["type"] for e in sorted(sim.events.values(), key=lambda e: e["event"]["_id"])
                   if e["event"]["type"] not in NEVER_BACKED_UP]
    assert [e["event"]["type"] for e in entries(folder, "event")] == want_events
    for user in entries(folder, "user"):
        for group in user["_groups"]:
            assert group["group"]["lookup:_id"]["reference"] in groups


def test_payloads_are_ordered_parents_first(capsys, make_sim, tmp_path):
    server = make_sim("fylr")
    folder = backup(capsys, server, tmp_path, "--all-versions", "--chunk-size", "5")
    order = [e["_system_object_id"] for e in entries(folder, "db")]
    seen = set()
    level_ordered = [e for name, env in payloads(folder) if env["import_type"] == "db"
                     and "__step_" not in name and "__history_" not in name for e in env["objects"]]
    for entry in level_ordered:
        body = entry[entry["_objecttype"]]
        parent = body.get("lookup:_id_parent")
        if parent and body["_version"] == 1:
            assert parent["_system_object_id"] in seen, "child before its parent"
        seen.add(entry["_system_object_id"])
    assert len(order) > 5
    names = manifest(folder)["payloads"]
    assert names == sorted(names), "ls order must equal restore order"


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("mode", ["original", "with-versions"])
def test_include_files_packs_real_bytes(capsys, make_sim, tmp_path, flavour, mode):
    server = make_sim(flavour)
    sim = server.sim
    folder = backup(capsys, server, tmp_path, "--include-files", mode, "--compression", "9")
    packed = 0
    for entry in entries(folder, "db"):
        for value in entry[entry["_objecttype"]].values():
            if not (isinstance(value, list) and value and "eas:url" in value[0]):
                continue
            for f in value:
                info = sim.files[int(f["reference"].split(":")[-2])]
                for version, meta in f["versions"].items():
                    if info["leave"] and version == "original" or (mode == "original" and version != "original"):
                        assert "path" not in meta
                        continue
                    with open(os.path.join(folder, meta["path"]), "rb") as fh:
                        assert fh.read() == info["versions"][version]
                    packed += 1
    assert packed > 10
    if flavour == "fylr":
        assert any(f["leave"] for f in sim.files.values())


# ----------------------------------------------------------------------------- resume

def test_kill_9_then_continue_equals_uninterrupted(capsys, make_sim, tmp_path):
    server = make_sim("fylr", size="small", faults=FaultPlan(seed=5, latency=0.004))
    reference_folder = backup(capsys, server, tmp_path, "--all-versions", "--include-files", "with-versions",
                              "--chunk-size", "50", name="reference")
    folder, data = str(tmp_path / "killed"), str(tmp_path / "data")
    argv = backup_argv(server, folder, data, "--all-versions", "--include-files", "with-versions",
                       "--chunk-size", "50", "--max-parallel", "3")
    kills = kill_at_random_points(argv, [], seed=11, low=0.4, high=2.0)
    assert kills >= 2, "the backup finished before it could be killed: make the simulator slower"
    result = run_cli(*argv, "--continue")
    assert result.returncode == 0, result.stderr
    assert "continuing: skipping" in result.stdout
    assert normalized_payloads(folder) == normalized_payloads(reference_folder)
    assert tree_digest(folder) == tree_digest(reference_folder)
    assert not [n for n in os.listdir(folder) if n.startswith(".tmp-")]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_sources_without_a_count_are_read_several_pages_at_a_time_and_nothing_past_the_end_is_kept(
        capsys, make_sim, tmp_path, flavour):
    """Users, messages and events have no count: with --max-parallel 4 their pages are asked for four at a
    time. The backup holds exactly what one page after the other gives, nothing twice; the pages asked for
    past the end leave a ledger row but no spooled page."""
    server = make_sim(flavour, size="small")
    one = backup(capsys, server, tmp_path, "--chunk-size", "7", "--max-parallel", "1", name="one")
    four = backup(capsys, server, tmp_path, "--chunk-size", "7", "--max-parallel", "4", name="four")
    assert normalized_payloads(four) == normalized_payloads(one)
    events = entries(four, "event")
    assert len(events) > 3 * 7 and len({json.dumps(e, sort_keys=True) for e in events}) == len(events)
    asked = [int(key.rsplit("@", 1)[1]) for (key,) in ledger_rows(
        tmp_path / "data", "SELECT key FROM chunks WHERE key LIKE 'fetch/event@%' AND job_id = "
                           "(SELECT id FROM jobs WHERE dir = ?)", str(four))]
    assert max(asked) > len(events) // 7 * 7, "the pages past the end were asked for side by side"


def done_at(data_dir, folder, prefix):
    """updated_at of the done ledger chunks whose key starts with prefix."""
    return [t for (t,) in ledger_rows(data_dir, "SELECT updated_at FROM chunks WHERE state = 'done' AND key LIKE ? "
                                                "AND job_id = (SELECT id FROM jobs WHERE dir = ?)", prefix + "%",
                                      str(folder))]


def test_read_ahead_keeps_to_max_parallel_and_changes_nothing(capsys, make_sim, tmp_path):
    """At --max-parallel 3 the basetypes are read side by side and the collections, publish records and
    events while the records are: the source sees 3 requests at once and never more, events and collection
    object lists came in before the last record page (record pages take 30 ms here: the record phase is
    long, and its pages take the slots they free first), and the backup holds what one request after the
    other gives."""
    server = make_sim("fylr", size="small", faults=FaultPlan(latency=0.03, only_prefixes=("/api/v1/db/",)))
    one = backup(capsys, server, tmp_path, "--all-versions", "--chunk-size", "20", "--max-parallel", "1",
                 name="one")
    server.in_flight.most = 0
    three = backup(capsys, server, tmp_path, "--all-versions", "--chunk-size", "20", "--max-parallel", "3",
                   name="three")
    assert server.in_flight.most == 3
    assert normalized_payloads(three) == normalized_payloads(one)
    data = tmp_path / "data"
    last_record_page = max(done_at(data, three, "fetch/db/"))
    assert min(done_at(data, three, "fetch/event@")) < last_record_page
    assert min(done_at(data, three, "fetch/collection_objects@")) < last_record_page


def test_a_read_ahead_that_fails_ends_the_backup_in_one_line_and_continue_finishes_it(capsys, make_sim, tmp_path):
    """The events, read in the background, are refused: the backup stops at once, failed, naming that request
    (not the cancel the failure sent to the other threads), and --continue reads the rest to the same backup
    as an unbroken run."""
    plan = FaultPlan(error_rate=1.0, only_prefixes=("/api/v1/event",))
    server = make_sim("fylr", size="small", faults=plan)
    argv = backup_argv(server, tmp_path / "b", tmp_path / "data", "--all-versions", "--max-parallel", "4",
                       "--retry-max-count", "0")
    assert_one_line_error(run_cli(*argv), "/api/v1/event/list")
    assert manifest(tmp_path / "b")["state"]["status"] == "failed"
    plan.error_rate = 0.0
    result = run_cli(*argv, "--continue")
    assert result.returncode == 0, result.stderr[-2000:]
    reference_folder = backup(capsys, server, tmp_path, "--all-versions", name="reference")
    assert normalized_payloads(tmp_path / "b") == normalized_payloads(reference_folder)


def test_a_basetype_refused_while_others_are_read_beside_it_is_the_error_reported(capsys, make_sim, tmp_path):
    """At --max-parallel 4 the basetypes are read side by side: the messages are refused while the users'
    pages are still coming. The job stops its other reads and names the refused request, not the cancel
    that stopped the users (which come first in payload order)."""
    plan = FaultPlan(error_rate=1.0, only_prefixes=("/api/v1/message",))
    server = make_sim("fylr", size="small", faults=plan)
    result = run_cli(*backup_argv(server, tmp_path / "b", tmp_path / "data", "--chunk-size", "2",
                                  "--max-parallel", "4", "--retry-max-count", "0"))
    assert_one_line_error(result, "/api/v1/message")
    assert "cancelled" not in result.stderr


def test_continue_refuses_changed_parameters(capsys, make_sim, tmp_path):
    server = make_sim("easydb5")
    backup(capsys, server, tmp_path)
    code, _, err = run_main(capsys, *backup_argv(server, tmp_path / "b", tmp_path / "data", "--continue",
                                                 "--all-versions"))
    assert code == 1 and "all_versions was False, now True" in err


# ----------------------------------------------------------------------------- faults

@pytest.mark.parametrize("flavour", FLAVOURS)
def test_backup_survives_5xx_drops_and_token_expiry(capsys, make_sim, tmp_path, flavour):
    plan = FaultPlan(seed=7, error_rate=0.10, drop_rate=0.02, expire_tokens_after=40)
    server = make_sim(flavour, faults=plan)
    log_path = tmp_path / "backup.log"
    folder = backup(capsys, server, tmp_path, "--all-versions", "--chunk-size", "10", "--log", log_path,
                    "--include-files", "original")
    assert plan.errors > 3 and plan.token_expiries == 1
    server.faults.error_rate = server.faults.drop_rate = 0
    assert_records_complete(folder, server.sim, all_versions=True)
    text = log_path.read_text()
    assert text.count("retry ") >= plan.errors
    assert "--password ***" in text and "admin" not in text
    assert "logging in again" in text


def test_token_expiry_never_yields_an_empty_group_list(capsys, make_sim, tmp_path):
    """fylr answers GET /group with 200 [] for a dead token: the backup must notice, not write no groups."""
    # requests: token, schema, mask, l10n, config, plugin, tags, then the token dies right before GET /group
    plan = FaultPlan(seed=1, expire_tokens_after=7)
    server = make_sim("fylr", faults=plan)
    folder = backup(capsys, server, tmp_path)
    assert plan.token_expiries == 1
    assert len(entries(folder, "group")) == len([g for g in server.sim.groups.values()
                                                 if g["group"].get("type") != "system"])


# ----------------------------------------------------------------------------- bad input

def test_bad_inputs_give_one_line_and_write_nothing(make_sim, tmp_path):
    e5 = make_sim("easydb5")
    data = tmp_path / "data"
    folder = tmp_path / "b"
    cases = [
        (backup_argv(e5, folder, data, "--include", "bil(der"), "invalid regular expression"),
        (backup_argv(e5, folder, data, "--chunk-size", "5000"), "too large for an easydb 5 source"),
        (["backup", "--server", "http://127.0.0.1:9/api/v1", "--login", "root", "--password", "admin",
          "--dir", folder, "--data", data], "cannot reach http://127.0.0.1:9"),
        (["backup", "--server", e5.api_url, "--login", "root", "--password", "wrong", "--dir", folder,
          "--data", data], "login as 'root'"),
        (["backup", "--server", "ftp://x", "--login", "root", "--password", "p", "--dir", folder, "--data", data],
         "--server must be an http(s) URL"),
        (backup_argv(e5, folder, data, "--purge", "--continue"), "mutually exclusive"),
        (backup_argv(e5, folder, data, "--compression", "12"), "--compression 12 is out of range"),
    ]
    for argv, fragment in cases:
        result = run_cli(*argv)
        assert_one_line_error(result, fragment, secrets=("admin", "wrong"))
        assert not folder.exists(), f"{fragment}: wrote the backup folder"


def test_unwritable_dir_and_existing_folder(capsys, make_sim, tmp_path):
    server = make_sim("fylr")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli(*backup_argv(server, blocker / "sub", tmp_path / "data"))
    assert_one_line_error(result, "cannot write backup folder")
    backup(capsys, server, tmp_path)
    result = run_cli(*backup_argv(server, tmp_path / "b", tmp_path / "data"))
    assert_one_line_error(result, "use --continue to resume or --purge to start over")


def test_purge_starts_over(capsys, make_sim, tmp_path):
    server = make_sim("easydb5")
    folder = backup(capsys, server, tmp_path, "--compression", "1")
    first = manifest(folder)["payloads"]
    assert all(n.endswith(".json.gz") for n in first)
    folder = backup(capsys, server, tmp_path, "--purge")
    assert all(n.endswith(".json") for n in manifest(folder)["payloads"])
    assert not [n for n in os.listdir(folder) if n.endswith(".gz")]


# ----------------------------------------------------------------------------- verify, ledger, secrets

def test_verify_names_missing_and_damaged_payloads(capsys, make_sim, tmp_path):
    server = make_sim("fylr")
    folder = backup(capsys, server, tmp_path, "--include-files", "original")
    verify = ["backup", "--verify", "--dir", folder, "--data", tmp_path / "data"]
    assert run_main(capsys, *verify)[0] == 0
    names = manifest(folder)["payloads"]
    os.unlink(os.path.join(folder, names[2]))
    with open(os.path.join(folder, names[5]), "ab") as fh:
        fh.write(b" ")
    code, out, err = run_main(capsys, *verify)
    assert code == 1
    assert f"{names[2]}: missing" in err and f"{names[5]}: damaged" in err


def test_ledger_rows_and_no_secrets_anywhere(capsys, make_sim, tmp_path):
    server = make_sim("fylr")
    folder = backup(capsys, server, tmp_path, "--client-secret", "s3cr3t-value", "--log", tmp_path / "x.log")
    data = tmp_path / "data"
    (job,) = ledger_rows(data, "SELECT state, params FROM jobs")
    assert job[0] == "done" and json.loads(job[1])["password"] == "***"
    states = dict(ledger_rows(data, "SELECT state, COUNT(*) FROM chunks GROUP BY state"))
    assert set(states) == {"done"} and states["done"] > 10
    for name, sha in ledger_rows(data, "SELECT json_extract(output, '$.payloads'), sha256 FROM chunks "
                                       "WHERE key LIKE 'emit/%'"):
        assert name is not None
    haystacks = [(tmp_path / "data" / "jobs.sqlite").read_bytes(), (tmp_path / "x.log").read_bytes(),
                 open(os.path.join(folder, "manifest.json"), "rb").read()]
    for hay in haystacks:
        assert b"admin" not in hay and b"s3cr3t-value" not in hay


def test_credentials_in_the_server_url_log_in_and_are_never_stored(capsys, make_sim, tmp_path):
    """restore.md's http://<login>:<password>@host form: used for the login, kept nowhere."""
    server = make_sim("easydb5")
    url = server.api_url.replace("http://", "http://root:s3cr3t-in-url@")
    server.sim.passwords["root"] = "s3cr3t-in-url"
    folder = tmp_path / "b"
    code, _, err = run_main(capsys, "backup", "--server", url, "--dir", folder, "--data", tmp_path / "data",
                            "--log", tmp_path / "b.log")
    assert code == 0, err
    for path in (folder / "manifest.json", tmp_path / "data" / "jobs.sqlite", tmp_path / "b.log"):
        assert b"s3cr3t-in-url" not in path.read_bytes(), path
    assert manifest(folder)["source_instance"]["url"] == server.url


def replay_steps_of(folder):
    """[(step group, entries)] of the history replays in payload order (batches of a step joined)."""
    steps = {}
    for name, env in payloads(folder):
        if "__step_" in name:
            steps.setdefault(re.sub(r"^\d+__|__batch_\d+\.json$", "", name), []).extend(env["objects"])
    return list(steps.items())


def tree_loops(parent_of):
    """Records that lie on a loop of the tree parent_of describes."""
    looped = set()
    for start in parent_of:
        seen, node = [], start
        while node is not None and node not in seen:
            seen.append(node)
            node = parent_of.get(node)
        if node is not None:
            looped.add(node)
    return looped


def test_a_table_with_a_unique_column_replays_its_history_in_steps(capsys, make_sim, tmp_path):
    """orte.code is unique: version 1 of every record before any version 2 would hold a code twice. Its history
    goes out in steps whose versions the target may save in any order (their batches go out side by side):
    a record at most once per step and its versions in order, no code taken that another record still
    holds when the step begins or that two versions of the step take, no loop in the tree after a step;
    and far fewer steps than one batch after the other in time order needed."""
    server = make_sim("fylr", size="small")
    folder = backup(capsys, server, tmp_path, "--all-versions", "--chunk-size", "7")
    steps = replay_steps_of(folder)
    assert steps and {group.split("__")[1] for group, _ in steps} == {"orte"}
    versions, code_of, parent_of = {}, {}, {}          # sysid -> version posted so far / its code / parent now
    for group, objects in steps:
        assert len({e["_system_object_id"] for e in objects}) == len(objects), group
        taken = [e["orte"].get("code") for e in objects
                 if e["orte"].get("code") is not None and e["orte"].get("code") != code_of.get(e["_system_object_id"])]
        assert len(taken) == len(set(taken)), f"{group}: two versions take one code"
        for entry in objects:
            sysid, body = entry["_system_object_id"], entry["orte"]
            assert body["_version"] == versions.get(sysid, 0) + 1, "a record's versions in order"
            code = body.get("code")
            if code is not None and code != code_of.get(sysid):
                assert code not in {c for s, c in code_of.items() if s != sysid}, f"{group}: {code} still held"
        for entry in objects:
            sysid, body = entry["_system_object_id"], entry["orte"]
            versions[sysid], code_of[sysid] = body["_version"], body.get("code")
            parent_of[sysid] = (body.get("lookup:_id_parent") or {}).get("_system_object_id")
        assert not tree_loops(parent_of), group
    stored = {r["_system_object_id"]: len(r["versions"]) for r in server.sim.records["orte"].values()
              if not r.get("deleted_at")}
    assert versions == stored
    assert max(stored.values()) <= len(steps) < sum(stored.values()) / 7 / 3


def test_a_replay_whose_steps_go_out_side_by_side_restores_every_version(capsys, make_sim, tmp_path):
    """The steps' batches (and the restore's smaller chunks of them) sent on 4 connections, unique codes
    enforced by the target: every version arrives, as in the source."""
    from tests.helpers import restore
    source, target = make_sim("fylr", size="small"), make_sim("fylr", size="empty")
    folder = backup(capsys, source, tmp_path, "--all-versions", "--chunk-size", "7")
    assert any(len(objects) > 7 for _, objects in replay_steps_of(folder)), "no step with several batches"
    restore(capsys, folder, target, tmp_path, "--purge", "--max-parallel", "4", "--chunk-size", "3")
    for sysid, (ot, oid) in source.sim.sysids.items():
        record = source.sim.records[ot][oid]
        if ot != "orte" or record.get("deleted_at"):
            continue
        got = target.sim.records["orte"][target.sim.sysids[sysid][1]]
        assert [v["fields"].get("code") for v in got["versions"]] == \
            [v["fields"].get("code") for v in record["versions"]]


def test_a_replay_spooled_by_an_older_fylrmig_goes_out_one_batch_after_the_other(capsys, make_sim, tmp_path):
    """A backup killed after the last page of orte and continued by this fylrmig on a spool whose index has
    no unique values (an older fylrmig wrote it): the history comes out as before, in time order one batch
    after the other (history_<n>), and a restore on 4 connections sends those one after the other too."""
    from tests.helpers import restore
    source, target = make_sim("fylr", size="small"), make_sim("fylr", size="empty")
    reference_folder = backup(capsys, source, tmp_path, "--all-versions", "--chunk-size", "7",
                              "--max-parallel", "1", name="reference")
    pages = [key for (key,) in ledger_rows(tmp_path / "data", "SELECT key FROM chunks WHERE key LIKE 'fetch/%' "
                                           "AND job_id = (SELECT id FROM jobs WHERE dir = ?) ORDER BY rowid",
                                           str(reference_folder))]
    last_of_orte = max(n for n, key in enumerate(pages, 1) if key.startswith("fetch/db/orte@"))
    folder, data = tmp_path / "older", tmp_path / "data-older"
    argv = backup_argv(source, folder, data, "--all-versions", "--chunk-size", "7", "--max-parallel", "1")
    killed = run_cli_env({"FYLRMIG_CRASH_AT": f"page-done:{last_of_orte}"}, *argv)
    assert killed.returncode == -9, killed.stderr
    index = folder / ".spool" / "emit-db__orte" / "index"
    lines = index.read_bytes().splitlines()
    assert lines and all(len(json.loads(line)) == 8 for line in lines)
    # the same lengths (the ledger's stream state knows the file's size): spaces where the values were
    index.write_bytes(b"".join(json.dumps(json.loads(line)[:7]).encode().ljust(len(line)) + b"\n" for line in lines))
    result = run_cli(*argv, "--continue")
    assert result.returncode == 0, result.stderr
    history = [(name, env["objects"]) for name, env in payloads(folder) if "__db__orte__" in name]
    assert history and all("__history_" in name and len(objects) <= 7 for name, objects in history)
    assert not [name for name, _ in payloads(folder) if "__step_" in name]
    restore(capsys, folder, target, tmp_path, "--purge", "--max-parallel", "4", "--chunk-size", "3")
    for sysid, (ot, oid) in source.sim.sysids.items():
        record = source.sim.records[ot][oid]
        if ot == "orte" and not record.get("deleted_at"):
            assert len(target.sim.records["orte"][target.sim.sysids[sysid][1]]["versions"]) == len(record["versions"])


def test_a_kill_after_a_page_that_finished_a_batch_continues_without_a_gap(capsys, make_sim, tmp_path):
    """The page after the last recorded one filled a batch and began the next line file when the kill came:
    the continued run must take the lines of the recorded state from the finished batch, not fill the
    shorter new line file up with zeros (payloads with NUL bytes in the middle, found by a kill test)."""
    server = make_sim("fylr", size="small")
    reference_folder = backup(capsys, server, tmp_path, "--all-versions", "--chunk-size", "7", name="reference")
    for n in (35, 38):   # pages of the second objecttype whose version groups end a batch mid-page
        folder, data = tmp_path / f"killed{n}", tmp_path / f"data{n}"
        argv = backup_argv(server, folder, data, "--all-versions", "--chunk-size", "7", "--max-parallel", "1")
        killed = run_cli_env({"FYLRMIG_CRASH_AT": f"page-spooled:{n}"}, *argv)
        assert killed.returncode == -9, killed.stderr
        result = run_cli(*argv, "--continue")
        assert result.returncode == 0, result.stderr
        assert normalized_payloads(folder) == normalized_payloads(reference_folder)
