"""A failed POST /db batch changes nothing (records.py): its writes go through an undo log (Journal) instead
of a copy of every record, so these tests look at everything a batch can touch - records of the posted and
of OTHER objecttypes patched by deferred parents and links, sysids, events, collection entries, the deferred
tables - once the batch has failed at its last record."""
import copy

from tests import test_simulator_write as shared
from tests.test_simulator_records import person
from tests.test_simulator_write import error, orte

target, modelled = shared.target, shared.modelled         # fixtures shared with test_simulator_write

_STATE = ("records", "sysids", "events", "collection_objects", "collection_props", "deferred_parents",
          "deferred_uuids")


def state(sim):
    return {name: copy.deepcopy(getattr(sim, name)) for name in _STATE}


def _waiting_for_orte_1(client):
    """Records and a collection entry waiting for orte 1 (system id 1, uuid-1); returns the collection id."""
    client.ok("POST", "/db/orte", [orte(2, parent=1)])                                  # deferred parent (sysid)
    by_uuid = orte(3)
    by_uuid["orte"]["lookup:_id_parent"] = {"_uuid": "uuid-1", "_allow_defer": True}    # deferred parent (uuid)
    client.ok("POST", "/db/orte", [by_uuid])
    client.ok("POST", "/db/personen", [person(30, geburtsort={                          # another objecttype
        "_objecttype": "orte", "_mask": "_all_fields", "orte": {"lookup:_id": {"_uuid": "uuid-1", "_allow_defer": True}}})])
    cid = client.ok("PUT", "/collection/list", [{"collection": {
        "_version": 1, "reference": "c", "lookup:_id_parent": {"reference": "user:ref:system:root"}}}])[0][
        "collection"]["_id"]
    client.ok("POST", "/collection/objects/%d" % cid, {"objects": [
        {"lookup:_global_object_id": {"_uuid": "uuid-1", "_allow_defer": True}}]})
    return cid


def test_a_batch_failing_at_its_last_record_undoes_what_resolving_deferred_lookups_changed(modelled):
    server, client = modelled
    sim = server.sim
    cid = _waiting_for_orte_1(client)
    before = state(sim)
    assert before["deferred_parents"] and before["deferred_uuids"] and before["events"]
    broken = orte(5)
    broken["orte"]["nope"] = 1
    batch = [orte(1), orte(2, version=2), orte(4, parent=1), broken]      # creates, resolves, updates, fails
    error(client.call("POST", "/db/orte", batch), 400, "SchemaInconsistent")
    assert state(sim) == before
    saved = client.ok("POST", "/db/orte", batch[:3])                      # uuid-1 is free, the waiting resolve
    assert [s["_system_object_id"] for s in saved] == [1, 2, 4]
    orte_1 = sim.sysids[1][1]
    assert [sim.records["orte"][sim.sysids[s][1]]["versions"][0]["_id_parent"] for s in (2, 3, 4)] == [orte_1] * 3
    assert sim.records["personen"][sim.sysids[30][1]]["versions"][0]["fields"]["geburtsort"] == {
        "_objecttype": "orte", "_system_object_id": 1}
    assert sim.collection_objects[cid] == [1] and not sim.deferred_uuids and not sim.deferred_parents


def test_a_failed_batch_removes_the_objecttype_table_it_added(modelled):
    server, client = modelled
    sim = server.sim
    del sim.records["orte"]                        # not there until the first record of the objecttype
    before = state(sim)
    broken = orte(2)
    broken["orte"]["nope"] = 1
    error(client.call("POST", "/db/orte", [orte(1), broken]), 400, "SchemaInconsistent")
    assert state(sim) == before and "orte" not in sim.records
    client.ok("POST", "/db/orte", [orte(1)])
    assert list(sim.records["orte"]) == [sim.sysids[1][1]]


def test_a_dry_run_with_resolved_deferred_lookups_changes_nothing(modelled):
    server, client = modelled
    sim = server.sim
    _waiting_for_orte_1(client)
    before = state(sim)
    client.ok("POST", "/db/orte", [orte(1), orte(2, version=2)], dry_run="1")
    assert state(sim) == before
