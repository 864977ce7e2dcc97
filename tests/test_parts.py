"""The engines' collaborators on their own, without HTTP (issue 11): the backup's transforms, the rename
list's one parser, per-key locks, the one boolean reader. Each is the real class of fylrmig.py, given a
real job that has not connected to anything."""
import copy
import json
import threading
import time

import pytest

import fylrmig


@pytest.fixture
def transforms(tmp_path):
    """BackupTransforms of a backup job that has not connected (no api): what it does needs none."""
    args = fylrmig.args_for("backup", {"server": "http://source.invalid", "login": "root", "password": "x",
                                       "dir": str(tmp_path / "b"), "data": str(tmp_path / "data")})
    job = fylrmig.BackupJob(args, fylrmig.Ledger(str(tmp_path / "jobs.sqlite")))
    return job.transforms


def test_users_get_the_fallback_reference_their_groups_by_reference_and_easydb5_mail_and_hashes(transforms):
    transforms.transform_group([{"_basetype": "group", "group": {"_id": 5, "reference": "editors"}},
                                {"_basetype": "group", "group": {"_id": 6, "type": "system"}}])
    users = transforms.transform_user([{
        "_basetype": "user", "user": {"_id": 7, "login": "jdoe", "type": "easydb"},
        "_groups": [{"_basetype": "group", "group": {"_id": 5}}, {"_basetype": "group", "group": {"_id": 6}}],
        "_emails": [{"email": "old@example.com"}, {"email": "j@example.com", "is_primary": True}],
        "_password_insecure_hash": "abc", "_password_insecure_hash_method": "md5"}])
    user = users[0]
    assert user["user"]["reference"] == "user:7" and "_id" not in user["user"]       # parameters.md 7.1
    assert user["user"]["email"] == "j@example.com" and "_emails" not in user
    assert user["_password_hash"] == "md5:abc" and transforms.has_passwords
    # a system group is referenced on every instance, never created, and no membership points at it
    assert user["_groups"] == [{"_basetype": "group", "group": {"lookup:_id": {"reference": "editors"}}}]
    assert transforms.new_refs["user"] == {"7": "user:7"}


def test_a_system_group_is_left_out_and_a_group_keeps_its_own_reference(transforms):
    out = transforms.transform_group([{"_basetype": "group", "group": {"_id": 5, "reference": "editors"}},
                                      {"_basetype": "group", "group": {"_id": 6, "type": "system"}}])
    assert [g["group"]["reference"] for g in out] == ["editors"] and out[0]["group"]["_version"] == 1


def test_pools_name_their_parents_by_reference_and_home_collections_their_users(transforms):
    transforms.refs = {"user": {"7": "jdoe"}}
    pools = transforms.transform_pool([
        {"_basetype": "pool", "pool": {"_id": 1, "reference": "system:root", "is_system_pool": True}},
        {"_basetype": "pool", "pool": {"_id": 9, "_id_parent": 1, "name": {"en-US": "Photos"}}}])
    assert [p["pool"]["reference"] for p in pools] == ["pool:9"] and pools[0]["__parent"] == 1
    home = {"_basetype": "collection", "_owner": {"_basetype": "user", "user": {"_id": 7}},
            "collection": {"_id": 3, "type": "user", "reference": "user:login:jdoe"}}
    assert transforms.transform_collection([home]) == []       # made by the target with its user
    assert transforms.ref("collection", 3) == "user:ref:jdoe"   # lookups.en.md: named after the restored user


