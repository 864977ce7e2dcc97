"""fylr WRITE routes of the instance simulator: everything a restore sends to a fylr target.

install(app, sim) adds the routes below under /api/v1 (all exist in fylr's OpenAPI route list):

    POST /system/purgeall                 POST /system/reindex
    GET|POST /schema/user/HEAD            POST /mask/HEAD    POST /l10n/user/HEAD    POST /schema/commit
    POST /config
    POST /tags   POST /group   POST /user   POST /pool   POST /message   POST /objecttype   PUT /plugin/manage
    PUT /collection/list   POST /collection/objects/{id}   POST /collection/push/{id}
    POST /event/list       POST /db/{objecttype}
    POST|PUT /eas/put      POST /eas/rput   POST /eas/rput/bulk

Bodies are converted into the stored forms of store.py (ids, not lookups).  Every request that fails
leaves the instance unchanged (_Rollback).  Where the docs are silent the choice is commented with
"SILENT:".  State this module adds to the Instance (plain attributes, cloned with it):
    sim.datamodel_head      {"schema","mask","l10n"} uncommitted HEAD edits, or absent/None
    sim.schema_commits      list of {"version","reindex"} per commit
    sim.reindex_calls       number of POST /system/reindex calls
    sim.deferred_parents    {parent sysid: [[objecttype, child _id, version number], ...]} parent lookups
                            deferred with _allow_defer until the parent is saved
    sim.rendition_references {reference: [file id, version name]} references of manual renditions
"""
import copy
import datetime
import hashlib
import json
import mimetypes
import os
import re
import uuid
from contextlib import contextmanager
from urllib.parse import unquote, urlparse

import bottle
import requests

from . import datagen
from .auth import api_error, require_root, require_user

API = "/api/v1"

# ------------------------------------------------------------------------------------------- helpers


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fail(sim, status, code, message="", **parameters):
    raise api_error(sim, status, code, message, **parameters)


def _json(data, status=200):
    return bottle.HTTPResponse(body=json.dumps(data), status=status,
                               headers={"Content-Type": "application/json; charset=utf-8"})


def _body(sim, code="ServerGeneric", want=None):
    """Parsed JSON body; `want` (list/dict) checks the top-level type."""
    raw = bottle.request.body.read()
    try:
        data = json.loads(raw.decode("utf-8")) if raw else None
    except ValueError as exc:
        _fail(sim, 400, code, "Unable to parse the JSON body: %s" % exc, msg=str(exc))
    if want is not None and not isinstance(data, want):
        _fail(sim, 400, code, "The body must be a JSON %s." % ("array" if want is list else "object"))
    return data


def _truthy(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _query(name, default=None):
    """Query parameter decoded as UTF-8 (bottle keeps raw latin-1 strings)."""
    value = bottle.request.query.getunicode(name)
    return default if value is None else value


def _flag(name):
    return _truthy(_query(name, ""))


def _version_tuple(text):
    return tuple(int(n) for n in re.findall(r"\d+", text or "")[:3]) or (0,)


def _skip_constraints_param(sim):
    """skip_constraints; the camelCase spelling only on servers older than 6.27.0 (renamed there)."""
    if _flag("skip_constraints"):
        return True
    return _flag("skipConstraints") and _version_tuple(sim.version) < (6, 27, 0)


def _user_id(user):
    if not user:
        return None
    return user["user"]["_id"] if "user" in user else user.get("_id")


def _user_entry(sim, user):
    return sim.users.get(_user_id(user))


def _is_system_root_user(sim, user):
    entry = _user_entry(sim, user)
    return bool(entry) and entry["user"].get("reference") == "system:root"


def _holds_root_right(sim, user):
    """system.root held directly (the system:root user) or through a group's _system_rights."""
    entry = _user_entry(sim, user)
    if not entry:
        return False
    if entry["user"].get("reference") == "system:root":
        return True
    for g in entry.get("_groups", []):
        rights = sim.groups.get(g["group"]["_id"], {}).get("_system_rights") or {}
        if rights.get("system.root"):
            return True
    return False


@contextmanager
def _rollback(sim, *names, deep=()):
    """All-or-nothing: restore the named Instance attributes when the block raises.

    `names` are copied two levels deep (dict of dicts / dict of lists) - writers must replace nested
    objects instead of mutating them; `deep` attributes are deep-copied (small tables)."""
    with sim.lock:
        saved = {}
        for name in names:
            value = getattr(sim, name, None)
            if isinstance(value, dict):
                saved[name] = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
                               for k, v in value.items()}
            else:
                saved[name] = copy.copy(value)
        for name in deep:
            saved[name] = copy.deepcopy(getattr(sim, name, None))
        try:
            yield
        except BaseException:
            for name, value in saved.items():
                setattr(sim, name, value)
            raise


def _ensure_state(sim):
    for name, default in (("datamodel_head", None), ("schema_commits", []), ("reindex_calls", 0),
                          ("deferred_parents", {}), ("rendition_references", {})):
        if not hasattr(sim, name):
            setattr(sim, name, copy.deepcopy(default))

# ------------------------------------------------------------------------------- basetype lookups

_KIND_TABLE = {"user": "users", "group": "groups", "pool": "pools", "collection": "collections",
               "message": "messages", "taggroup": "taggroups"}


def _lookup_basetype(sim, kind, lookup):
    """_id of the basetype entry matching a lookup:_id object (reference, or another unique key)."""
    if not isinstance(lookup, dict) or not lookup:
        _fail(sim, 400, "LookupNotFound", "Empty lookup for %s." % kind, key="lookup:_id", value=lookup)
    key, value = next((k, v) for k, v in lookup.items() if not k.startswith("_allow"))
    if kind == "tag":
        hits = [t["tag"]["_id"] for tg in sim.taggroups.values() for t in tg["_tags"]
                if t["tag"].get(key) == value]
    else:
        hits = [i for i, e in getattr(sim, _KIND_TABLE[kind]).items() if e[kind].get(key) == value]
    if not hits:
        _fail(sim, 400, "LookupNotFound", "Lookup %s %s=%r found nothing." % (kind, key, value), key=key, value=value)
    if len(hits) > 1:
        _fail(sim, 400, "LookupFoundTooMany", "Lookup %s %s=%r found %d." % (kind, key, value, len(hits)),
              count=len(hits), value=value)
    return hits[0]


def _ref_id(sim, kind, block):
    """Resolve `{"_id": n}` or `{"lookup:_id": {...}}` (the inner block of a basetype reference)."""
    if not isinstance(block, dict):
        _fail(sim, 400, "ServerGeneric", "Invalid %s reference %r." % (kind, block))
    if "lookup:_id" in block:
        return _lookup_basetype(sim, kind, block["lookup:_id"])
    if block.get("_id") is not None:
        exists = (sim.tag_by_id(block["_id"]) if kind == "tag"
                  else getattr(sim, _KIND_TABLE[kind]).get(block["_id"]))
        if not exists:
            _fail(sim, 400, "LookupNotFound", "%s %r not found." % (kind, block["_id"]), key="_id", value=block["_id"])
        return block["_id"]
    _fail(sim, 400, "ServerGeneric", "The %s reference needs _id or lookup:_id." % kind)


def _wrapped_ref_id(sim, kind, wrapper):
    """Resolve `{"_basetype": kind, kind: {...}}` or `{kind: {...}}`; None stays None."""
    if wrapper is None:
        return None
    inner = wrapper.get(kind, wrapper) if isinstance(wrapper, dict) else wrapper
    return _ref_id(sim, kind, inner)


def _resolve_acl(sim, acl):
    """ACL entries: `who` may address a user/group by lookup; store it by _id."""
    result = []
    for entry in acl or []:
        entry = copy.deepcopy(entry)
        who = entry.get("who")
        if isinstance(who, dict):
            kind = who.get("_basetype") or next((k for k in ("user", "group") if k in who), None)
            if kind in ("user", "group") and isinstance(who.get(kind), dict):
                who[kind] = {"_id": _ref_id(sim, kind, who[kind])}
        result.append(entry)
    return result


def _group_refs(sim, groups):
    return [{"_basetype": "group", "group": {"_id": _wrapped_ref_id(sim, "group", g)}} for g in groups or []]


def _check_unique_reference(sim, kind, reference, own_id=None):
    """SILENT: a second basetype with the same reference -> 400 DatabaseUniqueKeyViolation (references
    are unique in fylr; the docs name no dedicated code)."""
    if reference in (None, ""):
        return
    for i, entry in getattr(sim, _KIND_TABLE[kind]).items():
        if i != own_id and entry[kind].get("reference") == reference:
            _fail(sim, 400, "DatabaseUniqueKeyViolation",
                  "Duplicate %s reference %r." % (kind, reference), name="%s.reference" % kind)


def _target_for_update(sim, kind, block):
    """Stored id addressed by block `_id` or `lookup:_id`, or None for a create."""
    if "lookup:_id" in block:
        return _lookup_basetype(sim, kind, block["lookup:_id"])
    if block.get("_id") is not None:
        if block["_id"] not in getattr(sim, _KIND_TABLE[kind]):
            _fail(sim, 400, "ServerGeneric", "%s %r does not exist." % (kind, block["_id"]))
        return block["_id"]
    return None


def _check_next_version(sim, kind, stored, sent):
    if sent != stored + 1:
        _fail(sim, 400, "VersionMismatch", "%s: version %r given, %d expected." % (kind, sent, stored + 1),
              expected=stored + 1, expectedversion=stored + 1, got=sent, receivedversion=sent,
              currentversion=stored, object=kind)


