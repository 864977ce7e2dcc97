"""Basetypes, collections and events on the fylr simulator (tests/simulator/writes.py, writeutil.py):
home collections, strict lookups, users, tags, collection objects, POST /event/list - via real HTTP."""
import copy
import hashlib
import json

import pytest
import requests

from tests.simulator.dump import canonical_dump
from tests import test_simulator_write as shared
from tests.test_simulator_write import Client, error, wait_ready, wait_until

target = shared.target            # fixture shared with test_simulator_write


def home_of(sim, uid):
    homes = [c for c in sim.collections.values()
             if c["collection"]["type"] == "user" and c["_owner"]["user"]["_id"] == uid]
    assert len(homes) == 1, homes
    return homes[0]["collection"]


def new_user(login=None, reference=None, email=None, **extra):
    return {"_basetype": "user", "user": dict({"login": login, "reference": reference, "email": email,
                                               "type": "easydb"}, **extra)}

# ------------------------------------------------------------------------------------ home collections


def test_creating_a_user_creates_its_home_collection_with_a_fixed_reference(target):
    server, client = target
    saved = client.ok("POST", "/user", [new_user("anna", "ref-anna"), new_user("bert"),
                                        new_user(type="email", email="c@example.com")])
    uids = [u["user"]["_id"] for u in saved]
    assert [home_of(server.sim, uid)["reference"] for uid in uids] == [
        "user:ref:ref-anna", "user:login:bert", "user:id:%d" % uids[2]]
    root_collection = server.sim.system_collection_id()
    assert all(home_of(server.sim, uid)["_id_parent"] == root_collection for uid in uids)
    client.ok("POST", "/user", [{"_basetype": "user", "user": {"_id": uids[1], "_version": 2, "login": "bert",
                                                               "reference": "now-with-ref"}}])
    assert home_of(server.sim, uids[1])["reference"] == "user:login:bert"       # not renamed afterwards
    keys = canonical_dump(server.sim)["collections"]
    assert keys["user:login:bert"]["owner"] == "now-with-ref" and keys["user:login:bert"]["parent"] == "system:root"


def test_home_collection_lookup_matches_the_stored_reference_only(make_sim):
    server = make_sim("fylr", size="tiny")
    client = Client(server)

    def folder(parent_reference):
        return [{"collection": {"_version": 1, "type": "workfolder", "displayname": {"en-US": "f"},
                                "lookup:_id_parent": {"reference": parent_reference}}}]
    saved = client.ok("PUT", "/collection/list", folder("user:ref:jdoe"))[0]
    assert saved["_owner"]["user"]["_id"] == 2                                  # owner of the parent
    client.ok("PUT", "/collection/list", folder("user:login:mueller"))          # mueller has no reference
    for unparsed in ("user:login:jdoe", "user:id:2", "user:ref:nobody", "jdoe"):
        error(client.call("PUT", "/collection/list", folder(unparsed)), 400, "LookupNotFound")


def test_only_the_server_creates_collections_of_type_user(target):
    server, client = target
    block = {"_version": 1, "type": "user", "reference": "user:ref:x",
             "lookup:_id_parent": {"reference": "system:root"}}
    error(client.call("PUT", "/collection/list", [{"collection": block}]), 400, "ServerGeneric")
    for method in ("PUT", "POST"):
        error(client.call(method, "/collection", {"collection": block}), 400, "ServerGeneric")
    assert [c["collection"]["type"] for c in server.sim.collections.values()] == ["system", "user"]


def test_purge_leaves_the_root_user_a_new_empty_home_collection(make_sim):
    server = make_sim("fylr", size="tiny")
    Client(server).ok("POST", "/system/purgeall", set_password="pw2")
    wait_ready(server)
    home = home_of(server.sim, 1)
    assert home["reference"] == "user:ref:system:root" and server.sim.collection_objects[home["_id"]] == []


def test_a_collection_belongs_to_the_owner_of_its_parent(make_sim):
    server = make_sim("fylr", size="tiny")
    client = Client(server)
    foreign_owner = {"_basetype": "user", "user": {"lookup:_id": {"reference": "system:root"}}}
    body = {"collection": {"_version": 1, "lookup:_id_parent": {"reference": "user:ref:jdoe"}},
            "_owner": foreign_owner}
    error(client.call("PUT", "/collection/list", [body]), 400, "ServerGeneric")
    top = client.ok("PUT", "/collection", {"collection": {"_version": 1, "reference": "top"},
                                           "_owner": {"_basetype": "user", "user": {"lookup:_id": {"login": "jdoe"}}}})
    assert top["_owner"]["user"]["_id"] == 2                                   # no parent: the sent owner


