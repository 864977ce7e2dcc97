"""Records on the fylr simulator (tests/simulator/records.py): what POST/DELETE /db refuse, unique
columns, deferred lookups, the search index lag - all through real HTTP."""
import copy
import time

import pytest
import requests

from tests import test_simulator_write as shared
from tests.test_simulator_write import Client, commit_datamodel, error, link, orte, wait_until

target, modelled = shared.target, shared.modelled         # fixtures shared with test_simulator_write

PERSON = {"_objecttype": "personen", "_mask": "_all_fields", "_system_object_id": 30, "_uuid": "p30",
          "personen": {"_version": 1, "name": "Ada",
                       "_pool": {"pool": {"lookup:_id": {"reference": "system:standard"}}}}}


def person(sysid, **fields):
    body = copy.deepcopy(PERSON)
    body.update(_system_object_id=sysid, _uuid="p%d" % sysid)
    body["personen"].update(fields)
    return body


def stored(server, sysid):
    ot, record = server.sim.record_by_sysid(sysid)
    return record


def search_sysids(client, **extra):
    body = dict({"limit": 1000, "include_deleted": True}, **extra)
    return {o["_system_object_id"]: o for o in client.ok("POST", "/search", body)["objects"]}

# ---------------------------------------------------------------------------------------- record keys


@pytest.mark.parametrize("key,value", [
    ("_latest_version_deleted_at", "2020-01-01T00:00:00Z"), ("_last_modified", "2020-01-01T00:00:00Z"),
    ("_global_object_id", "1@x"), ("_format", "long"), ("_standard", {}), ("_changelog", []),
    ("_acl", []), ("_collections", []), ("_latest_version", True), ("unknown", 1)])
def test_top_level_record_keys_outside_the_documented_set_are_refused(modelled, key, value):
    server, client = modelled
    error(client.call("POST", "/db/orte", [orte(1, **{key: value})]), 400, "SchemaInconsistent")
    assert not server.sim.records["orte"]


def test_record_needs_its_objecttype_and_a_mask_of_the_table(modelled):
    server, client = modelled
    for change in ({"_mask": None}, {"_mask": "nope"}, {"_mask": "personen__standard"}, {"_objecttype": None},
                   {"_objecttype": "personen"}):
        body = orte(1)
        body.update(change)
        body = {k: v for k, v in body.items() if v is not None}
        error(client.call("POST", "/db/orte", [body]), 400, "SchemaInconsistent")
    client.ok("POST", "/db/orte", [dict(orte(1), _mask="orte__standard")])


@pytest.mark.parametrize("ot,key,value", [
    ("orte", "_owner", None), ("orte", "_last_modified", "x"), ("orte", "_x", 1), ("orte", "nope", 1),
    ("orte", "_nested:orte__nope", []), ("orte", "_nested:personen__aliase", []),
    ("orte", "_pool", {"pool": {"lookup:_id": {"reference": "system:standard"}}}),    # orte has no pools
    ("orte", "_parents", []),                                                         # not polyhierarchical
    ("personen", "_id_parent", None), ("personen", "lookup:_id_parent", None)])       # not hierarchical
def test_keys_inside_the_objecttype_block_must_exist_in_the_datamodel(modelled, ot, key, value):
    _, client = modelled
    body = orte(1) if ot == "orte" else person(1)
    body[ot][key] = value
    error(client.call("POST", "/db/" + ot, [body]), 400, "SchemaInconsistent")


@pytest.mark.parametrize("column,bad,good", [
    ("einwohner", "12", 12), ("einwohner", 1.5, -7), ("einwohner", True, 0), ("breite", "1.5", 1.5),
    ("name", "Köln", {"de-DE": "Köln"}), ("code", 17, "C-17")])
def test_values_are_type_checked_per_column_type(modelled, column, bad, good):
    server, client = modelled
    error(client.call("POST", "/db/orte", [_with(orte(1), "orte", column, bad)]), 400, "SchemaInconsistent")
    client.ok("POST", "/db/orte", [_with(orte(1), "orte", column, good)])
    assert stored(server, 1)["versions"][0]["fields"][column] == good


def _with(body, ot, column, value):
    body[ot][column] = value
    return body


