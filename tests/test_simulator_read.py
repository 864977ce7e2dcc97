"""READ side of the instance simulator, both flavours, through real HTTP (api.md §1-§4)."""
import hashlib
import time

import pytest
import requests

from tests.simulator import auth as sim_auth
from tests.simulator import datagen
from tests.simulator.faults import FaultPlan

FLAVOURS = ("easydb5", "fylr")


# ------------------------------------------------------------------------------------------ helpers

class Client:
    """Logged-in requests session against a SimServer, for either flavour."""

    def __init__(self, server, login="root", password="admin"):
        self.server, self.http = server, requests.Session()
        self.flavour = server.sim.flavour
        if self.flavour == "fylr":
            answer = requests.post(server.url + "/api/oauth2/token", data={
                "grant_type": "password", "username": login, "password": password,
                "client_id": "fylr-web-frontend", "scope": "offline"})
            assert answer.status_code == 200, answer.text
            self.token = answer.json()["access_token"]
            self.http.headers["Authorization"] = "Bearer " + self.token
        else:
            self.token = requests.get(server.api_url + "/session").json()["token"]
            answer = requests.post(server.api_url + "/session/authenticate",
                                   params={"token": self.token, "login": login, "password": password})
            assert answer.status_code == 200, answer.text
            self.http.headers["X-Easydb-Token"] = self.token

    def get(self, path, **params):
        return self.http.get(self.server.api_url + path, params=params)

    def post(self, path, json=None):
        return self.http.post(self.server.api_url + path, json=json)


@pytest.fixture(params=FLAVOURS)
def server(request, make_sim):
    return make_sim(request.param)


@pytest.fixture
def client(server):
    return Client(server)


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _live_records(sim, ot):
    return [r for _, r in sorted(sim.records[ot].items()) if not r.get("deleted_at")]

# ------------------------------------------------------------------------------------------ settings


def test_settings_fylr_has_status_header_and_no_api_field(fylr_tiny):
    answer = requests.get(fylr_tiny.api_url + "/settings")
    assert answer.status_code == 200
    assert answer.headers["x-fylr-status"] == "ready"
    body = answer.json()
    assert "api" not in body and body["name"] == fylr_tiny.sim.name and "capabilities" in body


def test_settings_easydb5_shape_and_headers(e5_tiny):
    answer = requests.get(e5_tiny.api_url + "/settings")
    assert answer.headers["X-Easydb-API-Version"] == "1"
    body = answer.json()
    assert body["api"] == 1 and body["easydb_version"] == "5.86.1" and body["external_eas_url"].endswith("/eas")


def test_fylr_purge_status_answers_503_everywhere(make_sim):
    server = make_sim("fylr", status="purge")
    answer = requests.get(server.api_url + "/settings")
    assert answer.status_code == 503 and answer.headers["x-fylr-status"] == "purge"

# ------------------------------------------------------------------------------------------ easydb 5 auth


def test_e5_session_flow_token_in_query_and_header(e5_tiny):
    api = e5_tiny.api_url
    token = requests.get(api + "/session").json()["token"]
    answer = requests.post(api + "/session/authenticate",
                           data={"token": token, "login": "root", "password": "admin"})   # form body
    assert answer.status_code == 200 and answer.json()["system_rights"]["system.root"] is True
    assert requests.get(api + "/user", params={"token": token}).status_code == 200
    assert requests.get(api + "/user", headers={"X-Easydb-Token": token}).status_code == 200
    assert requests.get(api + "/session", params={"token": token}).json()["user"]["user"]["login"] == "root"


@pytest.mark.parametrize("login,password,code", [
    ("root", "wrong", "error.user.login_failed"),
    ("nobody", "x", "error.user.login_failed"),
    ("root", "", "error.user.username_or_password_empty"),
])
def test_e5_authenticate_errors(e5_tiny, login, password, code):
    token = requests.get(e5_tiny.api_url + "/session").json()["token"]
    answer = requests.post(e5_tiny.api_url + "/session/authenticate",
                           params={"token": token, "login": login, "password": password})
    assert answer.status_code == 400
    assert answer.json()["code"] == code and answer.json()["realm"] == "user"