def _clean_block(block):
    return {k: copy.deepcopy(v) for k, v in block.items() if not k.startswith("lookup:")}

# --------------------------------------------------------------------------------------------- purge


def _purge(sim, set_password):
    """Reset to what a fresh fylr holds (= datagen size "empty"): root user, system pools, the
    system:root collection, an empty committed datamodel, the default base config."""
    root_id = next(i for i, u in sim.users.items() if u["user"].get("reference") == "system:root")
    root = copy.deepcopy(sim.users[root_id])
    root["_groups"] = []
    login = root["user"]["login"]
    if set_password:
        root["_password_hash"] = "sha256:" + hashlib.sha256(set_password.encode()).hexdigest()
        sim.passwords = {login: set_password}
    else:
        sim.passwords = {login: sim.passwords.get(login)} if login in sim.passwords else {}
    sim.users = {root_id: root}
    sim.pools = {i: p for i, p in sim.pools.items() if p["pool"].get("is_system_pool")}
    sim.collections = {i: c for i, c in sim.collections.items() if c["collection"].get("reference") == "system:root"}
    sim.collection_objects = {i: [] for i in sim.collections}
    sim.collection_props = {}
    for name in ("groups", "taggroups", "messages", "events", "records", "sysids", "files"):
        setattr(sim, name, {})
    sim.right_presets = {"object": [], "collection": []}
    sim.xmlmappings, sim.publish, sim.transitions, sim.objecttypes = [], [], [], []
    sim.schema = {"version": 1, "type": "user", "max_table_id": 0, "max_column_id": 0, "tables": []}
    sim.mask = {"type": "user", "version": 1, "based_on_schema_version": 1, "max_mask_id": 0, "masks": []}
    sim.l10n = {}
    sim.config = datagen._base_config(sim)
    sim.datamodel_head, sim.deferred_parents, sim.rendition_references = None, {}, {}
    sim._seq.clear()
    for kind, table in (("user", sim.users), ("pool", sim.pools), ("collection", sim.collections)):
        if table:
            sim.bump_seq(kind, max(table))
    sim.name = uuid.uuid4().hex[:16]           # fylr regenerates settings.name on every purge
    # SILENT (api.md 2.2 GAP): we choose that purge invalidates every token - clients must log in again.
    sim.tokens.clear()


def _route_purgeall(sim):
    user = require_user(sim, bottle.request)
    # Rights before configuration (OAS 403 texts): no system.root -> SystemRightRequired,
    # system.root but not the system:root user -> PurgeSystemRootOnly.
    if not _is_system_root_user(sim, user):
        if _holds_root_right(sim, user):
            _fail(sim, 403, "PurgeSystemRootOnly",
                  "Only the system user with reference 'system:root' is allowed to purge.")
        _fail(sim, 403, "SystemRightRequired", "One of the following system rights is required: [system.root].",
              rights=["system.root"])
    if not sim.allow_purge:
        _fail(sim, 400, "PurgeNotAllowed", "Purge is not allowed (fylr.allowpurge / system.purge.allow_purge).")
    with sim.lock:
        _purge(sim, _query("set_password") or None)
    redirect = _query("redirect")
    if redirect:
        return bottle.HTTPResponse(status=302, headers={"Location": redirect})
    return _json({"status": "ok"})


def _route_reindex(sim):
    require_user(sim, bottle.request)          # "no rights check in the handler" (OAS)
    with sim.lock:
        _ensure_state(sim)
        sim.reindex_calls += 1
    return _json({"status": "ok"})

# ----------------------------------------------------------------------------------------- datamodel


def _head_schema(sim):
    """HEAD = uncommitted edit, else the next version derived from CURRENT (OAS SchemaApi.version)."""
    _ensure_state(sim)
    head = (sim.datamodel_head or {}).get("schema")
    if head is not None:
        return head
    current = sim.schema or {"version": 0, "tables": []}
    head = copy.deepcopy(current)
    head.update(version=current.get("version", 0) + 1, based_on_version=current.get("version", 0),
                type="user", committed_at=None)
    head.setdefault("max_table_id", max([t.get("table_id", 0) for t in head.get("tables", [])] or [0]))
    head.setdefault("max_column_id", 0)
    return head


def _tables_with_records(sim, names):
    return {n: len(sim.records.get(n) or {}) for n in names if sim.records.get(n)}


def _route_schema_head_get(sim):
    require_user(sim, bottle.request)
    with sim.lock:
        return _json(_head_schema(sim))


def _route_schema_head_post(sim):
    require_root(sim, bottle.request)
    body = _body(sim, want=dict)
    with sim.lock:
        head = _head_schema(sim)
        for key in ("version", "based_on_version"):
            if body.get(key) != head.get(key):
                # SILENT: OAS only says "400"; VersionMismatch is the code fylr uses for version errors.
                _fail(sim, 400, "VersionMismatch",
                      "%s %r is not the expected %r." % (key, body.get(key), head.get(key)),
                      expected=head.get(key), got=body.get(key), key=key)
        for key in ("max_table_id", "max_column_id"):
            if body.get(key, 0) < head.get(key, 0):
                _fail(sim, 400, "SchemaInconsistent", "%s is smaller than the stored value." % key, msg=key)
        tables = body.get("tables") or []
        names = [t.get("name") for t in tables]
        if len(set(names)) != len(names):
            _fail(sim, 400, "SchemaDuplicateObjecttypeName", "Duplicate table names.", msg="duplicate names")
        current_tables = (sim.schema or {}).get("tables") or []
        if current_tables:
            # restore.md: uploading a datamodel onto a target that already has one fails without purge.
            dropped = _tables_with_records(sim, {t["name"] for t in current_tables} - set(names))
            if dropped:
                _fail(sim, 400, "ObjecttypeNotEmpty", "Objecttypes still hold objects.", stats=dropped)
            _fail(sim, 400, "SchemaInconsistent", "The target already has a committed datamodel; purge first.",
                  msg="datamodel exists")
        stored = copy.deepcopy(body)
        stored.update(type="user", committed_at=None)
        sim.datamodel_head = dict(sim.datamodel_head or {}, schema=stored)
        return _json(stored)


def _route_mask_head_post(sim):
    require_root(sim, bottle.request)
    body = _body(sim, want=dict)
    with sim.lock:
        names = [m.get("name") for m in body.get("masks") or []]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            _fail(sim, 400, "SchemaDuplicateMaskName", "Duplicate mask name %s." % dupes[0], name=dupes[0])
        head = _head_schema(sim)
        stored = copy.deepcopy(body)
        # OAS MaskSchemaApi: `version` is always 1 on output, based_on_schema_version is set by the server.
        stored.update(type="user", version=1, based_on_schema_version=head["version"])
        stored.setdefault("max_mask_id", max([m.get("mask_id", 0) for m in body.get("masks") or []] or [0]))
        sim.datamodel_head = dict(sim.datamodel_head or {}, mask=stored)
        return _json(stored)


def _route_l10n_head_post(sim):
    require_root(sim, bottle.request)
    body = _body(sim, want=dict)
    with sim.lock:
        _ensure_state(sim)
        sim.datamodel_head = dict(sim.datamodel_head or {}, l10n=copy.deepcopy(body))
        return _json(body)


def _commit_tasks():
    return {"tasks": [{"title": "Commit datamodel", "message": "The change needs a reindex and may change constraints.",
                       "form": [{"label": "", "type": "options", "name": "reindex", "horizontal": False,
                                 "options": [{"text": t, "value": v, "disabled": False}
                                             for t, v in (("Skip", "skip"), ("Reindex", "reindex"),
                                                          ("Reindex and block", "reindex_block"))]}],
                       "buttons": [{"text": "Commit", "name": "confirm", "value": "yes"}]}]}


def _objecttypes_for(sim, schema):
    """GET /objecttype entries for the top-level tables; settings of surviving objecttypes are kept."""
    old = {o["objecttype"]["name"]: o for o in sim.objecttypes}
    result = []
    for table in schema.get("tables") or []:
        if table.get("owned_by"):
            continue
        entry = copy.deepcopy(old.get(table["name"])) or datagen._objecttype(sim, table["name"], table["table_id"])
        entry["objecttype"]["_id"] = table["table_id"]
        result.append(entry)
    return result


def _route_schema_commit(sim):
    require_root(sim, bottle.request)
    reindex = _query("reindex")
    if reindex not in (None, "", "skip", "reindex", "reindex_block"):
        _fail(sim, 400, "ServerGeneric", "Unknown reindex value %r." % reindex)
    with sim.lock:
        _ensure_state(sim)
        head = sim.datamodel_head
        if not head:
            return _json({"status": "ok"})           # nothing to commit
        if _query("confirm") != "yes":
            # OAS: 202 whenever the change needs a reindex and/or changes constraints - any real edit does.
            return _json(_commit_tasks(), status=202)
        schema = copy.deepcopy(head.get("schema") or _head_schema(sim))
        schema["committed_at"] = _now()
        mask = copy.deepcopy(head.get("mask") or sim.mask or {"type": "user", "masks": [], "max_mask_id": 0})
        mask["based_on_schema_version"] = schema["version"]
        sim.schema, sim.mask = schema, mask
        if "l10n" in head:
            sim.l10n = copy.deepcopy(head["l10n"])
        sim.objecttypes = _objecttypes_for(sim, schema)
        for table in schema.get("tables") or []:
            if not table.get("owned_by"):
                sim.records.setdefault(table["name"], {})
        sim.datamodel_head = None
        sim.schema_commits.append({"version": schema["version"], "reindex": reindex or None})
        return _json({"status": "ok"})

