"""Files on the fylr simulator (tests/simulator/files.py, app.py): rput is asynchronous, file states are
visible through GET /eas, GET /eas/{id}, /system/status, the record rendering and the canonical dump."""
import hashlib
import json
import time

import requests

from tests.simulator import datagen
from tests.simulator.app import sign
from tests.simulator.dump import canonical_dump
from tests import test_simulator_write as shared
from tests.test_simulator_write import Client, commit_datamodel, error, wait_files_done, wait_until

target = shared.target            # fixture shared with test_simulator_write


def _signed_url(source, info, version="original", lifetime=3600, expiry=None):
    data = info["versions"][version]
    digest = hashlib.sha256(data).hexdigest()
    expiry = expiry or int(time.time() + lifetime)
    return "%s/eas/download/%d/%s/%s?x-fylr-signature=%s" % (source.api_url, info["_id"], digest, version,
                                                            sign(source.sim, info["_id"], digest, version, expiry))


def _png(source):
    return next(f for f in source.sim.files.values() if f["extension"] == "png" and f["produce_versions"]
                and not f["leave"])


def _put(client, name, data, **params):
    r = requests.post(client.api + "/eas/put", headers={"Authorization": "Bearer " + client.token},
                      params={k: json.dumps(v) for k, v in params.items()}, files=[("f", (name, data))])
    assert r.status_code == 200, r.text
    return r.json()[0]


def test_rput_answers_pending_and_fetches_only_after_the_answer(make_sim):
    source = make_sim("fylr", size="tiny")
    server = make_sim("fylr", size="empty", rput_delay=0.4)
    client = Client(server)
    png = _png(source)
    answer = client.ok("POST", "/eas/rput", url=_signed_url(source, png), filename="a.png", reference="r1")[0]
    assert answer["status"] == "pending" and answer["versions"] == {} and answer["reference"] == "r1"
    stored = server.sim.files[answer["_id"]]
    assert stored["status"] == "pending" and stored["versions"] == {}               # no bytes yet
    status = client.ok("GET", "/system/status")
    assert status["pending_files"] == 1 and status["queued_files"] == 1
    digest = hashlib.sha256(png["versions"]["original"]).hexdigest()
    probe = "%s/eas/download/%d/%s/original" % (client.api, answer["_id"], digest)
    error(requests.get(probe, params={"access_token": client.token}), 403, "InsufficientRights")   # not readable yet
    wait_files_done(client, [answer["_id"]])
    stored = server.sim.files[answer["_id"]]
    assert stored["status"] == "done" and stored["versions"] == png["versions"]       # bytes + produced renditions
    assert requests.get(probe, params={"access_token": client.token}).content == png["versions"]["original"]
    assert client.ok("GET", "/system/status")["pending_files"] == 0


def test_rput_of_a_signature_that_expires_before_the_fetch_leaves_a_failed_file(make_sim):
    """HEAD passes while the backup's signed URL is valid; the fetch comes later and gets 403: failed."""
    source = make_sim("fylr", size="tiny")
    server = make_sim("fylr", size="empty")
    client = Client(server)
    commit_datamodel(client, source.sim.schema, source.sim.mask, source.sim.l10n)
    png = _png(source)
    expiry = int(time.time()) + 2                             # valid for 1-2 s more
    server.sim.rput_delay = expiry - time.time() + 0.2        # the fetch starts after the expiry
    answer = client.ok("POST", "/eas/rput", url=_signed_url(source, png, expiry=expiry), filename="a.png",
                       reference="late")[0]
    assert answer["status"] == "pending"
    record = {"_objecttype": "bilder", "_mask": "_all_fields", "_system_object_id": 5, "_uuid": "b5",
              "bilder": {"_version": 1, "_pool": {"pool": {"lookup:_id": {"reference": "system:standard"}}},
                         "datei": [{"lookup:_id": {"reference": "late"}, "preferred": True}]}}
    client.ok("POST", "/db/bilder", [record])                 # a record may link a file whose fetch fails
    states = wait_files_done(client, [answer["_id"]])
    assert states[answer["_id"]]["status"] == "failed"
    assert server.sim.files[answer["_id"]]["versions"] == {}
    entry = client.ok("GET", "/db/bilder/_all_fields/system_object_id/5")[0]["bilder"]["datei"][0]
    assert entry["status"] == "failed" and entry["versions"] == {}
    dumped = canonical_dump(server.sim)["records"]["5"]["versions"][0]["fields"]["datei"][0]
    assert dumped["status"] == "failed" and "versions" not in dumped