def test_e5_unknown_token_and_missing_token(e5_tiny):
    api = e5_tiny.api_url
    answer = requests.post(api + "/session/authenticate", params={"token": "nope", "login": "root", "password": "admin"})
    assert answer.json()["code"] == "error.user.session_not_found"
    assert requests.get(api + "/user", params={"token": "nope"}).json()["code"] == "error.user.session_not_found"
    answer = requests.get(api + "/user")
    assert answer.status_code == 400 and answer.json()["code"] == "error.user.not_authenticated"
    unauthenticated = requests.get(api + "/session").json()["token"]
    assert requests.get(api + "/user", params={"token": unauthenticated}).json()["code"] == "error.user.not_authenticated"


def test_e5_session_expires_after_lifetime(make_sim):
    server = make_sim("easydb5", token_lifetime=2)   # room for a loaded CI machine before the first use
    client = Client(server)
    assert client.get("/user").status_code == 200
    time.sleep(2.2)
    answer = client.get("/user")
    assert answer.status_code == 400 and answer.json()["code"] == "error.user.session_not_found"


def test_e5_expire_all_tokens_and_deauthenticate(e5_tiny):
    client = Client(e5_tiny)
    sim_auth.expire_all_tokens(e5_tiny.sim)
    assert client.get("/pool").json()["code"] == "error.user.session_not_found"
    client = Client(e5_tiny)
    assert requests.post(e5_tiny.api_url + "/session/deauthenticate", params={"token": client.token}).status_code == 200
    assert client.get("/pool").json()["code"] == "error.user.not_authenticated"

# ------------------------------------------------------------------------------------------ fylr auth


def _token(server, **form):
    data = {"grant_type": "password", "username": "root", "password": "admin", "client_id": "fylr-web-frontend"}
    data.update(form)
    return requests.post(server.url + "/api/oauth2/token", data=data)


def test_fylr_password_grant_and_refresh(make_sim):
    server = make_sim("fylr", token_lifetime=120)
    plain = _token(server)
    assert plain.status_code == 200
    assert plain.json()["token_type"] == "bearer" and plain.json()["expires_in"] == 120
    assert "refresh_token" not in plain.json()           # only with scope offline
    offline = _token(server, scope="offline").json()
    refreshed = requests.post(server.url + "/api/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": offline["refresh_token"], "client_id": "fylr-web-frontend"})
    assert refreshed.status_code == 200 and refreshed.json()["refresh_token"] != offline["refresh_token"]
    again = requests.post(server.url + "/api/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": offline["refresh_token"], "client_id": "fylr-web-frontend"})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"   # refresh tokens rotate


@pytest.mark.parametrize("form,status,error", [
    ({"password": "wrong"}, 400, "invalid_grant"),
    ({"grant_type": "client_credentials"}, 400, "unsupported_grant_type"),
    ({"client_id": "unknown"}, 401, "invalid_client"),
    ({"client_id": "web-client", "client_secret": "bar"}, 401, "invalid_client"),
    ({"username": ""}, 400, "invalid_request"),
])
def test_fylr_token_errors_use_rfc6749_body(fylr_tiny, form, status, error):
    answer = _token(fylr_tiny, **form)
    assert answer.status_code == status
    assert answer.json()["error"] == error and "error_description" in answer.json() and "code" not in answer.json()


def test_fylr_confidential_client_and_token_placements(fylr_tiny):
    token = _token(fylr_tiny, client_id="web-client", client_secret="foo").json()["access_token"]
    api = fylr_tiny.api_url
    assert requests.get(api + "/user", headers={"Authorization": "Bearer " + token}).status_code == 200
    assert requests.get(api + "/user", headers={"X-Fylr-Authorization": "Bearer " + token}).status_code == 200
    assert requests.get(api + "/user", params={"access_token": token}).status_code == 200
    session = requests.get(api + "/user/session", params={"access_token": token}).json()
    assert session["user"]["user"]["login"] == "root" and session["system_rights"]["system.root"]