def test_single_collection_put_creates_and_post_updates_with_the_next_version(make_sim):
    server = make_sim("fylr", size="tiny")
    client = Client(server)
    created = client.ok("PUT", "/collection", {"collection": {
        "_version": 1, "reference": "single", "lookup:_id_parent": {"reference": "user:ref:jdoe"}}})
    cid = created["collection"]["_id"]
    error(client.call("POST", "/collection", {"collection": {"_id": cid, "_version": 1}}), 400, "ServerGeneric")
    error(client.call("POST", "/collection", {"collection": {"_id": cid, "_version": 3}}), 400, "VersionMismatch")
    updated = client.ok("POST", "/collection", {"collection": {"lookup:_id": {"reference": "single"}, "_version": 2,
                                                               "reference": "single",
                                                               "displayname": {"en-US": "Renamed"}}})
    assert updated["collection"]["_version"] == 2
    assert updated["collection"]["_id_parent"] == created["collection"]["_id_parent"]
    home = home_of(server.sim, 2)
    error(client.call("POST", "/collection", {"collection": {"_id": home["_id"], "_version": 2}}), 400,
          "ServerGeneric")                                                     # homes are the server's
    error(client.call("PUT", "/collection/list", [{"collection": {"_id": cid, "_version": 3}}]), 400,
          "ServerGeneric")                                                     # the list only creates


def test_global_object_ids_are_local_only_with_local_or_this_instance_name(make_sim):
    server = make_sim("fylr", size="tiny")
    client = Client(server)
    cid = client.ok("PUT", "/collection/list", [{"collection": {
        "_version": 1, "reference": "g", "lookup:_id_parent": {"reference": "user:ref:system:root"}}}])[0][
        "collection"]["_id"]
    sysid = sorted(server.sim.sysids)[0]
    objects = [{"_global_object_id": "%d@local" % sysid},
               {"_global_object_id": "%d@%s" % (sysid + 1, server.sim.name)},
               {"_global_object_id": "%d@other-instance" % 999999, "webfrontend_props": {"a": 1}},
               {"_global_object_id": "anything-goes"}]
    assert client.ok("POST", "/collection/objects/%d" % cid, {"objects": objects})["count"] == 4
    assert server.sim.collection_objects[cid] == [sysid, sysid + 1, "999999@other-instance", "anything-goes"]
    listed = client.ok("GET", "/collection/objects/%d" % cid)["objects"]
    assert [o["_global_object_id"] for o in listed][2:] == ["999999@other-instance", "anything-goes"]
    assert listed[2]["webfrontend_props"] == {"a": 1}
    for missing in ("999999@local", "999999@%s" % server.sim.name):
        error(client.call("POST", "/collection/push/%d" % cid, {"objects": [{"_global_object_id": missing}]}),
              400, "LookupNotFound")
    error(client.call("POST", "/collection/push/%d" % cid, {"objects": [{"_global_object_id": "1@local",
                                                                          "_webfrontend_props": {}}]}),
          400, "ServerGeneric")                                                # the E5 key name is not fylr's
    dumped = canonical_dump(server.sim)["collections"]["g"]
    assert dumped["objects"][2:] == ["999999@other-instance", "anything-goes"]


def test_lookup_global_object_id_by_a_unique_column_needs_the_objecttype(make_sim):
    server = make_sim("fylr", size="tiny")
    client = Client(server)
    code = server.sim.records["orte"][1]["versions"][-1]["fields"]["code"]
    cid = client.ok("PUT", "/collection/list", [{"collection": {
        "_version": 1, "reference": "u", "lookup:_id_parent": {"reference": "user:ref:system:root"}}}])[0][
        "collection"]["_id"]
    client.ok("POST", "/collection/objects/%d" % cid,
              {"objects": [{"lookup:_global_object_id": {"_objecttype": "orte", "code": code}}]})
    assert server.sim.collection_objects[cid] == [server.sim.records["orte"][1]["_system_object_id"]]
    error(client.call("POST", "/collection/objects/%d" % cid,
                      {"objects": [{"lookup:_global_object_id": {"code": code}}]}), 400, "SchemaInconsistent")