@pytest.mark.parametrize("column,bad", [("geboren", "2020-01-01"), ("aktiv", "true"), ("biografie", ["x"])])
def test_date_boolean_and_text_values_need_their_json_shape(modelled, column, bad):
    _, client = modelled
    error(client.call("POST", "/db/personen", [person(1, **{column: bad})]), 400, "SchemaInconsistent")


def test_nested_rows_links_and_file_entries_are_checked(modelled):
    server, client = modelled
    client.ok("POST", "/db/orte", [orte(20)])
    error(client.call("POST", "/db/personen", [person(1, **{"_nested:personen__aliase": [{"nope": 1}]})]),
          400, "SchemaInconsistent")
    error(client.call("POST", "/db/personen", [person(1, geburtsort=link("personen", 20))]), 400,
          "SchemaInconsistent")                                           # geburtsort links orte
    extra = link("orte", 20)
    extra["_global_object_id"] = "20@x"
    error(client.call("POST", "/db/personen", [person(1, geburtsort=extra)]), 400, "SchemaInconsistent")
    dup_rows = [{"_uuid": "r1", "alias": "a"}, {"_uuid": "r1", "alias": "b"}]
    error(client.call("POST", "/db/personen", [person(1, **{"_nested:personen__aliase": dup_rows})]), 400,
          "DatabaseUniqueKeyViolation")
    client.ok("POST", "/db/personen", [person(1, **{"_nested:personen__aliase": dup_rows})],
              skip_constraints="true")                      # OAS: skip_constraints permits duplicate nested _uuid
    requests.post(client.api + "/eas/put", headers={"Authorization": "Bearer " + client.token},
                  params={"references": '["f1"]'}, files=[("f", ("a.txt", b"a"))])
    bild = {"_objecttype": "dokumente", "_mask": "_all_fields", "dokumente": {
        "_version": 1, "_pool": {"pool": {"lookup:_id": {"reference": "system:standard"}}}}}
    for entries in ([{"lookup:_id": {"reference": "f1"}, "preferred": True, "versions": {}}],      # read-only key
                    [{"lookup:_id": {"reference": "f1"}, "preferred": True},
                     {"lookup:_id": {"reference": "f1"}, "preferred": True}],                     # two preferred
                    [{"lookup:_id": {"reference": "f1"}}],                                        # none preferred
                    [{"eas:url": "http://x/a.txt", "preferred": True}]):                          # importer only
        body = copy.deepcopy(bild)
        body["dokumente"]["datei"] = entries
        error(client.call("POST", "/db/dokumente", [body]), 400, "SchemaInconsistent")


def test_timestamps_are_the_servers_a_sent_created_is_ignored(modelled):
    server, client = modelled
    before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
    client.ok("POST", "/db/orte", [orte(1, _created="2001-01-01T00:00:00Z")])
    version = stored(server, 1)["versions"][0]
    assert version["_created"] >= before and version["_last_modified"] >= before


def test_create_user_only_by_root(make_sim):
    server = make_sim("fylr", size="tiny")
    client = Client(server, "jdoe", "secret")
    body = {"_objecttype": "orte", "_mask": "_all_fields", "_system_object_id": 900, "_uuid": "u900",
            "_create_user": {"_basetype": "user", "user": {"lookup:_id": {"reference": "system:root"}}},
            "orte": {"_version": 1, "code": "NEW-900"}}
    error(client.call("POST", "/db/orte", [body]), 403, "SystemRightRequired")
    assert Client(server).ok("POST", "/db/orte", [body])

