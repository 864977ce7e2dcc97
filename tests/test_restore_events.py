"""Events restored exactly as parameters.md 6.1's table says, one test per row: the whole mapped event
(type, basetype, object_id, info) as the target holds it, for an easydb 5 source; and the basetype
events of a fylr source point at the target's entries."""
import pytest

import fylrmig
from tests.conftest import generated_instance
from tests.helpers import backup_argv
from tests.simulator.server import serve

# parameters.md 6.1: easydb 5 type -> (fylr type, basetype after the migration (None: as it was),
# the info ids that change)
TABLE = {
    "ASSET_DOWNLOAD_CONFIRMATION_MESSAGE": ("ASSET_DOWNLOAD_CONFIRMATION_MESSAGE", "message", {"assets"}),
    "CUSTOM_TYPE_UPDATER_RESPONSE": ("CUSTOM_DATA_TYPE_UPDATER", None, set()),
    "CUSTOM_TYPE_UPDATER_START": ("CUSTOM_DATA_TYPE_UPDATER", None, set()),
    "CUSTOM_TYPE_UPDATER_RESPONSE_ERROR": ("CUSTOM_DATA_TYPE_UPDATER_ERROR", None, set()),
    "CUSTOM_TYPE_UPDATER_RESPONSE_FAILED": ("CUSTOM_DATA_TYPE_UPDATER_ERROR", None, set()),
    "SCHEMA_COMMIT": ("DATAMODEL_COMMIT", None, set()),
    "DETAIL_VIEW": ("DETAIL_VIEW", None, set()),
    "EMAIL_SENT": ("EMAIL_SENT", None, set()),
    "DOWNLOAD_EXPORT": ("EXPORT_DOWNLOAD", None, set()),
    "ASSET_DOWNLOAD": ("FILE_DOWNLOAD", "file", {"export", "export_user_id"}),
    "ASSET_EXPORT_DOWNLOAD": ("FILE_DOWNLOAD", "file", {"export", "export_user_id"}),
    "OBJECT_DELETE": ("OBJECT_DELETE", None, set()),
    "OBJECT_INSERT": ("OBJECT_INSERT", None, set()),
    "OBJECT_UPDATE": ("OBJECT_UPDATE", None, set()),
    "SEARCH": ("SEARCH", None, set()),
    "USER_CREATED": ("USER_INSERT", "user", set()),
    "USER_LOGIN": ("USER_LOGIN", "user", set()),
    "USER_LOGOUT": ("USER_LOGOUT", "user", set()),
    "WEBHOOK_OK": ("WEBHOOK", None, set()),
    "WEBHOOK_ERROR": ("WEBHOOK_ERROR", None, set()),
}


def migrate(flavour, tmp):
    source, target = serve(generated_instance(flavour)), serve(generated_instance("fylr", size="empty"))
    data = tmp / "data"
    assert fylrmig.main([str(a) for a in backup_argv(source, tmp / "b", data, "--all-versions")]) == 0
    assert fylrmig.main(["restore", "--manifest", str(tmp / "b" / "manifest.json"), "--server", target.api_url,
                         "--login", "root", "--password", "admin", "--data", str(data), "--purge",
                         "--file-api", "put", "--retry-sleep-between", "0"]) == 0
    return source, target


@pytest.fixture(scope="module")
def e5_migrated(tmp_path_factory):
    source, target = migrate("easydb5", tmp_path_factory.mktemp("e5-events"))
    yield source.sim, target.sim
    source.shutdown()
    target.shutdown()


def target_user_id(source, target, source_uid):
    user = source.users[source_uid]["user"]
    reference = user.get("reference") or f"user:{source_uid}"
    return next(uid for uid, u in target.users.items() if u["user"].get("reference") == reference)


def target_file_id(source, target, source_fid):
    return next(fid for fid, f in target.files.items()
                if (f.get("reference") or "").endswith(f":eas:{source_fid}:original"))


def expected_event(source, target, event, row):
    fylr_type, basetype, changed = row
    info = dict(event["info"] or {})
    if "export" in changed:
        info["export"] = dict(info["export"], _id=None)
    if "export_user_id" in changed:
        info["export_user_id"] = target_user_id(source, target, info["export_user_id"])
    if "assets" in changed:
        info["assets"] = [dict(a, id=target_file_id(source, target, a["id"])) for a in info["assets"]]
    object_id = event["object_id"]
    if basetype == "user" and object_id is not None:
        object_id = target_user_id(source, target, object_id)
    elif event.get("system_object_id"):
        ot, oid = target.sysids[event["system_object_id"]]
        object_id = oid
    return {"type": fylr_type, "basetype": basetype or event["basetype"], "object_id": object_id, "info": info}


@pytest.mark.parametrize("e5_type", sorted(TABLE))
def test_each_row_of_the_easydb5_event_table_is_restored_exactly(e5_migrated, e5_type):
    source, target = e5_migrated
    events = [e["event"] for e in source.events.values() if e["event"]["type"] == e5_type]
    assert events, f"the generated easydb 5 instance has no {e5_type} event"
    restored = {e["event"]["timestamp"]: e["event"] for e in target.events.values()}
    for event in events:
        got = restored[event["timestamp"]]
        want = expected_event(source, target, event, TABLE[e5_type])
        assert {k: got.get(k) for k in want} == want


def test_easydb5_event_types_outside_the_table_are_never_restored(e5_migrated):
    source, target = e5_migrated
    restored = {e["event"]["timestamp"] for e in target.events.values()}
    for entry in source.events.values():
        if entry["event"]["type"] not in TABLE:
            assert entry["event"]["timestamp"] not in restored, entry["event"]["type"]


def test_fylr_basetype_events_name_the_targets_entries(tmp_path):
    source, target = migrate("fylr", tmp_path)
    try:
        tables = {"user": "users", "group": "groups", "pool": "pools", "collection": "collections",
                  "message": "messages"}
        seen = set()
        restored = {e["event"]["timestamp"]: e["event"] for e in target.sim.events.values()}
        for entry in source.sim.events.values():
            event = entry["event"]
            kind = event.get("basetype")
            if kind not in tables or event.get("object_id") is None:
                continue
            source_entry = getattr(source.sim, tables[kind])[event["object_id"]]
            got = restored[event["timestamp"]]
            target_entry = getattr(target.sim, tables[kind])[got["object_id"]]
            ref = source_entry[kind].get("reference") or f"{kind}:{event['object_id']}"
            if kind == "collection" and source_entry["collection"].get("type") == "user":
                owner = source.sim.users[source_entry["_owner"]["user"]["_id"]]["user"]
                ref = "user:ref:" + (owner.get("reference") or f"user:{owner['_id']}")
            assert target_entry[kind]["reference"] == ref
            seen.add(kind)
        assert seen == set(tables)
    finally:
        source.shutdown()
        target.shutdown()