def test_right_presets_and_transitions_name_pools_by_reference_and_objecttypes_by_name(transforms):
    transforms.refs = {"pool": {"9": "photos"}, "user": {"7": "jdoe"}, "group": {"5": "editors"}}
    transforms.objecttype_name_of = {3: "bilder"}
    presets = transforms.transform_right_preset([{"_basetype": "right_preset", "right_preset": {
        "_id": 4, "_version": 3, "displayname": {"en-US": "Read"},
        "preset": {"rights": {"read": {"pool_ids": [9], "objecttype_ids": [3, 8]}}}}}])
    preset = presets[0]["right_preset"]
    assert "_id" not in preset and preset["_version"] == 1
    assert preset["preset"]["rights"]["read"] == {"lookup:pool_ids": ["photos"],
                                                  "lookup:objecttype_ids": ["bilder", "objecttype:8"]}
    transitions = transforms.transform_transition([{"_id": 2, "type": "process", "objecttype_ids": [3],
                                                    "who": [{"_basetype": "user", "user": {"_id": 7}},
                                                            {"_basetype": "group", "group": {"_id": 5}}]}])
    assert transitions == [{"type": "process", "lookup:objecttype_ids": ["bilder"],
                            "who": [{"_basetype": "user", "user": {"lookup:_id": {"reference": "jdoe"}}},
                                    {"_basetype": "group", "group": {"lookup:_id": {"reference": "editors"}}}]}]


def test_xml_mappings_keep_their_source_id_and_name_their_objecttype(transforms):
    transforms.objecttype_name_of = {3: "bilder"}
    out = transforms.transform_mapping([{"id": 11, "idTable": 3, "profile": "exiftool.yml",
                                         "displayname": {"en-US": "IPTC"}}])
    assert out == [{"profile": "exiftool.yml", "displayname": {"en-US": "IPTC"}, "_fylrmig_source_id": 11,
                    "_fylrmig_objecttype": "bilder"}]


@pytest.mark.parametrize("text, renames", [
    ("", {}),
    ("image.preview:640px, video.full:", {("image", "preview"): "640px", ("video", "full"): ""}),
])
def test_the_rename_list_has_one_parser_and_one_formatter(text, renames):
    assert fylrmig.parse_rename_versions(text) == renames
    assert fylrmig.parse_rename_versions(fylrmig.format_rename_versions(renames)) == renames
    assert fylrmig.rename_rows(text)[:-1] == [(c, v, n) for (c, v), n in renames.items()]


@pytest.mark.parametrize("text, message", [
    ("image-preview", "is not <class>.<version>:<new version>"),
    ("image.preview:a,image.preview:b", "renamed twice"),
    ("im age.preview:a", "file class"),
    ("image.pre view:a", "may not contain"),
])
def test_a_bad_rename_list_is_refused_by_the_same_rules_everywhere(text, message):
    with pytest.raises(fylrmig.FylrmigError, match=message):
        fylrmig.parse_rename_versions(text)
    rows = [tuple(term.replace(".", ":", 1).split(":")) for term in text.split(",") if "." in term and ":" in term]
    if rows:   # the page's table goes through the same check
        with pytest.raises(fylrmig.FylrmigError, match=message):
            fylrmig.rename_rows_text(*zip(*rows))


def test_keyed_locks_give_one_lock_per_key():
    locks = fylrmig.KeyedLocks()
    assert locks("a") is locks("a") and locks("a") is not locks("b")
    seen = []

    def take():
        seen.append(locks(("file", 1)))
    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(lock) for lock in seen}) == 1


@pytest.mark.parametrize("text, value", [("yes", True), ("on", True), ("1", True), ("", False), ("off", False)])
def test_one_boolean_reader_for_the_command_line_and_the_page(text, value):
    assert fylrmig.parse_bool(text) is value and fylrmig.web_bool(text) is value


# ----------------------------------------------------------------------------- restore collaborators

@pytest.fixture
def restore_job(tmp_path):
    """A RestoreJob connected to a counting simulated fylr, with a job row, but never run."""
    from tests.conftest import generated_instance
    from tests.simulator.server import serve
    server = serve(generated_instance("fylr", 1, "tiny"), count_requests=True)
    args = fylrmig.args_for("restore", {"server": server.url, "login": "root", "password": "admin",
                                        "manifest": str(tmp_path / "b" / "manifest.json"),
                                        "data": str(tmp_path / "data"), "retry_sleep_between": 0})
    job = fylrmig.RestoreJob(args, fylrmig.Ledger(str(tmp_path / "jobs.sqlite")))
    job.api = fylrmig.make_api(args)
    job.api.connect()
    job.job_id = job.ledger.create_job("b", "restore", str(tmp_path / "b"), {}, {})
    yield job, server
    server.shutdown()