def test_basetype_lookups_of_a_batch_find_exact_matches_only_and_one_miss_fails_the_batch(modelled):
    """A batch looks up the same pools and users in many records (the simulator keeps an index of them for
    the request): each lookup is still an exact match, by login or by reference, and one that finds
    nothing - in the last record, after the same table was looked up for the others - refuses the whole
    batch and stores nothing."""
    server, client = modelled
    root = {"_basetype": "user", "user": {"lookup:_id": {"login": "root"}}}
    by_reference = {"_basetype": "user", "user": {"lookup:_id": {"reference": "system:root"}}}
    batch = [person(40), person(41), person(42)]
    batch[0]["_owner"], batch[1]["_owner"], batch[2]["_create_user"] = root, by_reference, root
    answer = client.ok("POST", "/db/personen", batch)
    assert len(answer) == 3
    assert stored(server, 40)["versions"][0]["_owner"] == stored(server, 41)["versions"][0]["_owner"]
    before = (copy.deepcopy(server.sim.records), dict(server.sim.sysids))
    for wrong in ({"reference": "System:Standard"}, {"reference": "system:standard "}, {"reference": ["x"]}):
        batch = [person(50), person(51)]
        batch[1]["personen"]["_pool"] = {"pool": {"lookup:_id": wrong}}
        error(client.call("POST", "/db/personen", batch), 400, "LookupNotFound")
        assert (server.sim.records, server.sim.sysids) == before


# ------------------------------------------------------------------------------------ create / update


def test_a_create_addressed_by_a_lookup_that_finds_nothing_is_refused(modelled):
    server, client = modelled
    body = orte(1)
    body["orte"]["lookup:_id"] = {"_system_object_id": 1, "_allow_defer": True}
    error(client.call("POST", "/db/orte", [body]), 400, "LookupNotFound")
    client.ok("POST", "/db/orte", [orte(1)])
    again = orte(2)
    again["orte"]["lookup:_id"] = {"_system_object_id": 1}
    error(client.call("POST", "/db/orte", [again]), 400, "VersionMismatch")          # version 1 of a stored one
    assert set(server.sim.sysids) == {1}


def test_a_taken_id_is_refused_never_renumbered(modelled):
    server, client = modelled
    first = orte(1)
    first["orte"]["_id"] = 7
    client.ok("POST", "/db/orte", [first])
    assert server.sim.sysids[1] == ("orte", 7)
    second = orte(2)
    second["orte"]["_id"] = 7
    body = error(client.call("POST", "/db/orte", [second]), 400, "DatabaseUniqueKeyViolation")
    assert body["parameters"]["name"] == "_id" and 2 not in server.sim.sysids


def test_system_object_id_and_uuid_cannot_change_on_an_update(modelled):
    server, client = modelled
    client.ok("POST", "/db/orte", [orte(1)])
    for key, value in (("_system_object_id", 5), ("_uuid", "other")):
        update = orte(1, version=2)
        update[key] = value
        error(client.call("POST", "/db/orte", [update]), 400, "SchemaInconsistent")
    same = orte(1, version=2)
    same.update(_system_object_id=1, _uuid="uuid-1")                   # unchanged values are fine
    client.ok("POST", "/db/orte", [same])


def test_update_without_address_or_with_a_wrong_version_is_a_version_mismatch(modelled):
    _, client = modelled
    client.ok("POST", "/db/orte", [orte(1)])
    unaddressed = orte(1, version=2)
    del unaddressed["orte"]["lookup:_id"]
    error(client.call("POST", "/db/orte", [unaddressed]), 400, "VersionMismatch")
    error(client.call("POST", "/db/orte", [orte(1, version=3)]), 400, "VersionMismatch")

# --------------------------------------------------------------------------------------------- lookups


def test_uuids_are_known_across_requests_and_free_again_after_a_rollback_or_a_purge(modelled):
    """The uuid index outlives a request (UuidIndex): a uuid saved earlier is refused again and found by a
    lookup; the uuid of a record created by a batch that then failed is free, and so is a purged one's."""
    server, client = modelled
    client.ok("POST", "/db/orte", [orte(1)])
    again = orte(2)
    again["_uuid"] = "uuid-1"
    assert error(client.call("POST", "/db/orte", [again]), 400,
                 "DatabaseUniqueKeyViolation")["parameters"]["name"] == "_uuid"
    broken = orte(4)
    broken["orte"]["nope"] = 1
    error(client.call("POST", "/db/orte", [orte(3), broken]), 400, "SchemaInconsistent")
    assert 3 not in server.sim.sysids
    child = orte(5)
    child["orte"]["lookup:_id_parent"] = {"_uuid": "uuid-3"}
    error(client.call("POST", "/db/orte", [child]), 400, "LookupNotFound")        # rolled back: not there
    client.ok("POST", "/db/orte", [orte(3)])                                      # its uuid is free
    client.ok("POST", "/db/orte", [child])
    assert stored(server, 5)["versions"][0]["_id_parent"] == server.sim.sysids[3][1]
    oid = server.sim.sysids[1][1]
    client.ok("DELETE", "/db/orte", [[oid, 1, None]])
    client.ok("DELETE", "/db/orte", [[oid, 1, None]], delete_policy="purge")
    client.ok("POST", "/db/orte", [dict(orte(6), _uuid="uuid-1")])                # the purged one's uuid is free
    assert stored(server, 6)["_uuid"] == "uuid-1"


