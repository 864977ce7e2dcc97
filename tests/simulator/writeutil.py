"""Helpers shared by the fylr write modules (writes.py, records.py, files.py): request parsing, errors,
rights, all-or-nothing rollback and the basetype lookups of api.md 6.7.

Lookup rules (conformance.md "Lookups"): a lookup object names exactly ONE key; basetypes accept
`reference` (users also `login`, every kind `_id`), tags and files only `reference`.  The stored value
must equal the sent one exactly - no prefix (`user:ref:`, `system:`) is interpreted.  SILENT: a lookup
with another or an extra key is refused with 400 ServerGeneric (malformed body); no hit is 400
LookupNotFound (`key`, `value`), two hits 400 LookupFoundTooMany.
"""
import copy
import datetime
import io
import json
import re
import time
from contextlib import contextmanager

import bottle
import orjson

from .auth import api_error

API = "/api/v1"

# ------------------------------------------------------------------------------------------- request


_NOW = [(None, "")]   # [(whole second, its text)]: a batch stamps every version, formatting once a second will do


def now_iso():
    second = int(time.time())
    cached = _NOW[0]   # one tuple, replaced whole: two threads in different seconds never mix second and text
    if cached[0] != second:
        cached = _NOW[0] = (second, datetime.datetime.fromtimestamp(second, datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"))
    return cached[1]


def fail(sim, status, code, message="", **parameters):
    raise api_error(sim, status, code, message, **parameters)


def json_answer(data, status=200, compact=False):
    """compact: orjson's bytes (no blanks, UTF-8 instead of \\u escapes) - the same JSON, a sixth of the time
    of json.dumps for a POST /db answer of 100 records; what orjson cannot encode (a non-str key, an int
    beyond 64 bits) is written by json.dumps.  (NaN, which orjson writes as null, is in no answer: bodies are
    decoded by orjson, which refuses it.)"""
    payload = None
    if compact:
        try:
            payload = orjson.dumps(data)
        except TypeError:        # orjson.JSONEncodeError
            pass
    return bottle.HTTPResponse(body=json.dumps(data) if payload is None else payload, status=status,
                               headers={"Content-Type": "application/json; charset=utf-8"})


def _body_bytes():
    """The request body as bottle.request.body reads it.  bottle spools a body above MEMFILE_MAX (100 kB) to
    a temporary file first (a POST /db of 100 records is about that big: a tenth of its time went on the
    file); a plain Content-Length body is read here in memory the way bottle's _iter_body reads it, and left
    in the environ as bottle leaves it, for anyone reading request.body later."""
    request = bottle.request
    environ = request.environ
    if "bottle.request.body" in environ or request.chunked or "wsgi.input" not in environ:
        return request.body.read()
    read, parts, todo = environ["wsgi.input"].read, [], request.content_length
    while todo > 0:
        part = read(min(todo, request.MEMFILE_MAX))
        if not part:
            break
        parts.append(part)
        todo -= len(part)
    raw = b"".join(parts)
    environ["wsgi.input"] = environ["bottle.request.body"] = io.BytesIO(raw)
    return raw


def body(sim, code="ServerGeneric", want=None):
    """Parsed JSON body; `want` (list/dict) checks the top-level type."""
    raw = _body_bytes()
    try:   # orjson: a POST /db of 100 records took the json module an eighth of the simulator's time
        data = orjson.loads(raw) if raw else None
    except ValueError as exc:
        fail(sim, 400, code, "Unable to parse the JSON body: %s" % exc, msg=str(exc))
    if want is not None and not isinstance(data, want):
        fail(sim, 400, code, "The body must be a JSON %s." % ("array" if want is list else "object"))
    return data


def truthy(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def query(name, default=None):
    """Query parameter decoded as UTF-8 (bottle keeps raw latin-1 strings)."""
    value = bottle.request.query.getunicode(name)
    return default if value is None else value


def flag(name):
    return truthy(query(name, ""))


def _version_tuple(text):
    return tuple(int(n) for n in re.findall(r"\d+", text or "")[:3]) or (0,)


def skip_constraints_param(sim):
    """skip_constraints; the camelCase spelling only on servers older than 6.27.0 (renamed there)."""
    if flag("skip_constraints"):
        return True
    return flag("skipConstraints") and _version_tuple(sim.version) < (6, 27, 0)


def confirm_tasks(title, message, form=None, buttons=()):
    """A confirm-and-resend body (OAS components.schemas.response_202)."""
    task = {"title": title, "message": message, "buttons": list(buttons)}
    if form:
        task["form"] = form
    return {"tasks": [task]}


def options_field(name, choices, disabled=()):
    """One `form` field of a 202 task: the chosen option's value is re-sent as query parameter `name`."""
    return {"label": "", "type": "options", "name": name, "horizontal": False,
            "options": [{"text": text, "value": value, "disabled": value in disabled} for text, value in choices]}

# -------------------------------------------------------------------------------------------- rights


def user_id(user):
    if not user:
        return None
    return user["user"]["_id"] if "user" in user else user.get("_id")


def user_entry(sim, user):
    return sim.users.get(user_id(user))


def is_system_root_user(sim, user):
    entry = user_entry(sim, user)
    return bool(entry) and entry["user"].get("reference") == "system:root"


def holds_root_right(sim, user):
    """system.root held directly (the system:root user) or through a group's _system_rights."""
    entry = user_entry(sim, user)
    if not entry:
        return False
    if entry["user"].get("reference") == "system:root":
        return True
    for g in entry.get("_groups", []):
        rights = sim.groups.get(g["group"]["_id"], {}).get("_system_rights") or {}
        if rights.get("system.root"):
            return True
    return False

# ------------------------------------------------------------------------------------------ rollback


# Tables whose entries are added and removed but never changed in place (a sysid names a tuple, an event
# is written once): rollback copies them one level, in C, without looking at every value first.
_ENTRIES_NEVER_CHANGED = frozenset({"sysids", "events"})


class Journal:
    """Undo log of the dict entries a write sets: for tables too big to copy per request (a POST /db of 100
    records copied all of sim.records, two levels, and freed the copy again: a sixth of its time).  Every
    change of a journaled table must go through set(); undo() puts back, newest first, what each replaced
    (or removes what was new).  Like rollback's copies it keeps the replaced objects themselves: writers
    replace nested objects instead of mutating them."""

    _ABSENT = object()

    def __init__(self, on_undo=None):
        self.entries = []               # (table, key, previous value or _ABSENT)
        self.on_undo = on_undo          # called after an undo (caches that saw the undone entries)

    def set(self, table, key, value):
        self.entries.append((table, key, table.get(key, self._ABSENT)))
        table[key] = value
        return value

    def undo(self):
        for table, key, previous in reversed(self.entries):
            if previous is self._ABSENT:
                del table[key]
            else:
                table[key] = previous
        self.entries = []
        if self.on_undo is not None:
            self.on_undo()


@contextmanager
def rollback(sim, *names, deep=(), journal=None):
    """All-or-nothing: restore the named Instance attributes when the block raises.

    Runs under sim.lock.  `names` are copied two levels deep (dict of dicts / dict of lists) - writers must
    replace nested objects instead of mutating them - but for _ENTRIES_NEVER_CHANGED, copied one level;
    `deep` attributes are deep-copied (small tables); a `journal` (Journal) is undone."""
    with sim.lock:
        saved = {}
        for name in names:
            value = getattr(sim, name, None)
            if name in _ENTRIES_NEVER_CHANGED:
                saved[name] = copy.copy(value)
            elif isinstance(value, dict) and any(issubclass(kind, (dict, list)) for kind in set(map(type, value.values()))):
                saved[name] = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
                               for k, v in value.items()}
            else:   # a flat dict (sysids: 20,000 tuples) is copied in C, not entry by entry
                saved[name] = copy.copy(value)
        for name in deep:
            saved[name] = copy.deepcopy(getattr(sim, name, None))
        try:
            yield
        except BaseException:
            if journal is not None:
                journal.undo()
            for name, value in saved.items():
                setattr(sim, name, value)
            raise


_STATE = (("datamodel_head", None), ("schema_commits", []), ("reindex_calls", 0), ("deferred_parents", {}),
          ("deferred_uuids", {}), ("rendition_references", {}))


def ensure_state(sim):
    """The write-side attributes of the Instance (see writes.py's docstring)."""
    for name, default in _STATE:
        if not hasattr(sim, name):
            setattr(sim, name, copy.deepcopy(default))


def reset_state(sim):
    for name, default in _STATE:
        if name != "schema_commits" and name != "reindex_calls":
            setattr(sim, name, copy.deepcopy(default))

# ------------------------------------------------------------------------------- basetype lookups

KIND_TABLE = {"user": "users", "group": "groups", "pool": "pools", "collection": "collections",
              "message": "messages", "taggroup": "taggroups"}
# The one key a lookup object may name (api.md 6.7; OAS LookupByReference): reference, or a documented
# unique key.  Tags and files: reference only.
LOOKUP_KEYS = {"user": ("reference", "login", "_id"), "tag": ("reference",), "file": ("reference",)}
_DEFAULT_LOOKUP_KEYS = ("reference", "_id")


def lookup_key(sim, kind, lookup):
    """(key, value) of a basetype lookup object, refusing anything but exactly one allowed key."""
    allowed = LOOKUP_KEYS.get(kind, _DEFAULT_LOOKUP_KEYS)
    if not isinstance(lookup, dict) or len(lookup) != 1 or next(iter(lookup)) not in allowed:
        fail(sim, 400, "ServerGeneric", "A %s lookup names exactly one of %s, got %s." % (
            kind, ", ".join(allowed), json.dumps(lookup)), key="lookup:_id", value=lookup)
    return next(iter(lookup.items()))


def lookup_basetype(sim, kind, lookup, memo=None):
    """_id of the basetype entry whose stored `key` equals the lookup value exactly. `memo` (a dict kept
    for one request that changes no basetype) holds an index per looked-up key: a record batch names
    pools and users in every record, and a scan of the table for each of them was a third of its time."""
    key, value = lookup_key(sim, kind, lookup)
    hits = None
    if memo is not None:
        try:
            hits = _basetype_index(sim, kind, key, memo).get(value, [])
        except TypeError:   # an unhashable value: scanned like without a memo
            pass
    if hits is None:
        hits = [i for i, v in _basetype_values(sim, kind, key) if v == value]
    if not hits:
        fail(sim, 400, "LookupNotFound", "Lookup %s %s=%r found nothing." % (kind, key, value), key=key, value=value)
    if len(hits) > 1:
        fail(sim, 400, "LookupFoundTooMany", "Lookup %s %s=%r found %d." % (kind, key, value, len(hits)),
             count=len(hits), value=value)
    return hits[0]


def _basetype_values(sim, kind, key):
    """(_id, stored value of `key`) of every entry of a basetype."""
    if kind == "tag":
        return [(t["tag"]["_id"], t["tag"].get(key)) for tg in sim.taggroups.values() for t in tg["_tags"]]
    return [(i, e[kind].get(key)) for i, e in getattr(sim, KIND_TABLE[kind]).items()]


def _basetype_index(sim, kind, key, memo):
    """{stored value: [_id, ...]} of a basetype's `key`, built once per memo: finds what the scan's == finds.
    Unhashable stored values are left out: they never equal the hashable value looked up here."""
    if (kind, key) not in memo:
        index = {}
        for i, v in _basetype_values(sim, kind, key):
            if v != v:   # NaN equals nothing, though a dict would find the very same object
                continue
            try:
                index.setdefault(v, []).append(i)
            except TypeError:
                pass
        memo[(kind, key)] = index
    return memo[(kind, key)]


def ref_id(sim, kind, block, memo=None):
    """Resolve `{"_id": n}` or `{"lookup:_id": {...}}` (the inner block of a basetype reference)."""
    if not isinstance(block, dict):
        fail(sim, 400, "ServerGeneric", "Invalid %s reference %r." % (kind, block))
    if "lookup:_id" in block:
        return lookup_basetype(sim, kind, block["lookup:_id"], memo)
    if block.get("_id") is not None:
        exists = (sim.tag_by_id(block["_id"]) if kind == "tag"
                  else getattr(sim, KIND_TABLE[kind]).get(block["_id"]))
        if not exists:
            fail(sim, 400, "LookupNotFound", "%s %r not found." % (kind, block["_id"]), key="_id", value=block["_id"])
        return block["_id"]
    fail(sim, 400, "ServerGeneric", "The %s reference needs _id or lookup:_id." % kind)


def wrapped_ref_id(sim, kind, wrapper, memo=None):
    """Resolve `{"_basetype": kind, kind: {...}}` or `{kind: {...}}`; None stays None."""
    if wrapper is None:
        return None
    inner = wrapper.get(kind, wrapper) if isinstance(wrapper, dict) else wrapper
    return ref_id(sim, kind, inner, memo)


def resolve_acl(sim, acl):
    """ACL entries: `who` may address a user/group by lookup; store it by _id."""
    result = []
    for entry in acl or []:
        entry = copy.deepcopy(entry)
        who = entry.get("who")
        if isinstance(who, dict):
            kind = who.get("_basetype") or next((k for k in ("user", "group") if k in who), None)
            if kind in ("user", "group") and isinstance(who.get(kind), dict):
                who[kind] = {"_id": ref_id(sim, kind, who[kind])}
        result.append(entry)
    return result


def group_refs(sim, groups):
    return [{"_basetype": "group", "group": {"_id": wrapped_ref_id(sim, "group", g)}} for g in groups or []]


def check_unique_reference(sim, kind, reference, own_id=None):
    """SILENT: a second basetype with the same reference -> 400 DatabaseUniqueKeyViolation (references
    are unique in fylr; the docs name no dedicated code)."""
    if reference in (None, ""):
        return
    for i, entry in getattr(sim, KIND_TABLE[kind]).items():
        if i != own_id and entry[kind].get("reference") == reference:
            fail(sim, 400, "DatabaseUniqueKeyViolation",
                 "Duplicate %s reference %r." % (kind, reference), name="%s.reference" % kind)


def target_for_update(sim, kind, block):
    """Stored id addressed by block `_id` or `lookup:_id`, or None when the block addresses nothing."""
    if "lookup:_id" in block:
        return lookup_basetype(sim, kind, block["lookup:_id"])
    if block.get("_id") is not None:
        if block["_id"] not in getattr(sim, KIND_TABLE[kind]):
            fail(sim, 400, "LookupNotFound", "%s %r does not exist." % (kind, block["_id"]), key="_id",
                 value=block["_id"])
        return block["_id"]
    return None


def check_next_version(sim, kind, stored, sent):
    if sent != stored + 1:
        fail(sim, 400, "VersionMismatch", "%s: version %r given, %d expected." % (kind, sent, stored + 1),
             expected=stored + 1, expectedversion=stored + 1, got=sent, receivedversion=sent,
             currentversion=stored, object=kind)


# SILENT: keys outside the OAS schema of a basetype (components.schemas.UserApi, GroupApi, PoolApi,
# MessageApi, the /collection/list put body) are refused: fylr's decoder would drop them without a word,
# so easydb 5 names (_emails, _password_insecure_hash*, _primary_email, message_html, ...) sent to fylr
# would silently lose data.  (top-level keys, keys of the inner block)
_COMMON_TOP = {"_basetype", "_created_at", "_updated_at", "_generated_rights", "_owner", "_acl"}
BASETYPE_KEYS = {
    "user": (_COMMON_TOP | {"user", "_groups", "_password", "_system_rights", "_collection_pin_codes",
                            "_password_hash", "_two_factor_totp_enrolled", "_two_factor_passkey_enrolled",
                            "_two_factor_last_method", "_two_factor_reset_totp", "_two_factor_reset_passkey",
                            "_archived_at", "_last_seen_at"},
             {"_id", "_version", "login", "reference", "type", "frontend_language", "database_languages",
              "frontend_prefs", "custom_data", "first_name", "last_name", "displayname", "company", "department",
              "phone", "remarks", "address_supplement", "street", "house_number", "postal_code", "town", "state",
              "country", "login_disabled", "login_valid_from", "login_valid_to", "require_password_change",
              "mail_schedule", "email", "confirm_email", "confirm_email_sent_at", "email_confirmed_at",
              "welcome_email", "welcome_email_sent_at", "lookup:_id"}),
    "group": (_COMMON_TOP | {"group", "_system_rights", "_pseudonymization", "_auth_method_group_maps",
                             "_ip_subnet_filter", "_ip_subnet_filter_exclude", "_two_fa_required", "_automatic_auth"},
              {"_id", "_version", "reference", "name", "comment", "category_a", "category_b", "category_c",
               "displayname", "frontend_prefs", "type", "lookup:_id"}),
    "pool": (_COMMON_TOP | {"pool", "_has_children", "_private_acl", "_private_transitions", "_transitions",
                            "_private_tags", "_tags", "_level", "_path", "_compiled_tags", "_standard_masks"},
             {"_id", "_version", "reference", "name", "shortname", "_id_parent", "lookup:_id_parent", "lookup:_id",
              "comment", "description", "contact", "is_system_pool", "watermark", "caption", "janitor_policy",
              "custom_data", "mapping_dc_export", "mapping_image_export", "mapping_image_import"}),
    "message": (_COMMON_TOP | {"message", "_groups"},
                {"_id", "_version", "webfrontend_props", "webfrontend_type", "confirm_every_version", "show_always",
                 "reference", "title", "message", "confirmation", "client_ids", "start_time", "end_time",
                 "lookup:_id"}),
    "collection": (_COMMON_TOP | {"collection", "_count", "_count_recursive", "_create_object_compiled",
                                  "_has_acl", "_has_children", "_has_remote_objects", "_level", "_private_acl", "_path",
                                  "_invalid_acl", "objects", "_hotfolder_upload_urls", "_has_pin", "pin_ok"},
                   {"_id", "_id_parent", "_version", "children_allowed", "objects_allowed", "is_system_collection",
                    "webfrontend_props", "displayname", "description", "create_object", "reference", "shortname",
                    "type", "pin_code", "uuid", "lookup:_id", "lookup:_id_parent", "_count"}),
}


def check_keys(sim, kind, item):
    """The item and its inner block use only the keys of the basetype's OAS schema (BASETYPE_KEYS)."""
    top, inner = BASETYPE_KEYS[kind]
    if not isinstance(item, dict) or not isinstance(item.get(kind), dict):
        fail(sim, 400, "ServerGeneric", "Each entry needs a %s object." % kind)
    unknown = sorted(set(item) - top) + sorted("%s.%s" % (kind, k) for k in set(item[kind]) - inner)
    if unknown:
        fail(sim, 400, "ServerGeneric", "Keys not in the %s schema: %s." % (kind, ", ".join(unknown)), keys=unknown)


def clean_block(block):
    return {k: copy.deepcopy(v) for k, v in block.items() if not k.startswith("lookup:")}