def requests_of(server, kind):
    import requests
    return requests.get(server.url + "/__requests__").json().get(kind, 0)


def test_target_ids_ask_the_target_once_per_kind_and_keep_what_they_found(restore_job):
    job, server = restore_job
    users = {u["user"].get("reference"): uid for uid, u in server.sim.users.items() if u["user"].get("reference")}
    reference, uid = sorted(users.items())[0]
    before = requests_of(server, "GET /api/v1/user")
    assert job.target_ids.target_id("user", reference) == uid
    assert job.target_ids.target_id("user", "nobody-has-this") is None    # not read again for a miss
    assert requests_of(server, "GET /api/v1/user") - before >= 1
    after = requests_of(server, "GET /api/v1/user")
    job.target_ids.forget("user")                                         # read again from the ledger only
    assert job.target_ids.target_id("user", reference) == uid
    assert requests_of(server, "GET /api/v1/user") == after
    assert job.ledger.ids(job.job_id, "user")[reference] == str(uid)


def test_id_lists_become_the_targets_ids_and_a_missing_entry_is_named(restore_job):
    job, server = restore_job
    pools = {p["pool"].get("reference"): pid for pid, p in server.sim.pools.items() if p["pool"].get("reference")}
    objecttypes = {o["objecttype"]["name"]: o["objecttype"]["_id"] for o in server.sim.objecttypes}
    ref = sorted(r for r in pools if not r.startswith("system:"))[0]
    value = {"rights": {"read": {"lookup:pool_ids": [ref, "gone"], "lookup:objecttype_ids": ["bilder"]}}}
    out = job.extras.target_id_lists(value, "right preset Read (object)")
    assert out["rights"]["read"] == {"pool_ids": [pools[ref]], "objecttype_ids": [objecttypes["bilder"]]}
    named = job.ledger.ids(job.job_id, "not_restored")
    assert named == {"right preset Read (object): pool gone": "the pool is not in the target"}


def test_a_paced_helper_prepares_only_in_the_turns_it_is_given_and_hands_over_its_error():
    """prepared_ahead with a Pacer: the generator advances once per turn (a request on its way, or the
    consumer waiting for it), never more than `depth` ahead; an error it raises reaches the consumer."""
    advanced = []

    def chunks():
        for n in range(5):
            advanced.append(n)
            yield n
        raise ValueError("payload 5 is damaged")

    pacer = fylrmig.Pacer(patience=5)
    ready = fylrmig.prepared_ahead(chunks(), depth=2, pacer=pacer)
    time.sleep(0.2)
    assert advanced == []
    assert next(ready) == 0                   # the consumer waits: that is the helper's turn
    time.sleep(0.2)
    assert advanced == [0], "no turn, no work"
    pacer.turn()                              # a request goes out
    time.sleep(0.2)
    assert advanced == [0, 1]
    taken = [next(ready) for _ in range(4)]   # the rest, each fetched in a turn the consumer's wait gives
    assert taken == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="payload 5 is damaged"):
        next(ready)


def test_groups_take_their_items_from_one_shared_helper_in_order():
    shared = fylrmig.TakeWhile(iter([("v1", 1), ("v1", 2), ("v2", 3), ("v3", 4), ("v3", 5)]))
    assert [n for _, n in shared.take(lambda item: item[0] == "v1")] == [1, 2]
    assert [n for _, n in shared.take(lambda item: item[0] == "v2")] == [3]
    assert [n for _, n in shared.take(lambda item: item[0] == "v3")] == [4, 5]
    assert list(shared.take(lambda item: True)) == []


def _waves(*groups):
    run = [[f"{n:04d}__{group}__batch_0001.json"] for n, group in enumerate(groups, 1)]
    return [[fylrmig.payload_group(members[0]) for members in wave] for wave in fylrmig.record_waves(run)]


