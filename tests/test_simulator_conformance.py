"""shared/spec/conformance.md, line by line: what a stand-in for easydb 5 / fylr must refuse.

Every bullet of conformance.md has one test here, in the document's order (section and bullet in the
docstring).  Details of the same rules are tested further in test_simulator_records.py,
test_simulator_basetypes.py, test_simulator_files.py and test_simulator_faults.py."""
import copy
import hashlib
import json
import time

import pytest
import requests

from tests.simulator.app import sign
from tests.simulator.faults import FaultPlan
from tests import test_simulator_write as shared
from tests.test_simulator_write import Client, commit_datamodel, error, orte, source_datamodel, wait_ready

target, modelled = shared.target, shared.modelled         # fixtures shared with test_simulator_write
from tests.test_simulator_read import Client as ReadClient


def _fan(sysid, lookup):
    return {"_objecttype": "personen", "_mask": "_all_fields", "_system_object_id": sysid, "_uuid": "p%d" % sysid,
            "personen": {"_version": 1, "name": "p",
                         "_pool": {"pool": {"lookup:_id": {"reference": "system:standard"}}},
                         "geburtsort": {"_objecttype": "orte", "_mask": "_all_fields",
                                        "orte": {"lookup:_id": lookup}}}}

# -------------------------------------------------------------------------------------------- Lookups


def test_lookup_resolves_the_one_exact_match_else_not_found_or_too_many_and_the_batch_fails(modelled):
    """Lookups #1: exact match; no hit -> LookupNotFound (key, value); two hits -> LookupFoundTooMany; the
    whole batch fails and nothing of it is stored."""
    server, client = modelled
    client.ok("POST", "/db/orte", [orte(1)])                                         # code K-1
    client.ok("POST", "/db/personen", [_fan(30, {"code": "K-1"})])
    body = error(client.call("POST", "/db/personen", [_fan(31, {"code": "k-1"})]), 400, "LookupNotFound")
    assert body["parameters"]["key"] == "code" and body["parameters"]["value"] == "k-1"
    twin = orte(2)
    twin["orte"]["code"] = "K-1"
    client.ok("POST", "/db/orte", [twin], skip_constraints="true")                   # now two hold K-1
    before = (copy.deepcopy(server.sim.records), dict(server.sim.sysids))
    error(client.call("POST", "/db/personen", [_fan(32, {"_system_object_id": 1}), _fan(33, {"code": "K-1"})]),
          400, "LookupFoundTooMany")
    assert (server.sim.records, server.sim.sysids) == before


def test_more_than_one_key_in_a_lookup_is_refused(modelled):
    """Lookups #2: more than one key (other than _objecttype where the table is not implied) -> 400."""
    server, client = modelled
    client.ok("POST", "/db/orte", [orte(1)])
    error(client.call("POST", "/db/personen", [_fan(30, {"_system_object_id": 1, "_uuid": "uuid-1"})]), 400,
          "ServerGeneric")
    error(client.call("POST", "/db/personen", [_fan(30, {"_system_object_id": 1, "_objecttype": "orte"})]), 400,
          "ServerGeneric")                                                            # table implied here
    error(client.call("POST", "/pool", [{"pool": {"_version": 1, "reference": "p",
                                                  "lookup:_id_parent": {"reference": "system:root",
                                                                        "name": "x"}}}]), 400, "ServerGeneric")
    cid = client.ok("PUT", "/collection/list", [{"collection": {
        "_version": 1, "reference": "c", "lookup:_id_parent": {"reference": "user:ref:system:root"}}}])[0][
        "collection"]["_id"]
    client.ok("POST", "/collection/objects/%d" % cid, {"objects": [
        {"lookup:_global_object_id": {"_objecttype": "orte", "_system_object_id": 1}}]})   # not implied: allowed


def test_no_prefix_is_interpreted_and_home_references_are_fixed_when_the_user_is_created(target):
    """Lookups #3: user:login:x, user:ref:x, system:x are plain stored strings; the home collection's
    reference is set when the user is created and kept."""
    server, client = target
    uid = client.ok("POST", "/user", [{"user": {"login": "x", "reference": "rx"}}])[0]["user"]["_id"]

    def under(reference):
        return client.call("PUT", "/collection/list", [{"collection": {
            "_version": 1, "lookup:_id_parent": {"reference": reference}}}])
    assert under("user:ref:rx").status_code == 200
    for guess in ("user:login:x", "user:id:%d" % uid, "system:x", "rx"):
        error(under(guess), 400, "LookupNotFound")
    client.ok("POST", "/user", [{"user": {"_id": uid, "_version": 2, "login": "x", "reference": "renamed"}}])
    assert under("user:ref:rx").status_code == 200
    error(under("user:ref:renamed"), 400, "LookupNotFound")