def test_fylr_anonymous_behaviour_after_expiry(make_sim):
    """Expired token = anonymous: /group 200 [], /user 401 UserRequired, /user/session 400 InvalidToken,
    /eas/download 403 InsufficientRights (api.md §2.2)."""
    server = make_sim("fylr")
    client = Client(server)
    assert client.get("/group").json()
    sim_auth.expire_all_tokens(server.sim)
    assert client.get("/group").status_code == 200 and client.get("/group").json() == []
    answer = client.get("/user")
    assert answer.status_code == 401 and answer.json()["code"] == "UserRequired"
    assert answer.json()["parameters"]["statuscode"] == 401 and answer.json()["realm"] == "api"
    answer = client.get("/user/session")
    assert answer.status_code == 400 and answer.json()["code"] == "InvalidToken"
    file_id = next(iter(server.sim.files))
    data = server.sim.files[file_id]["versions"]["original"]
    answer = client.get("/eas/download/%d/%s/original" % (file_id, _sha(data)))
    assert answer.status_code == 403 and answer.json()["parameters"]["resource"] == "File"


def test_fylr_token_expires_after_lifetime(make_sim):
    server = make_sim("fylr", token_lifetime=2)
    client = Client(server)
    assert client.get("/user").status_code == 200
    time.sleep(2.2)
    assert client.get("/user").status_code == 401


def test_fylr_session_endpoint_does_not_exist(fylr_tiny):
    answer = requests.get(fylr_tiny.api_url + "/session")
    assert answer.status_code == 400 and answer.json()["code"] == "UnknownEndpointMethod"
    assert requests.get(fylr_tiny.url + "/.well-known/openid-configuration").status_code == 200


def test_refresh_tokens_survive_expire_all_tokens(fylr_tiny):
    offline = _token(fylr_tiny, scope="offline").json()
    sim_auth.expire_all_tokens(fylr_tiny.sim)
    answer = requests.post(fylr_tiny.url + "/api/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": offline["refresh_token"], "client_id": "fylr-web-frontend"})
    assert answer.status_code == 200

# ------------------------------------------------------------------------------------------ rights


@pytest.mark.parametrize("path,params", [("/user", {"include_password": "true"}),
                                         ("/db/bilder/_all_fields/list", {"all_versions": "1"})])
def test_root_only_features_refused_for_normal_user(server, path, params):
    client = Client(server, "jdoe", "secret")
    answer = client.get(path, **params)
    if server.sim.flavour == "fylr":
        assert answer.status_code == 403 and answer.json()["code"] == "SystemRightRequired"
    else:
        assert answer.status_code == 400 and answer.json()["code"] == "error.user.no_system_right"


def test_fylr_non_root_sees_only_own_groups(fylr_tiny):
    groups = Client(fylr_tiny, "jdoe", "secret").get("/group").json()
    assert [g["group"]["_id"] for g in groups] == [1]

# ------------------------------------------------------------------------------------------ datamodel


def test_schema_format(client):
    answer = client.get("/schema/user/CURRENT")
    if client.flavour == "easydb5":
        assert answer.headers["Content-Type"].startswith("text/xml")       # E5 default format is xml
        answer = client.get("/schema/user/CURRENT", format="json")
    schema = answer.json()
    assert {t["name"] for t in schema["tables"]} >= {"orte", "personen", "bilder", "dokumente", "bilder__schlagworte"}
    assert any(t["is_hierarchical"] for t in schema["tables"])
    assert client.get("/mask/CURRENT", format="json").json()["masks"]
    assert client.get("/l10n/user/CURRENT").json()["schema.bilder.name"]["de-DE"] == "Bilder"
    assert len(client.get("/objecttype").json()) == 4


def test_schema_unknown_version(client):
    answer = client.get("/schema/user/99", format="json")
    if client.flavour == "fylr":
        assert answer.status_code == 400 and answer.json()["code"] == "DatamodelVersionNotFound"
    else:
        assert answer.status_code == 404


def test_config_shape(client):
    body = client.get("/config").json()
    if client.flavour == "fylr":
        assert "config" in body["system"] and "login" in body["system"]["config"]
        assert client.get("/plugin/manage").json()["plugins"][0]["name"] == "easydb-custom-data-type-gnd"
    else:
        assert "login.internet" in body["system"] and "config" not in body["system"]

# ------------------------------------------------------------------------------------------ basetypes