def test_record_groups_go_out_in_waves_of_one_group_per_objecttype_in_each_objecttypes_order():
    assert _waves("db__a__deleted__v1", "db__b__deleted__v1", "db__a__v1", "db__a__v2", "db__b__step_0001",
                  "db__b__step_0002", "db__b__step_0003", "db__c") == [
        ["db__a__deleted__v1"], ["db__b__deleted__v1"],            # posted and trashed before any live record
        ["db__a__v1", "db__b__step_0001", "db__c"], ["db__a__v2", "db__b__step_0002"], ["db__b__step_0003"]]
    assert _waves("db__a__level_00", "db__a__level_01", "db__b") == [["db__a__level_00", "db__b"],
                                                                      ["db__a__level_01"]]


def test_a_run_with_an_older_backups_history_or_deleted_records_after_live_ones_keeps_its_order():
    assert _waves("db__a__v1", "db__b__history_0001", "db__b__history_0002") == [
        ["db__a__v1"], ["db__b__history_0001"], ["db__b__history_0002"]]
    assert _waves("db__a__v1", "db__b__deleted__v1", "db__b__v1") == [["db__a__v1"], ["db__b__deleted__v1"],
                                                                      ["db__b__v1"]]
    assert _waves("plugin") == [["plugin"]]


def test_the_bookkeeper_writes_only_in_the_helpers_turn_flush_waits_for_every_write_and_an_error_reaches_the_job():
    """Bookkeeper: later() only queues (the main thread is not interrupted between two requests); the
    writes run in order in the next turn of the helper that prepares the chunks, before it prepares;
    flush() returns once every queued write is done; a failed write is raised at the main thread's next
    later() or flush()."""
    written = []
    pacer = fylrmig.Pacer(patience=5)
    keeper = fylrmig.Bookkeeper()

    def chunks():
        for n in range(3):
            written.append(f"prepared {n}")
            yield n
    helper = fylrmig.prepared_ahead(chunks(), 1, pacer, keeper.write_queued)
    assert next(helper) == 0                       # waiting for the helper is a turn
    keeper.later(lambda: written.append("row 1"))
    keeper.later(lambda: written.append("row 2"))
    keeper.release([{"record": n} for n in range(100)])
    time.sleep(0.2)
    assert "row 1" not in written, "no turn, no write"
    pacer.turn()                                   # the next request goes out
    time.sleep(0.2)
    assert written == ["prepared 0", "row 1", "row 2", "prepared 1"]
    keeper.later(lambda: written.append("row 3"))
    keeper.flush()                                 # the next group reads the rows: flush writes what is left
    assert written[-1] == "row 3"
    helper.close()

    def broken():
        raise OSError("disk full")
    keeper.later(broken)
    keeper.later(lambda: written.append("row 5"))
    with pytest.raises(OSError, match="disk full"):
        keeper.flush()
    with pytest.raises(OSError, match="disk full"):
        keeper.later(lambda: written.append("row 6"))
    assert "row 5" not in written and "row 6" not in written


def test_a_session_reads_proxies_from_the_environment_once_per_host(monkeypatch):
    """requests would walk the environment for every request; fylrmig's session asks once per host, with
    the same answer requests gives (proxies, no_proxy)."""
    import requests
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "inside.example")
    session = fylrmig.environment_once_session(requests)
    outside = session.merge_environment_settings("https://fylr.example/api/v1/db", {}, True, None, None)
    inside = session.merge_environment_settings("https://inside.example/api/v1/db", {}, True, None, None)
    plain = requests.Session().merge_environment_settings("https://fylr.example/api/v1/db", {}, True, None, None)
    assert outside["proxies"] == plain["proxies"] and outside["proxies"]["https"] == "http://proxy.example:3128"
    assert "https" not in inside["proxies"]
    monkeypatch.setenv("HTTPS_PROXY", "http://other.example:8080")   # read once: a run keeps its proxy
    again = session.merge_environment_settings("https://fylr.example/api/v1/eas", {}, True, None, None)
    assert again["proxies"]["https"] == "http://proxy.example:3128"