# -------------------------------------------------------------------------------------------- config


def _route_config_post(sim):
    require_root(sim, bottle.request)
    body = _body(sim, want=dict)
    if not body or not all(isinstance(v, dict) for v in body.values()):
        _fail(sim, 400, "ServerGeneric", "The config body must be an object of objects.")
    with sim.lock:
        config = copy.deepcopy(sim.config) or {"system": {"config": {}}, "plugin": {}}
        # A plain POST replaces whole sections: system.config.<section> and plugin.<name>.
        for section, value in ((body.get("system") or {}).get("config") or {}).items():
            config.setdefault("system", {}).setdefault("config", {})[section] = copy.deepcopy(value)
        for name, value in (body.get("plugin") or {}).items():
            config.setdefault("plugin", {})[name] = copy.deepcopy(value)
        sim.config = config
        return _json(config)

# --------------------------------------------------------------------------------------------- tags


def _tags_in_use(sim):
    used = set()
    for records in sim.records.values():
        for rec in records.values():
            used.update(rec["versions"][-1].get("_tags") or [])
    return used


def _route_tags_post(sim):
    require_root(sim, bottle.request)
    body = _body(sim, want=list)
    with _rollback(sim, "_seq", deep=("taggroups",)):
        new_groups, seen_tags = {}, set()
        for item in body:
            block = item.get("taggroup") or {}
            gid = block.get("_id") if block.get("_id") in sim.taggroups else None
            version = sim.taggroups[gid]["taggroup"]["_version"] + 1 if gid else 1
            # Tag group ids are not restored: unknown _id values get a fresh id.
            gid = gid or sim.next_id("taggroup")
            group = {k: copy.deepcopy(v) for k, v in item.items() if k not in ("taggroup", "_tags")}
            group.update(_basetype="taggroup", taggroup=dict(_clean_block(block), _id=gid, _version=version))
            group["_tags"] = [_stored_tag(sim, t, seen_tags) for t in item.get("_tags") or []]
            new_groups[gid] = group
        removed = {t["tag"]["_id"] for g in sim.taggroups.values() for t in g["_tags"]} - seen_tags
        in_use = sorted(removed & _tags_in_use(sim))
        if in_use:
            _fail(sim, 400, "TagsInUse", "Tags %s are still in use." % in_use,
                  usages=[{"tag_id": t, "context": "object"} for t in in_use])
        refs = [t["tag"].get("reference") for g in new_groups.values() for t in g["_tags"] if t["tag"].get("reference")]
        if len(refs) != len(set(refs)):
            _fail(sim, 400, "DatabaseUniqueKeyViolation", "Duplicate tag reference.", name="tag.reference")
        sim.taggroups = new_groups
        return _json(list(new_groups.values()))


def _stored_tag(sim, entry, seen):
    """Accept the wrapped {"tag": {...}} and the bare Tag form; keep a sent _id (tag ids are restored)."""
    block = entry.get("tag", entry) if isinstance(entry, dict) else {}
    extra = {k: copy.deepcopy(v) for k, v in entry.items() if k != "tag"} if "tag" in entry else {}
    tag_id = block.get("_id")
    if tag_id is None:
        tag_id = sim.next_id("tag")
    elif not isinstance(tag_id, int) or tag_id in seen:
        _fail(sim, 400, "ServerGeneric", "Invalid or duplicate tag _id %r." % (tag_id,))
    else:
        sim.bump_seq("tag", tag_id)
    seen.add(tag_id)
    old = sim.tag_by_id(tag_id)
    version = old["tag"]["_version"] + 1 if old else 1
    tag = dict({"type": "individual", "displaytype": "facet", "enabled": True}, **_clean_block(block))
    tag.update(_id=tag_id, _version=version)
    extra.update(tag=tag)
    return extra

# ------------------------------------------------------------------------------------ groups / users


def _basetype_route(table, save):
    """POST of groups, pools or messages: root only, the whole array saved or nothing (rollback)."""
    def route(sim):
        require_root(sim, bottle.request)
        body = _body(sim, want=list)
        with _rollback(sim, "_seq", deep=(table,)):
            return _json([save(sim, item) for item in body])
    return route


def _addressed(sim, kind, block, table):
    """(stored id or None, version) of a basetype write: version 1 creates, a later version must address
    a stored entry and be its version + 1 (VersionMismatch otherwise)."""
    version = block.get("_version", 1)
    stored_id = _target_for_update(sim, kind, block) if version != 1 else None
    if version != 1 and stored_id is None:
        _fail(sim, 400, "VersionMismatch", "Update without _id.", expected=1, got=version)
    if stored_id is not None:
        _check_next_version(sim, kind, table[stored_id][kind]["_version"], version)
    return stored_id, version


def _save_group(sim, item):
    block = item.get("group") or {}
    gid, version = _addressed(sim, "group", block, sim.groups)
    if gid is None and block.get("type") == "system":
        _fail(sim, 400, "GroupTypeNotAllowed", 'The group type "system" is not allowed.', type="system")
    if gid is not None:
        stored = sim.groups[gid]
        if block.get("type") not in (None, stored["group"].get("type")):
            _fail(sim, 400, "GroupTypeChangeNotAllowed", "The group type cannot change.", type=block.get("type"))
    gid = gid or sim.next_id("group")
    _check_unique_reference(sim, "group", block.get("reference"), gid)
    entry = {k: copy.deepcopy(v) for k, v in item.items() if k not in ("group", "_acl")}
    entry.update(_basetype="group", _system_rights=copy.deepcopy(item.get("_system_rights") or {}),
                 _acl=_resolve_acl(sim, item.get("_acl")))
    entry["group"] = dict({"type": "easydb"}, **_clean_block(block))
    entry["group"].update(_id=gid, _version=version)
    entry["group"].setdefault("name", block.get("reference") or "group%d" % gid)
    sim.groups[gid] = entry
    return entry


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NO_PASSWORD_TYPES = ("ldap", "sso", "saml", "email")


def _route_user_post(sim):
    caller = require_user(sim, bottle.request)
    root = _holds_root_right(sim, caller)
    skip = _skip_constraints_param(sim)
    if skip and not root:
        _fail(sim, 400, "ServerGeneric", "skip_constraints needs system.root.")
    body = _body(sim, want=list)
    with _rollback(sim, "_seq", deep=("users", "passwords")):
        saved = [_save_user(sim, item, root, skip) for item in body]
        return _json([_user_response(u) for u in saved])


def _save_user(sim, item, root, skip_constraints):
    block = item.get("user") or {}
    uid = _target_for_update(sim, "user", block)    # create = no _id (OAS /user post)
    if uid is not None:
        _check_next_version(sim, "user", sim.users[uid]["user"]["_version"], block.get("_version"))
    email = block.get("email")
    if email and not skip_constraints and not _EMAIL.match(email):
        _fail(sim, 400, "UserEmailMalformed", "Malformed e-mail %r." % email, email=email)
    login = block.get("login")
    for other_id, other in sim.users.items():
        if other_id != uid and login and other["user"].get("login") == login:
            _fail(sim, 409, "UserDuplicateLogin", "Login %r exists." % login, login=login)
    has_password = "_password_hash" in item or item.get("_password")
    if has_password and block.get("type") in _NO_PASSWORD_TYPES:
        _fail(sim, 400, "UnableToSetPasswordForUserType", "Users of type %s have no password." % block["type"],
              type=block["type"])
    if "_password_hash" in item and not root:
        _fail(sim, 403, "SystemRightRequired", "Writing _password_hash needs system.root.", rights=["system.root"])
    uid = uid or sim.next_id("user")
    _check_unique_reference(sim, "user", block.get("reference"), uid)
    previous = sim.users.get(uid, {})
    entry = {k: copy.deepcopy(v) for k, v in item.items()
             if k not in ("user", "_groups", "_password", "_password_hash", "_acl")}
    entry.update(_basetype="user", _groups=_group_refs(sim, item.get("_groups")))
    if "_acl" in item:
        entry["_acl"] = _resolve_acl(sim, item["_acl"])
    entry["user"] = dict({"type": "easydb"}, **_clean_block(block))
    entry["user"].update(_id=uid, _version=previous["user"]["_version"] + 1 if previous else 1)
    if item.get("_password"):
        entry["_password_hash"] = "sha256:" + hashlib.sha256(item["_password"].encode()).hexdigest()
        sim.passwords[login] = item["_password"]
    elif "_password_hash" in item:
        entry["_password_hash"] = item["_password_hash"]
    elif "_password_hash" in previous:
        entry["_password_hash"] = previous["_password_hash"]
    sim.users[uid] = entry
    return entry


def _user_response(entry):
    return {k: v for k, v in entry.items() if k not in ("_password_hash", "_password_salt")}

# -------------------------------------------------------------------------------------- pools, messages