def test_system_entries_exist_from_the_start_with_their_documented_references(target):
    """Lookups #4: system:root user, pools system:root and system:standard, collection system:root."""
    _, client = target
    assert [u["user"]["reference"] for u in client.ok("GET", "/user")] == ["system:root"]
    assert {"system:root", "system:standard"} <= {p["pool"]["reference"] for p in client.ok("GET", "/pool")}
    assert "system:root" in {c["collection"]["reference"] for c in client.ok("GET", "/collection/list")}
    client.ok("POST", "/pool", [{"pool": {"_version": 1, "reference": "child",       # found by that reference
                                          "lookup:_id_parent": {"reference": "system:standard"}}}])


def test_tag_lookups_in_records_accept_only_reference(make_sim):
    """Lookups #5."""
    server = make_sim("fylr", size="tiny")
    client = Client(server)
    body = {"_objecttype": "bilder", "_mask": "_all_fields", "_system_object_id": 900, "_uuid": "u900",
            "_tags": [{"lookup:_id": {"_id": 1}}],
            "bilder": {"_version": 1, "_pool": {"pool": {"lookup:_id": {"reference": "photos"}}}}}
    error(client.call("POST", "/db/bilder", [body]), 400, "ServerGeneric")
    body["_tags"] = [{"lookup:_id": {"reference": "public", "displayname": "x"}}]
    error(client.call("POST", "/db/bilder", [body]), 400, "ServerGeneric")
    body["_tags"] = [{"lookup:_id": {"reference": "public"}}]
    client.ok("POST", "/db/bilder", [body])


@pytest.mark.parametrize("key,value", [("_system_object_id", 77), ("_uuid", "uuid-77")])
def test_deferred_lookups_resolve_when_the_target_is_saved_without_defer_not_found(modelled, key, value):
    """Lookups #6: lookup:_id / lookup:_id_parent with _system_object_id or _uuid + _allow_defer accepted before
    the target exists and resolved when it is saved; without _allow_defer -> LookupNotFound."""
    server, client = modelled
    child = orte(2)
    child["orte"]["lookup:_id_parent"] = {key: value}
    error(client.call("POST", "/db/orte", [child]), 400, "LookupNotFound")
    error(client.call("POST", "/db/personen", [_fan(30, {key: value})]), 400, "LookupNotFound")
    child["orte"]["lookup:_id_parent"] = {key: value, "_allow_defer": True}
    client.ok("POST", "/db/orte", [child])
    client.ok("POST", "/db/personen", [_fan(30, {key: value, "_allow_defer": True})])
    client.ok("POST", "/db/orte", [orte(77)])                                        # the target arrives
    sim = server.sim
    assert sim.record_by_sysid(2)[1]["versions"][0]["_id_parent"] == sim.sysids[77][1]
    assert sim.record_by_sysid(30)[1]["versions"][0]["fields"]["geburtsort"]["_system_object_id"] == 77

# --------------------------------------------------------------------------------------------- Writes