def test_a_record_cannot_be_placed_below_itself(modelled):
    """The docs are silent; the simulator refuses a parent whose parents lead back to the record, and the
    whole batch with it - directly, through a chain, and when a deferred parent arrives below its child."""
    server, client = modelled
    top, below = orte(1), orte(2)
    below["orte"]["lookup:_id_parent"] = {"_system_object_id": 1}
    client.ok("POST", "/db/orte", [top, below])
    for parent in (1, 2):
        moved = orte(1, version=2)
        moved["orte"]["lookup:_id_parent"] = {"_system_object_id": parent}
        error(client.call("POST", "/db/orte", [moved]), 400, "SchemaInconsistent")
    assert len(stored(server, 1)["versions"]) == 1
    waiting = orte(3)
    waiting["orte"]["lookup:_id_parent"] = {"_uuid": "uuid-4", "_allow_defer": True}
    client.ok("POST", "/db/orte", [waiting])
    arriving = orte(4)
    arriving["orte"]["lookup:_id_parent"] = {"_system_object_id": 3}
    error(client.call("POST", "/db/orte", [arriving]), 400, "SchemaInconsistent")
    assert 4 not in server.sim.sysids
    client.ok("POST", "/db/orte", [orte(4)])                       # at the top: 3 goes below it
    assert stored(server, 3)["versions"][0]["_id_parent"] == server.sim.sysids[4][1]


def test_uuid_lookups_with_allow_defer_resolve_when_the_target_is_saved(modelled):
    server, client = modelled
    waiting = orte(2)
    waiting["orte"]["lookup:_id_parent"] = {"_uuid": "uuid-1", "_allow_defer": True}
    client.ok("POST", "/db/orte", [waiting])
    fan = person(30, geburtsort={"_objecttype": "orte", "_mask": "_all_fields",
                                 "orte": {"lookup:_id": {"_uuid": "uuid-1", "_allow_defer": True}}})
    client.ok("POST", "/db/personen", [fan])
    cid = client.ok("PUT", "/collection/list", [{"collection": {
        "_version": 1, "reference": "c", "lookup:_id_parent": {"reference": "user:ref:system:root"}}}])[0][
        "collection"]["_id"]
    assert client.ok("POST", "/collection/objects/%d" % cid, {"objects": [
        {"lookup:_global_object_id": {"_uuid": "uuid-1", "_allow_defer": True}}]})["count"] == 0
    shown = client.ok("GET", "/db/personen/_all_fields/system_object_id/30")[0]["personen"]["geburtsort"]
    assert shown["_purged_or_deferred"] and shown["_uuid"] == "uuid-1"
    client.ok("POST", "/db/orte", [orte(1)])                                  # the promised target arrives
    sim = server.sim
    assert stored(server, 2)["versions"][0]["_id_parent"] == sim.sysids[1][1]
    assert stored(server, 30)["versions"][0]["fields"]["geburtsort"] == {"_objecttype": "orte", "_system_object_id": 1}
    assert sim.collection_objects[cid] == [1] and not sim.deferred_uuids
    without_defer = person(31, geburtsort={"_objecttype": "orte", "_mask": "_all_fields",
                                           "orte": {"lookup:_id": {"_uuid": "uuid-9"}}})
    error(client.call("POST", "/db/personen", [without_defer]), 400, "LookupNotFound")