def _save_pool(sim, item):
    block = item.get("pool") or {}
    pid, version = _addressed(sim, "pool", block, sim.pools)
    stored = sim.pools.get(pid)
    if block.get("is_system_pool") and not (stored and stored["pool"].get("is_system_pool")):
        _fail(sim, 400, "UnableToSetIsSystemPool", "is_system_pool cannot be set.")
    if "lookup:_id_parent" in block:
        parent = _lookup_basetype(sim, "pool", block["lookup:_id_parent"])
    elif block.get("_id_parent") is not None:
        parent = _ref_id(sim, "pool", {"_id": block["_id_parent"]})
    else:
        parent = stored["pool"]["_id_parent"] if stored else None
    is_root_pool = bool(stored) and stored["pool"].get("reference") == "system:root"
    if parent is None and not is_root_pool:
        _fail(sim, 400, "PoolNeedsParent", "A pool needs a parent pool.")
    pid = pid or sim.next_id("pool")
    _check_unique_reference(sim, "pool", block.get("reference"), pid)
    entry = {"_acl": [], "_private_acl": False, "_tags": [], "_private_tags": False}
    entry.update({k: copy.deepcopy(v) for k, v in item.items() if k not in ("pool", "_acl", "_tags")})
    entry.update(_basetype="pool", _acl=_resolve_acl(sim, item.get("_acl")),
                 _tags=_resolve_tag_list(sim, item.get("_tags") or []))
    entry["pool"] = dict({"is_system_pool": False}, **_clean_block(block))
    entry["pool"].update(_id=pid, _version=version, _id_parent=parent)
    sim.pools[pid] = entry
    return entry


def _resolve_tag_list(sim, entries):
    """Pool/objecttype tag bindings: any nested {"lookup:_id": {...}} of a tag becomes {"_id": n}."""
    def walk(value):
        if isinstance(value, dict):
            if "lookup:_id" in value and set(value["lookup:_id"]) & {"reference"}:
                rest = {k: walk(v) for k, v in value.items() if k != "lookup:_id"}
                return dict(rest, _id=_lookup_basetype(sim, "tag", value["lookup:_id"]))
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value
    return walk(copy.deepcopy(entries))


def _route_objecttype_post(sim):
    """OAS /objecttype post: settings of existing objecttypes; `objecttype._id` must exist and `_version`
    be current + 1 (VersionMismatch); fields not sent keep their stored value (merge)."""
    require_root(sim, bottle.request)
    body = _body(sim, want=list)
    with sim.lock, _rollback(sim, "objecttypes"):
        stored = {o["objecttype"]["_id"]: o for o in sim.objecttypes}
        saved = []
        for item in body:
            block = (item or {}).get("objecttype") or {}
            current = stored.get(block.get("_id"))
            if current is None:
                _fail(sim, 400, "ServerGeneric", "Objecttype %r does not exist." % (block.get("_id"),))
            _check_next_version(sim, "objecttype", current["objecttype"]["_version"], block.get("_version"))
            merged = copy.deepcopy(current)
            for key, value in item.items():
                if key == "objecttype":
                    merged["objecttype"].update({k: v for k, v in value.items() if k not in ("_id", "name")})
                elif key == "_acl":
                    merged["_acl"] = _resolve_acl(sim, value)
                elif key == "_tags":
                    merged["_tags"] = [{"_id": _tag_id(sim, t)} for t in value or []]
                else:
                    merged[key] = copy.deepcopy(value)
            stored[current["objecttype"]["_id"]] = merged
            saved.append(merged)
        sim.objecttypes = [stored[o["objecttype"]["_id"]] for o in sim.objecttypes]
        return _json(saved)


def _tag_id(sim, entry):
    """A tag binding by `_id` or by `lookup:_id {reference}` (tag lookups accept only reference)."""
    if "lookup:_id" in entry:
        reference = (entry["lookup:_id"] or {}).get("reference")
        for tg in sim.taggroups.values():
            for t in tg["_tags"]:
                if t["tag"].get("reference") == reference:
                    return t["tag"]["_id"]
        _fail(sim, 400, "LookupNotFound", "Tag %r not found." % reference, key="reference", value=reference)
    if sim.tag_by_id(entry.get("_id")) is None:
        _fail(sim, 400, "LookupNotFound", "Tag %r not found." % entry.get("_id"), key="_id", value=entry.get("_id"))
    return entry["_id"]


def _route_plugin_put(sim):
    """OAS /plugin/manage put: install one plugin (no `id`; type disk|zip|url; zip needs an uploaded file)."""
    require_root(sim, bottle.request)
    body = _body(sim, want=dict)
    if body.get("id") or body.get("type") not in ("disk", "zip", "url"):
        _fail(sim, 400, "ServerGeneric", "A new plugin needs a type (disk, zip, url) and no id.")
    if body["type"] == "zip" and ((body.get("zip_file") or {}).get("_id") not in sim.files):
        _fail(sim, 400, "ServerGeneric", "zip_file must name an uploaded file.")
    with sim.lock:
        if any(p["name"] == body.get("name") for p in sim.plugins):
            _fail(sim, 400, "PluginDuplicateName", "Plugin %r exists." % body.get("name"), name=body.get("name"))
        # SILENT: fylr reads the name from the plugin's manifest; the simulator takes it from the body.
        plugin = {"id": max([p["id"] for p in sim.plugins] or [0]) + 1, "name": body.get("name"),
                  "enabled": bool(body.get("enabled")), "type": body["type"],
                  "url": body.get("url"), "path": body.get("path"), "update_policy": body.get("update_policy")}
        sim.plugins = sim.plugins + [plugin]
        return _json(plugin)


def _save_message(sim, item):
    block = item.get("message") or {}
    mid, version = _addressed(sim, "message", block, sim.messages)
    mid = mid or sim.next_id("message")
    _check_unique_reference(sim, "message", block.get("reference"), mid)
    entry = {k: copy.deepcopy(v) for k, v in item.items() if k not in ("message", "_groups")}
    entry.update(_basetype="message", _groups=_group_refs(sim, item.get("_groups")))
    entry["message"] = _clean_block(block)
    entry["message"].update(_id=mid, _version=version)
    sim.messages[mid] = entry
    return entry

# ------------------------------------------------------------------------------------------ collections

_HOME_PREFIXES = (("user:ref:", "reference"), ("user:login:", "login"), ("user:id:", "_id"))


def _home_collection(sim, uid):
    """The user's home collection (type "user" under system:root); SILENT: created on first use."""
    for cid, c in sim.collections.items():
        if c["collection"].get("type") == "user" and c["_owner"]["user"]["_id"] == uid:
            return cid
    cid = sim.next_id("collection")
    sim.collections[cid] = {"_basetype": "collection", "_owner": {"_basetype": "user", "user": {"_id": uid}},
                            "collection": {"_id": cid, "_id_parent": _system_collection(sim), "_version": 1,
                                           "reference": None, "displayname": {"en-US": "Home"}, "type": "user",
                                           "uuid": str(uuid.uuid4())}, "_acl": []}
    sim.collection_objects[cid] = []
    return cid


def _system_collection(sim):
    return next((i for i, c in sim.collections.items() if c["collection"].get("reference") == "system:root"), None)


def _collection_by_lookup(sim, lookup):
    """Collections by reference incl. the system references user:ref:/user:login:/user:id: (lookups.en.md)."""
    reference = lookup.get("reference") if isinstance(lookup, dict) else None
    if isinstance(reference, str):
        hit = sim.find_by_reference("collection", reference)
        if hit:
            return hit["collection"]["_id"]
        for prefix, key in _HOME_PREFIXES:
            if reference.startswith(prefix):
                value = reference[len(prefix):]
                value = int(value) if key == "_id" and value.isdigit() else value
                return _home_collection(sim, _lookup_basetype(sim, "user", {key: value}))
    return _lookup_basetype(sim, "collection", lookup)


def _route_collection_list_put(sim):
    caller = require_user(sim, bottle.request)
    body = _body(sim, want=list)
    with _rollback(sim, "_seq", deep=("collections", "collection_objects")):
        return _json([_create_collection(sim, item, _user_id(caller)) for item in body])


def _create_collection(sim, item, caller_id):
    block = item.get("collection") or {}
    if block.get("_id") is not None or block.get("_version", 1) != 1:
        _fail(sim, 400, "ServerGeneric", "PUT /collection/list only creates collections (_version 1, no _id).")
    if "lookup:_id_parent" in block:
        parent = _collection_by_lookup(sim, block["lookup:_id_parent"])
    elif block.get("_id_parent") is not None:
        parent = _ref_id(sim, "collection", {"_id": block["_id_parent"]})
    else:
        parent = None                                # SILENT: no parent sent -> a top-level collection
    if item.get("_owner"):
        owner = _wrapped_ref_id(sim, "user", item["_owner"])
    else:                                            # OAS: the owner is the owner of the parent
        owner = sim.collections[parent]["_owner"]["user"]["_id"] if parent in sim.collections else caller_id
    cid = sim.next_id("collection")
    _check_unique_reference(sim, "collection", block.get("reference"), cid)
    entry = {k: copy.deepcopy(v) for k, v in item.items() if k not in ("collection", "_owner", "_acl", "_objects")}
    entry.update(_basetype="collection", _owner={"_basetype": "user", "user": {"_id": owner}},
                 _acl=_resolve_acl(sim, item.get("_acl")))
    entry["collection"] = dict({"type": "workfolder"}, **_clean_block(block))
    entry["collection"].pop("_count", None)          # client _count is ignored (6.14.0)
    entry["collection"].update(_id=cid, _version=1, _id_parent=parent, uuid=block.get("uuid") or str(uuid.uuid4()))
    sim.collections[cid] = entry
    sim.collection_objects[cid] = []
    return entry