# ---------------------------------------------------------------------------------------------- lookups


@pytest.mark.parametrize("lookup", [{"reference": "editors", "name": "editors"}, {"name": "editors"},
                                    {"reference": "editors", "_allow_defer": True}, {}, "editors"])
def test_a_basetype_lookup_names_exactly_one_documented_key(target, lookup):
    server, client = target
    client.ok("POST", "/group", [{"group": {"_version": 1, "reference": "editors"}}])
    body = [{"_basetype": "message", "message": {"_version": 1, "title": {"en-US": "t"}},
             "_groups": [{"_basetype": "group", "group": {"lookup:_id": lookup}}]}]
    error(client.call("POST", "/message", body), 400, "ServerGeneric")
    body[0]["_groups"][0]["group"]["lookup:_id"] = {"_id": 1}                 # _id is a documented key
    client.ok("POST", "/message", body)


def test_users_are_also_found_by_login_tags_and_files_only_by_reference(make_sim):
    server = make_sim("fylr", size="tiny")
    client = Client(server)
    body = {"_objecttype": "bilder", "_mask": "_all_fields", "_system_object_id": 900, "_uuid": "u900",
            "_owner": {"_basetype": "user", "user": {"lookup:_id": {"login": "mueller"}}},
            "bilder": {"_version": 1, "_pool": {"pool": {"lookup:_id": {"reference": "photos"}}}}}
    client.ok("POST", "/db/bilder", [body])
    assert server.sim.record_by_sysid(900)[1]["versions"][0]["_owner"] == 3
    tag_by_id = dict(body, _system_object_id=901, _uuid="u901", _tags=[{"lookup:_id": {"_id": 1}}])
    error(client.call("POST", "/db/bilder", [tag_by_id]), 400, "ServerGeneric")
    tag_by_ref = dict(tag_by_id, _tags=[{"lookup:_id": {"reference": "public"}}])
    client.ok("POST", "/db/bilder", [tag_by_ref])
    file_ref = next(f["reference"] for f in server.sim.files.values() if f["reference"])
    for lookup, code in (({"reference": file_ref, "_id": 1}, "ServerGeneric"), ({"_id": 1}, "ServerGeneric"),
                         ({"reference": "no-such-file"}, "LookupNotFound")):
        with_file = copy.deepcopy(dict(body, _system_object_id=902, _uuid="u902"))
        with_file["bilder"]["datei"] = [{"lookup:_id": lookup, "preferred": True}]
        error(client.call("POST", "/db/bilder", [with_file]), 400, code)

# ---------------------------------------------------------------------------------- groups, pools, ...


@pytest.mark.parametrize("kind,extra", [("group", {}), ("message", {"title": {"en-US": "t"}}),
                                        ("pool", {"lookup:_id_parent": {"reference": "system:root"}})])
def test_version_1_with_an_id_is_refused_ids_are_server_issued(target, kind, extra):
    server, client = target
    saved = client.ok("POST", "/" + kind, [{kind: dict({"_version": 1, "reference": "one"}, **extra)}])[0]
    stored_id = saved[kind]["_id"]
    error(client.call("POST", "/" + kind, [{kind: dict({"_version": 1, "_id": stored_id, "reference": "two"},
                                                       **extra)}]), 400, "VersionMismatch")
    error(client.call("POST", "/" + kind, [{kind: dict({"_version": 1, "_id": 999, "reference": "three"},
                                                       **extra)}]), 400, "LookupNotFound")
    assert len(getattr(server.sim, kind + "s")) == (1 if kind != "pool" else 4)

# ---------------------------------------------------------------------------------------------- users


def test_a_second_user_with_the_same_email_is_refused_even_with_skip_constraints(target):
    server, client = target
    client.ok("POST", "/user", [new_user("a", "a", "Same@Example.com")])
    for params in ({}, {"skip_constraints": "true"}):
        body = error(client.call("POST", "/user", [new_user("b", "b", "same@example.COM")], **params), 409,
                     "UserDuplicateEmail")
        assert body["parameters"]["email"] == "same@example.COM" and body["parameters"]["name"] == "a"
    in_one_batch = [new_user("c", "c", "x@example.com"), new_user("d", "d", "X@example.com")]
    error(client.call("POST", "/user", in_one_batch), 409, "UserDuplicateEmail")
    assert [u["user"]["login"] for u in server.sim.users.values()] == ["root", "a"]


