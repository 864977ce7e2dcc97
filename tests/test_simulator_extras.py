"""The rest of an instance in the simulator (issue 12): right presets, XML mappings, publish records, global
transitions and files outside records - generated on sources of both flavours, written strictly on a fylr
target (tests/simulator/extras.py and the file checks of writes.py), compared by dump.extras_dump."""
import hashlib
import json

import pytest
import requests

from tests.simulator import datagen
from tests.simulator.dump import canonical_dump, extras_dump, nonrecord_files_dump
from tests.test_simulator_write import Client, Copier, commit_datamodel, error, source_datamodel, wait_files_done


class E5Client:
    """easydb 5 session token client (GET only)."""

    def __init__(self, server):
        self.api = server.api_url
        self.token = requests.get(self.api + "/session").json()["token"]
        r = requests.post(self.api + "/session/authenticate", params={"token": self.token, "login": "root",
                                                                      "password": "admin"})
        assert r.status_code == 200, r.text

    def call(self, method, path, **params):
        return requests.request(method, self.api + path, params=dict(params, token=self.token))

    def ok(self, method, path, **params):
        r = self.call(method, path, **params)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()


def client_for(server):
    return Client(server) if server.sim.flavour == "fylr" else E5Client(server)


@pytest.fixture
def modelled(make_sim):
    """Empty fylr target with the datagen datamodel committed; (server, client)."""
    server = make_sim("fylr", size="empty")
    client = Client(server)
    commit_datamodel(client, *source_datamodel())
    return server, client


def ids_of(sim):
    ots = {o["objecttype"]["name"]: o["objecttype"]["_id"] for o in sim.objecttypes}
    pools = {p["pool"]["reference"]: i for i, p in sim.pools.items()}
    return ots, pools


def upload(client, name="logo.png", data=None):
    """A file put into the target's EAS; its target id."""
    data = data or datagen._png(6, 4, hashlib.sha256(name.encode()).digest())
    r = requests.post(client.api + "/eas/put", headers={"Authorization": "Bearer " + client.token},
                      files=[("files[]", (name, data))])
    assert r.status_code == 200, r.text
    return r.json()[0]["_id"]

# ------------------------------------------------------------------------------------ generated data


@pytest.mark.parametrize("flavour", ["easydb5", "fylr"])
def test_generated_presets_name_source_pools_and_objecttypes(make_sim, flavour):
    server = make_sim(flavour)
    client = client_for(server)
    ots, pools = ids_of(server.sim)
    objects = client.ok("GET", "/right/object/presets")
    collections = client.ok("GET", "/right/collection/presets")
    assert len(objects) >= 2 and len(collections) >= 1
    assert collections[0]["right_preset"]["preset"]["share_url"].startswith("https://")
    items = [item for p in objects + collections for item in p["right_preset"]["preset"]["rights"].values()]
    assert all(item["pool_ids"] and set(item["pool_ids"]) <= set(server.sim.pools) for item in items)
    assert all(item["objecttype_ids"] and set(item["objecttype_ids"]) <= set(ots.values()) for item in items)
    assert pools["photos"] in items[0]["pool_ids"]


@pytest.mark.parametrize("flavour", ["easydb5", "fylr"])
def test_generated_mappings_are_listed_by_profile_and_read_one_by_one(make_sim, flavour):
    server = make_sim(flavour)
    client = client_for(server)
    ots, _ = ids_of(server.sim)
    profiles = client.ok("GET", "/xmlmapping/list")
    assert all("mappings" in p and p["profile_type"] for p in profiles)
    assert any(not p["mappings"] for p in profiles)             # a profile without mappings is listed too
    exif = next(p for p in profiles if p["profile"] == "exiftool.yml")
    assert len(exif["mappings"]) == 2
    mapping = client.ok("GET", "/xmlmapping/mapping/%d" % exif["mappings"][0]["id"])
    assert mapping["profile"] == "exiftool.yml" and mapping["idTable"] == ots["bilder"]
    assert mapping["displayname"] == exif["mappings"][0]["displayname"] and mapping["fields"]