def _collection_object_sysids(sim, body):
    """Resolve {"objects": [{"lookup:_global_object_id": {...}} | {"_global_object_id": "n@x"}]}."""
    result = []
    for obj in (body or {}).get("objects") or []:
        if "lookup:_global_object_id" in obj:
            lookup = obj["lookup:_global_object_id"] or {}
            sysid = _lookup_record_sysid(sim, lookup.get("_objecttype"), lookup, _UuidIndex(sim))
        elif isinstance(obj.get("_global_object_id"), str):
            sysid = int(obj["_global_object_id"].split("@")[0])
            if sysid not in sim.sysids:
                _fail(sim, 400, "LookupNotFound", "Object %s not found." % obj["_global_object_id"],
                      key="_global_object_id", value=obj["_global_object_id"])
        else:
            _fail(sim, 400, "ServerGeneric", "Collection object without _global_object_id.")
        result.append((sysid, obj.get("webfrontend_props", obj.get("_webfrontend_props"))))
    return result


def _route_collection_objects(sim, collection_id, append):
    require_user(sim, bottle.request)
    body = _body(sim, want=dict)
    cid = int(collection_id) if str(collection_id).isdigit() else None
    with _rollback(sim, "collection_objects", "collection_props"):
        if cid not in sim.collections:
            _fail(sim, 404, "ResourceNotFound", "Collection %s not found." % collection_id, id=collection_id)
        entries = _collection_object_sysids(sim, body)
        new_ids = [s for s, _ in entries]
        kept = [s for s in sim.collection_objects.get(cid, []) if s not in new_ids] if append else []
        ordered = kept + list(dict.fromkeys(new_ids))   # push moves existing entries to the end
        props = {k: v for k, v in (sim.collection_props.get(cid) or {}).items() if append and k in kept}
        props.update({s: copy.deepcopy(p) for s, p in entries if p is not None})
        sim.collection_objects[cid] = ordered
        sim.collection_props[cid] = props
        return _json({"_version": sim.collections[cid]["collection"]["_version"], "count": len(ordered)})

# ------------------------------------------------------------------------------------------------ events

# parameters.md 6.3 (fylr event-type-reference): which group a known fylr type belongs to.
_FRONTEND_TYPES = {"DETAIL_VIEW", "SEARCH", "FRONTEND_ERROR", "ASSET_DOWNLOAD_CONFIRMATION_MESSAGE"}
_SYSTEM_TYPES = {"BACKUP_DONE", "BACKUP_FAILED", "BASE_CONFIG_UPDATE", "BASE_CONFIG_ERROR", "DATAMODEL_COMMIT",
                 "CUSTOM_DATA_TYPE_UPDATER", "CUSTOM_DATA_TYPE_UPDATER_ERROR", "EMAIL_SENT", "EMAIL_SENT_FAILED",
                 "FILE_METADATA", "FILE_METADATA_ERROR", "FILE_PRODUCE", "FILE_PRODUCE_ERROR", "FILE_DELETE",
                 "FILE_DELETE_ERROR", "FILE_MOVE", "FILE_MOVE_ERROR", "NOTIFICATION_SCHEDULER_FAILED",
                 "OBJECT_INSERT", "OBJECT_UPDATE", "OBJECT_DELETE", "OBJECT_UNDELETE", "OBJECT_PURGE",
                 "OBJECTTYPE_UPDATE", "COLLECTION_INSERT", "COLLECTION_UPDATE", "COLLECTION_DELETE",
                 "COLLECTION_UPLOAD", "JANITOR", "JANITOR_ERROR", "WEBHOOK", "WEBHOOK_ERROR", "INDEX_SWITCH",
                 "FILE_DOWNLOAD", "FILE_DOWNLOAD_ERROR", "OBJECT_DOWNLOAD", "USER_LOGIN", "USER_LOGIN_FAILED",
                 "USER_LOGOUT"}
_SYSTEM_PREFIXES = ("LICENSE_", "USER_", "GROUP_", "POOL_", "TAG_", "MESSAGE_", "TRANSITION_", "MAPPING_",
                    "OBJECT_INDEX", "REINDEX_", "EXPORT_", "FILE_UPLOAD", "LDAP_", "SAML_")


def event_type_group(event_type):
    """"FRONTEND", "PLUGIN", "SYSTEM" (any root-only system group), "TASK" or None (unknown to fylr)."""
    if not isinstance(event_type, str):
        return None
    if event_type.startswith("TASK"):
        return "TASK"
    if event_type in _FRONTEND_TYPES:
        return "FRONTEND"
    if event_type.startswith("PLUGIN"):         # SILENT: plugin event types are named PLUGIN_*
        return "PLUGIN"
    if event_type in _SYSTEM_TYPES or event_type.startswith(_SYSTEM_PREFIXES):
        return "SYSTEM"
    return None


def _route_event_list_post(sim):
    caller = require_user(sim, bottle.request)
    skip = _skip_constraints_param(sim)
    if skip and not _holds_root_right(sim, caller):
        _fail(sim, 400, "ServerGeneric", "skip_constraints needs system.root.")
    body = _body(sim, want=list)
    with _rollback(sim, "_seq", "events"):
        saved = [_save_event(sim, item, skip, _user_id(caller)) for item in body]
        if _flag("background"):
            return _json({"background": "ok"})
        return _json(saved)


def _save_event(sim, item, skip, caller_id):
    block = item.get("event") or {}
    etype = block.get("type")
    group = event_type_group(etype)
    if group in (None, "TASK") or (group == "SYSTEM" and not skip):
        _fail(sim, 400, "EventTypeNotAllowed", "The event type %s is not allowed." % etype, type=etype)
    if item.get("user") is not None and not skip:
        _fail(sim, 400, "ServerGeneric", "An event user needs skip_constraints.")
    uid = _wrapped_ref_id(sim, "user", item.get("user")) if item.get("user") is not None else caller_id
    eid = sim.next_id("event")
    event = {"_id": eid, "type": etype, "timestamp": block.get("timestamp") or _now(),
             "basetype": block.get("basetype"), "objecttype": block.get("objecttype"),
             "object_id": block.get("object_id"), "system_object_id": block.get("system_object_id"),
             "object_version": block.get("object_version"), "info": copy.deepcopy(block.get("info") or {}),
             "pollable": block.get("pollable", False), "schema": block.get("schema")}
    entry = {"_basetype": "event", "event": event, "user": {"_basetype": "user", "user": {"_id": uid}}}
    sim.events[eid] = entry
    return entry

# ------------------------------------------------------------------------------------------------ records

_TOP_LEVEL_KEYS = {"_objecttype", "_mask", "_system_object_id", "_uuid", "_tags", "_owner", "_comment",
                   "_create_user", "_created", "_last_modified", "_latest_version_deleted_at", "_acl"}
# Read-only keys a backup may still carry; fylr ignores them (api.md 6.6 PROPOSAL list).
_IGNORED_KEYS = {"_standard", "_format", "_generated_rights", "_changelog", "_collections", "_published",
                 "_published_count", "_system_tags", "_path", "_paths", "_level", "_has_children", "_score",
                 "_sort", "_best_mask", "_latest_version", "_objecttype_display_name", "_mask_display_name",
                 "_global_object_id", "_mapped_metadata_created", "_private_acl", "_system_object_id_parent"}
_BLOCK_SYSTEM_KEYS = {"_id", "_version", "_pool", "_id_parent", "lookup:_id", "lookup:_id_parent",
                      "_version:auto_increment", "_parents", "_owner", "_last_modified", "_latest_version"}


class _UuidIndex:
    """uuid -> sysid, built on first use and kept current during one batch."""

    def __init__(self, sim):
        self.sim, self.index = sim, None

    def get(self, value):
        if self.index is None:
            self.index = {r["_uuid"]: r["_system_object_id"]
                          for recs in self.sim.records.values() for r in recs.values()}
        return self.index.get(value)

    def add(self, value, sysid):
        if self.index is not None:
            self.index[value] = sysid


def _objecttype_names(sim):
    names = {t["name"] for t in (sim.schema or {}).get("tables") or [] if not t.get("owned_by")}
    return names | {o["objecttype"]["name"] for o in sim.objecttypes}


def _schema_table(sim, name):
    return next((t for t in (sim.schema or {}).get("tables") or [] if t.get("name") == name), None)