def test_rput_to_an_unreachable_host_fails_in_the_background(target):
    server, client = target
    answer = client.ok("POST", "/eas/rput", url="http://127.0.0.1:9/x.png", filename="x.png",
                       skip_head_request="1")[0]
    assert answer["status"] == "pending"                      # skip_head_request: nothing checked up front
    assert wait_files_done(client, [answer["_id"]])[answer["_id"]]["status"] == "failed"


def test_rput_bulk_is_asynchronous_and_keeps_the_order(make_sim):
    source = make_sim("fylr", size="tiny")
    server = make_sim("fylr", size="empty", rput_delay=0.2)
    client = Client(server)
    png = _png(source)
    answers = client.ok("POST", "/eas/rput/bulk", [
        {"url": _signed_url(source, png), "filename": "a.png", "reference": "b1", "skip_head_request": True},
        {"url": source.url + "/nowhere.png", "filename": "b.png", "reference": "b2", "skip_head_request": True}])
    assert [(a["reference"], a["status"]) for a in answers] == [("b1", "pending"), ("b2", "pending")]
    states = wait_files_done(client, [a["_id"] for a in answers])
    assert [states[a["_id"]]["status"] for a in answers] == ["done", "failed"]      # upstream 404 -> failed


def test_rput_leave_without_renditions_is_done_at_once(make_sim):
    source = make_sim("fylr", size="tiny")
    server = make_sim("fylr", size="empty", rput_delay=5)
    client = Client(server)
    leave = next(f for f in source.sim.files.values() if f["leave"])
    answer = client.ok("POST", "/eas/rput", url=source.url + leave["remote_url"], leave="1",
                       filename=leave["original_filename"], produce_versions="false")[0]
    assert answer["status"] == "done" and server.sim.files[answer["_id"]]["status"] == "done"


def test_rput_checks_url_and_head_synchronously(make_sim):
    source = make_sim("fylr", size="tiny")
    server = make_sim("fylr", size="empty")
    client = Client(server)
    error(client.call("POST", "/eas/rput", url="ftp://x/y.png", filename="y.png"), 400, "EasInvalidURL")
    error(client.call("POST", "/eas/rput", url=source.url + "/missing.png"), 400, "EasRputError")
    png = _png(source)
    expired = _signed_url(source, png, lifetime=-10)
    error(client.call("POST", "/eas/rput", url=expired, filename="a.png"), 400, "EasRputError")   # HEAD sees 403
    assert not server.sim.files


def test_eas_put_stays_synchronous(target):
    server, client = target
    answer = _put(client, "a.txt", b"hello", references=["p1"])
    assert answer["status"] == "done" and server.sim.files[answer["_id"]]["versions"]["original"] == b"hello"


def test_get_eas_answers_an_object_keyed_by_file_id_in_three_formats(target):
    server, client = target
    first = _put(client, "a.png", b"\x89PNG\r\n\x1a\nnot really", references=["e1"])
    second = _put(client, "b.txt", b"text", references=["e2"])
    ids = json.dumps([first["_id"], second["_id"], 999])
    standard = client.ok("GET", "/eas", ids=ids)
    assert set(standard) == {str(first["_id"]), str(second["_id"])}                 # unknown id left out
    one = standard[str(first["_id"])]
    assert one["_id"] == first["_id"] and one["status"] == "done" and one["reference"] == "e1"
    assert "original" in one["versions"] and "technical_metadata" not in one
    assert "versions" not in client.ok("GET", "/eas", ids=ids, format="short")[str(first["_id"])]
    assert "versions" not in client.ok("GET", "/eas", ids=ids, format="nonsense")[str(first["_id"])]   # -> short
    assert "technical_metadata" in client.ok("GET", "/eas", ids=ids, format="long")[str(first["_id"])]
    single = client.ok("GET", "/eas/%d" % second["_id"])
    assert single["_id"] == second["_id"] and single["status"] == "done"             # not wrapped in a map
    error(requests.get(client.api + "/eas", params={"ids": ids}), 403, "InsufficientRights")     # never 401
    error(client.call("GET", "/eas", ids="1,2"), 400, "ServerGeneric")


def test_system_status_is_root_only(make_sim):
    server = make_sim("fylr", size="tiny")
    error(requests.get(server.api_url + "/system/status"), 401, "UserRequired")
    error(Client(server, "jdoe", "secret").call("GET", "/system/status"), 403, "SystemRightRequired")
    status = Client(server).ok("GET", "/system/status")
    for key in ("objecttypes", "basetypes", "indices_objects", "total_not_indexed", "pending_files",
                "queued_files", "file_stats", "indices_stats"):
        assert key in status                                                   # OAS SystemStats: all required
    assert {"status": "done", "count": len(server.sim.files)} in status["file_stats"]