def _echo_app(environ, start_response):
    """Answers what it was sent; /set sets a cookie (a load balancer's sticky session), /moved redirects."""
    path = environ["PATH_INFO"]
    if path == "/moved":
        start_response("302 Found", [("Location", "/echo?after=redirect")])
        return [b""]
    headers = [("Content-Type", "application/json")]
    if path == "/set":
        headers.append(("Set-Cookie", "sticky=node-2; Path=/"))
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = {"method": environ["REQUEST_METHOD"], "path": path, "query": environ.get("QUERY_STRING", ""),
            "cookie": environ.get("HTTP_COOKIE"), "type": environ.get("CONTENT_TYPE"),
            "auth": environ.get("HTTP_AUTHORIZATION"), "body": environ["wsgi.input"].read(length).decode()}
    start_response("200 OK", headers)
    return [json.dumps(body).encode()]


def test_a_plain_request_reaches_the_server_as_requests_would_send_it():
    """fylrmig's session prepares plain requests (bytes or no body) without requests' netrc lookup and
    cookie/hook merging; the server must see the same request, and cookies and redirects of the answers
    must work as with requests itself."""
    import requests
    from webtest.http import StopableWSGIServer
    server = StopableWSGIServer.create(_echo_app, host="127.0.0.1")
    try:
        url = server.application_url.rstrip("/")
        seen = []
        for session in (fylrmig.environment_once_session(requests), requests.Session()):
            session.headers["Authorization"] = "Bearer t0ken"
            first = session.request("GET", url + "/set", params={"a": ["1", "2"], "ü": "ä ö"}, stream=True,
                                    timeout=10)
            posted = session.request("POST", url + "/echo", params={"format": "short"}, data=b'[{"x": 1}]',
                                     headers={"Content-Type": "application/json"}, timeout=10)
            moved = session.request("GET", url + "/moved", timeout=10)
            seen.append((first.json(), posted.json(), moved.json(), [r.status_code for r in moved.history]))
        mine, theirs = seen
        assert mine == theirs
        assert mine[1] == {"method": "POST", "path": "/echo", "query": "format=short", "cookie": "sticky=node-2",
                           "type": "application/json", "auth": "Bearer t0ken", "body": '[{"x": 1}]'}
        assert mine[2]["query"] == "after=redirect" and mine[3] == [302]
    finally:
        server.shutdown()


def _record_stream(tmp_path, compression=0):
    args = fylrmig.args_for("backup", {"server": "http://source.invalid", "login": "root", "password": "x",
                                       "dir": str(tmp_path / "b"), "data": str(tmp_path / "data"),
                                       "chunk_size": 3, "compression": compression})
    job = fylrmig.BackupJob(args, fylrmig.Ledger(str(tmp_path / "jobs.sqlite")))
    source = fylrmig.Source("db/bilder", "db", None, 2, objecttype="bilder")
    return lambda: fylrmig.RecordStream(job, source, ordered_later=False, replay=False)


def _page(*sysids):
    return [{"_objecttype": "bilder", "_system_object_id": n, "_uuid": f"u{n}",
             "bilder": {"_id": n, "_version": 1, "titel": f"Bild {n}"}} for n in sysids]


def _payloads(stream):
    out = []
    for _, files in stream.batches():
        for path, count, digest in files:
            data = open(path, "rb").read()
            assert fylrmig.sha256_bytes(data) == digest
            out.append(fylrmig.parse_json_bytes(data, data[:2] == b"\x1f\x8b"))
            assert len(out[-1]["objects"]) == count
    return out