def test_tags_groups_pools_messages(client):
    taggroups = client.get("/tags").json()
    assert taggroups[0]["_tags"][0]["tag"]["reference"] == "public"
    assert [g["group"]["_id"] for g in client.get("/group", limit=1, offset=1).json()] == [2]
    pools = client.get("/pool", limit=2).json()
    refs = {p["pool"]["reference"] for p in pools}
    if client.flavour == "fylr":
        assert len(pools) == 2                 # fylr pages pools
    else:
        assert len(pools) > 2                  # E5 /pool is unpaged
    assert {"system:root", "system:standard"} <= refs
    message = client.get("/message").json()[0]["message"]
    if client.flavour == "fylr":
        assert message["webfrontend_type"] == "eula" and "message" in message
    else:
        assert message["type"] == "eula" and "message_html" in message and "webfrontend_type" not in message


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_user_paging_defaults_and_limits(make_sim, flavour):
    server = make_sim(flavour, size="small")
    client = Client(server)
    total = len(server.sim.users)
    assert total > 100
    page = client.get("/user").json()
    assert len(page) == (100 if flavour == "fylr" else total)
    assert client.get("/user", offset=total - 3, limit=10).json()[-1]["user"]["_id"] == max(server.sim.users)
    if flavour == "easydb5":
        assert client.get("/user", limit=1001).status_code == 400


def test_users_include_password_and_email(client):
    users = {u["user"]["login"]: u for u in client.get("/user", include_password="true").json()}
    jdoe, mueller = users["jdoe"], users["mueller"]
    if client.flavour == "fylr":
        assert jdoe["_password_hash"].startswith("sha256:") and "_password_hash" not in mueller
        assert jdoe["user"]["email"] == "jdoe@example.com"
    else:
        assert jdoe["_password_insecure_hash_method"] == "sha-512"
        assert jdoe["_password_insecure_hash"] and jdoe["_password_insecure_hash_salt"]
        assert jdoe["user"]["_primary_email"] == "jdoe@example.com" and "email" not in jdoe["user"]
        assert jdoe["_emails"][0]["email"] == "jdoe@example.com"
    assert users["mueller"]["user"]["reference"] is None       # backup must generate user:<id>
    plain = client.get("/user").json()
    assert not any(k.startswith("_password") for u in plain for k in u)


def test_collections(client):
    sim = client.server.sim
    listed = client.get("/collection/list", offset=1, limit=3).json()
    assert [c["collection"]["_id"] for c in listed] == sorted(sim.collections)[1:4]
    assert client.get("/collection/list/null").json()[0]["collection"]["reference"] == "system:root"
    big = next(c for c, e in sim.collections.items() if e["collection"]["reference"] == "big")
    page = client.get("/collection/objects/%d" % big, offset=10).json()
    assert page["count"] == len(sim.collection_objects[big]) and page["offset"] == 10
    key = "webfrontend_props" if client.flavour == "fylr" else "_webfrontend_props"
    assert len(page["objects"]) == min(100 if client.flavour == "fylr" else 1000, page["count"] - 10)
    assert page["objects"][0]["_global_object_id"] == "%d@%s" % (sim.collection_objects[big][10], sim.name)
    assert key in page["objects"][0]
    missing = client.get("/collection/objects/9999")
    assert missing.status_code in (400, 404)


def test_event_list(client):
    sim = client.server.sim
    if client.flavour == "easydb5":
        short = client.get("/event/list", sort="_id.ASC", limit=5).json()
        assert "timestamp" not in short["objects"][0]["event"]
        full = client.get("/event/list", sort="_id.ASC", limit=5, offset=5, format="json_full").json()
    else:
        full = client.get("/event/list", sort="_id.ASC", limit=5, offset=5).json()
    assert full["count"] == len(sim.events) and full["limit"] == 5 and full["offset"] == 5
    assert [e["event"]["_id"] for e in full["objects"]] == [6, 7, 8, 9, 10]
    assert "timestamp" in full["objects"][0]["event"] and "info" in full["objects"][0]["event"]
    descending = client.get("/event/list", limit=2, format="json_full").json()["objects"]
    assert descending[0]["event"]["_id"] == max(sim.events)          # default _id.DESC
    typed = client.get("/event/list", type="OBJECT_INDEX,SESSION_INVALID", format="json_full").json()["objects"]
    assert typed and {e["event"]["type"] for e in typed} <= {"OBJECT_INDEX", "SESSION_INVALID"}