def test_user_create_and_update_are_told_apart_by_the_id(target):
    server, client = target
    created = client.ok("POST", "/user", [new_user("a", "a")])[0]
    uid = created["user"]["_id"]
    error(client.call("POST", "/user", [new_user("b", "b", _version=2)]), 400, "VersionMismatch")
    error(client.call("POST", "/user", [{"user": {"_id": 999, "_version": 2, "login": "c"}}]), 400, "LookupNotFound")
    error(client.call("POST", "/user", [{"user": {"_id": uid, "_version": 1, "login": "a"}}]), 400, "VersionMismatch")
    updated = client.ok("POST", "/user", [{"user": {"_id": uid, "_version": 2, "login": "a2", "reference": "a"}}])[0]
    assert updated["user"]["_id"] == uid and updated["user"]["_version"] == 2 and len(server.sim.users) == 2


def test_created_at_only_by_root_and_only_when_the_user_is_created(make_sim):
    server = make_sim("fylr", size="tiny")
    root, jdoe = Client(server), Client(server, "jdoe", "secret")
    me = server.sim.users[2]
    mine = {"_basetype": "user", "user": dict(me["user"], _version=me["user"]["_version"] + 1),
            "_created_at": "2001-01-01T00:00:00Z"}
    error(jdoe.call("POST", "/user", [mine]), 400, "ColumnNeedsSystemRoot")
    error(root.call("POST", "/user", [mine]), 400, "ColumnCanNotBeUpdated")
    fresh = dict(new_user("new", "new"), _created_at="2001-01-01T00:00:00Z")
    error(jdoe.call("POST", "/user", [fresh]), 403, "RightRequired")          # non-root: only itself
    saved = root.ok("POST", "/user", [fresh])[0]
    assert server.sim.users[saved["user"]["_id"]]["_created_at"] == "2001-01-01T00:00:00Z"
    hashed = dict(mine, _password_hash="sha256:00")
    del hashed["_created_at"]
    error(jdoe.call("POST", "/user", [hashed]), 400, "ColumnNeedsSystemRoot")
    del hashed["_password_hash"]
    hashed["user"] = dict(hashed["user"], first_name="Johnny")
    assert jdoe.ok("POST", "/user", [hashed])[0]["user"]["first_name"] == "Johnny"   # itself: allowed

# ------------------------------------------------------------------------------------------------ tags


def test_tag_and_taggroup_versions_are_checked(target):
    server, client = target

    def group(version, tag_version, gid=None):
        block = {"_version": version, "reference": "g", "type": "checkbox"}
        if gid:
            block["_id"] = gid
        return [{"taggroup": block, "_tags": [{"tag": {"_id": 5, "_version": tag_version, "reference": "t"}}]}]
    error(client.call("POST", "/tags", group(1, 2)), 400, "VersionMismatch")        # new tag: version 1
    error(client.call("POST", "/tags", group(2, 1)), 400, "VersionMismatch")        # new group: version 1
    gid = client.ok("POST", "/tags", group(1, 1))[0]["taggroup"]["_id"]
    error(client.call("POST", "/tags", group(2, 1, gid)), 400, "VersionMismatch")   # stored tag: 1 + 1
    error(client.call("POST", "/tags", group(2, 2, 999)), 400, "LookupNotFound")    # group ids are server-issued
    saved = client.ok("POST", "/tags", group(2, 2, gid))
    assert saved[0]["taggroup"]["_version"] == 2 and saved[0]["_tags"][0]["tag"]["_version"] == 2
    bad_type = group(3, 3, gid)
    bad_type[0]["taggroup"]["type"] = "radio"
    error(client.call("POST", "/tags", bad_type), 400, "ServerGeneric")


def _current_tags_without(sim, tag_id):
    body = []
    for tg in sim.taggroups.values():
        block = dict(tg["taggroup"], _version=tg["taggroup"]["_version"] + 1)
        tags = [{"tag": dict(t["tag"], _version=t["tag"]["_version"] + 1)} for t in tg["_tags"]
                if t["tag"]["_id"] != tag_id]
        body.append({"taggroup": block, "_tags": tags})
    return body