@pytest.mark.parametrize("compression", [0, 6])
def test_a_record_stream_stopped_after_a_batch_was_finished_resumes_to_the_same_payloads(tmp_path, compression):
    """Entries stream straight into their open batch, which is renamed when full. A run that stops after
    that rename but before the page's row is written resumes from the page before: the finished batch is
    reopened and cut back (with --compression it was rewritten, so the stream starts over); the payloads
    end up exactly those of an uninterrupted run, with the sha256 their names carry."""
    pages = [_page(1, 2), _page(3, 4), _page(5, 6), _page(7)]
    whole = _record_stream(tmp_path / "whole", compression)()
    whole.resume([])
    for page in pages:
        whole.add(page)
    expected = _payloads(whole)
    assert [len(p["objects"]) for p in expected] == [3, 3, 1]

    new_stream = _record_stream(tmp_path / "stopped", compression)
    first = new_stream()
    first.resume([])
    first.add(pages[0])
    rows = [{"key": "fetch/db/bilder@0000000000", "state": "done",
             "output": json.dumps({"stream": copy.deepcopy(first.state)})}]
    first.add(pages[1])                                  # batch 1 is full: renamed; then the run is killed
    first.close()
    again = new_stream()
    start = again.resume(rows)
    assert start == (0 if compression else 2)
    for page in pages[start // 2:]:
        again.add(page)
    assert _payloads(again) == expected


@pytest.mark.parametrize("value", [{"b": [1.5, None, "ü"], "a": {"k": True}}, {1: "a", "x": {2: [3]}}, [], {}])
def test_compact_json_is_the_standard_librarys_whatever_the_keys(value):
    """json_bytes (orjson where installed) writes what json.dumps writes compactly, also for dicts with
    number keys, which orjson takes only with an option that slows every other call."""
    assert fylrmig.json_bytes(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def test_replay_steps_never_close_a_loop_in_the_tree_however_far_apart_records_are():
    """C goes under A, B under C; C is edited ten times, then moved to the top; then A goes under B. Version
    2 of A depends only on B's version 2 by its parent, which is early - but applied before C's move it would
    close A -> B -> C -> A. It waits for the version every record above it had then (C's move), and no
    state between two steps holds a loop."""
    parents, order, t = fylrmig.ParentIndex(), [], 0

    def save(sysid, version, parent=None):
        nonlocal t
        t += 1
        parents.add(version, sysid, sysid, parent, parent)
        order.append((t, version, sysid, len(order), sysid, []))
    for sysid in (1, 2, 3):                          # A, B, C at the top
        save(sysid, 1)
    save(3, 2, parent=1)                             # C under A
    save(2, 2, parent=3)                             # B under C
    for version in range(3, 13):
        save(3, version, parent=1)                   # C edited, still under A
    save(3, 13)                                      # C to the top
    save(1, 2, parent=2)                             # A under B
    steps = fylrmig.replay_steps(order, parents)
    step_of = {(row[2], row[1]): n for n, step in enumerate(steps) for row in step}
    assert step_of[(1, 2)] > step_of[(3, 13)]
    parent_of = {}
    for n, step in enumerate(steps, 1):
        for _, version, sysid, _, _, _ in step:
            parent_of[sysid] = parents.parent_sysid(sysid, version)
        for start in parent_of:
            seen, node = set(), start
            while node is not None:
                assert node not in seen, f"a loop after {n} steps"
                seen.add(node)
                node = parent_of.get(node)
    assert len(steps) == 14 and all(len({row[2] for row in step}) == len(step) for step in steps)


def test_replay_steps_take_a_unique_value_only_after_its_holder_let_go():
    """One code passes from record 1 to record 2 and back; a record without the code moves freely."""
    parents, order = fylrmig.ParentIndex(), []
    for t, (sysid, version, code) in enumerate([(1, 1, "X"), (3, 1, None), (1, 2, "Y"), (2, 1, "X"), (3, 2, None),
                                                (2, 2, "Z"), (1, 3, "X")]):
        parents.add(version, sysid, sysid, None, None)
        order.append((t, version, sysid, t, sysid, [None if code is None else json.dumps([code])]))
    steps = fylrmig.replay_steps(order, parents)
    step_of = {row[2:0:-1]: n for n, step in enumerate(steps, 1) for row in step}
    assert step_of[(2, 1)] > step_of[(1, 2)] and step_of[(1, 3)] > step_of[(2, 2)]
    assert step_of[(3, 1)] == 1 and step_of[(3, 2)] == 2