def _lookup_record_sysid(sim, objecttype, lookup, uuids, deferred=None):
    """System object id for a record lookup ({_system_object_id}|{_uuid}|{<column>: value}).

    With _allow_defer a missing target addressed by _system_object_id is accepted (returned as is and
    noted in `deferred`); it resolves when the target is saved (links are stored by system id)."""
    if not isinstance(lookup, dict):
        _fail(sim, 400, "LookupNotFound", "Invalid lookup %r." % (lookup,), key="lookup:_id", value=lookup)
    allow_defer = bool(lookup.get("_allow_defer"))
    keys = {k: v for k, v in lookup.items() if k not in ("_allow_defer", "_objecttype")}
    if len(keys) != 1:
        _fail(sim, 400, "LookupNotFound", "A lookup needs exactly one key.", key="lookup:_id", value=lookup)
    key, value = next(iter(keys.items()))
    if key == "_system_object_id":
        hit_ot, _ = sim.record_by_sysid(value)
        if hit_ot and objecttype in (None, hit_ot):
            return value
        if hit_ot is None and allow_defer and isinstance(value, int):
            if deferred is not None:
                deferred.add(value)
            return value
    elif key == "_uuid":
        sysid = uuids.get(value)
        if sysid is not None and objecttype in (None, sim.sysids[sysid][0]):
            return sysid
        # SILENT: deferring a _uuid lookup is not simulated (links are stored by system id); restores
        # defer by _system_object_id.
    else:
        hits = [r["_system_object_id"] for r in (sim.records.get(objecttype) or {}).values()
                if r["versions"][-1]["fields"].get(key) == value]
        if len(hits) > 1:
            _fail(sim, 400, "LookupFoundTooMany", "Lookup %s=%r found %d objects." % (key, value, len(hits)),
                  count=len(hits), value=value)
        if hits:
            return hits[0]
    _fail(sim, 400, "LookupNotFound", "Lookup %s=%r found no %s object." % (key, value, objecttype or ""),
          key=key, value=value)


class _RecordBatch:
    """One POST /db/{objecttype} request."""

    def __init__(self, sim, objecttype, caller, params):
        self.sim, self.ot, self.caller, self.params = sim, objecttype, caller, params
        self.caller_id = _user_id(caller)
        self.is_root = _holds_root_right(sim, caller)
        self.uuids = _UuidIndex(sim)
        self.deferred = set()
        self.table = _schema_table(sim, objecttype)

    # -- one record -------------------------------------------------------------------------------
    def save(self, item):
        sim, ot = self.sim, self.ot
        if not isinstance(item, dict) or not isinstance(item.get(ot), dict):
            _fail(sim, 400, "RecordUnmarshalJson", "Each record needs an object under %r." % ot, msg="missing block")
        if item.get("_objecttype") not in (None, ot):
            _fail(sim, 400, "SchemaInconsistent", "_objecttype %r does not match %r." % (item["_objecttype"], ot),
                  msg="objecttype mismatch")
        unknown = set(item) - _TOP_LEVEL_KEYS - _IGNORED_KEYS - {ot}
        if unknown:
            _fail(sim, 400, "SchemaInconsistent", "Unknown keys %s." % sorted(unknown), msg="unknown keys")
        block = item[ot]
        existing = self.addressed_record(block)
        version = block.get("_version")
        if block.get("_version:auto_increment") and existing:
            version = len(existing["versions"]) + 1
        if existing is None:
            if version not in (None, 1):
                _fail(sim, 400, "VersionMismatch", "Version %r for a new object; 1 expected." % version,
                      expected=1, expectedversion=1, got=version, receivedversion=version, currentversion=0, object=ot)
            return self.create(item, block)
        if version in (None, 1):
            _fail(sim, 400, "DatabaseUniqueKeyViolation", "Object %s exists." % existing["_system_object_id"],
                  name="_system_object_id")
        _check_next_version(sim, ot, len(existing["versions"]), version)
        return self.update(existing, item, block, version)

    def addressed_record(self, block):
        """Stored record an update addresses by <ot>._id or <ot>."lookup:_id" (api.md 6.6)."""
        sim, ot = self.sim, self.ot
        if "lookup:_id" in block:
            lookup = dict(block["lookup:_id"] or {})
            lookup.pop("_allow_defer", None)
            if block.get("_version", 1) in (None, 1):
                key, value = next(iter(lookup.items()), (None, None))
                if (key == "_system_object_id" and value not in sim.sysids) or \
                        (key == "_uuid" and self.uuids.get(value) is None):
                    return None                      # create addressed by its future system id / uuid
            sysid = _lookup_record_sysid(sim, ot, lookup, self.uuids)
            return sim.record_by_sysid(sysid)[1]
        if block.get("_id") is not None and block.get("_version", 1) not in (None, 1):
            rec = (sim.records.get(ot) or {}).get(block["_id"])
            if rec is None:
                _fail(sim, 400, "LookupNotFound", "%s %r not found." % (ot, block["_id"]),
                      key="_id", value=block["_id"])
            return rec
        return None

    def create(self, item, block):
        sim, ot = self.sim, self.ot
        sysid = item.get("_system_object_id")
        lookup = block.get("lookup:_id") or {}
        if sysid is None:
            sysid = lookup.get("_system_object_id")
        uid = item.get("_uuid") or str(uuid.uuid4())
        # SILENT: an existing _system_object_id / _uuid is a unique-key violation (code of that kind).
        if sysid is not None and (not isinstance(sysid, int) or sysid in sim.sysids):
            _fail(sim, 400, "DatabaseUniqueKeyViolation", "_system_object_id %r exists." % sysid,
                  name="_system_object_id", value=sysid)
        if self.uuids.get(uid) is not None:
            _fail(sim, 400, "DatabaseUniqueKeyViolation", "_uuid %r exists." % uid, name="_uuid", value=uid)
        if sysid is None:
            sysid = sim.next_id("sysid")
        sim.bump_seq("sysid", sysid)
        oid = block.get("_id") if isinstance(block.get("_id"), int) and block["_id"] not in sim.records.get(ot, {}) \
            else sim.next_id("obj:" + ot)
        sim.bump_seq("obj:" + ot, oid)
        record = {"_id": oid, "_system_object_id": sysid, "_uuid": uid,
                  "deleted_at": item.get("_latest_version_deleted_at"), "versions": []}
        record["versions"] = [self.version(item, block, 1, None, oid)]
        sim.records.setdefault(ot, {})[oid] = record
        sim.sysids[sysid] = (ot, oid)
        self.uuids.add(uid, sysid)
        self.resolve_waiting_children(sysid, oid)
        self.event("OBJECT_INSERT", record)
        return record

    def update(self, existing, item, block, version):
        sim, ot = self.sim, self.ot
        previous = existing["versions"][-1]
        record = dict(existing)
        record["versions"] = existing["versions"] + [self.version(item, block, version, previous, existing["_id"])]
        if "_latest_version_deleted_at" in item:
            record["deleted_at"] = item["_latest_version_deleted_at"]
        sim.records[ot][existing["_id"]] = record
        self.event("OBJECT_UPDATE", record)
        return record

    # -- one version ------------------------------------------------------------------------------
    def version(self, item, block, number, previous, oid):
        """Stored Version; fields not sent are kept only with _version:auto_increment (merge)."""
        sim = self.sim
        merge = bool(block.get("_version:auto_increment")) and previous is not None
        now = _now()
        fields = dict(previous["fields"]) if merge else {}
        fields.update(self.fields(block))
        if "_create_user" in item:
            if not self.is_root:
                _fail(sim, 403, "SystemRightRequired", "_create_user needs system.root.", rights=["system.root"])
            create_user = _wrapped_ref_id(sim, "user", item["_create_user"])
        else:
            create_user = self.caller_id
        return {
            "_version": number,
            # SILENT (api.md 4.5 GAP): timestamps sent by the client are kept, else set by the server.
            "_created": item.get("_created") or now, "_last_modified": item.get("_last_modified") or now,
            "_comment": item.get("_comment"), "_create_user": create_user,
            "_owner": self.owner(item, previous, merge),
            "_pool": self.pool(block, previous, merge),
            "_id_parent": self.parent(block, previous, merge, number, oid),
            "_tags": self.tags(item, previous, merge),
            "fields": fields,
        }

    def owner(self, item, previous, merge):
        if "_owner" in item:
            return _wrapped_ref_id(self.sim, "user", item["_owner"])
        # SILENT: no _owner sent -> none (merge keeps the previous one).
        return previous["_owner"] if merge else None

    def pool(self, block, previous, merge):
        if "_pool" in block:
            return _wrapped_ref_id(self.sim, "pool", block["_pool"])
        return previous["_pool"] if merge else None

    def tags(self, item, previous, merge):
        if "_tags" not in item:
            return list(previous["_tags"]) if merge else []
        result = []
        for entry in item["_tags"] or []:
            inner = entry.get("tag", entry) if isinstance(entry, dict) else {}
            if "lookup:_id" in inner:
                result.append(_lookup_basetype(self.sim, "tag", inner["lookup:_id"]))
            elif inner.get("_id") is not None and self.sim.tag_by_id(inner["_id"]):
                result.append(inner["_id"])
            else:
                _fail(self.sim, 400, "TagNotFound", "Tag %r not found." % (inner,), id=inner.get("_id"))
        return list(dict.fromkeys(result))

    def parent(self, block, previous, merge, number, oid):
        sim, ot = self.sim, self.ot
        if "lookup:_id_parent" in block:
            lookup = block["lookup:_id_parent"]
            if lookup is None:
                return None
            waiting = set()
            sysid = _lookup_record_sysid(sim, ot, lookup, self.uuids, waiting)
            if waiting:                               # parent saved later: patched by resolve_waiting_children
                sim.deferred_parents = dict(sim.deferred_parents)
                sim.deferred_parents[sysid] = list(sim.deferred_parents.get(sysid, [])) + [[ot, oid, number]]
                self.deferred.add(sysid)
                return None
            return sim.sysids[sysid][1]
        if "_id_parent" in block:
            parent = block["_id_parent"]
            if parent is not None and parent not in (sim.records.get(ot) or {}):
                _fail(sim, 400, "LookupNotFound", "Parent %r not found." % parent, key="_id_parent", value=parent)
            return parent
        return previous["_id_parent"] if merge else None

    def resolve_waiting_children(self, sysid, oid):
        sim = self.sim
        waiting = sim.deferred_parents.get(sysid)
        if not waiting:
            return
        sim.deferred_parents = {k: v for k, v in sim.deferred_parents.items() if k != sysid}
        for child_ot, child_id, number in waiting:
            child = dict(sim.records[child_ot][child_id])
            versions = list(child["versions"])
            versions[number - 1] = dict(versions[number - 1], _id_parent=oid)
            child["versions"] = versions
            sim.records[child_ot][child_id] = child

    # -- fields -----------------------------------------------------------------------------------
    def fields(self, block):
        allowed = self.allowed_fields()
        result = {}
        for key, value in block.items():
            if key in _BLOCK_SYSTEM_KEYS or key.startswith("_reverse_nested:"):
                continue       # reverse nested objects are saved as their own objects (skip_reverse_nested)
            if key.startswith("_") and not key.startswith("_nested:"):
                continue       # read-only system keys of a read response
            if allowed is not None and key not in allowed:
                _fail(self.sim, 400, "SchemaInconsistent", "Unknown field %s.%s." % (self.ot, key), msg=key)
            result[key] = self.value(key, value)
        return result

    def allowed_fields(self):
        if not self.table or "columns" not in self.table:
            return None
        names = {c["name"] for c in self.table["columns"]}
        prefix = self.ot + "__"
        names |= {"_nested:" + t["name"] for t in (self.sim.schema or {}).get("tables") or []
                  if t.get("owned_by") and t["name"].startswith(prefix)}
        return names

    def value(self, key, value):
        if key.startswith("_nested:"):
            return [self.nested_row(row) for row in value or []]
        if isinstance(value, dict) and "_objecttype" in value:
            return self.link(value)
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value) \
                and any(k in v for v in value for k in ("_id", "lookup:_id", "preferred", "eas:url")):
            return self.file_entries(value)
        return copy.deepcopy(value)

    def nested_row(self, row):
        result = {"_uuid": row.get("_uuid") or str(uuid.uuid4())}
        for key, value in row.items():
            if key.startswith("_") and not key.startswith("_nested:"):
                continue
            result[key] = self.value(key, value)
        return result

    def link(self, value):
        sim = self.sim
        target = value["_objecttype"]
        if target not in _objecttype_names(sim):
            _fail(sim, 400, "UnknownObjecttype", "Unknown object type %s." % target, objecttype=target)
        inner = value.get(target) if isinstance(value.get(target), dict) else {}
        if "lookup:_id" in inner:
            sysid = _lookup_record_sysid(sim, target, inner["lookup:_id"], self.uuids, self.deferred)
        elif inner.get("_id") is not None:
            rec = (sim.records.get(target) or {}).get(inner["_id"])
            if rec is None:
                _fail(sim, 400, "LookupNotFound", "%s %r not found." % (target, inner["_id"]), key="_id",
                      value=inner["_id"])
            sysid = rec["_system_object_id"]
        elif value.get("_system_object_id") is not None:
            sysid = _lookup_record_sysid(sim, target, {"_system_object_id": value["_system_object_id"]}, self.uuids)
        else:
            _fail(sim, 400, "SchemaInconsistent", "Link to %s without _id or lookup:_id." % target, msg="link")
        return {"_objecttype": target, "_system_object_id": sysid}

    def file_entries(self, entries):
        sim = self.sim
        result = []
        for entry in entries:
            if "lookup:_id" in entry:
                file_id = _file_by_reference(sim, (entry["lookup:_id"] or {}).get("reference"))
            elif entry.get("_id") in sim.files:
                file_id = entry["_id"]
            else:
                _fail(sim, 400, "LookupNotFound", "File %r not found." % (entry.get("_id"),), key="_id",
                      value=entry.get("_id"))
            stored = {"_id": file_id, "preferred": bool(entry.get("preferred")), "name": entry.get("name")}
            if entry.get("frontend_prefs"):
                stored["frontend_prefs"] = copy.deepcopy(entry["frontend_prefs"])
            result.append(stored)
        if result and not any(e["preferred"] for e in result):
            result[0]["preferred"] = True            # SILENT: exactly one entry must be preferred
        return result

    # -- side effects -----------------------------------------------------------------------------
    def event(self, etype, record):
        if self.params["skip_events"]:
            return
        sim = self.sim
        eid = sim.next_id("event")
        sim.events[eid] = {"_basetype": "event", "user": {"_basetype": "user", "user": {"_id": self.caller_id}},
                           "event": {"_id": eid, "type": etype, "timestamp": _now(), "basetype": "object",
                                     "objecttype": self.ot, "object_id": record["_id"],
                                     "system_object_id": record["_system_object_id"],
                                     "object_version": len(record["versions"]), "info": {}, "pollable": True,
                                     "schema": "USER"}}

    def response(self, record, fmt):
        version = record["versions"][-1]
        block = {"_id": record["_id"], "_version": version["_version"]}
        out = {"_objecttype": self.ot, "_mask": "_all_fields", "_system_object_id": record["_system_object_id"],
               "_uuid": record["_uuid"], "_global_object_id": "%d@%s" % (record["_system_object_id"], self.sim.name),
               self.ot: block}
        if fmt != "short":
            # SILENT: only ids, versions and plain field values are echoed (the saved record's identity).
            block.update({k: v for k, v in version["fields"].items() if not isinstance(v, (dict, list))})
        return out


