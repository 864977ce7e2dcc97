"""Authentication and error envelopes of the simulated instance (api.md §2, §3.1).

easydb 5: session tokens (GET /session, POST /session/authenticate), sent as ?token= or X-Easydb-Token.
fylr: OAuth2 password / refresh_token grant on /api/oauth2/token, bearer token sent as
`Authorization: Bearer`, `X-Fylr-Authorization: Bearer` or ?access_token=.  A fylr request without a valid
token is anonymous; what an anonymous request gets is decided per route (app.py).

Tokens live in sim.tokens (see store.py) and expire sim.token_lifetime seconds after they were issued.
"""
import hashlib
import json
import secrets
import time

import bottle

# fylr: message text for the codes the simulator raises (the real text is localised; clients branch on code)
_FYLR_TEXT = {
    "UserRequired": "A user is required for this request.",
    "InvalidToken": "The provided token is invalid or expired.",
    "SystemRightRequired": "System right required.",
    "InsufficientRights": "Insufficient rights.",
    "UnknownEndpointMethod": "Unknown endpoint or method.",
}
_FYLR_PACKAGE = {"UserRequired": "session", "InvalidToken": "session", "SystemRightRequired": "acl",
                 "InsufficientRights": "rightcheck", "DatabaseLockError": "ferrors", "ReadOnlyMode": "ferrors",
                 "UserDuplicateEmail": "acl", "UserDuplicateLogin": "acl", "TagsInUse": "tag",
                 # OAS Publish*Error / ObjectNotFoundError / ChangeOwnerNotSelected (package transition)
                 "PublishUnknownCollector": "object", "PublishInvalidData": "object",
                 "PublishDeletedObject": "object", "ObjectNotFound": "ferrors", "ChangeOwnerNotSelected": "transition"}


def api_error(sim, status, code, message="", headers=None, **parameters):
    """The flavour's error envelope as an HTTPResponse; callers `raise` it.  `headers`: extra response headers.

    easydb 5 realm is taken from the code (`error.user.x` -> "user"); server errors carry a uuid."""
    if sim.flavour == "fylr":
        params = dict(parameters, realm="api", statuscode=status)
        body = {"code": code, "error": message or _FYLR_TEXT.get(code, code),
                "package": _FYLR_PACKAGE.get(code, "api"), "parameters": params, "realm": "api",
                "statuscode": status}
    else:
        realm = code.split(".")[1] if code.startswith("error.") else "api"
        body = {"realm": realm, "code": code, "parameters": parameters}
        if realm in ("api", "server"):
            body["description"] = message or code
        if realm == "server":
            body["uuid"] = secrets.token_hex(16)
        elif message:
            body["description"] = message
    return json_response(body, status, headers)


def json_response(body, status=200, headers=None):
    response = bottle.HTTPResponse(json.dumps(body, ensure_ascii=False), status=status, **(headers or {}))
    response.content_type = "application/json; charset=utf-8"
    return response

# ------------------------------------------------------------------------------------------- tokens


def issue_token(sim, kind, user_id, client_id=None, scope=""):
    token = ("ory_at_" if kind == "access" else "ory_rt_" if kind == "refresh" else "") + secrets.token_hex(16)
    lifetime = sim.token_lifetime * (30 if kind == "refresh" else 1)   # refresh tokens outlive access tokens
    with sim.lock:
        sim.tokens[token] = {"kind": kind, "user_id": user_id, "expires_at": time.time() + lifetime,
                             "client_id": client_id, "scope": scope}
    return token


def token_entry(sim, token, kinds=("session", "access")):
    """The sim.tokens entry of a live token of one of `kinds`, else None."""
    entry = sim.tokens.get(token) if token else None
    if not entry or entry["kind"] not in kinds or entry["expires_at"] <= time.time():
        return None
    return entry


def expire_all_tokens(sim, include_refresh=False):
    """Test hook: every issued access token / E5 session is expired now.

    Refresh tokens stay valid unless include_refresh (as on a real server, where they outlive access tokens)."""
    with sim.lock:
        for entry in sim.tokens.values():
            if include_refresh or entry["kind"] != "refresh":
                entry["expires_at"] = 0.0