def test_an_unknown_mapping_id_is_a_plain_400(make_sim):
    client = Client(make_sim("fylr"))
    error(client.call("GET", "/xmlmapping/mapping/999"), 400, "ServerGeneric")


@pytest.mark.parametrize("flavour", ["easydb5", "fylr"])
def test_generated_publish_records_use_collectors_of_the_base_config(make_sim, flavour):
    server = make_sim(flavour)
    client = client_for(server)
    records = client.ok("GET", "/publish")
    assert len(records) >= 3 and [r["publish"]["version"] for r in records if r["publish"].get("version")] == [2]
    config = client.ok("GET", "/config")["system"]
    collectors = (config["config"]["publish"] if flavour == "fylr" else config["publish.collectors"])["collectors"]
    assert {r["publish"]["collector"] for r in records} <= {c["internalname"] for c in collectors}
    for r in records:
        _ot, record = server.sim.record_by_sysid(r["publish"]["system_object_id"])
        assert record and not record["deleted_at"]


def test_easydb5_pages_publish_records_and_refuses_more_than_1000(make_sim):
    client = E5Client(make_sim("easydb5"))
    everything = client.ok("GET", "/publish")
    assert client.ok("GET", "/publish", limit=1, offset=1) == everything[1:2]
    r = client.call("GET", "/publish", limit=1001)
    assert r.status_code == 400 and r.json()["code"] == "error.api.invalid_value"


def test_fylr_answers_every_publish_record_without_paging(make_sim):
    client = Client(make_sim("fylr"))
    assert len(client.ok("GET", "/publish", limit=1)) == 3


@pytest.mark.parametrize("flavour", ["easydb5", "fylr"])
def test_generated_transitions_name_a_user_a_group_objecttypes_and_tags(make_sim, flavour):
    server = make_sim(flavour)
    sim, client = server.sim, client_for(server)
    transitions = client.ok("GET", "/transitions")
    assert len(transitions) >= 2
    who = [w for t in transitions for w in t["who"]]
    assert {w["_basetype"] for w in who} == {"user", "group"}
    assert all(w[w["_basetype"]]["_id"] in (sim.users if w["_basetype"] == "user" else sim.groups) for w in who)
    tags = [t["_id"] for tr in transitions for a in tr["actions"] if a["type"] == "set_tags" for t in a["info"]["tags"]]
    assert tags and all(sim.tag_by_id(t) for t in tags)


def _file_values(sim):
    """{where: file id} of the files outside records."""
    system = sim.config["system"]["config"]
    if sim.flavour == "fylr":
        values = {"logo": system["appearance"]["logo"], "collector": system["publish"]["collectors"][0]["logo"]}
    else:
        values = {"logo": system["logo"], "collector": system["publish.collectors"]["collectors"][0]["logo"]}
    values["pool"] = next(p["pool"]["watermark"]["image"] for p in sim.pools.values() if p["pool"].get("watermark"))
    if sim.flavour == "fylr":
        bilder = next(o for o in sim.objecttypes if o["objecttype"]["name"] == "bilder")
        values["objecttype"] = bilder["objecttype"]["watermark"]["image"]
        values["plugin"] = next(p["zip_file"] for p in sim.plugins if p["type"] == "zip")
    return {k: v["_id"] for k, v in values.items()}


@pytest.mark.parametrize("flavour", ["easydb5", "fylr"])
def test_files_outside_records_are_real_downloadable_eas_files(make_sim, flavour):
    server = make_sim(flavour)
    sim, client = server.sim, client_for(server)
    values = _file_values(sim)
    assert len(values) == (5 if flavour == "fylr" else 3)
    record_files = {e["_id"] for recs in sim.records.values() for r in recs.values() for v in r["versions"]
                    for k, value in v["fields"].items() if isinstance(value, list) for e in value
                    if isinstance(e, dict) and "_id" in e and not k.startswith("_nested")}
    assert not set(values.values()) & record_files and min(values.values()) > max(record_files)
    files = client.ok("GET", "/eas", ids=json.dumps(sorted(values.values())))
    assert sorted(map(int, files)) == sorted(values.values())
    for file_id in values.values():
        original = files[str(file_id)]["versions"]["original"]
        data = requests.get(original["url"]).content
        assert data == sim.files[file_id]["versions"]["original"] and original["filesize"] == len(data)
        if flavour == "fylr":
            assert original["hash"] == hashlib.sha256(data).hexdigest()
    config = client.ok("GET", "/config")["system"]
    logo = config["config"]["appearance"]["logo"] if flavour == "fylr" else config["logo"]
    assert logo == {"_id": values["logo"]}


