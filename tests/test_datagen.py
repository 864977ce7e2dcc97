"""The simulator's data generator: deterministic, varied, and fast enough for 100,000 records."""
import hashlib
import json
import time

import pytest
import requests

from tests.conftest import generated_instance
from tests.simulator import datagen
from tests.simulator.server import serve


def _snapshot(sim):
    """Canonical JSON of everything generated (file bytes as sha256)."""
    files = {fid: dict(info, versions={k: hashlib.sha256(v).hexdigest() for k, v in info["versions"].items()})
             for fid, info in sim.files.items()}
    parts = {name: getattr(sim, name) for name in (
        "name", "schema", "mask", "l10n", "objecttypes", "config", "plugins", "groups", "users", "pools",
        "taggroups", "messages", "collections", "collection_objects", "events", "records", "passwords")}
    parts["files"] = files
    parts["sysids"] = {str(k): v for k, v in sim.sysids.items()}
    return json.dumps(parts, sort_keys=True, default=str)


@pytest.mark.parametrize("flavour", ["easydb5", "fylr"])
def test_same_seed_same_data(flavour):
    assert _snapshot(datagen.generate(flavour, seed=5)) == _snapshot(datagen.generate(flavour, seed=5))
    assert _snapshot(datagen.generate(flavour, seed=5)) != _snapshot(datagen.generate(flavour, seed=6))


def test_clone_is_independent():
    sim = generated_instance("fylr")
    twin = sim.clone()
    twin.records["bilder"][1]["versions"][0]["fields"]["titel"] = "changed"
    assert _snapshot(sim) != _snapshot(twin)
    assert twin.next_id("file") == sim.next_id("file")


def test_empty_is_a_fresh_fylr_target():
    sim = datagen.generate("fylr", size="empty", password="pw")
    assert [u["user"]["reference"] for u in sim.users.values()] == ["system:root"]
    assert {p["pool"]["reference"] for p in sim.pools.values()} == {"system:root", "system:standard", "system:none"}
    assert [c["collection"]["reference"] for c in sim.collections.values()] == ["system:root"]
    assert not sim.records and not sim.files and not sim.events and sim.passwords == {"root": "pw"}


def _all_text(sim):
    return json.dumps(sim.records, ensure_ascii=False)


@pytest.mark.parametrize("flavour", ["easydb5", "fylr"])
def test_records_have_the_required_variety(flavour):
    sim = generated_instance(flavour)
    tables = {t["name"]: t for t in sim.schema["tables"]}
    assert len([t for t in tables.values() if not t["owned_by"]]) >= 4
    assert tables["orte"]["is_hierarchical"]
    text = _all_text(sim)
    for sample in ("東京", "القاهرة", "🌍", "Grüße", "\\n"):
        assert sample in text or sample in json.dumps(sim.records)
    versions = {len(r["versions"]) for ot in sim.records.values() for r in ot.values()}
    assert versions == {1, 2, 3, 4}
    links = [(r["_system_object_id"], v) for ot in sim.records.values() for r in ot.values()
             for v in r["versions"][-1]["fields"].values() if isinstance(v, dict) and "_system_object_id" in v]
    assert any(v["_system_object_id"] > sysid for sysid, v in links)            # forward links
    assert any(v["_objecttype"] == "orte" for _, v in links) and any(v["_objecttype"] == "bilder" for _, v in links)
    nested = [row for r in sim.records["bilder"].values() for row in r["versions"][0]["fields"]["_nested:bilder__schlagworte"]]
    assert nested and all(row["_uuid"] for row in nested)
    parents = {r["versions"][-1]["_id_parent"] for r in sim.records["orte"].values()}
    assert None in parents and len(parents) > 2
    fields = [f for r in sim.records["bilder"].values() for f in r["versions"][0]["fields"].values()]
    assert any(isinstance(f, dict) and "value" in f for f in fields)                # dates
    assert any(isinstance(f, float) for f in fields) and any(isinstance(f, int) and not isinstance(f, bool) for f in fields)