def test_record_lookups_name_one_key_custom_columns_must_be_unique(modelled):
    server, client = modelled
    client.ok("POST", "/db/orte", [orte(1, name="Köln")])

    def fan(sysid, lookup):
        return person(sysid, geburtsort={"_objecttype": "orte", "_mask": "_all_fields", "orte": {"lookup:_id": lookup}})
    client.ok("POST", "/db/personen", [fan(30, {"code": "K-1"})])             # unique column
    assert stored(server, 30)["versions"][0]["fields"]["geburtsort"]["_system_object_id"] == 1
    error(client.call("POST", "/db/personen", [fan(31, {"einwohner": 0})]), 400, "SchemaInconsistent")
    error(client.call("POST", "/db/personen", [fan(31, {"code": "K-1", "_allow_defer": True})]), 400,
          "ServerGeneric")                                                   # defer: sysid / uuid only
    error(client.call("POST", "/db/personen", [fan(31, {"_system_object_id": 1, "_objecttype": "orte"})]), 400,
          "ServerGeneric")                                                   # table implied: extra key
    error(client.call("POST", "/db/personen", [fan(31, {"_system_object_id": 1, "_uuid": "uuid-1"})]), 400,
          "ServerGeneric")
    error(client.call("POST", "/db/personen", [fan(31, {"code": "K-9"})]), 400, "LookupNotFound")

# ---------------------------------------------------------------------------------------- unique keys


def test_a_unique_value_held_by_another_latest_version_is_refused(modelled):
    server, client = modelled
    client.ok("POST", "/db/orte", [orte(1)])                                 # code K-1
    clash = orte(2)
    clash["orte"]["code"] = "K-1"
    body = error(client.call("POST", "/db/orte", [clash]), 400, "DatabaseUniqueKeyViolation")
    assert body["parameters"]["name"] == "orte.code"
    moved = orte(1, version=2)
    moved["orte"]["code"] = "K-1-new"                                        # version 2 frees K-1
    client.ok("POST", "/db/orte", [moved])
    client.ok("POST", "/db/orte", [clash])
    in_one_batch = [orte(3), dict(orte(4), orte=dict(orte(4)["orte"], code="K-3"))]
    error(client.call("POST", "/db/orte", in_one_batch), 400, "DatabaseUniqueKeyViolation")
    client.ok("POST", "/db/orte", in_one_batch, skip_constraints="true")     # documented escape hatch


def test_generated_history_collides_when_every_version_1_is_posted_first(make_sim):
    """The datagen trap: posting version 1 of every orte before any version 2 hits the unique key."""
    source = make_sim("fylr", size="tiny").sim
    server = make_sim("fylr", size="empty")
    client = Client(server)
    commit_datamodel(client, source.schema, source.mask, source.l10n)
    firsts = [{"_objecttype": "orte", "_mask": "_all_fields", "_system_object_id": r["_system_object_id"],
               "_uuid": r["_uuid"], "orte": {"_version": 1, "code": r["versions"][0]["fields"]["code"]}}
              for _, r in sorted(source.records["orte"].items())]
    error(client.call("POST", "/db/orte", firsts), 400, "DatabaseUniqueKeyViolation")

# ---------------------------------------------------------------------------------------- search index


def test_search_sees_saved_records_only_after_the_index_lag(make_sim):
    server = make_sim("fylr", size="tiny", index_lag=0.4)
    client = Client(server)
    body = {"_objecttype": "orte", "_mask": "_all_fields", "_system_object_id": 900, "_uuid": "u900",
            "orte": {"_version": 1, "code": "NEW-900"}}
    client.ok("POST", "/db/orte", [body])
    assert client.ok("GET", "/db/orte/_all_fields/system_object_id/900")        # /db reads: at once
    assert 900 not in search_sysids(client)
    assert client.ok("GET", "/system/status")["total_not_indexed"] == 1
    wait_until(lambda: 900 in search_sysids(client))
    update = {"_objecttype": "orte", "_mask": "_all_fields",
              "orte": {"_version": 2, "lookup:_id": {"_system_object_id": 900}, "code": "NEW-900b"}}
    client.ok("POST", "/db/orte", [update])
    assert search_sysids(client, format="short")[900]["orte"]["_version"] == 1     # the index lags behind
    wait_until(lambda: search_sysids(client, format="short")[900]["orte"]["_version"] == 2)
    body.update(_system_object_id=901, _uuid="u901", orte={"_version": 1, "code": "NEW-901"})
    client.ok("POST", "/db/orte", [body], await_index="10")
    assert 901 in search_sysids(client)                                      # await_index: searchable at once