def test_fylr_pools_objecttypes_and_plugins_show_their_files(make_sim):
    server = make_sim("fylr")
    client = Client(server)
    values = _file_values(server.sim)
    pool = next(p for p in client.ok("GET", "/pool") if p["pool"].get("watermark"))
    assert pool["pool"]["watermark"] == {"image": {"_id": values["pool"]}, "gravity": "se", "dissolve": 50}
    bilder = next(o for o in client.ok("GET", "/objecttype") if o["objecttype"]["name"] == "bilder")
    assert bilder["objecttype"]["watermark"]["image"] == {"_id": values["objecttype"]}
    plugins = {p["type"]: p for p in client.ok("GET", "/plugin/manage")["plugins"]}
    assert plugins["zip"]["zip_file"] == {"_id": values["plugin"]} and plugins["url"]["url"]


def test_extras_keep_record_file_counts_and_generation_stays_deterministic():
    a, b = datagen.generate("fylr", size="tiny"), datagen.generate("fylr", size="tiny")
    assert extras_dump(a) == extras_dump(b) and canonical_dump(a) == canonical_dump(b)
    for sim in (a, datagen.generate("easydb5", size="tiny")):
        extra = set(_file_values(sim).values())
        assert len(extra) == len(_file_values(sim)) and max(set(sim.files) - extra) < min(extra)
        assert list(sim.files)[-len(extra):] == sorted(extra)           # drawn after every record file
    assert [row[0] for row in nonrecord_files_dump(a)] == [
        "config:appearance.logo", "config:publish.collectors[datacite].logo", "objecttype:bilder:watermark",
        "plugin:fylr-example-zip:zip_file", "pool:photos:watermark"]


def test_an_empty_target_knows_the_profiles_but_holds_none_of_the_rest(make_sim):
    sim = make_sim("fylr", size="empty").sim
    assert sim.xmlmapping_profiles and not sim.xmlmappings and not sim.publish and not sim.transitions
    assert not sim.right_presets["object"] and not nonrecord_files_dump(sim)

# ----------------------------------------------------------------------------------- presets (writes)


def preset(displayname, rights, **preset_extra):
    return {"_basetype": "right_preset", "right_preset": {
        "_version": 1, "displayname": {"en-US": displayname}, "preset": dict({"rights": rights}, **preset_extra)}}


def test_a_new_preset_is_inserted_and_listed_with_its_new_id(modelled):
    server, client = modelled
    saved = client.ok("POST", "/right/object/presets", [preset("Read", {"read": {"pool_ids": [2]}})])
    assert saved[0]["right_preset"]["_id"] and saved[0]["right_preset"]["_version"] == 1
    assert client.ok("GET", "/right/object/presets") == saved
    update = dict(saved[0], right_preset=dict(saved[0]["right_preset"], _version=2, displayname={"en-US": "R"}))
    assert client.ok("POST", "/right/object/presets", [update])[0]["right_preset"]["_version"] == 2
    error(client.call("POST", "/right/object/presets", [update]), 400, "VersionMismatch")


def test_a_preset_naming_a_pool_the_target_does_not_hold_is_refused(modelled):
    server, client = modelled
    body = [preset("Read", {"read": {"pool_ids": [2]}}), preset("Bad", {"read": {"pool_ids": [2, 77]}})]
    error(client.call("POST", "/right/object/presets", body), 400, "UnknownRightValue")
    assert server.sim.right_presets["object"] == []                        # all or nothing


def test_a_preset_naming_an_objecttype_the_target_does_not_hold_is_refused(modelled):
    _server, client = modelled
    error(client.call("POST", "/right/object/presets", [preset("Read", {"read": {"objecttype_ids": [99]}})]), 400,
          "UnknownRightValue")