def test_records_version_and_id_rules_unknown_keys_and_the_pool(modelled):
    """Writes #1: create only with _version 1 (or absent); update needs stored + 1 (VersionMismatch); _id,
    _system_object_id, _uuid settable on version 1 only; unknown keys -> SchemaInconsistent; no pool ->
    refused unless skip_constraints."""
    server, client = modelled
    error(client.call("POST", "/db/orte", [dict(orte(1), orte=dict(orte(1)["orte"], _version=2))]), 400,
          "VersionMismatch")
    client.ok("POST", "/db/orte", [dict(orte(1), orte={k: v for k, v in orte(1)["orte"].items() if k != "_version"})])
    error(client.call("POST", "/db/orte", [orte(1, version=3)]), 400, "VersionMismatch")
    changed = orte(1, version=2)
    changed["_uuid"] = "new"
    error(client.call("POST", "/db/orte", [changed]), 400, "SchemaInconsistent")
    moved = orte(1, version=2)
    moved["orte"]["_id"] = 99
    error(client.call("POST", "/db/orte", [moved]), 400, "LookupNotFound")
    error(client.call("POST", "/db/orte", [orte(2, _latest_version_deleted_at="2020-01-01T00:00:00Z")]), 400,
          "SchemaInconsistent")
    poolless = _fan(30, {"_system_object_id": 1})
    del poolless["personen"]["_pool"]
    error(client.call("POST", "/db/personen", [poolless]), 400, "SchemaInconsistent")
    client.ok("POST", "/db/personen", [poolless], skip_constraints="true")
    assert server.sim.record_by_sysid(30)[1]["versions"][0]["_pool"] is None


def test_a_unique_column_twice_is_refused_unless_skip_constraints(modelled):
    """Writes #2."""
    _, client = modelled
    twins = [orte(1), dict(orte(2), orte=dict(orte(2)["orte"], code="K-1"))]
    error(client.call("POST", "/db/orte", twins), 400, "DatabaseUniqueKeyViolation")
    client.ok("POST", "/db/orte", twins, skip_constraints="true")


def test_post_tags_replaces_the_whole_set(target):
    """Writes #3: what is not sent is deleted."""
    server, client = target
    group = {"taggroup": {"_version": 1, "reference": "a", "type": "choice"},
             "_tags": [{"tag": {"_version": 1, "reference": "t1"}}]}
    client.ok("POST", "/tags", [group, dict(group, taggroup=dict(group["taggroup"], reference="b"), _tags=[])])
    first = {tg["taggroup"]["reference"]: tg for tg in client.ok("GET", "/tags")}
    keep = {"taggroup": dict(first["b"]["taggroup"], _version=2), "_tags": []}
    client.ok("POST", "/tags", [keep])
    assert [tg["taggroup"]["reference"] for tg in client.ok("GET", "/tags")] == ["b"]


def test_system_groups_pools_without_parent_and_objecttype_versions_are_refused(modelled):
    """Writes #4: type system -> GroupTypeNotAllowed; non-root pool without parent -> PoolNeedsParent;
    objecttype settings need the target's _id and current version + 1."""
    _, client = modelled
    error(client.call("POST", "/group", [{"group": {"_version": 1, "type": "system"}}]), 400, "GroupTypeNotAllowed")
    error(client.call("POST", "/pool", [{"pool": {"_version": 1, "reference": "p"}}]), 400, "PoolNeedsParent")
    orte_type = next(o for o in client.ok("GET", "/objecttype") if o["objecttype"]["name"] == "orte")
    same = {"objecttype": {"_id": orte_type["objecttype"]["_id"], "_version": orte_type["objecttype"]["_version"]}}
    error(client.call("POST", "/objecttype", [same]), 400, "VersionMismatch")
    error(client.call("POST", "/objecttype", [{"objecttype": {"_id": 999, "_version": 2}}]), 400, "ServerGeneric")


def test_password_hash_only_from_root_created_at_only_by_root_on_version_1(make_sim):
    """Writes #5."""
    server = make_sim("fylr", size="tiny")
    root, jdoe = Client(server), Client(server, "jdoe", "secret")
    me = dict(server.sim.users[2]["user"], _version=server.sim.users[2]["user"]["_version"] + 1)
    error(jdoe.call("POST", "/user", [{"user": me, "_password_hash": "sha256:00"}]), 400, "ColumnNeedsSystemRoot")
    error(jdoe.call("POST", "/user", [{"user": me, "_created_at": "2001-01-01T00:00:00Z"}]), 400,
          "ColumnNeedsSystemRoot")
    error(root.call("POST", "/user", [{"user": me, "_created_at": "2001-01-01T00:00:00Z"}]), 400,
          "ColumnCanNotBeUpdated")
    saved = root.ok("POST", "/user", [{"user": {"login": "new"}, "_created_at": "2001-01-01T00:00:00Z",
                                       "_password_hash": "sha256:" + hashlib.sha256(b"pw").hexdigest()}])[0]
    assert server.sim.users[saved["user"]["_id"]]["_created_at"] == "2001-01-01T00:00:00Z"
    Client(server, "new", "pw")


