"""READ side of the simulated instance: a bottle app speaking easydb 5 or fylr (api.md §1-§4).

make_app(sim) mounts every read route of sim.flavour under /api/v1 (fylr also /api/oauth2/* and
/.well-known/*; easydb 5 also the EAS partition URLs /eas/partitions-inline/...).  For fylr it then calls
writes.install(app, sim), which adds the write routes.

Choices where api.md is silent (each also noted at the code):
  * nothing is ACL filtered: every authenticated user reads every record; only root-only features
    (all_versions, include_password, E5 `_all_fields` mask, events) check the right.
  * soft-deleted records (fylr only; easydb 5 has no trash) are hidden from /db list and /search, but the
    single-record GETs return them, marked with `_latest_version_deleted_at`.
  * unknown routes: fylr 400 UnknownEndpointMethod (as documented for /api/v1/session), easydb 5
    400 error.api.invalid_api.
  * E5 limits above the documented maximum (1000) answer 400 error.api.invalid_value (code undocumented).
  * E5 GET /event/list envelope: {"count","offset","limit","objects"} (sim.e5_event_envelope = "array"
    switches to a bare array).  Entries are {"event": {...}, "_user": {...}}.
  * leave-on-remote files are served by this simulator under /remote/<file_id>/<filename> (a stand-in for
    the upstream host; not a fylr route, allowed explicitly by the route test).
  * fylr status middleware: startup/purge/busy answer 503 before any handler (a purge leaves "purge" for
    sim.purge_busy_seconds); while sim.read_only_until lies ahead every write answers 400 ReadOnlyMode with
    `X-Fylr-Read-Only-Mode: true` (except the routes documented without the guard).
  * files have a status (pending, processing, sync, done, failed); renditions are listed and downloadable
    only in sync/done, else the download answers 403 like a version that does not exist.
  * POST /search sees records as of the index (store.py `indexed`): saved records appear sim.index_lag
    seconds later; GET /db reads are immediate.  fylr refuses `type: "object"` (not in its enum).
  * fylr GET /eas?ids=[..] (object keyed by file id) and GET /eas/{id}: format short|standard|long,
    unknown ids left out, anonymous -> 403 (never 401); GET /system/status needs system.root and counts
    pending files and records not indexed yet.  easydb 5 GET /eas?ids=[..]: format status|short|long
    (default long), same keyed object, any session (files outside records are read this way).
  * GET /xmlmapping/list answers the profiles (sim.xmlmapping_profiles) with their mappings appended;
    GET /xmlmapping/mapping/{id} one mapping (root; unknown id 400).  GET /publish: easydb 5 pages by
    limit (max 1000) / offset, fylr answers all.
"""
import copy
import hashlib
import hmac
import json
import math
import time
import urllib.parse

import bottle

from . import auth, writes
from .auth import api_error, json_response

API = "/api/v1"

# ============================================================================ request helpers


def _param(name, default=None):
    """Query parameter; easydb 5 also accepts them as a form body when the call has no body."""
    request = bottle.request
    value = request.query.get(name)
    if value is None and request.content_type.startswith("application/x-www-form-urlencoded"):
        value = request.forms.getunicode(name)
    return default if value in (None, "") else value


def _flag(name):
    return str(_param(name, "")).lower() in ("1", "true", "yes")