def test_fylr_has_soft_deleted_records_and_links_to_them():
    sim = generated_instance("fylr")
    deleted = {r["_system_object_id"] for ot in sim.records.values() for r in ot.values() if r["deleted_at"]}
    assert deleted
    link = sim.records["dokumente"][1]["versions"][-1]["fields"]["verweis"]
    assert link["_system_object_id"] in deleted
    assert not any(r["deleted_at"] for ot in generated_instance("easydb5").records.values() for r in ot.values())


@pytest.mark.parametrize("flavour", ["easydb5", "fylr"])
def test_basetypes_have_the_required_variety(flavour):
    sim = generated_instance(flavour)
    users = list(sim.users.values())
    assert users[0]["user"]["login"] == "root" and users[0]["user"]["reference"] == "system:root"
    assert any(u["user"]["reference"] is None for u in users)
    assert any("_password_hash" in u for u in users) and any("_password_hash" not in u for u in users)
    depth = {}
    for pid, pool in sorted(sim.pools.items()):
        parent = pool["pool"]["_id_parent"]
        depth[pid] = 0 if parent is None else depth[parent] + 1
    assert max(depth.values()) >= 3
    assert len(sim.taggroups) >= 2 and sum(len(tg["_tags"]) for tg in sim.taggroups.values()) >= 4
    parents = {c["collection"]["_id_parent"] for c in sim.collections.values()}
    assert any(p not in (None, 1) for p in parents)                                # nested collections
    assert any(sim.collection_objects.values()) and sim.messages
    types = {e["event"]["type"] for e in sim.events.values()}
    assert {"OBJECT_INDEX", "SESSION_INVALID", "FRONTEND_ERROR", "COLLECTION_OWNER_RIGHTS_ERROR"} <= types
    if flavour == "easydb5":
        assert {"ASSET_DOWNLOAD", "SCHEMA_COMMIT", "USER_CREATED"} <= types
    else:
        assert {"FILE_DOWNLOAD", "DATAMODEL_COMMIT", "USER_INSERT"} <= types


@pytest.mark.parametrize("flavour", ["easydb5", "fylr"])
def test_files_are_real_with_renditions(flavour):
    sim = generated_instance(flavour)
    assert sim.files
    pngs = [f for f in sim.files.values() if f["extension"] == "png"]
    assert all(f["versions"]["original"].startswith(b"\x89PNG") for f in pngs)
    produced = [f for f in pngs if f["produce_versions"]]
    assert all(f["versions"]["preview"] == datagen.produce_version(f["versions"]["original"], "preview")
               for f in produced)
    assert any(not f["produce_versions"] for f in sim.files.values())              # manual renditions
    assert max(len(v) for f in sim.files.values() for v in f["versions"].values()) < 8000
    assert any(f["leave"] for f in sim.files.values()) == (flavour == "fylr")


def test_large_generates_fast_and_search_pages_every_record_once():
    started = time.monotonic()
    sim = datagen.generate("fylr", size="large")
    generation = time.monotonic() - started
    assert generation < 60
    print("large: generated in %.1f s" % generation)
    assert len(sim.sysids) >= 100000
    server = serve(sim)
    try:
        token = requests.post(server.url + "/api/oauth2/token", data={
            "grant_type": "password", "username": "root", "password": "admin",
            "client_id": "fylr-web-frontend"}).json()["access_token"]
        http = requests.Session()
        http.headers["Authorization"] = "Bearer " + token
        seen, offset, count = [], 0, None
        while True:
            page = http.post(server.api_url + "/search", json={
                "offset": offset, "limit": 1000, "format": "short", "include_deleted": True,
                "sort": [{"field": "_system_object_id", "order": "ASC"}]}).json()
            count = page["count"]
            if not page["objects"]:
                break
            seen.extend(o["_system_object_id"] for o in page["objects"])
            offset += len(page["objects"])
        assert count == len(sim.sysids) == len(seen) == len(set(seen))
        assert seen == sorted(sim.sysids)
        print("large: search pass in %.1f s" % (time.monotonic() - started - generation))
    finally:
        server.shutdown()