def test_a_pending_manual_rendition_arrives_after_the_answer(make_sim):
    source = make_sim("fylr", size="tiny")
    server = make_sim("fylr", size="empty", rput_delay=0.3)
    client = Client(server)
    png = _png(source)
    original = _put(client, "o.png", png["versions"]["original"], produce_versions=[False])
    answer = client.ok("POST", "/eas/rput", url=_signed_url(source, png, "preview"), filename="p.png",
                       version_name="preview", id_parent=str(original["_id"]), reference="o:preview")[0]
    assert answer["version_name"] == "preview" and "preview" not in server.sim.files[original["_id"]]["versions"]
    error(client.call("POST", "/eas/rput", url=_signed_url(source, png, "preview"), filename="p.png",
                      version_name="preview", id_parent=str(original["_id"]), reference="o:preview"), 400,
          "EasDuplicateReference")                                            # the reference is taken at once
    wait_until(lambda: "preview" in server.sim.files[original["_id"]]["versions"])
    assert server.sim.files[original["_id"]]["versions"]["preview"] == png["versions"]["preview"]


def test_plugin_zip_must_be_a_done_local_file(make_sim):
    server = make_sim("fylr", size="empty", rput_delay=5)
    client = Client(server)
    pending = client.ok("POST", "/eas/rput", url="http://127.0.0.1:9/p.zip", filename="p.zip",
                        skip_head_request="1")[0]
    error(client.call("PUT", "/plugin/manage", {"name": "p", "type": "zip", "zip_file": {"_id": pending["_id"]}}),
          400, "ServerGeneric")
    done = _put(client, "p.zip", datagen._zip([("p/manifest.yml", b"name: p\n")]))   # a real plugin zip
    assert client.ok("PUT", "/plugin/manage", {"name": "p", "type": "zip", "zip_file": {"_id": done["_id"]}})


def test_a_files_reference_can_be_changed_which_frees_it_for_a_new_upload(make_sim):
    """OAS POST /eas/{fileId}: filename and reference of an original can change; a restore renames a failed
    file's reference so the file can be fetched again under it."""
    source = make_sim("fylr", size="tiny")
    server = make_sim("fylr", size="empty")
    client = Client(server)
    png = _png(source)
    del source.sim.files[png["_id"]]                      # the fetch will fail: 404 upstream
    first = client.ok("POST", "/eas/rput", url=_signed_url(source, dict(png, versions=png["versions"])),
                      filename="a.png", reference="ref-1", skip_head_request="true")[0]
    wait_until(lambda: server.sim.files[first["_id"]]["status"] == "failed")
    error(client.call("POST", "/eas/rput", url="http://127.0.0.1:9/x.png", filename="a.png", reference="ref-1",
                      skip_head_request="true"), 400, "EasDuplicateReference")
    error(client.call("POST", "/eas/%d" % first["_id"], {}), 400, "ServerGeneric")
    error(client.call("POST", "/eas/%d" % first["_id"], {"reference": "x", "size": 1}), 400, "ServerGeneric")
    renamed = client.ok("POST", "/eas/%d" % first["_id"], {"reference": "ref-1:failed"})
    assert renamed["reference"] == "ref-1:failed" and server.sim.files[first["_id"]]["reference"] == "ref-1:failed"
    second = client.ok("POST", "/eas/rput", url="http://127.0.0.1:9/x.png", filename="b.png", reference="ref-1",
                       skip_head_request="true")[0]
    assert second["_id"] != first["_id"] and second["reference"] == "ref-1"
    error(client.call("POST", "/eas/%d" % second["_id"], {"reference": "ref-1:failed"}), 400, "EasDuplicateReference")
    error(client.call("POST", "/eas/999999", {"reference": "y"}), 404, "FileNotFound")


def test_a_manual_rendition_whose_fetch_fails_shows_as_failed_on_its_original(make_sim):
    source = make_sim("fylr", size="tiny")
    server = make_sim("fylr", size="empty", rput_delay=0.2)
    client = Client(server)
    png = _png(source)
    parent = _put(client, "p.png", png["versions"]["original"], produce_versions=[False])
    client.ok("POST", "/eas/rput", url="http://127.0.0.1:9/gone.png", filename="s.png", version_name="small",
              id_parent=parent["_id"], reference="r-small", skip_head_request="true")
    shown = client.ok("GET", "/eas", ids=[parent["_id"]])[str(parent["_id"])]
    assert shown["versions"]["small"]["status"] == "pending"
    wait_until(lambda: "small" in (server.sim.files[parent["_id"]].get("failed_versions") or {}))
    shown = client.ok("GET", "/eas", ids=[parent["_id"]])[str(parent["_id"])]
    assert shown["versions"]["small"]["status"] == "failed" and shown["status"] == "done"
