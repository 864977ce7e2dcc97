"""Shortcuts of POST /db (records.py) that must answer exactly what the general code answers: basetype
lookups remembered across batches (valid only while the looked-up basetype's stored values are unchanged),
the common link lookup {"_system_object_id": n, "_allow_defer": true} and the inline column checks."""
from tests import test_simulator_write as shared
from tests.test_simulator_records import PERSON, person
from tests.test_simulator_write import error, link, orte

target, modelled = shared.target, shared.modelled         # fixtures shared with test_simulator_write

STANDARD = {"pool": {"lookup:_id": {"reference": "system:standard"}}}


def by_reference(reference):
    return {"_basetype": "user", "user": {"lookup:_id": {"reference": reference}}}


def owner_of(sim, sysid):
    ot, record = sim.record_by_sysid(sysid)
    return record["versions"][-1]["_owner"]


def _a_user(client):
    """(_id, reference) of a new user."""
    saved = client.ok("POST", "/user", [{"_basetype": "user", "user": {"login": "anna", "reference": "ref-anna",
                                                                        "type": "easydb"}}])
    return saved[0]["user"]["_id"], "ref-anna"


def test_a_user_lookup_follows_a_reference_changed_between_batches_also_in_place(modelled):
    server, client = modelled
    sim = server.sim
    uid, reference = _a_user(client)
    client.ok("POST", "/db/personen", [dict(person(40), _owner=by_reference(reference))])
    assert owner_of(sim, 40) == uid
    sim.users[uid]["user"]["reference"] = "renamed"              # in place, between two batches
    error(client.call("POST", "/db/personen", [dict(person(41), _owner=by_reference(reference))]), 400,
          "LookupNotFound")
    client.ok("POST", "/db/personen", [dict(person(42), _owner=by_reference("renamed"))])
    assert owner_of(sim, 42) == uid
    # a second user with the same reference (not through the API, which refuses it): two hits now
    other = max(sim.users) + 1
    sim.users[other] = {"_basetype": "user", "user": dict(sim.users[uid]["user"], _id=other, login="x-other")}
    error(client.call("POST", "/db/personen", [dict(person(43), _owner=by_reference("renamed"))]), 400,
          "LookupFoundTooMany")
    del sim.users[other]
    client.ok("POST", "/db/personen", [dict(person(44), _owner=by_reference("renamed"))])
    assert owner_of(sim, 44) == uid


def test_a_pool_lookup_follows_a_pool_replaced_between_batches(modelled):
    server, client = modelled
    sim = server.sim
    client.ok("POST", "/db/personen", [person(50)])
    standard = next(i for i, e in sim.pools.items() if e["pool"].get("reference") == "system:standard")
    assert sim.record_by_sysid(50)[1]["versions"][-1]["_pool"] == standard
    sim.pools[standard] = dict(sim.pools[standard], pool=dict(sim.pools[standard]["pool"], reference="moved"))
    body = person(51)
    error(client.call("POST", "/db/personen", [body]), 400, "LookupNotFound")
    body["personen"]["_pool"] = {"pool": {"lookup:_id": {"reference": "moved"}}}
    client.ok("POST", "/db/personen", [body])
    assert sim.record_by_sysid(51)[1]["versions"][-1]["_pool"] == standard


def test_remembered_lookups_still_refuse_what_they_refused(modelled):
    server, client = modelled
    for wrapper, code in (({"_basetype": "user", "user": {"lookup:_id": {"reference": "nobody"}}}, "LookupNotFound"),
                          ({"_basetype": "user", "user": {"lookup:_id": {"nope": "x"}}}, "ServerGeneric"),
                          ({"_basetype": "user", "user": {"lookup:_id": {"reference": ["x"]}}}, "LookupNotFound"),
                          ({"_basetype": "user", "user": {"lookup:_id": {"reference": "a", "login": "b"}}},
                           "ServerGeneric")):
        for _ in range(2):                                     # the second time as the first
            error(client.call("POST", "/db/personen", [dict(person(60), _owner=wrapper)]), 400, code)
    assert 60 not in server.sim.sysids


def test_a_tag_lookup_follows_a_tag_changed_between_batches(modelled):
    server, client = modelled
    sim = server.sim
    client.ok("POST", "/tags", [{"taggroup": {"_version": 1, "reference": "g", "type": "checkbox"},
                                 "_tags": [{"tag": {"_version": 1, "reference": "t1"}}]}])
    tag = next(t["tag"] for tg in sim.taggroups.values() for t in tg["_tags"] if t["tag"].get("reference") == "t1")
    record = {"_objecttype": "bilder", "_mask": "_all_fields", "_system_object_id": 70, "_uuid": "b70",
              "_tags": [{"tag": {"lookup:_id": {"reference": tag["reference"]}}}],
              "bilder": {"_version": 1, "_pool": STANDARD}}
    client.ok("POST", "/db/bilder", [record])
    assert sim.record_by_sysid(70)[1]["versions"][-1]["_tags"] == [tag["_id"]]
    old = tag["reference"]
    tag["reference"] = "retagged"                               # in place, between two batches
    error(client.call("POST", "/db/bilder", [dict(record, _system_object_id=71, _uuid="b71")]), 400,
          "LookupNotFound")
    tag["reference"] = old