def test_skip_index_keeps_records_out_of_search_until_a_reindex(make_sim):
    server = make_sim("fylr", size="tiny", index_lag=0.05)
    client = Client(server)
    client.ok("POST", "/db/orte", [{"_objecttype": "orte", "_mask": "_all_fields", "_system_object_id": 900,
                                    "_uuid": "u900", "orte": {"_version": 1, "code": "NEW-900"}}], skip_index="true")
    time.sleep(0.2)
    assert 900 not in search_sysids(client)
    client.ok("POST", "/system/reindex")
    wait_until(lambda: 900 in search_sysids(client))

# ------------------------------------------------------------------------------------------ DELETE /db


def _linked_pair(client):
    """orte 1 and a person 30 whose latest version links it."""
    client.ok("POST", "/db/orte", [orte(1), orte(2)])
    client.ok("POST", "/db/personen", [person(30, geburtsort=link("orte", 1), **{
        "_nested:personen__aliase": [{"_uuid": "r", "alias": "x"}]})])


def test_delete_needs_the_current_version_and_moves_the_record_to_the_trash(modelled):
    server, client = modelled
    _linked_pair(client)
    oid = server.sim.sysids[2][1]
    error(client.call("DELETE", "/db/orte", [[oid, 2, None]]), 400, "VersionMismatch")
    error(client.call("DELETE", "/db/orte", [[999, 1, None]]), 400, "LookupNotFound")
    error(client.call("DELETE", "/db/orte", [[oid, 1]]), 400, "ServerGeneric")      # triples only
    answer = client.ok("DELETE", "/db/orte", [[oid, 1, "weg"]])
    assert answer == {"policy": None, "removed": [2], "setnull": []}
    assert stored(server, 2)["deleted_at"]
    assert client.ok("GET", "/db/orte/_all_fields/%d" % oid)[0]["_latest_version_deleted_at"]
    assert 2 not in {r["_system_object_id"] for r in client.ok("GET", "/db/orte/_all_fields/list")}
    client.ok("POST", "/db/personen", [person(31, geburtsort=link("orte", 2, defer=False))])   # still resolvable
    error(client.call("DELETE", "/db/orte", [[oid, 1, None]]), 400, "LookupNotFound")       # already trashed


def test_deleting_a_record_a_live_record_links_asks_for_a_delete_policy(modelled):
    server, client = modelled
    _linked_pair(client)
    oid = server.sim.sysids[1][1]
    r = client.call("DELETE", "/db/orte", [[oid, 1, None]])
    assert r.status_code == 202
    task = r.json()["tasks"][0]
    assert task["title"] and task["message"] and task["buttons"]
    field = task["form"][0]
    assert field["name"] == "delete_policy" and {o["value"] for o in field["options"]} >= {"remove", "setnull"}
    assert not stored(server, 1)["deleted_at"]                                # nothing was deleted


def test_delete_policy_setnull_clears_the_links_in_a_new_version(modelled):
    server, client = modelled
    _linked_pair(client)
    answer = client.ok("DELETE", "/db/orte", [[server.sim.sysids[1][1], 1, None]], delete_policy="setnull")
    assert answer == {"policy": "setnull", "removed": [1], "setnull": [30]}
    linker = stored(server, 30)
    assert len(linker["versions"]) == 2 and linker["versions"][-1]["fields"]["geburtsort"] is None
    assert not linker["deleted_at"] and stored(server, 1)["deleted_at"]


def test_delete_policy_remove_also_trashes_the_linking_records(modelled):
    server, client = modelled
    _linked_pair(client)
    answer = client.ok("DELETE", "/db/orte", [[server.sim.sysids[1][1], 1, None]], delete_policy="remove")
    assert answer["removed"] == [1, 30]
    assert stored(server, 30)["deleted_at"] and stored(server, 1)["deleted_at"]
    error(client.call("DELETE", "/db/orte", [[1, 1, None]], delete_policy="drop"), 400, "ServerGeneric")