def test_e5_event_list_array_envelope_and_limit(make_sim):
    server = make_sim("easydb5", e5_event_envelope="array")
    client = Client(server)
    assert isinstance(client.get("/event/list", limit=3).json(), list)
    assert client.get("/event/list", limit=1001).status_code == 400

# ------------------------------------------------------------------------------------------ records


def test_db_list_paging_and_shape(client):
    sim = client.server.sim
    live = _live_records(sim, "bilder")
    page = client.get("/db/bilder/_all_fields/list", offset=2, limit=3).json()
    assert [r["bilder"]["_id"] for r in page] == [r["_id"] for r in live[2:5]]
    record = page[0]
    assert record["_objecttype"] == "bilder" and record["_mask"] == "_all_fields"
    assert record["_global_object_id"] == "%d@%s" % (record["_system_object_id"], sim.name)
    assert record["bilder"]["_version"] == len(live[2]["versions"])
    assert "pool" in record["bilder"]["_pool"] and isinstance(record["_tags"], list)
    rows = [row for r in client.get("/db/bilder/_all_fields/list").json() for row in r["bilder"]["_nested:bilder__schlagworte"]]
    assert rows and all("_uuid" in row for row in rows)
    if client.flavour == "easydb5":
        assert len(client.get("/db/bilder/_all_fields/list").json()) == min(100, len(live))
        answer = client.get("/db/bilder/_all_fields/list", limit=1001)
        assert answer.status_code == 400 and answer.json()["realm"] == "api"


def test_db_list_unknown_objecttype(client):
    answer = client.get("/db/nope/_all_fields/list")
    assert answer.status_code == 400
    assert answer.json()["code"] in ("UnknownObjecttype", "error.user.unknown_objecttype")


def test_all_versions_order_and_extras(client):
    sim = client.server.sim
    records = client.get("/db/orte/_all_fields/list", all_versions="1", limit=4).json()
    expected = [(r["_id"], v["_version"]) for _, r in sorted(sim.records["orte"].items())[:4] for v in r["versions"]]
    assert [(r["orte"]["_id"], r["orte"]["_version"]) for r in records] == expected
    assert len(expected) > 4                                   # limit counts objects, not versions
    latest = [r for r in records if r["_latest_version"]]
    assert len(latest) == 4
    child = next(r for r in records if r["orte"]["_id"] == 2)
    if client.flavour == "easydb5":
        assert child["_system_object_id_parent"] == sim.records["orte"][1]["_system_object_id"]
        assert isinstance(child["_create_user"], int)
    else:
        assert child["orte"]["_id_parent"] == 1 and child["_level"] == 2
        assert child["_created"] and child["_last_modified"]
    moved = [r["orte"]["_id_parent"] for r in records if r["orte"]["_id"] == 4]
    assert moved[0] != moved[1]                                # record 4 changed its parent in version 2


def test_single_record_addressing(client):
    sim = client.server.sim
    record = sim.records["bilder"][4]
    by_id = client.get("/db/bilder/_all_fields/4").json()
    assert len(by_id) == 1 and by_id[0]["_system_object_id"] == record["_system_object_id"]
    first = client.get("/db/bilder/_all_fields/4", version=1).json()[0]
    assert first["bilder"]["_version"] == 1
    by_sysid = client.get("/db/bilder/_all_fields/system_object_id/%d" % record["_system_object_id"]).json()
    assert by_sysid[0]["bilder"]["_id"] == 4
    missing = client.get("/db/bilder/_all_fields/system_object_id/999999")
    if client.flavour == "fylr":
        assert missing.status_code == 200 and missing.json() == []
    else:
        assert missing.status_code == 400 and missing.json()["code"] == "error.user.object_not_found"


def test_links_and_multilingual_fields(client):
    record = client.get("/db/bilder/_all_fields/1").json()[0]["bilder"]
    assert record["titel"]["de-DE"] == datagen.SPECIAL_TEXTS[0]
    link = record["aufnahmeort"]
    assert set(link) >= {"_objecttype", "_mask", "_system_object_id", "_global_object_id", "orte"}
    assert set(link["orte"]) == {"_id", "_version"}