def test_the_common_link_lookup_answers_like_the_general_one(modelled):
    server, client = modelled
    sim = server.sim
    client.ok("POST", "/db/orte", [orte(1)])
    client.ok("POST", "/db/personen", [person(30, geburtsort=link("orte", 1))])           # found
    assert sim.record_by_sysid(30)[1]["versions"][0]["fields"]["geburtsort"] == {
        "_objecttype": "orte", "_system_object_id": 1}
    client.ok("POST", "/db/personen", [person(31, geburtsort=link("orte", 900))])         # deferred
    assert sim.record_by_sysid(31)[1]["versions"][0]["fields"]["geburtsort"] == {
        "_objecttype": "orte", "_system_object_id": 900}
    assert client.ok("POST", "/db/orte", [orte(901)])[0]["_system_object_id"] == 901      # 900 was skipped
    # a system id of another objecttype is not found, deferrable or not
    error(client.call("POST", "/db/personen", [person(32, geburtsort=link("orte", 30))]), 400, "LookupNotFound")
    error(client.call("POST", "/db/personen", [person(32, geburtsort=link("orte", 30, defer=False))]), 400,
          "LookupNotFound")
    for lookup, code in (({"_system_object_id": 1, "_allow_defer": False}, "ServerGeneric"),
                         ({"_system_object_id": 1, "_allow_defer": "yes"}, "ServerGeneric"),
                         ({"_system_object_id": "1", "_allow_defer": True}, "LookupNotFound"),
                         ({"_system_object_id": 1.5, "_allow_defer": True}, "LookupNotFound"),
                         ({"_system_object_id": 1, "_uuid": "x"}, "ServerGeneric"),
                         ({"code": "K-1", "_allow_defer": True}, "ServerGeneric")):
        bad = {"_objecttype": "orte", "_mask": "_all_fields", "orte": {"lookup:_id": lookup}}
        error(client.call("POST", "/db/personen", [person(33, geburtsort=bad)]), 400, code)
    for bad in ({"_objecttype": "orte", "_mask": "_all_fields", "orte": {"lookup:_id": {"_system_object_id": 1}},
                 "extra": 1},
                {"_objecttype": "orte", "_mask": "_all_fields", "orte": {"lookup:_id": {"_system_object_id": 1},
                                                                          "_id": 1}},
                {"_objecttype": "orte", "_mask": "_all_fields", "orte": {}},
                {"_objecttype": "orte", "orte": {"lookup:_id": {"_system_object_id": 1}}, "x": 1},
                {"_objecttype": "bilder", "_mask": "_all_fields", "bilder": {"lookup:_id": {"_system_object_id": 1}}}):
        error(client.call("POST", "/db/personen", [person(33, geburtsort=bad)]), 400, "SchemaInconsistent")
    assert 33 not in sim.sysids


def test_inline_column_checks_refuse_like_before(modelled):
    server, client = modelled
    body = error(client.call("POST", "/db/personen", [person(34, name=5)]), 400, "SchemaInconsistent")
    assert body["parameters"]["msg"] == "personen.name: a text_oneline value was expected, got int."
    rows = [{"_uuid": "r1", "alias": "A", "nope": 1}]
    body = error(client.call("POST", "/db/personen", [person(34, **{"_nested:personen__aliase": rows})]), 400,
                 "SchemaInconsistent")
    assert body["parameters"]["msg"] == "Unknown keys in personen__aliase: ['nope']."
    rows = [{"_uuid": "r1", "alias": 7}]
    body = error(client.call("POST", "/db/personen", [person(34, **{"_nested:personen__aliase": rows})]), 400,
                 "SchemaInconsistent")
    assert body["parameters"]["msg"] == "personen__aliase.alias: a text_oneline value was expected, got int."
    rows = [{"alias": "A", "_uuid": "r1", "sprache": None}]
    client.ok("POST", "/db/personen", [person(34, **{"_nested:personen__aliase": rows})])
    stored = server.sim.record_by_sysid(34)[1]["versions"][0]["fields"]["_nested:personen__aliase"]
    assert stored == [{"_uuid": "r1", "alias": "A", "sprache": None}]
    assert list(stored[0]) == ["_uuid", "alias", "sprache"]
    assert PERSON["personen"]["name"] == "Ada"                  # the shared body was not changed