def test_undelete_and_purge_address_trashed_records_only(modelled):
    server, client = modelled
    _linked_pair(client)
    oid = server.sim.sysids[2][1]
    error(client.call("DELETE", "/db/orte", [[oid, 1, None]], delete_policy="undelete"), 400, "LookupNotFound")
    client.ok("DELETE", "/db/orte", [[oid, 1, None]])
    client.ok("DELETE", "/db/orte", [[oid, 1, None]], delete_policy="undelete")
    assert not stored(server, 2)["deleted_at"]
    client.ok("DELETE", "/db/orte", [[oid, 1, None]])
    assert client.ok("DELETE", "/db/orte", [[oid, 1, None]], delete_policy="purge")["removed"] == [2]
    assert 2 not in server.sim.sysids and client.ok("GET", "/db/orte/_all_fields/%d" % oid) == []


def test_fylr_object_search_omits_type_object_is_easydb5_only(make_sim):
    fylr = Client(make_sim("fylr", size="tiny"))
    error(fylr.call("POST", "/search", {"type": "object", "limit": 1}), 400, "ServerGeneric")
    assert fylr.ok("POST", "/search", {"limit": 1})["objects"]
    from tests.test_simulator_read import Client as ReadClient
    e5 = ReadClient(make_sim("easydb5", size="tiny"))
    assert e5.post("/search", {"type": "object", "limit": 1}).status_code == 200


def test_record_acl_only_on_acl_tables_and_kept(target):
    server, client = target
    schema, mask, l10n = shared.source_datamodel()
    schema = copy.deepcopy(schema)
    next(t for t in schema["tables"] if t["name"] == "orte")["acl_table"] = True
    commit_datamodel(client, schema, mask, l10n)
    rule = {"who": {"_basetype": "user", "user": {"lookup:_id": {"reference": "system:root"}}}, "rights": {"read": {}}}
    client.ok("POST", "/db/orte", [orte(1, _acl=[rule])])
    assert stored(server, 1)["versions"][0]["_acl"][0]["who"]["user"] == {"_id": 1}
    assert client.ok("GET", "/db/orte/_all_fields/system_object_id/1")[0]["_acl"][0]["rights"] == {"read": {}}
    error(client.call("POST", "/db/personen", [dict(person(30), _acl=[rule])]), 400, "SchemaInconsistent")


def test_one_tag_per_choice_group_unless_skip_constraints(make_sim):
    server = make_sim("fylr", size="tiny")
    client = Client(server)
    choice = next(tg for tg in server.sim.taggroups.values() if tg["taggroup"]["type"] == "choice")
    both = [{"_id": t["tag"]["_id"]} for t in choice["_tags"]]
    body = {"_objecttype": "bilder", "_mask": "_all_fields", "_system_object_id": 900, "_uuid": "u900",
            "_tags": both, "bilder": {"_version": 1, "_pool": {"pool": {"lookup:_id": {"reference": "photos"}}}}}
    error(client.call("POST", "/db/bilder", [body]), 400, "SchemaInconsistent")
    client.ok("POST", "/db/bilder", [body], skip_constraints="true")
    for recs in server.sim.records.values():                      # the generator keeps the rule too
        for rec in recs.values():
            for version in rec["versions"]:
                assert len(set(version["_tags"]) & {t["_id"] for t in both}) <= 1 or rec["_system_object_id"] == 900


def test_dry_run_validates_everything_and_writes_nothing(modelled):
    server, client = modelled
    client.ok("POST", "/db/orte", [orte(1)])
    answer = client.ok("POST", "/db/orte", [orte(2), orte(1, version=2)], dry_run="1")
    assert "_system_object_id" not in answer[0] and "_id" not in answer[0]["orte"]      # no ids drawn
    assert answer[1]["_system_object_id"] == 1 and answer[1]["orte"]["_version"] == 2
    assert set(server.sim.sysids) == {1} and len(stored(server, 1)["versions"]) == 1
    assert len(server.sim.events) == 1                                                 # only the real insert
    error(client.call("POST", "/db/orte", [orte(1)], dry_run="1"), 400, "DatabaseUniqueKeyViolation")