def test_purge_by_system_root_only_when_allowed_ends_sessions_and_sets_the_root_password(make_sim):
    """Writes #6: PurgeSystemRootOnly / SystemRightRequired, PurgeNotAllowed, every session ends,
    set_password becomes root's password."""
    server = make_sim("fylr", size="tiny")
    jdoe = Client(server, "jdoe", "secret")
    error(jdoe.call("POST", "/system/purgeall"), 403, "SystemRightRequired")
    server.sim.groups[1]["_system_rights"] = {"system.root": True}
    error(jdoe.call("POST", "/system/purgeall"), 403, "PurgeSystemRootOnly")
    refused = make_sim("fylr", size="tiny", allow_purge=False)
    error(Client(refused).call("POST", "/system/purgeall"), 400, "PurgeNotAllowed")
    root = Client(server)
    root.ok("POST", "/system/purgeall", set_password="neu")
    wait_ready(server)
    error(root.call("GET", "/user"), 401, "UserRequired")
    with pytest.raises(AssertionError):
        Client(server, "root", "admin")
    Client(server, "root", "neu").ok("GET", "/user")


def test_datamodel_is_written_to_head_then_committed_current_is_no_endpoint(target):
    """Writes #7."""
    _, client = target
    schema, _, _ = source_datamodel()
    error(client.call("POST", "/schema/user/CURRENT", schema), 400, "UnknownEndpointMethod")
    error(client.call("POST", "/mask/CURRENT", {"masks": []}), 400, "UnknownEndpointMethod")
    commit_datamodel(client, schema)
    assert client.ok("GET", "/schema/user/CURRENT")["tables"]


def test_file_uploads_need_multipart_fetchable_urls_unique_references_and_valid_signatures(make_sim):
    """Writes #8: eas/put needs multipart; rput of a URL the server cannot fetch -> EasRputError /
    EasInvalidURL; a second file with the same reference -> EasDuplicateReference; an expired signed
    URL -> 403."""
    source = make_sim("fylr", size="tiny")
    server = make_sim("fylr", size="empty")
    client = Client(server)
    error(client.call("POST", "/eas/put", {"file": "not multipart"}), 400, "UploadError")
    error(client.call("POST", "/eas/rput", url="no-url", filename="a.png"), 400, "EasInvalidURL")
    error(client.call("POST", "/eas/rput", url="http://127.0.0.1:9/a.png", filename="a.png"), 400, "EasRputError")
    remote = next(f for f in source.sim.files.values() if f["leave"])
    url = source.url + remote["remote_url"]
    client.ok("POST", "/eas/rput", url=url, filename="a.png", reference="r", leave="1", produce_versions="false")
    error(client.call("POST", "/eas/rput", url=url, filename="a.png", reference="r"), 400, "EasDuplicateReference")
    png = next(f for f in source.sim.files.values() if f["extension"] == "png" and not f["leave"])
    digest = hashlib.sha256(png["versions"]["original"]).hexdigest()
    expired = sign(source.sim, png["_id"], digest, "original", int(time.time()) - 5)
    answer = requests.get("%s/eas/download/%d/%s/original" % (source.api_url, png["_id"], digest),
                          params={"x-fylr-signature": expired})
    error(answer, 403, "InsufficientRights")


def test_events_unknown_types_are_refused_system_types_need_root_and_skip_constraints(make_sim):
    """Writes #9."""
    server = make_sim("fylr", size="tiny")
    root, jdoe = Client(server), Client(server, "jdoe", "secret")
    event = {"event": {"type": "OBJECT_INSERT", "timestamp": "2020-01-01T00:00:00Z"}}
    error(root.call("POST", "/event/list", [event]), 400, "EventTypeNotAllowed")
    error(jdoe.call("POST", "/event/list", [event], skip_constraints="true"), 400, "ServerGeneric")
    for unknown in ("NO_SUCH_TYPE", "USER_CREATED", "TASK_START"):
        error(root.call("POST", "/event/list", [{"event": {"type": unknown}}], skip_constraints="true"), 400,
              "EventTypeNotAllowed")
    root.ok("POST", "/event/list", [event], skip_constraints="true")
    jdoe.ok("POST", "/event/list", [{"event": {"type": "DETAIL_VIEW"}}])       # a FRONTEND type: any user