def test_a_share_url_in_context_object_is_refused(modelled):
    _server, client = modelled
    body = [preset("Share", {"read": {}}, share_url="https://media.example.com/x")]
    error(client.call("POST", "/right/object/presets", body), 400, "ServerGeneric")
    assert client.ok("POST", "/right/collection/presets", body)[0]["right_preset"]["preset"]["share_url"]


def test_a_new_preset_carrying_an_id_is_refused(modelled):
    _server, client = modelled
    body = preset("Read", {"read": {}})
    body["right_preset"]["_id"] = 4
    error(client.call("POST", "/right/object/presets", [body]), 400, "ServerGeneric")


def test_a_preset_in_an_unknown_context_is_refused(modelled):
    _server, client = modelled
    error(client.call("POST", "/right/pool/presets", [preset("Read", {"read": {}})]), 400, "ServerGeneric")

# ---------------------------------------------------------------------------------- mappings (writes)


def mapping(sim, **changes):
    ots, _ = ids_of(sim)
    return dict({"id": 17, "idTable": ots["bilder"], "displayname": {"en-US": "IPTC"}, "profile": "exiftool.yml",
                 "profile_type": {"exiftool_import": True, "dc_export": True},
                 "fields": [{"name": "IPTC:Headline", "easydb": [{"field": "titel"}]}]}, **changes)


def test_a_mapping_gets_a_new_id_and_is_listed_under_its_profile(modelled):
    server, client = modelled
    saved = client.ok("PUT", "/xmlmapping/mapping", mapping(server.sim))
    assert saved["id"] != 17 and saved["profile_type"] == {"exiftool_import": True}   # dc_export is read-only
    assert client.ok("GET", "/xmlmapping/mapping/%d" % saved["id"]) == saved
    exif = next(p for p in client.ok("GET", "/xmlmapping/list") if p["profile"] == "exiftool.yml")
    assert exif["mappings"] == [{"id": saved["id"], "displayname": {"en-US": "IPTC"}, "_recipes_required": []}]


def test_a_mapping_of_an_unknown_profile_is_refused(modelled):
    server, client = modelled
    error(client.call("PUT", "/xmlmapping/mapping", mapping(server.sim, profile="nope.yml")), 400, "ServerGeneric")
    assert server.sim.xmlmappings == []


def test_a_mapping_for_an_objecttype_the_target_does_not_hold_is_refused(modelled):
    server, client = modelled
    error(client.call("PUT", "/xmlmapping/mapping", mapping(server.sim, idTable=99)), 400, "ServerGeneric")


def test_a_mapping_with_a_field_twice_is_refused(modelled):
    server, client = modelled
    body = mapping(server.sim)
    body["fields"] = body["fields"] * 2
    error(client.call("PUT", "/xmlmapping/mapping", body), 400, "DatabaseUniqueKeyViolation")

# ----------------------------------------------------------------------------------- publish (writes)


@pytest.fixture
def published(make_sim):
    """A fylr target holding the generated records and base config but no publish records."""
    server = make_sim("fylr")
    server.sim.publish = []
    live = next(r for r in server.sim.records["bilder"].values() if not r["deleted_at"])
    deleted = next(r for r in server.sim.records["bilder"].values() if r["deleted_at"])
    return server, Client(server), live["_system_object_id"], deleted["_system_object_id"]


def publish(sysid, collector="datacite", **changes):
    return {"_basetype": "publish", "publish": dict({"system_object_id": sysid, "collector": collector,
                                                     "publish_uri": "https://doi.example/%d" % sysid,
                                                     "easydb_uri": "https://x.example/%d" % sysid}, **changes)}


def test_a_publish_record_is_stored_and_listed(published):
    _server, client, live, _deleted = published
    saved = client.ok("POST", "/publish", [publish(live, version=2), publish(live, "europeana", version=0)])
    assert saved[0]["publish"]["version"] == 2 and "version" not in saved[1]["publish"]
    assert client.ok("GET", "/publish") == saved