def test_removing_tags_still_used_by_records_is_refused_with_their_usages(make_sim):
    server = make_sim("fylr", size="tiny")
    client = Client(server)
    used = next(iter(server.sim.records["bilder"].values()))
    tag_id = next(t for r in server.sim.records["bilder"].values() for t in r["versions"][-1]["_tags"])
    body = error(client.call("POST", "/tags", _current_tags_without(server.sim, tag_id)), 400, "TagsInUse")
    usage = body["parameters"]["usages"][0]
    assert usage["tag_id"] == tag_id and usage["context"] == "object" and usage["ids"]
    assert used and server.sim.tag_by_id(tag_id)


def test_removing_tags_bound_to_pools_or_objecttypes_needs_delete_policy_remove_tags(make_sim):
    server = make_sim("fylr", size="tiny")
    client = Client(server)
    bound = server.sim.objecttypes[2]["_tags"][0]["_id"]                       # bilder's tag binding
    in_records = {t for recs in server.sim.records.values() for r in recs.values() for t in r["versions"][-1]["_tags"]}
    if bound in in_records:                                                    # free it from the records first
        for recs in server.sim.records.values():
            for oid, rec in recs.items():
                recs[oid] = dict(rec, versions=[dict(v, _tags=[t for t in v["_tags"] if t != bound])
                                                for v in rec["versions"]])
    body = _current_tags_without(server.sim, bound)
    r = client.call("POST", "/tags", body)
    assert r.status_code == 202 and r.json()["tasks"][0]["buttons"][0] == {
        "text": "Remove the tags there", "name": "delete_policy", "value": "remove_tags"}
    assert server.sim.tag_by_id(bound)                                          # nothing saved
    client.ok("POST", "/tags", body, delete_policy="remove_tags")
    assert server.sim.tag_by_id(bound) is None and not server.sim.objecttypes[2]["_tags"]

# ---------------------------------------------------------------------------------------------- events


def _event(etype, **extra):
    return dict({"_basetype": "event", "event": {"type": etype, "timestamp": "2020-01-01T00:00:00Z"}}, **extra)


def test_the_easydb5_event_type_user_created_is_refused(target):
    _, client = target
    error(client.call("POST", "/event/list", [_event("USER_CREATED")], skip_constraints="true"), 400,
          "EventTypeNotAllowed")
    client.ok("POST", "/event/list", [_event("USER_INSERT")], skip_constraints="true")


@pytest.mark.parametrize("extra", [{"user": {"_basetype": "user", "user": {"_id": 1}}}, {"user_id": 1}])
def test_an_event_user_needs_skip_constraints(target, extra):
    server, client = target
    error(client.call("POST", "/event/list", [_event("DETAIL_VIEW", **extra)]), 400, "ServerGeneric")
    client.ok("POST", "/event/list", [_event("DETAIL_VIEW", **extra)], skip_constraints="true")
    error(requests.post(server.api_url + "/event/list", data=json.dumps([_event("DETAIL_VIEW")])), 401,
          "UserRequired")


def test_background_event_list_answers_at_once_and_drops_invalid_entries(make_sim):
    server = make_sim("fylr", size="empty", background_delay=0.3)
    client = Client(server)
    body = [_event("DETAIL_VIEW"), _event("NO_SUCH_TYPE"), _event("OBJECT_INSERT"), _event("SEARCH")]
    assert client.ok("POST", "/event/list", body, background="true") == {"background": "ok"}
    assert not server.sim.events                                               # not written yet
    wait_until(lambda: len(server.sim.events) == 2)
    assert sorted(e["event"]["type"] for e in server.sim.events.values()) == ["DETAIL_VIEW", "SEARCH"]
    error(client.call("POST", "/event/list", "not a list", background="true"), 400, "ServerGeneric")

# ------------------------------------------------------------------------------- schema keys, sessions