def _file_by_reference(sim, reference):
    hits = [i for i, f in sim.files.items() if reference is not None and f.get("reference") == reference]
    if not hits:
        _fail(sim, 400, "LookupNotFound", "File reference %r not found." % reference, key="reference", value=reference)
    return hits[0]


def _route_db_post(sim, objecttype):
    caller = require_user(sim, bottle.request)
    if objecttype not in _objecttype_names(sim):
        _fail(sim, 400, "UnknownObjecttype", "Unknown object type %s." % objecttype, objecttype=objecttype)
    body = _body(sim, code="RecordUnmarshalJson", want=list)
    params = {"skip_constraints": _skip_constraints_param(sim), "skip_reverse_nested": _flag("skip_reverse_nested"),
              "skip_events": _flag("skip_events"), "format": _query("format") or "full"}
    if params["skip_events"] and not _holds_root_right(sim, caller):
        _fail(sim, 403, "SystemRightRequired", "skip_events needs system.root.", rights=["system.root"])
    _ensure_state(sim)
    with _rollback(sim, "_seq", "records", "sysids", "events", deep=("deferred_parents",)):
        batch = _RecordBatch(sim, objecttype, caller, params)
        saved = [batch.save(item) for item in body]
        for sysid in batch.deferred:               # 6.32.0: the sequence skips deferred system ids
            sim.bump_seq("sysid", sysid)
        latest = {r["_system_object_id"]: r for r in saved}   # a record saved twice: answer its last state
        return _json([batch.response(latest[r["_system_object_id"]], params["format"]) for r in saved])

# ------------------------------------------------------------------------------------------------- files

_CLASS_BY_EXTENSION = {"png": "image", "jpg": "image", "jpeg": "image", "gif": "image", "tif": "image",
                       "tiff": "image", "webp": "image", "mp4": "video", "mov": "video", "mp3": "audio",
                       "wav": "audio", "pdf": "office", "doc": "office", "docx": "office", "txt": "unknown"}


def _renditions_for(extension):
    """Rendition names a fylr "produces" for an extension: the simulator's (datagen) configuration."""
    for ext, _cls, _mime, renditions in datagen._FILE_KINDS.values():
        if ext == extension:
            return renditions
    return ("preview",) if _CLASS_BY_EXTENSION.get(extension) in ("image", "video", "office") else ()


def _split_name(filename):
    base = os.path.basename(filename or "")
    extension = base.rsplit(".", 1)[1].lower() if "." in base else ""
    return base, extension


def _reference_owner(sim, reference):
    """File id already holding `reference` (an original or a manual rendition), else None."""
    if reference in (None, ""):
        return None
    for fid, f in sim.files.items():
        if f.get("reference") == reference:
            return fid
    hit = (getattr(sim, "rendition_references", None) or {}).get(reference)
    return hit[0] if hit else None


def _duplicate_reference_error(sim, reference, file_id):
    _fail(sim, 400, "EasDuplicateReference",
          "Duplicate file reference provided: %s with file id %d" % (reference, file_id),
          reference=reference, file_id=file_id)


def _file_json(sim, f, duplicate_of=None):
    versions = {name: {"status": "done", "hash": hashlib.sha256(data).hexdigest(), "filesize": len(data),
                       "extension": "png" if name != "original" else f["extension"]}
                for name, data in f["versions"].items()}
    if f.get("leave"):
        versions.setdefault("original", {"status": "done", "url": f.get("remote_url")})
    out = {"_id": f["_id"], "original_filename": f["original_filename"], "extension": f["extension"],
           "class": f["class"], "reference": f.get("reference"), "produce_versions": f["produce_versions"],
           "is_original": True, "status": "done", "leave": bool(f.get("leave")), "versions": versions,
           "hash": versions.get("original", {}).get("hash")}
    if duplicate_of is not None:
        out["_duplicates"] = [{"_id": duplicate_of, "reference": f.get("reference")}]
    return out