def test_fylr_soft_deleted_records(fylr_tiny):
    client = Client(fylr_tiny)
    sim = fylr_tiny.sim
    deleted = [r for r in sim.records["bilder"].values() if r["deleted_at"]]
    assert deleted
    listed = {r["_system_object_id"] for r in client.get("/db/bilder/_all_fields/list").json()}
    assert not listed & {r["_system_object_id"] for r in deleted}
    search = {"objecttypes": ["bilder"], "limit": 1000}
    plain = client.post("/search", search).json()
    with_deleted = client.post("/search", dict(search, include_deleted=True)).json()
    assert with_deleted["count"] == plain["count"] + len(deleted)
    marked = [o for o in with_deleted["objects"] if "_latest_version_deleted_at" in o]
    assert len(marked) == len(deleted)
    doc = client.get("/db/dokumente/_all_fields/1").json()[0]
    assert doc["dokumente"]["verweis"]["_latest_version_deleted_at"]      # link to a soft-deleted target
    single = client.get("/db/bilder/_all_fields/%d" % deleted[0]["_id"]).json()
    assert single[0]["_latest_version_deleted_at"] == deleted[0]["deleted_at"]


def test_search_paging_filter_sort_format(client):
    sim = client.server.sim
    body = {"objecttypes": ["personen", "orte"], "offset": 3, "limit": 4, "format": "short",
            "sort": [{"field": "_system_object_id", "order": "DESC"}]}
    answer = client.post("/search", body).json()
    expected = sorted((r["_system_object_id"] for ot in ("personen", "orte") for r in _live_records(sim, ot)),
                      reverse=True)
    assert answer["count"] == len(expected) and answer["offset"] == 3 and answer["limit"] == 4
    assert [o["_system_object_id"] for o in answer["objects"]] == expected[3:7]
    assert set(answer["objects"][0]) >= {"_objecttype", "_system_object_id", "_global_object_id", "_uuid"}
    wanted = expected[:2]
    found = client.post("/search", {"search": [{"type": "in", "fields": ["_system_object_id"], "in": wanted}],
                                    "format": "full"}).json()
    assert sorted(o["_system_object_id"] for o in found["objects"]) == sorted(wanted)
    if client.flavour == "easydb5":
        assert client.post("/search", {"limit": 1001}).status_code == 400


def test_a_search_with_limit_0_is_a_count_without_hits(client):
    """Elasticsearch's size 0 (the index behind both flavours): never every record in one answer."""
    sim = client.server.sim
    for sort in ([], [{"field": "_system_object_id", "order": "DESC"}]):
        answer = client.post("/search", {"objecttypes": ["bilder"], "offset": 0, "limit": 0, "sort": sort}).json()
        assert answer["count"] == len(_live_records(sim, "bilder")) > 0 and answer["objects"] == []

# ------------------------------------------------------------------------------------------ files


def _first_file_entry(client, ot="bilder"):
    for record in client.get("/db/%s/_all_fields/list" % ot).json():
        if record[ot]["datei"]:
            return record[ot]["datei"][0]
    raise AssertionError("no file")


def test_file_download_bytes_and_renditions(client):
    sim = client.server.sim
    entry = _first_file_entry(client)
    info = sim.files[entry["_id"]]
    assert entry["preferred"] is True and set(entry["versions"]) == set(info["versions"])
    for name, version in entry["versions"].items():
        data = requests.get(version["url"]).content          # no token needed: signature / EAS partition URL
        assert data == info["versions"][name]
        if name != "original" and info["produce_versions"]:
            assert data == datagen.produce_version(info["versions"]["original"], name)
    if client.flavour == "easydb5":
        assert "/eas/partitions-inline/" in entry["versions"]["original"]["url"]
        assert entry["versions"]["original"]["url"].endswith("/image/png")
    else:
        assert entry["hash"] == _sha(info["versions"]["original"])