@pytest.mark.parametrize("path,item", [
    ("/user", {"user": {"login": "e5", "_primary_email": "a@example.com"}}),
    ("/user", {"user": {"login": "e5"}, "_emails": [{"email": "a@example.com", "is_primary": True}]}),
    ("/user", {"user": {"login": "e5"}, "_password_insecure_hash": "abc", "_password_insecure_hash_method": "md5"}),
    ("/message", {"message": {"_version": 1, "title": {"en-US": "t"}, "message_html": {"en-US": "<p>"}}}),
    ("/message", {"message": {"_version": 1, "title": {"en-US": "t"}, "type": "eula"}}),
    ("/group", {"group": {"_version": 1, "reference": "g", "_unknown": 1}}),
    ("/pool", {"pool": {"_version": 1, "reference": "p", "lookup:_id_parent": {"reference": "system:root"}},
               "_pool_extra": 1})])
def test_basetype_keys_outside_the_oas_schema_are_refused(target, path, item):
    """easydb 5 key names would be dropped silently by fylr: the simulator refuses them."""
    server, client = target
    body = error(client.call("POST", path, [item]), 400, "ServerGeneric")
    assert body["parameters"]["keys"]


def test_system_users_are_refused(target):
    _, client = target
    error(client.call("POST", "/user", [{"user": {"login": "s", "type": "system"}}]), 400, "UserTypeNotAllowed")


def test_a_password_change_ends_the_users_sessions(make_sim):
    server = make_sim("fylr", size="tiny")
    root, jdoe = Client(server), Client(server, "jdoe", "secret")
    me = server.sim.users[2]
    root.ok("POST", "/user", [{"user": dict(me["user"], _version=me["user"]["_version"] + 1)}])
    assert jdoe.ok("GET", "/user")                                               # nothing changed: still alive
    new_hash = "sha256:" + hashlib.sha256(b"neu").hexdigest()
    root.ok("POST", "/user", [{"user": dict(me["user"], _version=me["user"]["_version"] + 2),
                               "_password_hash": new_hash}])
    error(jdoe.call("GET", "/user"), 401, "UserRequired")
    with pytest.raises(AssertionError):
        Client(server, "jdoe", "secret")                                         # the old password is gone
    Client(server, "jdoe", "neu")


def test_a_collection_created_with_objects_links_them(make_sim):
    server = make_sim("fylr", size="tiny")
    client = Client(server)
    sysid = sorted(server.sim.sysids)[0]
    saved = client.ok("PUT", "/collection/list", [{"collection": {
        "_version": 1, "reference": "with-objects", "lookup:_id_parent": {"reference": "user:ref:jdoe"}},
        "objects": [{"lookup:_global_object_id": {"_system_object_id": sysid}}, {"_global_object_id": "5@far"}]}])
    assert server.sim.collection_objects[saved[0]["collection"]["_id"]] == [sysid, "5@far"]
    error(client.call("PUT", "/collection/list", [{"collection": {
        "_version": 1, "reference": "bad", "lookup:_id_parent": {"reference": "user:ref:jdoe"}},
        "objects": [{"_global_object_id": "999999@local"}]}]), 400, "LookupNotFound")
    assert not server.sim.find_by_reference("collection", "bad")


def test_taggroup_version_is_counted_by_the_server_and_checked_when_sent(target):
    server, client = target
    saved = client.ok("POST", "/tags", [{"taggroup": {"reference": "g", "type": "choice"}, "_tags": []}])
    assert saved[0]["taggroup"]["_version"] == 1
    gid = saved[0]["taggroup"]["_id"]
    assert client.ok("POST", "/tags", [{"taggroup": {"_id": gid, "reference": "g", "type": "choice"},
                                        "_tags": []}])[0]["taggroup"]["_version"] == 2
    error(client.call("POST", "/tags", [{"taggroup": {"_id": gid, "_version": 2, "reference": "g", "type": "choice"},
                                         "_tags": []}]), 400, "VersionMismatch")


def test_a_weak_plain_password_needs_confirm_ignore_password_requirements(make_sim):
    server = make_sim("fylr", size="tiny")                         # base config: password.check .{8,}
    client = Client(server)
    weak = [{"user": {"login": "weak"}, "_password": "short"}]
    r = client.call("POST", "/user", weak)
    assert r.status_code == 202 and r.json()["tasks"][0]["buttons"] == [
        {"text": "Save", "name": "confirm", "value": "ignore_password_requirements"}]
    assert not any(u["user"]["login"] == "weak" for u in server.sim.users.values())
    client.ok("POST", "/user", weak, confirm="ignore_password_requirements")
    Client(server, "weak", "short")
    client.ok("POST", "/user", [{"user": {"login": "strong"}, "_password": "long-enough"}])