def test_a_publish_record_for_an_unknown_collector_is_refused(published):
    server, client, _live, deleted = published
    # checked first: also a deleted object with blank uris is refused for its collector
    body = publish(deleted, "zenodo", publish_uri=" ", easydb_uri="")
    assert error(client.call("POST", "/publish", [body]), 400, "PublishUnknownCollector")["parameters"][
        "collector"] == "zenodo"
    assert server.sim.publish == []


def test_a_publish_record_with_a_blank_uri_is_refused(published):
    _server, client, live, _deleted = published
    body = error(client.call("POST", "/publish", [publish(live, publish_uri="  ")]), 400, "PublishInvalidData")
    assert body["parameters"]["field"] == "publish_uri" and body["package"] == "object"
    error(client.call("POST", "/publish", [publish(live, easydb_uri="")]), 400, "PublishInvalidData")


def test_a_publish_record_for_an_unknown_object_is_refused(published):
    _server, client, _live, _deleted = published
    error(client.call("POST", "/publish", [publish(987654)]), 404, "ObjectNotFound")


def test_a_publish_record_for_a_record_in_the_trash_is_refused(published):
    _server, client, _live, deleted = published
    body = error(client.call("POST", "/publish", [publish(deleted)]), 400, "PublishDeletedObject")
    assert body["parameters"]["object"] == "#%d" % deleted


def test_a_publish_record_naming_an_id_the_target_does_not_hold_is_refused(published):
    _server, client, live, _deleted = published
    error(client.call("POST", "/publish", [publish(live, _id=55)]), 400, "ServerGeneric")


def test_publish_records_are_written_by_root_only(published):
    server, client, live, _deleted = published
    server.sim.passwords["jdoe"] = "secret"
    error(Client(server, "jdoe", "secret").call("POST", "/publish", [publish(live)]), 403, "SystemRightRequired")


def test_a_publish_record_for_a_collector_of_an_empty_target_is_refused(modelled):
    _server, client = modelled           # a fresh fylr registers no collector
    error(client.call("POST", "/publish", [publish(1)]), 400, "PublishUnknownCollector")

# ------------------------------------------------------------------------------- transitions (writes)


@pytest.fixture
def populated(make_sim):
    """A fylr target holding the generated users, groups, tags and objecttypes; no transitions."""
    server = make_sim("fylr")
    server.sim.transitions = []
    return server, Client(server)


def transition(sim, **changes):
    ots, _ = ids_of(sim)
    return dict({"type": "process", "operations": ["INSERT"], "objecttype_ids": [ots["bilder"]],
                 "who": [{"_basetype": "user", "user": {"_id": 2}}, {"_basetype": "group", "group": {"_id": 1}}],
                 "actions": [{"type": "set_tags", "info": {"tags": [{"_id": 1, "set": True}]}}]}, **changes)


def test_transitions_replace_the_global_set(populated):
    server, client = populated
    first = client.ok("POST", "/transitions", [transition(server.sim), transition(server.sim, type="reject")])
    assert [t["type"] for t in first] == ["process", "reject"] and all(t["_id"] for t in first)
    kept = client.ok("POST", "/transitions", [dict(first[1], operations=[])])
    assert client.ok("GET", "/transitions") == kept and kept[0]["_id"] == first[1]["_id"]


def test_a_transition_of_an_unknown_type_is_refused(populated):
    server, client = populated
    error(client.call("POST", "/transitions", [transition(server.sim, type="approve")]), 400, "ServerGeneric")


def test_a_transition_with_an_unknown_operation_is_refused(populated):
    server, client = populated
    error(client.call("POST", "/transitions", [transition(server.sim, operations=["insert"])]), 400, "ServerGeneric")


def test_a_transition_for_a_user_the_target_does_not_hold_is_refused(populated):
    server, client = populated
    body = transition(server.sim, who=[{"_basetype": "user", "user": {"_id": 999}}])
    error(client.call("POST", "/transitions", [body]), 400, "ServerGeneric")


def test_a_transition_for_a_group_the_target_does_not_hold_is_refused(populated):
    server, client = populated
    body = transition(server.sim, who=[{"_basetype": "group", "group": {"_id": 999}}])
    error(client.call("POST", "/transitions", [body]), 400, "ServerGeneric")