def test_fylr_signature_expiry_and_access_token(make_sim):
    server = make_sim("fylr", signature_lifetime=3)
    client = Client(server)
    url = _first_file_entry(client)["versions"]["original"]["url"]
    assert requests.get(url).status_code == 200
    time.sleep(3.2)
    answer = requests.get(url)
    assert answer.status_code == 403 and answer.json()["code"] == "InsufficientRights"
    assert answer.json()["parameters"]["resource"].endswith("/signature expired")
    bare = url.split("?")[0]
    assert requests.get(bare, params={"access_token": client.token}).status_code == 200
    answer = requests.get(bare, params={"x-fylr-signature": "123.abc"})
    assert answer.status_code == 403 and answer.json()["parameters"]["resource"].endswith("/signature wrong")
    assert requests.get(bare).status_code == 403


def test_fylr_leave_on_remote_files_real_url(fylr_tiny):
    client = Client(fylr_tiny)
    sim = fylr_tiny.sim
    leave_ids = {f for f, info in sim.files.items() if info["leave"]}
    assert leave_ids
    records = client.get("/db/bilder/_all_fields/list", files_real_url="1").json()
    entries = [e for r in records for e in r["bilder"]["datei"] if e["_id"] in leave_ids]
    assert entries
    url = entries[0]["versions"]["original"]["url"]
    assert "/remote/" in url and "x-fylr-signature" not in url
    assert requests.get(url).content == sim.files[entries[0]["_id"]]["versions"]["original"]
    assert int(requests.head(url).headers["Content-Length"]) > 0        # rput leave=1 needs a length
    assert "/eas/download/" in entries[0]["versions"]["preview"]["url"]     # renditions stay local
    plain = Client(fylr_tiny, "jdoe", "secret").get("/db/bilder/_all_fields/list", files_real_url="1").json()
    urls = [e["versions"]["original"]["url"] for r in plain for e in r["bilder"]["datei"] if e["_id"] in leave_ids]
    assert urls and all("/eas/download/" in u for u in urls)                # root only

# ------------------------------------------------------------------------------------------ faults


def test_fault_errors_are_5xx_and_counted(make_sim):
    plan = FaultPlan(seed=7, error_rate=1.0)
    server = make_sim("fylr", faults=plan)
    assert requests.get(server.api_url + "/settings").status_code == 200     # exempt by default
    statuses = [requests.get(server.api_url + "/user").status_code for _ in range(12)]
    assert set(statuses) <= {502, 503, 504} and plan.errors == 12
    assert sum(plan.errors_by_status.values()) == 12 and plan.requests == 12


def test_fault_error_rate_is_deterministic(make_sim):
    def run():
        plan = FaultPlan(seed=3, error_rate=0.5)
        server = make_sim("easydb5", faults=plan)
        return [requests.get(server.api_url + "/session").status_code for _ in range(20)], plan
    first, plan = run()
    second, _ = run()
    assert first == second and 0 < plan.errors < 20
    assert first.count(200) == 20 - plan.errors


def test_fault_drop_truncates_response(make_sim):
    plan = FaultPlan(seed=1, drop_rate=1.0, only_prefixes=("/api/v1/db/",))
    server = make_sim("fylr", faults=plan)
    client = Client(server)
    with pytest.raises(requests.exceptions.RequestException):
        client.get("/db/bilder/_all_fields/list")
    assert plan.drops == 1
    assert client.get("/user").status_code == 200                        # outside only_prefixes


def test_fault_latency_and_token_expiry(make_sim):
    plan = FaultPlan(latency=0.2, expire_tokens_after=2, only_prefixes=("/api/v1/",))
    server = make_sim("fylr", faults=plan)
    client = Client(server)
    started = time.monotonic()
    assert client.get("/user").status_code == 200
    assert time.monotonic() - started >= 0.2 and plan.delayed == 1
    assert client.get("/user").status_code == 200
    assert client.get("/user").status_code == 401 and plan.token_expiries == 1


def test_fault_gateway_timeout_after_processing_runs_the_request(make_sim):
    plan = FaultPlan(error_rate=1.0, error_statuses=(504,), errors_after_processing=True,
                     only_prefixes=("/api/v1/session",))
    server = make_sim("easydb5", faults=plan)
    before = len(server.sim.tokens)
    assert requests.get(server.api_url + "/session").status_code == 504
    assert len(server.sim.tokens) == before + 1 and plan.errors_by_status == {504: 1}