def _int_param(sim, name, default):
    raw = _param(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise _invalid_value(sim, name, raw)


def _invalid_value(sim, name, value, maximum=None):
    if sim.flavour == "fylr":
        return api_error(sim, 400, "ServerGeneric", "invalid value for %s" % name, msg="invalid %s" % name)
    # spec silent on the code; E5 answers API misuse with realm "api", HTTP 400
    params = {"name": name, "value": str(value)}
    if maximum is not None:
        params["max"] = maximum
    return api_error(sim, 400, "error.api.invalid_value", "invalid value for %s" % name, **params)


def _paging(sim, default_limit, max_limit=None, limit_name="limit"):
    """(offset, limit) from the query; limit above max_limit is refused (E5's documented maxima)."""
    offset = max(_int_param(sim, "offset", 0), 0)
    limit = _int_param(sim, limit_name, default_limit)
    if max_limit is not None and limit > max_limit:
        raise _invalid_value(sim, limit_name, limit, max_limit)
    return offset, max(limit, 0)


def _base_url(sim):
    if sim.base_url:
        return sim.base_url
    parts = bottle.request.urlparts
    return "%s://%s" % (parts.scheme, parts.netloc)


def _json_body(sim):
    try:
        return json.loads(bottle.request.body.read() or b"null")
    except ValueError:
        code = "RecordUnmarshalJson" if sim.flavour == "fylr" else "error.api.invalid_json"
        raise api_error(sim, 400, code, "request body is not JSON")

# ============================================================================ app and hooks


def make_app(sim):
    """The WSGI app of one simulated instance (bottle.Bottle)."""
    app = bottle.Bottle()
    app.add_hook("before_request", lambda: _status_gate(sim))
    app.add_hook("after_request", lambda: _common_headers(sim))
    app.error_handler.update({404: lambda err: _unknown_endpoint(sim), 405: lambda err: _unknown_endpoint(sim),
                              500: lambda err: _server_error(sim, err)})
    _install_common(app, sim)
    if sim.flavour == "fylr":
        _install_fylr(app, sim)
        writes.install(app, sim)
    else:
        _install_easydb5(app, sim)
    return app


def _route(app, method, path, handler):
    app.route(path, method, handler)


def _status_gate(sim):
    """fylr's status middleware: startup/purge/busy answer 503 before any handler runs (until
    sim.status_until, when set); read-only mode refuses writes."""
    if sim.flavour != "fylr":
        return
    now = time.time()
    with sim.lock:
        if sim.status_until and now >= sim.status_until:
            sim.status, sim.status_until = "ready", 0.0
        status = sim.status
    if status in ("startup", "purge", "busy"):
        raise json_response({"status": status}, 503, {"x-fylr-status": status})
    if read_only(sim) and _is_guarded_write(bottle.request):
        raise api_error(sim, 400, "ReadOnlyMode", "Read-only mode is enabled.",
                        headers={"X-Fylr-Read-Only-Mode": "true"})


def read_only(sim):
    return bool(sim.read_only_until) and time.time() < sim.read_only_until


# Writes documented WITHOUT the read-only guard: /eas/rput/bulk (api.md 6.8), single POST /event (OAS
# /event/list post); POST /search and the OAuth2 routes only read.
_UNGUARDED = ("/api/v1/search", "/api/v1/eas/rput/bulk", "/api/v1/event", "/api/oauth2/")


def _is_guarded_write(request):
    if request.method not in ("POST", "PUT", "DELETE", "PATCH"):
        return False
    path = request.path
    return not any(path == u or (u.endswith("/") and path.startswith(u)) for u in _UNGUARDED)


def _common_headers(sim):
    response = bottle.response
    if sim.flavour == "easydb5":
        response.set_header("X-Easydb-API-Version", "1")
        response.set_header("X-Easydb-Base-Schema-Version", "5123")
        response.set_header("X-Easydb-User-Schema-Version", str(sim.schema.get("version", 1)))
    else:
        if "Cache-Control" not in response.headers:
            response.set_header("Cache-Control", "no-store, no-cache")
        if read_only(sim):
            response.set_header("X-Fylr-Read-Only-Mode", "true")


def _unknown_endpoint(sim):
    request = bottle.request
    if sim.flavour == "fylr":
        return api_error(sim, 400, "UnknownEndpointMethod", endpoint=request.path, method=request.method)
    return api_error(sim, 400, "error.api.invalid_api", "unknown api: " + request.path)


def _server_error(sim, err):
    code = "ServerGeneric" if sim.flavour == "fylr" else "error.server.generic"
    return api_error(sim, 500, code, repr(err.exception) if err.exception else str(err.body))

# ============================================================================ routes: both flavours


def _install_common(app, sim):
    def get(path, handler):
        _route(app, "GET", API + path, lambda **kw: handler(sim, **kw))
    get("/settings", settings)
    get("/schema/user/<version>", schema)
    get("/mask/<version>", mask)
    get("/l10n/user/<version>", l10n)
    get("/objecttype", objecttypes)
    get("/config", config)
    get("/tags", tags)
    get("/group", groups)
    get("/user", users)
    get("/pool", pools)
    get("/message", messages)
    get("/right/<context>/presets", right_presets)
    get("/xmlmapping/list", xmlmappings)
    get("/xmlmapping/mapping/<mapping_id>", xmlmapping)
    get("/publish", publish)
    get("/transitions", transitions)
    get("/collection/list", collection_list)
    get("/collection/list/<parent>", collection_list)
    get("/collection/objects/<collection_id:int>", collection_objects)
    get("/event/list", event_list)
    get("/event/<event_id:int>", event_single)
    get("/db/<ot>/<mask_name>/list", db_list)
    get("/db/<ot>/<mask_name>/system_object_id/<sysid:int>", db_by_sysid)   # documented path form (api.md §4.5)
    get("/db/<ot>/<mask_name>/global_object_id/<goid>", db_by_goid)         # documented path form (api.md §4.5)
    get("/db/<ot>/<mask_name>/<oid:int>", db_single)
    _route(app, "POST", API + "/search", lambda: search(sim))


def _install_fylr(app, sim):
    _route(app, "POST", "/api/oauth2/token", lambda: oauth2_token(sim))
    _route(app, "POST", "/api/oauth2/revoke", lambda: oauth2_revoke(sim))
    _route(app, "POST", "/api/oauth2/introspect", lambda: oauth2_introspect(sim))
    _route(app, "GET", "/.well-known/openid-configuration", lambda: openid_configuration(sim))
    _route(app, "GET", API + "/user/session", lambda: fylr_user_session(sim))
    _route(app, "GET", API + "/plugin/manage", lambda: plugins(sim))
    _route(app, "GET", API + "/system/status", lambda: system_status(sim))
    _route(app, "GET", API + "/eas/download/<file_id:int>/<digest>/<version>",
           lambda **kw: eas_download(sim, **kw))
    _route(app, "GET", API + "/eas", lambda: eas_files(sim))
    _route(app, "GET", API + "/eas/<file_id:int>", lambda **kw: eas_file(sim, **kw))
    _route(app, "GET", "/remote/<file_id:int>/<name:path>", lambda **kw: remote_file(sim, **kw))


def _install_easydb5(app, sim):
    _route(app, "GET", API + "/session", lambda: e5_session(sim))
    _route(app, "POST", API + "/session/authenticate", lambda: e5_authenticate(sim))
    _route(app, "POST", API + "/session/deauthenticate", lambda: e5_deauthenticate(sim))
    _route(app, "GET", API + "/eas", lambda: e5_eas_files(sim))
    _route(app, "GET", "/eas/partitions-inline/<partition>/<million>/<thousand>/<file_id:int>/<sha1>/<rest:path>",
           lambda **kw: e5_partition_file(sim, **kw))

# ============================================================================ settings, auth


def settings(sim):
    base = _base_url(sim)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if sim.flavour == "fylr":
        body = {"instance": "fylr", "config_name": "simulator", "name": sim.name, "version": sim.version,
                "version_release_date": "2026-01-01", "version_full": sim.version + "-sim",
                "build_commit": "0000000", "build_commit_time": "2026-01-01T00:00:00Z", "startup_time": now,
                "external_url": base, "num_cpu": 2, "index_names": [sim.name + "-objects"],
                "capabilities": {"auth": True, "ci_hub": False, "linkrui": False, "mobile_app": False,
                                 "read_only": read_only(sim), "geo_support": False, "kubernetes": False,
                                 "two_factor": False}}
        return json_response(body, headers={"x-fylr-status": sim.status})
    version = sim.version
    body = {"name": sim.name, "db-name": "easydb", "solution": "base", "api": 1, "server_version": 5123,
            "easydb_version": version, "version": "v" + version, "user-schema": sim.schema.get("version"),
            "startup_time": now, "server_time": now, "external_eas_url": base + "/eas"}
    return json_response(body)


def e5_session(sim):
    token = auth.request_token(sim, bottle.request)
    if token:
        if auth.token_entry(sim, token) is None:
            raise api_error(sim, 400, "error.user.session_not_found", token=token)
        return json_response(auth.e5_session_body(sim, token))
    return json_response(auth.e5_session_body(sim, auth.issue_token(sim, "session", None)))


def e5_authenticate(sim):
    token = auth.request_token(sim, bottle.request)
    entry = auth.token_entry(sim, token)
    if entry is None:
        raise api_error(sim, 400, "error.user.session_not_found", token=token or "")
    login, password = _param("login"), _param("password")
    method = _param("method", "easydb")
    if method != "easydb":
        raise api_error(sim, 400, "error.user.authentication_method_not_allowed", method=method)
    if not login or not password:
        raise api_error(sim, 400, "error.user.username_or_password_empty")
    user = auth.check_password(sim, login, password)
    if user is None:
        raise api_error(sim, 400, "error.user.login_failed", login=login)
    with sim.lock:
        entry.update(user_id=user["user"]["_id"], expires_at=time.time() + sim.token_lifetime,
                     authenticated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return json_response(auth.e5_session_body(sim, token))


def e5_deauthenticate(sim):
    token = auth.request_token(sim, bottle.request)
    entry = auth.token_entry(sim, token)
    if entry is None:
        raise api_error(sim, 400, "error.user.session_not_found", token=token or "")
    with sim.lock:
        entry["user_id"] = None
    return json_response(auth.e5_session_body(sim, token))


def _oauth_error(error, description, status=400):
    """RFC 6749 error body (not the fylr envelope)."""
    return json_response({"error": error, "error_description": description}, status)


def _oauth_client():
    """(client_id, client_secret) from the form or HTTP Basic."""
    request = bottle.request
    basic = request.auth
    if basic and basic[0]:
        return basic[0], basic[1]
    return request.forms.get("client_id"), request.forms.get("client_secret")


def oauth2_token(sim):
    """Password and refresh_token grants.  A refresh_token is issued only when the requested scope
    includes `offline` (documented: "include offline to get a refresh_token")."""
    form = bottle.request.forms.decode()   # UTF-8: passwords may hold any character
    grant = form.get("grant_type")
    if not grant:
        raise _oauth_error("invalid_request", "grant_type is missing")
    client_id, secret = _oauth_client()
    if client_id not in sim.oauth_clients:
        # RFC 6749 §5.2: invalid_client may answer 401 (ory hydra does)
        raise _oauth_error("invalid_client", "unknown client", 401)
    if sim.oauth_clients[client_id] is not None and secret != sim.oauth_clients[client_id]:
        raise _oauth_error("invalid_client", "client authentication failed", 401)
    if grant == "password":
        return _password_grant(sim, form, client_id)
    if grant == "refresh_token":
        return _refresh_grant(sim, form, client_id)
    raise _oauth_error("unsupported_grant_type", "grant_type %s is not supported" % grant)


def _password_grant(sim, form, client_id):
    username, password = form.get("username"), form.get("password")
    if not username or not password:
        raise _oauth_error("invalid_request", "username and password are required")
    user = auth.check_password(sim, username, password)
    if user is None:
        raise _oauth_error("invalid_grant", "The provided authorization grant is invalid")
    return _token_response(sim, user["user"]["_id"], client_id, form.get("scope") or "")


def _refresh_grant(sim, form, client_id):
    old = form.get("refresh_token")
    entry = auth.token_entry(sim, old, kinds=("refresh",))
    if entry is None or entry["client_id"] != client_id:
        raise _oauth_error("invalid_grant", "The refresh token is invalid or expired")
    auth.revoke_token(sim, old)        # refresh tokens rotate
    return _token_response(sim, entry["user_id"], client_id, entry["scope"])


def _token_response(sim, user_id, client_id, scope):
    body = {"access_token": auth.issue_token(sim, "access", user_id, client_id, scope), "token_type": "bearer",
            "expires_in": int(math.ceil(sim.token_lifetime)), "scope": scope}
    if "offline" in scope.split():
        body["refresh_token"] = auth.issue_token(sim, "refresh", user_id, client_id, scope)
    return json_response(body)


def oauth2_revoke(sim):
    auth.revoke_token(sim, bottle.request.forms.get("token"))
    return json_response({})


def oauth2_introspect(sim):
    token = bottle.request.forms.get("token")
    entry = auth.token_entry(sim, token, kinds=("access", "refresh"))
    if entry is None:
        return json_response({"active": False})
    user = sim.users.get(entry["user_id"]) or {"user": {}}
    return json_response({"active": True, "scope": entry["scope"], "client_id": entry["client_id"],
                          "sub": user["user"].get("login"), "exp": int(entry["expires_at"]),
                          "iat": int(entry["expires_at"] - sim.token_lifetime),
                          "token_type": "refresh_token" if entry["kind"] == "refresh" else "access_token"})


def openid_configuration(sim):
    base = _base_url(sim)
    return json_response({"issuer": base + "/", "token_endpoint": base + "/api/oauth2/token",
                          "authorization_endpoint": base + "/api/oauth2/auth",
                          "revocation_endpoint": base + "/api/oauth2/revoke",
                          "introspection_endpoint": base + "/api/oauth2/introspect",
                          "grant_types_supported": ["password", "refresh_token", "authorization_code"]})


def fylr_user_session(sim):
    request = bottle.request
    user = auth.current_user(sim, request)
    if user is None:
        raise api_error(sim, 400, "InvalidToken")
    return json_response(auth.fylr_session_body(sim, auth.request_token(sim, request), user))


def system_status(sim):
    """OAS /system/status get: SystemStats, root only; pending_files counts files still to be fetched or
    processed, total_not_indexed the records POST /search does not see in their current state yet."""
    auth.require_root(sim, bottle.request)
    now = time.time()
    with sim.lock:
        states = [f.get("status", "done") for f in sim.files.values()]
        counts = {}
        for state in states:
            counts[state] = counts.get(state, 0) + 1
        not_indexed = sum(1 for records in sim.records.values() for r in records.values() if _index_pending(r, now))
        body = {"objecttypes": [{"name": ot, "count": len(records)} for ot, records in sorted(sim.records.items())],
                "basetypes": [{"name": kind, "count": len(getattr(sim, table))} for kind, table in (
                    ("collection", "collections"), ("event", "events"), ("group", "groups"),
                    ("message", "messages"), ("pool", "pools"), ("user", "users"))],
                "indices_objects": {}, "total_not_indexed": not_indexed,
                "pending_files": counts.get("pending", 0),
                "queued_files": counts.get("pending", 0) + counts.get("processing", 0),
                "file_stats": [{"status": k, "count": v} for k, v in sorted(counts.items())],
                "indices_stats": []}
    return json_response(body, headers={"x-fylr-status": sim.status})

# ============================================================================ datamodel, config


def _check_datamodel_version(sim, version, current):
    if version in ("CURRENT", "HEAD") or version == str(current):
        return
    if sim.flavour == "fylr":
        raise api_error(sim, 400, "DatamodelVersionNotFound", version=version)
    raise api_error(sim, 404, "error.user.schema_version_not_found", version=version)


def _e5_xml(root, document):
    """easydb 5 answers the datamodel calls in XML unless format=json (its default format is xml);
    the simulator sends a minimal XML wrapper so a client that forgets format=json notices."""
    body = '<?xml version="1.0" encoding="UTF-8"?>\n<%s version="%s"><!-- simulator: request format=json --></%s>\n' % (
        root, document.get("version"), root)
    return bottle.HTTPResponse(body, 200, **{"Content-Type": "text/xml; charset=utf-8"})


def schema(sim, version):
    auth.require_user(sim, bottle.request)
    _check_datamodel_version(sim, version, sim.schema.get("version"))
    if sim.flavour == "easydb5" and _param("format") != "json":
        return _e5_xml("schema", sim.schema)
    return json_response(sim.schema)


def mask(sim, version):
    auth.require_user(sim, bottle.request)
    _check_datamodel_version(sim, version, sim.mask.get("version"))
    if sim.flavour == "easydb5" and _param("format") != "json":
        return _e5_xml("maskset", sim.mask)
    return json_response(sim.mask)


def l10n(sim, version):
    auth.require_user(sim, bottle.request)
    _check_datamodel_version(sim, version, sim.schema.get("version"))
    return json_response(sim.l10n)


def objecttypes(sim):
    auth.require_user(sim, bottle.request)
    return json_response(sim.objecttypes)


def config(sim):
    user = auth.require_user(sim, bottle.request)
    if sim.flavour == "fylr":
        return json_response(sim.config)
    if not auth.is_root(sim, user):     # E5 needs system.config
        raise api_error(sim, 400, "error.user.no_system_right", right="system.config")
    body = {"system": copy.deepcopy(sim.config.get("system", {}).get("config", {}))}
    plugins_cfg = {name: entry.get("config", entry) for name, entry in sim.config.get("plugin", {}).items()}
    if plugins_cfg:
        body["plugin"] = plugins_cfg
    return json_response(body)


def plugins(sim):
    auth.require_user(sim, bottle.request)
    return json_response({"plugins": sim.plugins})

# ============================================================================ basetypes


def _sorted_values(table):
    return [table[k] for k in sorted(table)]


def _page(items, offset, limit):
    return items[offset:offset + limit] if limit else items[offset:]


def tags(sim):
    auth.require_user(sim, bottle.request)
    return json_response(_sorted_values(sim.taggroups))


def groups(sim):
    """fylr: an anonymous request gets 200 [] (OAS /group get); non-root users see their own groups."""
    request = bottle.request
    user = auth.current_user(sim, request) if sim.flavour == "fylr" else auth.require_user(sim, request)
    if user is None:
        return json_response([])
    offset, limit = _paging(sim, 1000, 1000 if sim.flavour == "easydb5" else None)
    entries = _sorted_values(sim.groups)
    if not auth.is_root(sim, user):
        mine = {g["group"]["_id"] for g in user["_groups"]}
        entries = [g for g in entries if g["group"]["_id"] in mine]
    wanted = _param("type")
    if wanted:
        entries = [g for g in entries if g["group"].get("type") in wanted.split(",")]
    return json_response(_page(entries, offset, limit))


def users(sim):
    request = bottle.request
    user = auth.require_user(sim, request)
    if sim.flavour == "easydb5":
        offset, limit = _paging(sim, 1000, 1000)
    else:
        offset, limit = _paging(sim, 100)
    with_password = _flag("include_password")
    if with_password and not auth.is_root(sim, user):
        auth.require_root(sim, request)
    entries = _page(_sorted_values(sim.users), offset, limit)
    return json_response([_render_user(sim, u, with_password) for u in entries])


def _render_user(sim, entry, with_password):
    out = {k: copy.deepcopy(v) for k, v in entry.items() if not k.startswith("_password")}
    stored_hash = entry.get("_password_hash")
    if sim.flavour == "fylr":
        if with_password and stored_hash:
            out["_password_hash"] = stored_hash
        return out
    email = out["user"].pop("email", None)
    out["user"]["_primary_email"] = email
    out["_emails"] = ([{"email": email, "is_primary": True, "use_for_login": False, "send_email": True,
                        "intended_primary": False, "needs_confirmation": False}] if email else [])
    if with_password and stored_hash:
        method, _, digest = stored_hash.partition(":")
        out["_password_insecure_hash"] = digest
        out["_password_insecure_hash_method"] = method
        out["_password_insecure_hash_salt"] = entry.get("_password_salt")
    return out


def pools(sim):
    auth.require_user(sim, bottle.request)
    entries = _sorted_values(sim.pools)
    if sim.flavour == "easydb5":        # E5: unpaged, full format
        return json_response(entries)
    offset, limit = _paging(sim, 1000)
    return json_response(_page(entries, offset, limit))


def messages(sim):
    auth.require_user(sim, bottle.request)
    entries = _sorted_values(sim.messages)
    if sim.flavour == "fylr":
        offset, limit = _paging(sim, 1000)
        return json_response(_page(entries, offset, limit))
    return json_response([_render_e5_message(m) for m in entries])


def _render_e5_message(entry):
    out = copy.deepcopy(entry)
    body = out["message"]
    body["type"] = body.pop("webfrontend_type", None)
    body["message_html"] = body.pop("message", None)
    return out


def right_presets(sim, context):
    auth.require_user(sim, bottle.request)
    if context not in ("object", "collection"):
        raise _invalid_value(sim, "context", context)
    return json_response(sim.right_presets.get(context, []))


def xmlmappings(sim):
    """GET /xmlmapping/list: every profile the instance knows, each with the mappings built from it under
    `mappings` (always present, maybe empty; OAS XmlMappingProfile).  Any authenticated user."""
    auth.require_user(sim, bottle.request)
    profiles = []
    for profile in sim.xmlmapping_profiles:
        mine = [m for m in sim.xmlmappings if m.get("profile") == profile["profile"]]
        profiles.append(dict(copy.deepcopy(profile), mappings=[
            {"id": m["id"], "displayname": copy.deepcopy(m.get("displayname")), "_recipes_required": []}
            for m in mine]))
    return json_response(profiles)


def xmlmapping(sim, mapping_id):
    """GET /xmlmapping/mapping/{id}: needs system.profile (root).  An unknown id is a plain 400
    ServerGeneric in fylr ("there is no 404 for this endpoint")."""
    auth.require_root(sim, bottle.request)
    hit = next((m for m in sim.xmlmappings if str(m.get("id")) == mapping_id), None)
    if hit is None:
        code = "ServerGeneric" if sim.flavour == "fylr" else "error.api.invalid_value"   # E5: code undocumented
        raise api_error(sim, 400, code, "mapping %s not found" % mapping_id, name="mapping", value=mapping_id)
    return json_response(hit)


def publish(sim):
    """GET /publish: easydb 5 pages by limit (max 1000, more is refused) and offset; fylr documents no
    paging and returns every record.  Needs system.api.publish.get (root has it)."""
    auth.require_root(sim, bottle.request)
    if sim.flavour == "easydb5":
        offset, limit = _paging(sim, 1000, 1000)
        return json_response(_page(sim.publish, offset, limit))
    return json_response(sim.publish)


def transitions(sim):
    auth.require_root(sim, bottle.request)      # fylr needs system.tagmanager; root has it
    return json_response(sim.transitions)

# ============================================================================ collections


def collection_list(sim, parent=None):
    auth.require_user(sim, bottle.request)
    offset, limit = _paging(sim, 1000, 1000 if sim.flavour == "easydb5" else None)
    entries = _sorted_values(sim.collections)
    if parent is not None:
        wanted = None if parent == "null" else _parse_int(sim, "parent", parent)
        entries = [c for c in entries if c["collection"]["_id_parent"] == wanted]
    return json_response(_page(entries, offset, limit))


def _parse_int(sim, name, raw):
    try:
        return int(raw)
    except ValueError:
        raise _invalid_value(sim, name, raw)


def collection_objects(sim, collection_id):
    auth.require_user(sim, bottle.request)
    if sim.flavour == "easydb5":
        offset, limit = _paging(sim, 1000, 1000)
    else:
        offset, limit = _paging(sim, 100)
    entry = sim.collections.get(collection_id)
    if entry is None:
        if sim.flavour == "fylr":           # OAS /collection/objects/{collectionId}: 404 ObjectNotFound
            raise api_error(sim, 404, "ObjectNotFound", object="collection:%d" % collection_id)
        raise api_error(sim, 400, "error.user.collection_not_found", id=str(collection_id))
    # entries promised by a deferred _uuid lookup are not linked yet (store.py)
    linked = [e for e in sim.collection_objects.get(collection_id, []) if not isinstance(e, dict)]
    props = sim.collection_props.get(collection_id, {})
    key = "_webfrontend_props" if sim.flavour == "easydb5" else "webfrontend_props"
    objects = [{"_global_object_id": e if isinstance(e, str) else _goid(sim, e), key: props.get(e)}
               for e in _page(linked, offset, limit)]          # foreign ids are rendered verbatim
    return json_response({"_version": entry["collection"]["_version"], "offset": offset, "limit": limit,
                          "count": len(linked), "objects": objects})

# ============================================================================ events

_E5_SHORT_EVENT_FIELDS = ("_id", "type", "schema", "basetype", "object_id", "global_object_id", "object_version")


def event_list(sim):
    request = bottle.request
    auth.require_root(sim, request)       # needs system.api.event.get; the simulator grants it to root only
    max_limit = 1000 if sim.flavour == "easydb5" else None
    offset, limit = _paging(sim, 1000, max_limit)
    entries = _filter_events(sim, _sorted_values(sim.events))
    entries = _sort_events(sim, entries, _param("sort", "_id.DESC"))
    full = sim.flavour == "fylr" or (_param("format") == "json_full" and sim.e5_event_json_full)
    objects = [_render_event(sim, e, full) for e in _page(entries, offset, limit)]
    if sim.flavour == "easydb5" and sim.e5_event_envelope == "array":
        return json_response(objects)
    body = {"offset": offset, "limit": limit, "objects": objects}
    if not _flag("skip_count"):
        body["count"] = len(entries)
    return json_response(body)


def _filter_events(sim, entries):
    types = _param("type")
    if types:
        wanted = set(json.loads(types)) if types.startswith("[") else set(types.split(","))
        entries = [e for e in entries if e["event"]["type"] in wanted]
    ids = _param("id") if sim.flavour == "fylr" else None
    if ids:
        allowed = _parse_id_ranges(sim, ids)
        entries = [e for e in entries if allowed(e["event"]["_id"])]
    return entries


def _parse_id_ranges(sim, text):
    """fylr `id` filter "1,2-30,4" as a predicate."""
    ranges = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        try:
            ranges.append((int(low), int(high or low)))
        except ValueError:
            raise _invalid_value(sim, "id", text)
    return lambda n: any(lo <= n <= hi for lo, hi in ranges)


def _sort_events(sim, entries, sort):
    for term in reversed(sort.split(",")):
        field, _, direction = term.partition(".")
        if field not in ("_id", "type", "object_version", "schema", "object_id", "timestamp", "system_object_id"):
            raise _invalid_value(sim, "sort", sort)
        entries = sorted(entries, key=lambda e: (e["event"].get(field) is None, e["event"].get(field) or 0)
                         if field != "type" else e["event"]["type"], reverse=direction.upper() == "DESC")
    return entries


def _render_event(sim, entry, full):
    event = dict(entry["event"])
    event["global_object_id"] = _goid(sim, event["system_object_id"]) if event.get("system_object_id") else None
    if sim.flavour == "fylr":
        event["remote_addr"] = "127.0.0.1"
        uid = entry["user"]["user"]["_id"]
        user = sim.users.get(uid)
        event["user_generated_displayname"] = user["user"].get("displayname") if user else None
        return {"_basetype": "event", "event": event, "user": copy.deepcopy(entry["user"])}
    event.pop("system_object_id", None)
    event.pop("objecttype", None)
    if full:
        event["ipv4_address"] = "127.0.0.1"
    else:
        event = {k: event.get(k) for k in _E5_SHORT_EVENT_FIELDS}
        event["session_self"] = False
    return {"event": event, "_user": copy.deepcopy(entry["user"])}


def event_single(sim, event_id):
    auth.require_root(sim, bottle.request)
    entry = sim.events.get(event_id)
    if entry is None:
        if sim.flavour == "fylr":
            raise api_error(sim, 404, "EventNotFound", event=event_id)
        raise api_error(sim, 400, "error.user.event_not_found", id=str(event_id))
    return json_response(_render_event(sim, entry, True))

# ============================================================================ records: rendering


def _goid(sim, sysid):
    return "%s@%s" % (sysid, sim.name)


class _RenderContext:
    """What a rendering needs besides the record: format, mask name, table index, file URL options."""

    def __init__(self, sim, fmt, mask_name="_all_fields", all_versions=False, real_urls=False,
                 signature_lifetime=None):
        self.sim, self.fmt, self.mask_name, self.all_versions = sim, fmt, mask_name, all_versions
        self.real_urls = real_urls
        self.signature_lifetime = signature_lifetime or sim.signature_lifetime
        self.base = _base_url(sim)
        self.tables = _table_index(sim)


def _table_index(sim):
    """table name -> {"columns": {name: type}, "pool": bool, "tags": bool, "hierarchical": bool}."""
    index = {}
    for table in sim.schema.get("tables", []):
        columns = {c["name"]: ("link" if c.get("kind") == "link" else c.get("type")) for c in table.get("columns", [])}
        index[table["name"]] = {"columns": columns, "pool": table.get("pool_link", False),
                                "tags": table.get("has_tags", False),
                                "hierarchical": table.get("is_hierarchical", False)}
    return index


def render_record(ctx, ot, record, version):
    """One record version in the flavour's JSON shape (api.md §4.5)."""
    sim = ctx.sim
    sysid = record["_system_object_id"]
    inner = {"_id": record["_id"], "_version": version["_version"]}
    out = {"_objecttype": ot, "_mask": ctx.mask_name, "_system_object_id": sysid,
           "_global_object_id": _goid(sim, sysid), "_uuid": record["_uuid"], "_format": ctx.fmt, ot: inner}
    if record.get("deleted_at"):
        out["_latest_version_deleted_at"] = record["deleted_at"]
    if ctx.fmt == "short":
        return out
    table = ctx.tables.get(ot, {"columns": {}, "pool": False, "hierarchical": False})
    out["_owner"] = {"_basetype": "user", "user": {"_id": version["_owner"]}} if version.get("_owner") else None
    out["_tags"] = [{"_id": t} for t in version.get("_tags", [])]
    if version.get("_acl") is not None:                 # records of acl tables
        out["_acl"] = copy.deepcopy(version["_acl"])
    if version.get("_pool") is not None or table["pool"]:
        inner["_pool"] = _render_pool_ref(sim, version.get("_pool"))
    if table["hierarchical"]:
        inner["_id_parent"] = version.get("_id_parent")
    if ctx.fmt == "standard":
        out["_standard"] = _standard(version["fields"], table["columns"])
        return out
    _add_version_meta(ctx, ot, record, version, out)
    for name, value in version["fields"].items():
        inner[name] = _render_field(ctx, ot, name, value, table["columns"].get(name))
    return out


def _add_version_meta(ctx, ot, record, version, out):
    sim = ctx.sim
    latest = version is record["versions"][-1]
    table = ctx.tables.get(ot, {})
    out["_comment"] = version.get("_comment")
    if sim.flavour == "fylr":
        out["_create_user"] = {"_basetype": "user", "user": {"_id": version.get("_create_user")}}
        out["_created"] = version.get("_created")
        out["_last_modified"] = version.get("_last_modified")
        if table.get("hierarchical"):
            out["_level"] = _level(sim, ot, version)
        if ctx.all_versions:
            out["_latest_version"] = latest
        return
    if ctx.all_versions:
        out["_latest_version"] = latest
        out["_last_modified"] = version.get("_last_modified")
        out["_create_user"] = version.get("_create_user")
        parent = version.get("_id_parent")
        out["_system_object_id_parent"] = (sim.records[ot][parent]["_system_object_id"]
                                           if parent in sim.records.get(ot, {}) else None)


def _level(sim, ot, version):
    """Depth in the hierarchy, 1 for a top-level record (parents as of their latest version)."""
    level, parent, seen = 1, version.get("_id_parent"), set()
    while parent is not None and parent not in seen and parent in sim.records.get(ot, {}):
        seen.add(parent)
        level += 1
        parent = sim.records[ot][parent]["versions"][-1].get("_id_parent")
    return level


def _render_pool_ref(sim, pool_id):
    pool = sim.pools.get(pool_id)
    if pool is None:
        return None
    body = pool["pool"]
    return {"pool": {"_id": body["_id"], "_version": body.get("_version"), "reference": body.get("reference"),
                     "name": body.get("name")}}


def _standard(fields, columns):
    for name, ctype in columns.items():
        if ctype in ("text_l10n", "text_oneline", "text") and fields.get(name):
            value = fields[name]
            return {"1": {"text": value if isinstance(value, dict) else {"de-DE": value}}}
    return {}


def _render_field(ctx, ot, name, value, ctype):
    if value is None:
        return None
    if name.startswith("_nested:"):
        nested_columns = ctx.tables.get(name[len("_nested:"):], {}).get("columns", {})
        return [_render_nested_row(ctx, row, nested_columns) for row in value]
    if ctype == "link" or (isinstance(value, dict) and "_system_object_id" in value and "_objecttype" in value):
        return render_link(ctx, value)
    if ctype == "eas":
        return [_render_file_entry(ctx, entry) for entry in value]
    return copy.deepcopy(value) if isinstance(value, (dict, list)) else value


def _render_nested_row(ctx, row, columns):
    out = {}
    for name, value in row.items():
        out[name] = value if name == "_uuid" else _render_field(ctx, None, name, value, columns.get(name))
    return out


def render_link(ctx, value):
    """A link wrapper; a link to a soft-deleted target carries `_latest_version_deleted_at`, a link to a
    missing (purged/deferred) target is a thin wrapper (fylr) or null (easydb 5)."""
    sim = ctx.sim
    if "_system_object_id" not in value:          # promised by a deferred _uuid lookup, not saved yet
        return {"_objecttype": value["_objecttype"], "_uuid": value.get("_uuid"), "_purged_or_deferred": True}
    target_ot, target = sim.record_by_sysid(value["_system_object_id"])
    if target is None:
        if sim.flavour == "fylr":
            return {"_objecttype": value["_objecttype"], "_system_object_id": value["_system_object_id"],
                    "_purged_or_deferred": True}
        return None
    out = {"_objecttype": target_ot, "_mask": "_all_fields", "_system_object_id": target["_system_object_id"],
           "_global_object_id": _goid(sim, target["_system_object_id"]), "_uuid": target["_uuid"],
           target_ot: {"_id": target["_id"], "_version": target["versions"][-1]["_version"]}}
    if target.get("deleted_at"):
        out["_latest_version_deleted_at"] = target["deleted_at"]
    return out

# ============================================================================ files: rendering and serving


def _sha(data, algorithm="sha256"):
    return hashlib.new(algorithm, data).hexdigest()


def _png_size(data):
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None, None


def _version_meta(data, file_info, version_name):
    """(class, extension, mime type) of one rendition: renditions are PNGs (datagen.produce_version)."""
    if version_name == "original":
        return (file_info.get("class") or "unknown", file_info.get("extension") or "",
                file_info.get("mime_type") or "application/octet-stream")
    return "image", "png", "image/png"


def _file_versions(info):
    """{name: bytes or None}; a leave-on-remote original whose bytes are not kept is None."""
    versions = dict(info.get("versions") or {})
    if info.get("leave") and "original" not in versions:
        versions = dict({"original": None}, **versions)
    return versions


def _file_hash(info, data):
    """SHA-256 of the bytes, or md5 of the URL for a remote file without local bytes (api.md §4.6)."""
    if data is None:
        return hashlib.md5((info.get("remote_url") or "").encode()).hexdigest()
    return _sha(data)


def file_status(info):
    """Stored file status (store.py); datagen files and files uploaded by eas/put are "done"."""
    return info.get("status", "done")


def readable(info):
    """OAS file.status: "Files and renditions can be accessed in status sync and done"."""
    return file_status(info) in ("sync", "done")


def _render_file_entry(ctx, entry):
    """A file field entry of a record: the relation keys (preferred, name, ...) plus the file rendering."""
    info = ctx.sim.files.get(entry.get("_id"))
    out = {k: v for k, v in entry.items()}
    if info is None:
        out["status"] = "failed"
        return out
    out.update(render_file(ctx, info, "long"))
    return out


def render_file(ctx, info, fmt="standard"):
    """The file rendering (OAS components.schemas.file): short = no versions, standard = with versions,
    long = with versions and technical metadata.  Pending/processing/failed files have no versions."""
    sim = ctx.sim
    versions = _file_versions(info) if readable(info) else {}
    original = versions.get("original")
    name = info.get("original_filename") or ""
    out = {"_id": info["_id"], "original_filename": name, "extension": info.get("extension"),
           "class": info.get("class"), "class_extension": "%s.%s" % (info.get("class"), info.get("extension")),
           "filesize": len(original) if original is not None else None, "status": file_status(info),
           "is_original": True, "eas_parent_id": None,
           "upload_user": {"_basetype": "user", "user": {"_id": info.get("upload_user")}},
           "date_uploaded": info.get("date_uploaded")}
    if fmt != "short":
        out["versions"] = {vname: _render_file_version(ctx, info, vname, data) for vname, data in versions.items()}
        # manual renditions handed over by rput: pending until fetched, failed when the fetch failed
        out["versions"].update({v: {"status": "pending"} for v in info.get("pending_versions") or {}})
        out["versions"].update({v: {"status": "failed", "error": e} for v, e in
                                (info.get("failed_versions") or {}).items()})
    if fmt == "long" and readable(info):
        width, height = _png_size(original or b"")
        out["technical_metadata"] = {"mime_type": _version_meta(original, info, "original")[2],
                                     "width": width, "height": height}
    if not info.get("produce_versions", True):
        # GAP: fylr 6.34 knows originals with produce-versions off (manual renditions) but documents no
        # file JSON field for it; we expose it under the name of the upload parameter.
        out["produce_versions"] = False
    if sim.flavour == "fylr":
        out.update({"reference": info.get("reference"), "original_filename_basename": name.rsplit(".", 1)[0]})
        if readable(info):
            out["hash"] = _file_hash(info, original)
        out.setdefault("frontend_prefs", {})
    return out


def _render_file_version(ctx, info, name, data):
    file_class, extension, mime = _version_meta(data, info, name)
    width, height = _png_size(data or b"")
    version = {"url": file_url(ctx, info, name), "status": "done",
               "filesize": len(data) if data is not None else None, "class": file_class,
               "extension": extension, "width": width, "height": height}
    if ctx.sim.flavour == "fylr":
        version["hash"] = _file_hash(info, data)
        version["_download_allowed"] = True
    return version


def remote_url(sim, info, base=None):
    """Absolute upstream URL of a leave-on-remote file (relative ones are served by this simulator)."""
    url = info.get("remote_url") or ""
    if url.startswith("/"):
        return (base or sim.base_url) + url
    return url


def file_url(ctx, info, version_name):
    """fylr: signed /eas/download URL (or the real upstream URL of a leave file with files_real_url);
    easydb 5: EAS partition URL ending in the MIME type."""
    sim, data = ctx.sim, _file_versions(info)[version_name]
    if sim.flavour == "easydb5":
        fid = info["_id"]
        mime = _version_meta(data, info, version_name)[2]
        return "%s/eas/partitions-inline/1/%d/%d/%d/%s/%s" % (ctx.base, fid // 1000000, fid // 1000 * 1000, fid,
                                                            _sha(data, "sha1"), mime)
    if version_name == "original" and info.get("leave") and ctx.real_urls:
        return remote_url(sim, info, ctx.base)
    digest = _file_hash(info, data)
    expiry = int(time.time() + ctx.signature_lifetime)
    signature = sign(sim, info["_id"], digest, version_name, expiry)
    return "%s%s/eas/download/%d/%s/%s?x-fylr-signature=%s" % (ctx.base, API, info["_id"], digest,
                                                             urllib.parse.quote(version_name), signature)


def sign(sim, file_id, digest, version_name, expiry):
    """x-fylr-signature: "<expiry epoch>.<hmac>" (the expiry is inside the signed text)."""
    text = "%d/%s/%s/%d" % (file_id, digest, version_name, expiry)
    mac = hmac.new(sim.signature_secret.encode(), text.encode(), hashlib.sha256).hexdigest()[:32]
    return "%d.%s" % (expiry, mac)


def _check_signature(sim, file_id, digest, version_name, signature):
    """None when valid, else "wrong" or "expired"."""
    expiry_text, _, _mac = signature.partition(".")
    if not expiry_text.isdigit() or not hmac.compare_digest(
            sign(sim, file_id, digest, version_name, int(expiry_text)), signature):
        return "wrong"
    if int(expiry_text) < time.time():
        return "expired"
    return None


def eas_download(sim, file_id, digest, version):
    """Signed URL or a valid bearer token; never 401 (OAS: "This endpoint returns no 401")."""
    request = bottle.request
    info = sim.files.get(file_id)
    if info is None:
        raise api_error(sim, 404, "FileNotFound", file=file_id)
    signature = request.query.get("x-fylr-signature") or request.headers.get("x-fylr-signature")
    if signature:
        problem = _check_signature(sim, file_id, digest, version, signature)
        if problem:
            raise api_error(sim, 403, "InsufficientRights", resource="%d/signature %s" % (file_id, problem))
    elif auth.current_user(sim, request) is None:
        raise api_error(sim, 403, "InsufficientRights", resource="File")
    versions = _file_versions(info) if readable(info) else {}      # pending/failed: no version exists yet
    if version not in versions or _file_hash(info, versions[version]) != digest:
        raise api_error(sim, 403, "InsufficientRights", resource="%d/%s/%s" % (file_id, digest, version))
    data = versions[version]
    if data is None:        # leave-on-remote original without local bytes: hand over to the upstream URL
        raise bottle.HTTPResponse("", 307, Location=remote_url(sim, info, _base_url(sim)))
    return _bytes_response(data, _version_meta(data, info, version)[2], info.get("original_filename") or "file")


def _eas_format():
    """OAS /eas get: short | standard (default) | long; "If an unknown format is given short is used"."""
    fmt = _param("format", "standard")
    return fmt if fmt in ("short", "standard", "long") else "short"


def _eas_reader(sim):
    """/eas routes answer no 401: an anonymous request may see no file -> 403 InsufficientRights (OAS)."""
    if auth.current_user(sim, bottle.request) is None:
        raise api_error(sim, 403, "InsufficientRights", resource="File")


def _eas_ids(sim):
    """The `ids` query of GET /eas: a JSON array of integers, anything else refused as an invalid value."""
    try:
        ids = json.loads(_param("ids") or "")
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ValueError(ids)
    except ValueError:
        raise _invalid_value(sim, "ids", _param("ids"))
    return ids


def eas_files(sim):
    """GET /eas?ids=[1,2]: an object keyed by file id (unknown ids are left out, SILENT)."""
    _eas_reader(sim)
    ids = _eas_ids(sim)
    ctx, fmt = _RenderContext(sim, "full"), _eas_format()
    with sim.lock:
        return json_response({str(i): render_file(ctx, sim.files[i], fmt) for i in ids if i in sim.files})


def eas_file(sim, file_id):
    """GET /eas/{fileId}: the file rendering itself (not wrapped in a map)."""
    _eas_reader(sim)
    info = sim.files.get(file_id)
    if info is None:
        # SILENT: OAS lists only 200/403; we answer like /eas/download for an unknown id
        raise api_error(sim, 404, "FileNotFound", file=file_id)
    return json_response(render_file(_RenderContext(sim, "full"), info, _eas_format()))


_E5_EAS_FORMATS = {"status": "short", "short": "short", "long": "long"}


def e5_eas_files(sim):
    """easydb 5 GET /api/v1/eas?ids=[..]: format status|short|long (default long), an object keyed by asset
    id like fylr's; any session may read.  Unknown ids are left out (SILENT)."""
    auth.require_user(sim, bottle.request)
    fmt = _param("format", "long")
    if fmt not in _E5_EAS_FORMATS:
        raise _invalid_value(sim, "format", fmt)       # stricter: an unknown format is refused, not guessed
    ids = _eas_ids(sim)
    ctx = _RenderContext(sim, "full")
    with sim.lock:
        return json_response({str(i): render_file(ctx, sim.files[i], _E5_EAS_FORMATS[fmt])
                              for i in ids if i in sim.files})


def _bytes_response(data, mime, filename):
    disposition = "inline; filename*=UTF-8''" + urllib.parse.quote(filename)
    return bottle.HTTPResponse(data, 200, **{"Content-Type": mime, "Content-Length": str(len(data)),
                                             "Content-Disposition": disposition})


def remote_file(sim, file_id, name):
    """Stand-in for the upstream host of leave-on-remote files (original bytes, no auth)."""
    info = sim.files.get(file_id)
    if info is None or not info.get("leave") or "original" not in info.get("versions", {}):
        raise bottle.HTTPResponse("not found", 404)
    return _bytes_response(info["versions"]["original"], info["mime_type"], info["original_filename"])


def e5_partition_file(sim, partition, million, thousand, file_id, sha1, rest):
    """EAS partition URL, served without a token; the sha1 selects the rendition."""
    info = sim.files.get(file_id)
    for name, data in (info or {}).get("versions", {}).items():
        if _sha(data, "sha1") == sha1:
            return _bytes_response(data, _version_meta(data, info, name)[2], info["original_filename"])
    raise bottle.HTTPResponse("not found", 404)

# ============================================================================ records: /db and /search

_FORMATS = ("short", "standard", "long", "full")


def _format_param(sim, default, value=None):
    fmt = value if value is not None else _param("format", default)
    fmt = {"standard_extended": "standard", "long_inheritance": "long", "full_inheritance": "full"}.get(fmt, fmt)
    if fmt not in _FORMATS:
        raise _invalid_value(sim, "format", fmt)
    return fmt


def _objecttype_records(sim, ot):
    records = sim.records.get(ot)
    if records is None or ot not in _table_index(sim):
        if sim.flavour == "fylr":
            raise api_error(sim, 400, "UnknownObjecttype", objecttype=ot)
        raise api_error(sim, 400, "error.user.unknown_objecttype", objecttype=ot)
    return records


def _check_mask(sim, user, mask_name):
    """E5: mask _all_fields needs system.root (or datamodel rights)."""
    if sim.flavour == "easydb5" and mask_name == "_all_fields" and not auth.is_root(sim, user):
        raise api_error(sim, 400, "error.user.no_system_right", right="system.root")


def _file_url_options(sim, user):
    real_urls = sim.flavour == "fylr" and _flag("files_real_url") and auth.is_root(sim, user)
    days = _param("file_url_expire") if sim.flavour == "fylr" else None
    lifetime = float(days) * 86400 if days else None
    return real_urls, lifetime


def db_list(sim, ot, mask_name):
    request = bottle.request
    user = auth.require_user(sim, request)
    records = _objecttype_records(sim, ot)
    _check_mask(sim, user, mask_name)
    all_versions = _flag("all_versions")
    if all_versions:
        auth.require_root(sim, request)
    if sim.flavour == "easydb5":
        offset, limit = _paging(sim, 1000 if all_versions else 100, 1000)
    else:
        offset, limit = _paging(sim, 1000)
    real_urls, lifetime = _file_url_options(sim, user)
    ctx = _RenderContext(sim, _format_param(sim, "full"), mask_name, all_versions, real_urls, lifetime)
    with sim.lock:
        ids = [oid for oid in sorted(records) if not records[oid].get("deleted_at")]
        out = []
        for oid in _page(ids, offset, limit):
            record = records[oid]
            versions = record["versions"] if all_versions else record["versions"][-1:]
            out.extend(render_record(ctx, ot, record, v) for v in versions)
    return json_response(out)


def _single_versions(sim, record, all_versions):
    """The versions a single-record GET returns: all, ?version=n, or the latest."""
    if all_versions:
        return record["versions"]
    wanted = _param("version")
    if wanted is None:
        return record["versions"][-1:]
    number = _parse_int(sim, "version", wanted)
    return [v for v in record["versions"] if v["_version"] == number]


def _single_response(sim, ot, mask_name, record):
    request = bottle.request
    user = auth.require_user(sim, request)
    _check_mask(sim, user, mask_name)
    all_versions = sim.flavour == "fylr" and _flag("all_versions")
    if all_versions:
        auth.require_root(sim, request)
    versions = _single_versions(sim, record, all_versions) if record else []
    if not versions:
        if sim.flavour == "fylr":
            return json_response([])
        raise api_error(sim, 400, "error.user.object_not_found", objecttype=ot)
    real_urls, lifetime = _file_url_options(sim, user)
    ctx = _RenderContext(sim, _format_param(sim, "full"), mask_name, all_versions, real_urls, lifetime)
    return json_response([render_record(ctx, ot, record, v) for v in versions])


def db_single(sim, ot, mask_name, oid):
    auth.require_user(sim, bottle.request)
    records = _objecttype_records(sim, ot)
    return _single_response(sim, ot, mask_name, records.get(oid))


def db_by_sysid(sim, ot, mask_name, sysid):
    auth.require_user(sim, bottle.request)
    _objecttype_records(sim, ot)
    found_ot, record = sim.record_by_sysid(sysid)
    return _single_response(sim, ot, mask_name, record if found_ot == ot else None)


def db_by_goid(sim, ot, mask_name, goid):
    auth.require_user(sim, bottle.request)
    _objecttype_records(sim, ot)
    sysid_text, _, instance = goid.partition("@")
    record = None
    if sysid_text.isdigit() and instance in (sim.name, "local"):
        found_ot, record = sim.record_by_sysid(int(sysid_text))
        record = record if found_ot == ot else None
    return _single_response(sim, ot, mask_name, record)


def search(sim):
    """POST /search over records: objecttypes, `in` filters, sort on _system_object_id, include_deleted."""
    auth.require_user(sim, bottle.request)
    body = _json_body(sim) or {}
    if not isinstance(body, dict):
        raise _invalid_value(sim, "body", "not an object")
    # "object" is E5's default; fylr's enum has no "object" (api.md 4.5 GAP) - SILENT: refused there,
    # fylr object searches omit `type` (the documented form)
    allowed_types = (None, "", "object") if sim.flavour == "easydb5" else (None, "")
    if body.get("type") not in allowed_types:
        raise _invalid_value(sim, "type", body.get("type"))
    offset = int(body.get("offset") or 0)
    limit = int(body.get("limit") if body.get("limit") is not None else (1000 if sim.flavour == "easydb5" else 100))
    if sim.flavour == "easydb5" and limit > 1000:
        raise _invalid_value(sim, "limit", limit, 1000)
    fmt = _format_param(sim, "long" if sim.flavour == "easydb5" else "standard", body.get("format"))
    ctx = _RenderContext(sim, fmt, "_all_fields")
    with sim.lock:
        count, hits = _search_hits(sim, body, offset, limit)
        objects = [render_record(ctx, ot, rec, rec["versions"][-1]) for ot, rec in hits]
    result = {"count": count, "offset": offset, "limit": limit, "objects": objects, "aggregations": {}}
    if sim.flavour == "fylr":
        result.update(type="object", objecttypes=body.get("objecttypes") or [], format=fmt)
    else:
        result["request_time"] = {"total": 1, "elasticsearch": 1}
    return json_response(result)


def _search_hits(sim, body, offset, limit):
    """(count, [(ot, record)] of the requested page); sorted as asked, default _system_object_id ASC.

    Kept lean: a paging pass over "large" runs this 100 times, so with the default order only the
    page itself is collected (no 100,000-element lists per request)."""
    wanted = set(body.get("objecttypes") or sim.records.keys())
    include_deleted = sim.flavour == "fylr" and bool(body.get("include_deleted"))
    now = time.time()
    predicates = [_search_predicate(sim, s) for s in body.get("search") or []]
    sort = body.get("sort") or []
    presorted = [(t.get("field"), str(t.get("order", "ASC")).upper()) for t in sort] in ([], [("_system_object_id", "ASC")])
    # stricter (the docs are silent): limit 0 is a count without hits, as in Elasticsearch, the index
    # behind both flavours - never every hit of the instance in one answer
    end = offset + limit
    records, count, hits = sim.records, 0, []
    for sysid in sorted(sim.sysids):
        ot, oid = sim.sysids[sysid]
        if ot not in wanted:
            continue
        record = records[ot][oid]
        if "indexed" in record:
            record = _indexed_view(record, now)
            if record is None:                 # saved, but not in the search index yet
                continue
        if record.get("deleted_at") and not include_deleted:
            continue
        if predicates and not all(p(ot, record) for p in predicates):
            continue
        if not presorted or offset <= count < end:
            hits.append((ot, record))
        count += 1
    if presorted:
        return count, hits
    for term in reversed(sort):
        hits.sort(key=_sort_key(sim, term), reverse=str(term.get("order", "ASC")).upper() == "DESC")
    return count, hits[offset:end]


def _index_pending(record, now):
    indexed = record.get("indexed")
    return bool(indexed) and (indexed["at"] is None or now < indexed["at"])


def _indexed_view(record, now):
    """The record as the search index knows it (store.py `indexed`), or None when it is not indexed yet."""
    if not _index_pending(record, now):
        return record
    before = record["indexed"]["before"]
    if before is None:
        return None
    return dict(record, versions=record["versions"][:before["version"]], deleted_at=before["deleted_at"])


def _sort_key(sim, term):
    field = term.get("field")
    if field == "_system_object_id":
        return lambda hit: hit[1]["_system_object_id"]
    if field in ("_id", "_objecttype"):
        return lambda hit: hit[1]["_id"] if field == "_id" else hit[0]
    if sim.flavour == "fylr":
        raise api_error(sim, 400, "SearchFieldNotAllowed", field=str(field))
    raise _invalid_value(sim, "sort", field)


def _search_predicate(sim, element):
    """Supported: {"type":"in","fields":[...],"in":[...]} on _system_object_id, _uuid, _global_object_id,
    _objecttype, <ot>._id; "bool": "must" (default) only."""
    if element.get("type") != "in":
        raise _invalid_value(sim, "search.type", element.get("type"))
    values = set(element.get("in") or [])
    getters = [_search_field_getter(sim, f) for f in element.get("fields") or []]
    return lambda ot, record: any(g(ot, record) in values for g in getters)


def _search_field_getter(sim, field):
    if field == "_system_object_id":
        return lambda ot, record: record["_system_object_id"]
    if field == "_uuid":
        return lambda ot, record: record["_uuid"]
    if field == "_global_object_id":
        return lambda ot, record: _goid(sim, record["_system_object_id"])
    if field == "_objecttype":
        return lambda ot, record: ot
    if field.endswith("._id"):
        return lambda ot, record: record["_id"] if field == ot + "._id" else None
    if sim.flavour == "fylr":
        raise api_error(sim, 400, "SearchFieldUnknown", field=str(field))
    raise _invalid_value(sim, "search.fields", field)