def test_a_transition_naming_its_user_by_lookup_is_refused(populated):
    server, client = populated
    body = transition(server.sim, who=[{"_basetype": "user", "user": {"lookup:_id": {"reference": "jdoe"}}}])
    error(client.call("POST", "/transitions", [body]), 400, "ServerGeneric")


def test_a_transition_for_an_objecttype_the_target_does_not_hold_is_refused(populated):
    server, client = populated
    error(client.call("POST", "/transitions", [transition(server.sim, objecttype_ids=[99])]), 400, "ServerGeneric")


def test_a_transition_setting_a_tag_the_target_does_not_hold_is_refused(populated):
    server, client = populated
    body = transition(server.sim, actions=[{"type": "set_tags", "info": {"tags": [{"_id": 999, "set": True}]}}])
    error(client.call("POST", "/transitions", [body]), 400, "ServerGeneric")
    assert server.sim.transitions == []


def test_a_transition_naming_an_id_the_target_does_not_hold_is_refused(populated):
    server, client = populated
    error(client.call("POST", "/transitions", [transition(server.sim, _id=42)]), 400, "ServerGeneric")

# ----------------------------------------------------------------------- files outside records (writes)


def test_a_config_logo_that_is_not_a_file_of_the_target_is_refused(modelled):
    server, client = modelled
    body = {"system": {"config": {"appearance": {"logo": {"_id": 4242}}}}}
    error(client.call("POST", "/config", body), 400, "ServerGeneric")
    error(client.call("POST", "/config", body, save="ignore_errors"), 400, "ServerGeneric")
    body["system"]["config"]["appearance"]["logo"] = {"_id": upload(client)}
    assert client.ok("POST", "/config", body)["system"]["config"]["appearance"]["logo"] == \
        body["system"]["config"]["appearance"]["logo"]


def test_a_favicon_that_is_not_a_file_of_the_target_is_refused(modelled):
    _server, client = modelled
    error(client.call("POST", "/config", {"system": {"config": {"appearance": {"favicon": {"url": "x.ico"}}}}}),
          400, "ServerGeneric")


def test_a_collector_logo_that_is_not_a_file_of_the_target_is_refused(modelled):
    server, client = modelled
    collectors = [{"internalname": "europeana"}, {"internalname": "datacite", "logo": {"_id": 4242}}]
    error(client.call("POST", "/config", {"system": {"config": {"publish": {"collectors": collectors}}}}), 400,
          "ServerGeneric")
    assert "publish" not in server.sim.config["system"]["config"]


def pool(watermark, reference="marked"):
    return [{"_basetype": "pool", "pool": {"_version": 1, "reference": reference, "name": {"en-US": "M"},
                                           "_id_parent": 1, "watermark": watermark}}]


def test_a_pool_watermark_that_is_not_a_file_of_the_target_is_refused(modelled):
    _server, client = modelled
    error(client.call("POST", "/pool", pool({"image": {"_id": 4242}, "gravity": "se"}), confirm="skip"), 400,
          "ServerGeneric")


def test_a_pool_watermark_with_an_unknown_gravity_is_refused(modelled):
    _server, client = modelled
    body = pool({"image": {"_id": upload(client)}, "gravity": "south"})
    assert "not supported" in error(client.call("POST", "/pool", body, confirm="skip"), 400, "ServerGeneric")["error"]


def test_a_pool_watermark_change_asks_to_confirm_and_saves_nothing_before(modelled):
    server, client = modelled
    body = pool({"image": {"_id": upload(client)}, "gravity": "se", "dissolve": 50})
    r = client.call("POST", "/pool", body)
    assert r.status_code == 202
    form = r.json()["tasks"][0]["form"][0]
    assert form["name"] == "confirm" and [o["value"] for o in form["options"]] == ["resync", "skip"]
    assert not any(p["pool"].get("reference") == "marked" for p in server.sim.pools.values())
    error(client.call("POST", "/pool", body, confirm="yes"), 400, "ServerGeneric")
    saved = client.ok("POST", "/pool", body, confirm="resync")
    assert saved[0]["pool"]["watermark"] == body[0]["pool"]["watermark"]
    unchanged = [{"_basetype": "pool", "pool": dict(saved[0]["pool"], _version=2)}]
    assert client.ok("POST", "/pool", unchanged)[0]["pool"]["_version"] == 2    # same watermark: no question