def revoke_token(sim, token):
    with sim.lock:
        sim.tokens.pop(token, None)


def request_token(sim, request):
    """The token a request carries, in the flavour's documented places (first found wins)."""
    if sim.flavour == "easydb5":
        return request.query.get("token") or request.headers.get("X-Easydb-Token") or _form_value(request, "token")
    for header in ("Authorization", "X-Fylr-Authorization"):
        value = request.headers.get(header, "")
        if value.lower().startswith("bearer "):
            return value[7:].strip()
    return request.query.get("access_token")


def _form_value(request, name):
    if request.content_type.startswith("application/x-www-form-urlencoded"):
        return request.forms.get(name)
    return None

# --------------------------------------------------------------------------------------------- users


def current_user(sim, request):
    """The sim.users entry behind a valid, unexpired token/session, else None."""
    entry = token_entry(sim, request_token(sim, request))
    if not entry or entry["user_id"] is None:
        return None
    return sim.users.get(entry["user_id"])


def require_user(sim, request):
    """The current user or the flavour's documented "not authenticated" error (E5 400, fylr 401)."""
    user = current_user(sim, request)
    if user is not None:
        return user
    if sim.flavour == "fylr":
        raise api_error(sim, 401, "UserRequired")
    token = request_token(sim, request)
    if token and token_entry(sim, token) is None:
        # unknown or expired session: E5 drops expired sessions, so both read as "not found"
        raise api_error(sim, 400, "error.user.session_not_found", token=token)
    raise api_error(sim, 400, "error.user.not_authenticated")


def is_root(sim, user):
    return bool(user) and user["user"].get("reference") == "system:root"


def require_root(sim, request):
    user = require_user(sim, request)
    if not is_root(sim, user):
        if sim.flavour == "fylr":
            raise api_error(sim, 403, "SystemRightRequired", rights=["system.root"])
        raise api_error(sim, 400, "error.user.no_system_right", right="system.root")
    return user


def user_by_login(sim, login):
    for entry in sim.users.values():
        if entry["user"].get("login") == login:
            return entry
    return None


def check_password(sim, login, password):
    """The user entry when login/password match (sim.passwords, else a sha256 `_password_hash`)."""
    user = user_by_login(sim, login)
    if user is None or not password:
        return None
    if login in sim.passwords:
        return user if sim.passwords[login] == password else None
    stored = user.get("_password_hash") or ""
    method, _, digest = stored.partition(":")
    if method == "sha256" and hashlib.sha256(password.encode()).hexdigest() == digest:
        return user
    return None

# --------------------------------------------------------------------------------- session documents


def e5_session_body(sim, token):
    entry = sim.tokens[token]
    body = {"token": token,
            "instance": {"api": 1, "name": sim.name, "server_version": 5123, "solution": "base",
                         "user-schema": sim.schema.get("version")},
            "authentication_methods": [{"method": "easydb"}], "pending_tasks": [],
            "current_max_message_id": max(sim.messages or [0])}
    user = sim.users.get(entry["user_id"]) if entry["user_id"] else None
    if user:
        body["authenticated"] = {"method": "easydb", "timestamp": entry.get("authenticated_at")}
        body["user"] = {"_basetype": "user", "user": {"_id": user["user"]["_id"], "login": user["user"]["login"]}}
        body["groups"] = user["_groups"]
        body["system_rights"] = {"system.root": True} if is_root(sim, user) else {}
    return body


def fylr_session_body(sim, token, user):
    entry = sim.tokens[token]
    return {"access_token": token,
            "user": {"_basetype": "user", "user": dict(user["user"])},
            "groups": user["_groups"],
            "system_rights": {"system.root": True} if is_root(sim, user) else {},
            "config": {}, "frontend_language": "de-DE",
            "authenticated": {"method": "easydb", "timestamp": None, "client_id": entry.get("client_id")},
            "current_max_event_id": max(sim.events or [0]),
            "instance": {"name": sim.name, "version": sim.version}}