def test_read_only_source_instances_refuse_every_write(make_sim):
    """Writes #10: easydb 5 sources have no write routes at all; a fylr in read-only mode refuses writes."""
    e5 = make_sim("easydb5", size="tiny")
    token = ReadClient(e5).token
    for method, path in (("POST", "/db/bilder"), ("PUT", "/db/bilder"), ("POST", "/tags"), ("POST", "/user"),
                         ("POST", "/eas/rput"), ("POST", "/collection/objects/1"), ("DELETE", "/db/bilder")):
        answer = requests.request(method, e5.api_url + path, params={"token": token}, data="[]")
        assert answer.status_code == 400 and answer.json()["code"] == "error.api.invalid_api", (method, path)
    fylr = make_sim("fylr", size="tiny", read_only_until=time.time() + 60)
    client = Client(fylr)
    for method, path, body in (("POST", "/db/orte", []), ("DELETE", "/db/orte", []), ("POST", "/tags", []),
                               ("POST", "/user", []), ("POST", "/eas/rput", None), ("PUT", "/collection/list", []),
                               ("POST", "/event/list", []), ("POST", "/system/purgeall", None),
                               ("POST", "/config", {})):
        error(client.call(method, path, body), 400, "ReadOnlyMode")

# ------------------------------------------------------------------------------ Reads and sessions


def test_fylr_without_token_is_401_a_dead_token_on_group_is_an_empty_list(make_sim):
    """Reads #1."""
    server = make_sim("fylr", size="tiny", token_lifetime=60)
    error(requests.get(server.api_url + "/user"), 401, "UserRequired")
    client = Client(server)
    assert client.ok("GET", "/group")
    server.sim.tokens[client.token]["expires_at"] = 0
    answer = client.call("GET", "/group")
    assert answer.status_code == 200 and answer.json() == []


def test_easydb5_without_token_not_authenticated_unknown_token_session_not_found(make_sim):
    """Reads #2."""
    server = make_sim("easydb5", size="tiny")
    answer = requests.get(server.api_url + "/user")
    assert answer.status_code == 400 and answer.json()["code"] == "error.user.not_authenticated"
    answer = requests.get(server.api_url + "/user", params={"token": "unknown"})
    assert answer.status_code == 400 and answer.json()["code"] == "error.user.session_not_found"


def test_limits_above_the_maximum_are_refused_and_pages_are_stable(make_sim):
    """Reads #3: easydb 5 maximum 1000; pages stable while nothing changes."""
    server = make_sim("easydb5", size="tiny")
    client = ReadClient(server)
    for path in ("/db/bilder/_all_fields/list", "/user", "/event/list", "/collection/list"):
        assert client.get(path, limit=1001).status_code == 400, path
    assert client.post("/search", {"limit": 1001}).status_code == 400
    pages = [client.get("/db/bilder/_all_fields/list", offset=3, limit=5).json() for _ in range(2)]
    assert pages[0] == pages[1] and len(pages[0]) == 5


def test_unknown_endpoints_answer_400_with_the_flavours_code(make_sim):
    """Reads #4: easydb 5 error.api.invalid_api; fylr 400 UnknownEndpointMethod (not 404)."""
    e5 = make_sim("easydb5", size="tiny")
    answer = requests.get(e5.api_url + "/no/such/thing")
    assert answer.status_code == 400 and answer.json()["code"] == "error.api.invalid_api"
    fylr = make_sim("fylr", size="tiny")
    error(requests.get(fylr.api_url + "/no/such/thing"), 400, "UnknownEndpointMethod")
    error(requests.delete(fylr.api_url + "/settings"), 400, "UnknownEndpointMethod")


def test_transient_server_errors_502_503_504_and_423_are_simulated(make_sim):
    """Reads #5: the statuses a retry policy must survive."""
    plan = FaultPlan(fail_first=4, fail_first_statuses=(502, 503, 504, 423))
    server = make_sim("fylr", size="tiny", faults=plan)
    statuses = [requests.get(server.api_url + "/settings") for _ in range(5)]
    assert [s.status_code for s in statuses] == [502, 503, 504, 423, 200]
    assert statuses[3].json()["code"] == "DatabaseLockError"
    assert json.loads(statuses[4].text)["name"] == server.sim.name