def objecttype_update(server, client, watermark):
    current = next(o for o in client.ok("GET", "/objecttype") if o["objecttype"]["name"] == "bilder")
    return [{"_basetype": "objecttype", "objecttype": dict(current["objecttype"], _version=current["objecttype"]
                                                           ["_version"] + 1, watermark=watermark)}]


def test_an_objecttype_watermark_that_is_not_a_file_of_the_target_is_refused(modelled):
    server, client = modelled
    body = objecttype_update(server, client, {"image": {"_id": 4242}, "gravity": "c"})
    error(client.call("POST", "/objecttype", body, confirm="skip"), 400, "ServerGeneric")


def test_an_objecttype_watermark_change_asks_to_confirm(modelled):
    server, client = modelled
    body = objecttype_update(server, client, {"image": {"_id": upload(client)}, "gravity": "c"})
    r = client.call("POST", "/objecttype", body)
    assert r.status_code == 202 and r.json()["tasks"][0]["form"][0]["name"] == "confirm"
    assert all("watermark" not in o["objecttype"] for o in server.sim.objecttypes)
    saved = client.ok("POST", "/objecttype", body, confirm="skip")
    assert saved[0]["objecttype"]["watermark"]["image"] == body[0]["objecttype"]["watermark"]["image"]


def test_a_zip_plugin_needs_an_uploaded_file_that_is_not_left_on_the_remote(make_sim, modelled):
    server, client = modelled
    source = make_sim("fylr")
    leave = next(f for f in source.sim.files.values() if f["leave"])
    remote = client.ok("POST", "/eas/rput", url=source.url + leave["remote_url"], leave="1",
                       filename=leave["original_filename"], skip_head_request="1")[0]["_id"]
    wait_files_done(client, [remote])
    plugin = {"name": "z", "type": "zip", "zip_file": {"_id": remote}}
    error(client.call("PUT", "/plugin/manage", plugin), 400, "ServerGeneric")
    error(client.call("PUT", "/plugin/manage", dict(plugin, zip_file=None)), 400, "ServerGeneric")
    error(client.call("PUT", "/plugin/manage", dict(plugin, zip_file={"_id": upload(client, "e.zip", b"PK\x05\x06"
                                                                                     + b"\0" * 18)})), 400, "ServerGeneric")
    data = datagen._zip([("p/manifest.yml", b"name: from-manifest\n")])
    saved = client.ok("PUT", "/plugin/manage", dict(plugin, zip_file={"_id": upload(client, "z.zip", data)}))
    assert saved["zip_file"]["_id"] in server.sim.files and saved["name"] == "from-manifest"   # named by its manifest


def test_a_second_zip_of_an_installed_plugin_is_refused_by_the_name_in_its_manifest(modelled):
    _server, client = modelled
    data = datagen._zip([("p/manifest.yml", b"name: twice\n")])
    client.ok("PUT", "/plugin/manage", {"type": "zip", "zip_file": {"_id": upload(client, "a.zip", data)}})
    again = client.call("PUT", "/plugin/manage", {"type": "zip", "zip_file": {"_id": upload(client, "b.zip", data)}})
    error(again, 400, "PluginDuplicateName")
    assert [p["name"] for p in client.ok("GET", "/plugin/manage")["plugins"]].count("twice") == 1


def test_a_new_plugin_is_created_disabled_and_enabled_by_an_update(modelled):
    _server, client = modelled
    saved = client.ok("PUT", "/plugin/manage", {"name": "u", "type": "url", "url": "https://p.example/u.zip",
                                                "enabled": True})
    assert saved["enabled"] is False
    enabled = client.ok("POST", "/plugin/manage/%d" % saved["id"], dict(saved, enabled=True))
    assert enabled["enabled"] is True and client.ok("GET", "/plugin/manage")["plugins"] == [enabled]