def _store_upload(sim, spec, caller_id, skip_duplicate_reference):
    """Store one upload described by `spec` (filename, data, reference, produce_versions, leave,
    remote_url, version_name, id_parent, mime_type).  Returns the file JSON."""
    reference = spec.get("reference") or None
    owner = _reference_owner(sim, reference)
    if owner is not None:
        if skip_duplicate_reference:
            return _file_json(sim, sim.files[owner], duplicate_of=owner)
        _duplicate_reference_error(sim, reference, owner)
    if spec.get("version_name"):
        return _store_manual_rendition(sim, spec, reference)
    name, extension = _split_name(spec.get("filename"))
    if not name:
        _fail(sim, 400, "EasEmptyFilename", "The filename is empty.")
    produce = spec.get("produce_versions", True)
    data = spec.get("data")
    versions = {} if spec.get("leave") or data is None else {"original": data}
    if produce and data is not None:
        # Renditions via datagen.produce_version so a target's produced renditions equal the source's.
        versions.update({v: datagen.produce_version(data, v) for v in _renditions_for(extension)})
    fid = sim.next_id("file")
    sim.files = dict(sim.files)
    sim.files[fid] = {"_id": fid, "original_filename": name, "extension": extension,
                      "class": _CLASS_BY_EXTENSION.get(extension, "unknown"),
                      "mime_type": spec.get("mime_type") or mimetypes.guess_type(name)[0] or "application/octet-stream",
                      "reference": reference, "leave": bool(spec.get("leave")),
                      "remote_url": spec.get("remote_url") if spec.get("leave") else None,
                      "produce_versions": bool(produce), "versions": versions,
                      "upload_user": caller_id, "date_uploaded": _now()}
    return _file_json(sim, sim.files[fid])


def _store_manual_rendition(sim, spec, reference):
    parent = sim.files.get(spec.get("id_parent"))
    if parent is None:
        _fail(sim, 400, "EasNoParentID", "Parent file %r not found." % spec.get("id_parent"), id=spec.get("id_parent"))
    if parent["produce_versions"]:
        _fail(sim, 400, "UploadError", "Manual renditions need an original with produce_versions=false.")
    if spec.get("data") is None:
        _fail(sim, 400, "UploadError", "A manual rendition needs bytes.")
    updated = dict(parent, versions=dict(parent["versions"], **{spec["version_name"]: spec["data"]}))
    sim.files = dict(sim.files)
    sim.files[parent["_id"]] = updated
    if reference:
        sim.rendition_references = dict(sim.rendition_references, **{reference: [parent["_id"], spec["version_name"]]})
    return dict(_file_json(sim, updated), version_name=spec["version_name"])


def _json_list_param(name):
    raw = _query(name)
    if raw in (None, ""):
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return [raw]
    return value if isinstance(value, list) else [value]


def _route_eas_put(sim):
    caller = require_user(sim, bottle.request)
    parts = [f for _name, f in bottle.request.files.allitems()]
    if not parts:
        _fail(sim, 400, "UploadError", "No file part in the multipart body.")
    references, filenames = _json_list_param("references"), _json_list_param("filenames")
    produce, version_names = _json_list_param("produce_versions"), _json_list_param("version_names")
    id_parents = _json_list_param("id_parents")

    def nth(values, i, default=None):
        return values[i] if i < len(values) and values[i] not in (None, "") else default

    specs = []
    for i, part in enumerate(parts):
        specs.append({"filename": nth(filenames, i) or part.raw_filename, "data": part.file.read(),
                      "reference": nth(references, i), "produce_versions": _truthy(nth(produce, i, True)),
                      "version_name": nth(version_names, i), "id_parent": nth(id_parents, i)})
    _ensure_state(sim)
    with _rollback(sim, "_seq", "files", "rendition_references"):
        return _json([_store_upload(sim, s, _user_id(caller), False)
                      for s in specs])


def _fetch(sim, url, skip_head_request, need_bytes):
    """Fetch an rput URL ourselves with requests.  Loopback is allowed here although real fylr blocks
    it by default (fylr.eas.rput.blockedHosts): simulated sources live on 127.0.0.1.  Must run
    OUTSIDE sim.lock (the source may be this very simulator).  Returns (data | None, filename)."""
    if not url or not urlparse(url).scheme.startswith("http"):
        _fail(sim, 400, "EasInvalidURL", "Invalid URL %r." % (url,), url=url)
    name = unquote(os.path.basename(urlparse(url).path))
    try:
        if not skip_head_request:
            head = requests.head(url, timeout=30, allow_redirects=True)
            if head.status_code != 200:
                head = requests.get(url, timeout=30, stream=True)
                head.close()
            if head.status_code != 200:
                _fail(sim, 400, "EasRputError", "Upstream answered %d." % head.status_code,
                      url=url, msg="HTTP %d" % head.status_code)
            match = re.search(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)', head.headers.get("Content-Disposition", ""))
            name = unquote(match.group(1)) if match else name
        if not need_bytes:
            return None, name
        response = requests.get(url, timeout=60)
    except requests.RequestException as exc:
        _fail(sim, 400, "EasRputError", "Fetching %s failed." % url, url=url, msg=str(exc))
    if response.status_code != 200:
        _fail(sim, 400, "EasRputError", "Upstream answered %d." % response.status_code,
              url=url, msg="HTTP %d" % response.status_code)
    return response.content, name


def _rput_spec(sim, entry):
    """One rput entry (query of /eas/rput or element of /eas/rput/bulk) -> upload spec with bytes.

    leave=true stores a remote reference: the original bytes are NOT kept; they are fetched only when
    renditions must be produced (like fylr, which still produces renditions locally)."""
    leave = _truthy(entry.get("leave", False))
    produce = _truthy(entry.get("produce_versions", True))
    skip_head = _truthy(entry.get("skip_head_request", False))
    if skip_head and not entry.get("filename"):
        _fail(sim, 400, "SkipHeadRequestError", "skip_head_request needs a filename.")
    if entry.get("generate_metadata") is not None and not _truthy(entry["generate_metadata"]) \
            and not (leave and not produce):
        _fail(sim, 400, "ServerGeneric", "generate_metadata=false needs leave=true and produce_versions=false.")
    need_bytes = not leave or produce or bool(entry.get("version_name"))
    data, name = _fetch(sim, entry.get("url"), skip_head, need_bytes)
    metadata = (entry.get("metadata") or {}).get("_technical_metadata") or {}
    id_parent = entry.get("id_parent")
    return {"filename": entry.get("filename") or name, "data": data, "reference": entry.get("reference"),
            "produce_versions": produce, "leave": leave, "remote_url": entry.get("url"),
            "version_name": entry.get("version_name") or None, "mime_type": metadata.get("mime_type"),
            "id_parent": int(id_parent) if str(id_parent or "").isdigit() else id_parent}


def _route_eas_rput(sim):
    caller = require_user(sim, bottle.request)
    spec = _rput_spec(sim, {k: _query(k) for k in bottle.request.query.keys()})
    _ensure_state(sim)
    with _rollback(sim, "_seq", "files", "rendition_references"):
        return _json([_store_upload(sim, spec, _user_id(caller), _flag("skip_duplicate_reference"))])


def _route_eas_rput_bulk(sim):
    caller = require_user(sim, bottle.request)
    body = _body(sim, want=list)
    specs = [_rput_spec(sim, entry if isinstance(entry, dict) else {}) for entry in body]
    _ensure_state(sim)
    with _rollback(sim, "_seq", "files", "rendition_references"):
        skip = _flag("skip_duplicate_reference")
        return _json([_store_upload(sim, s, _user_id(caller), skip) for s in specs])

# ------------------------------------------------------------------------------------------------ install


def install(app, sim):
    """Add the fylr write routes to `app` (a bottle.Bottle serving `sim`)."""
    _ensure_state(sim)

    def route(method, path, handler):
        app.route(API + path, method=method, callback=lambda **kw: handler(sim, **kw))

    route("POST", "/system/purgeall", _route_purgeall)
    route("POST", "/system/reindex", _route_reindex)
    route("GET", "/schema/user/HEAD", _route_schema_head_get)   # static route: wins over /schema/user/<v>
    route("POST", "/schema/user/HEAD", _route_schema_head_post)
    route("POST", "/mask/HEAD", _route_mask_head_post)
    route("POST", "/l10n/user/HEAD", _route_l10n_head_post)
    route("POST", "/schema/commit", _route_schema_commit)
    route("POST", "/config", _route_config_post)
    route("POST", "/tags", _route_tags_post)
    route("POST", "/objecttype", _route_objecttype_post)
    route("PUT", "/plugin/manage", _route_plugin_put)
    for method in ("POST", "PUT"):                               # OAS: PUT is an alias of POST
        route(method, "/group", _basetype_route("groups", _save_group))
        route(method, "/user", _route_user_post)
        route(method, "/pool", _basetype_route("pools", _save_pool))
        route(method, "/message", _basetype_route("messages", _save_message))
        route(method, "/eas/put", _route_eas_put)
    route("PUT", "/collection/list", _route_collection_list_put)
    route("POST", "/collection/objects/<collection_id>",
          lambda s, collection_id: _route_collection_objects(s, collection_id, append=False))
    route("POST", "/collection/push/<collection_id>",
          lambda s, collection_id: _route_collection_objects(s, collection_id, append=True))
    route("POST", "/event/list", _route_event_list_post)
    route("POST", "/db/<objecttype>", _route_db_post)
    route("POST", "/eas/rput", _route_eas_rput)
    route("POST", "/eas/rput/bulk", _route_eas_rput_bulk)