def test_a_plugin_update_whose_body_id_differs_from_the_path_is_refused(modelled):
    _server, client = modelled
    saved = client.ok("PUT", "/plugin/manage", {"name": "u", "type": "url", "url": "https://p.example/u.zip"})
    error(client.call("POST", "/plugin/manage/%d" % saved["id"], dict(saved, id=saved["id"] + 1, enabled=True)),
          400, "ServerGeneric")
    error(client.call("POST", "/plugin/manage/77", dict(saved, id=77)), 404, "PluginNotFound")

# ----------------------------------------------------------------------------------- a faithful copy


class ExtrasCopier(Copier):
    """The hand-made restore of test_simulator_write plus the rest of an instance, by the contract: presets
    with target pool / objecttype ids and no _id, mappings with the target's objecttype id, publish without
    _id, transitions with target user / group ids (users and groups are matched by reference)."""

    def run(self):
        super().run()
        src, tgt = self.sim, self.target
        src_ots, _ = ids_of(src)
        tgt_ots, _ = ids_of(tgt)
        ot = {i: tgt_ots[name] for name, i in src_ots.items()}
        pool = {i: self.target_id("pool", i) for i in src.pools}
        for context, presets in src.right_presets.items():
            body = []
            for p in presets:
                block = {k: v for k, v in p["right_preset"].items() if k != "_id"}
                block["preset"] = json.loads(json.dumps(block["preset"]))
                for item in block["preset"]["rights"].values():
                    item["pool_ids"] = [pool[i] for i in item.get("pool_ids") or []]
                    item["objecttype_ids"] = [ot[i] for i in item.get("objecttype_ids") or []]
                body.append({"_basetype": "right_preset", "right_preset": block})
            self.client.ok("POST", "/right/%s/presets" % context, body)
        for m in src.xmlmappings:
            self.client.ok("PUT", "/xmlmapping/mapping", dict(m, idTable=ot[m["idTable"]]))
        self.client.ok("POST", "/publish", [{"_basetype": "publish", "publish": {
            k: v for k, v in p["publish"].items() if k != "_id"}} for p in src.publish])
        users = {i: self.target_id("user", i) for i in src.users}       # same ids (Copier.users)
        groups = {i: self.target_id("group", i) for i in src.groups}
        self.client.ok("POST", "/transitions", [
            dict({k: v for k, v in t.items() if k != "_id"}, objecttype_ids=[ot[i] for i in t["objecttype_ids"]],
                 who=[{"_basetype": w["_basetype"], w["_basetype"]: {"_id": (users if w["_basetype"] == "user" else
                                                                              groups)[w[w["_basetype"]]["_id"]]}}
                      for w in t["who"]]) for t in src.transitions])



def test_a_faithful_copy_has_equal_extras_and_canonical_dumps(make_sim):
    source, server = make_sim("fylr"), make_sim("fylr", size="empty")
    ExtrasCopier(source, Client(server)).run()
    want, got = extras_dump(source.sim), extras_dump(server.sim)
    assert want["files"] and want["publish"] and want["transitions"]
    for section in want:
        assert got[section] == want[section], section
    for section in ("config", "pools", "objecttypes", "plugins"):
        assert canonical_dump(server.sim)[section] == canonical_dump(source.sim)[section], section


def test_the_extras_dump_sees_a_changed_file_and_a_foreign_pool_id(make_sim):
    sim = make_sim("fylr").sim
    other = sim.clone()
    logo = other.config["system"]["config"]["appearance"]["logo"]["_id"]
    other.files[logo] = dict(other.files[logo], versions={"original": b"other bytes"})
    assert nonrecord_files_dump(other) != nonrecord_files_dump(sim)
    assert canonical_dump(other)["config"] != canonical_dump(sim)["config"]
    other = sim.clone()
    other.right_presets["object"][0]["right_preset"]["preset"]["rights"]["read"]["pool_ids"] = [2]
    assert extras_dump(other)["right_presets"] != extras_dump(sim)["right_presets"]
