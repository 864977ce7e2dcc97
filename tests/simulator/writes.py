"""fylr WRITE routes of the instance simulator: everything a restore sends to a fylr target.

install(app, sim) adds the routes below under /api/v1 (all exist in fylr's OpenAPI route list):

    POST /system/purgeall                 POST /system/reindex
    GET|POST /schema/user/HEAD            POST /mask/HEAD    POST /l10n/user/HEAD    POST /schema/commit
    POST /config
    POST /tags   POST /group   POST /user   POST /pool   POST /message   POST /objecttype   PUT /plugin/manage
    POST /right/{context}/presets   PUT /xmlmapping/mapping   POST /publish   POST /transitions
    POST /plugin/manage/{id}          (extras.py, with the file checks of config / pool / objecttype / plugin)
    PUT /collection/list   PUT|POST /collection   POST /collection/objects/{id}   POST /collection/push/{id}
    POST /event/list
    POST|DELETE /db/{objecttype}          (records.py)
    POST|PUT /eas/put   POST /eas/rput   POST /eas/rput/bulk        (files.py; rput is asynchronous)

Bodies are converted into the stored forms of store.py (ids, not lookups).  Every request that fails
leaves the instance unchanged (writeutil.rollback).  Where the docs are silent the stricter choice is
taken and commented with "SILENT:".  State the write side adds to the Instance (plain attributes, cloned
with it; writeutil.ensure_state):
    sim.datamodel_head      {"schema","mask","l10n"} uncommitted HEAD edits, or absent/None
    sim.schema_commits      list of {"version","reindex"} per commit
    sim.reindex_calls       number of POST /system/reindex calls
    sim.deferred_parents    {parent sysid: [[objecttype, child _id, version number], ...]} parent lookups
                            deferred with _allow_defer until the parent is saved
    sim.deferred_uuids      {uuid: [["link", ot, _id] | ["parent", ot, _id, version] | ["collection", cid]]}
                            what waits for the record with that _uuid (deferred _uuid lookups)
    sim.rendition_references {reference: [file id, version name]} references of manual renditions

Basetype rules beyond writeutil's lookups and key lists (writeutil.BASETYPE_KEYS): group / pool /
message / tag versions (create 1, update stored + 1, no `_id` on a create; a taggroup `_version` is
checked only when sent - OAS TagGroup has none); users are created without `_id` and updated with it
(OAS /user post), non-root callers only edit themselves (403 RightRequired), e-mail addresses are unique
(409 UserDuplicateEmail, compared case-insensitively - SILENT - and NOT skipped by skip_constraints),
`_password_hash` / `_created_at` / `_last_seen_at` only by root (400 ColumnNeedsSystemRoot) and the
latter two only on create (400 ColumnCanNotBeUpdated), a new password ends the user's sessions; every user
gets its home collection when it is created (store.Instance.add_home_collection); only the server creates
collections of type "user"; a collection's owner is its parent's owner.  POST /tags: a removed tag still
used by records -> 400 TagsInUse, one only bound to pools/objecttypes -> 202 until delete_policy=remove_tags.
POST /event/list?background=true answers {"background":"ok"} and saves after sim.background_delay,
dropping invalid entries.  A purge leaves fylr "purge" (503) for sim.purge_busy_seconds; POST
/system/reindex lets the search index catch up sim.index_lag seconds later.
"""
import copy
import hashlib
import io
import re
import threading
import time
import uuid
import zipfile

import bottle

from . import datagen, extras, files, records
from . import writeutil as w
from .auth import require_root, require_user
from .writeutil import API

# --------------------------------------------------------------------------------------------- purge


def _purge(sim, set_password):
    """Reset to what a fresh fylr holds (= datagen size "empty"): the system:root collection, root user
    (with a new, empty home collection), system pools, an empty committed datamodel, the default config."""
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
    w.reset_state(sim)
    sim._seq.clear()
    for kind, table in (("user", sim.users), ("pool", sim.pools), ("collection", sim.collections)):
        if table:
            sim.bump_seq(kind, max(table))
    sim.add_home_collection(root_id)          # the root user is (re)created by the purge, with its home
    sim.name = uuid.uuid4().hex[:16]           # fylr regenerates settings.name on every purge
    # SILENT (api.md 2.2 GAP): we choose that purge invalidates every token - clients must log in again.
    sim.tokens.clear()
    if sim.purge_busy_seconds > 0:              # fylr reports "purge" (503 everywhere) for a while after
        sim.status, sim.status_until = "purge", time.time() + sim.purge_busy_seconds


def _route_purgeall(sim):
    user = require_user(sim, bottle.request)
    # Rights before configuration (OAS 403 texts): no system.root -> SystemRightRequired,
    # system.root but not the system:root user -> PurgeSystemRootOnly.
    if not w.is_system_root_user(sim, user):
        if w.holds_root_right(sim, user):
            w.fail(sim, 403, "PurgeSystemRootOnly",
                   "Only the system user with reference 'system:root' is allowed to purge.")
        w.fail(sim, 403, "SystemRightRequired", "One of the following system rights is required: [system.root].",
               rights=["system.root"])
    if not sim.allow_purge:
        w.fail(sim, 400, "PurgeNotAllowed", "Purge is not allowed (fylr.allowpurge / system.purge.allow_purge).")
    with sim.lock:
        _purge(sim, w.query("set_password") or None)
    redirect = w.query("redirect")
    if redirect:
        return bottle.HTTPResponse(status=302, headers={"Location": redirect})
    return w.json_answer({"status": "ok"})


def _route_reindex(sim):
    require_user(sim, bottle.request)          # "no rights check in the handler" (OAS)
    with sim.lock:
        w.ensure_state(sim)
        sim.reindex_calls += 1
        records.reindex(sim)
    return w.json_answer({"status": "ok"})

# ----------------------------------------------------------------------------------------- datamodel


def _head_schema(sim):
    """HEAD = uncommitted edit, else the next version derived from CURRENT (OAS SchemaApi.version)."""
    w.ensure_state(sim)
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
        return w.json_answer(_head_schema(sim))


def _route_schema_head_post(sim):
    require_root(sim, bottle.request)
    body = w.body(sim, want=dict)
    with sim.lock:
        head = _head_schema(sim)
        for key in ("version", "based_on_version"):
            if body.get(key) != head.get(key):
                # SILENT: OAS only says "400"; VersionMismatch is the code fylr uses for version errors.
                w.fail(sim, 400, "VersionMismatch",
                      "%s %r is not the expected %r." % (key, body.get(key), head.get(key)),
                      expected=head.get(key), got=body.get(key), key=key)
        for key in ("max_table_id", "max_column_id"):
            if body.get(key, 0) < head.get(key, 0):
                w.fail(sim, 400, "SchemaInconsistent", "%s is smaller than the stored value." % key, msg=key)
        tables = body.get("tables") or []
        names = [t.get("name") for t in tables]
        if len(set(names)) != len(names):
            w.fail(sim, 400, "SchemaDuplicateObjecttypeName", "Duplicate table names.", msg="duplicate names")
        current_tables = (sim.schema or {}).get("tables") or []
        if current_tables:
            # restore.md: uploading a datamodel onto a target that already has one fails without purge.
            dropped = _tables_with_records(sim, {t["name"] for t in current_tables} - set(names))
            if dropped:
                w.fail(sim, 400, "ObjecttypeNotEmpty", "Objecttypes still hold objects.", stats=dropped)
            w.fail(sim, 400, "SchemaInconsistent", "The target already has a committed datamodel; purge first.",
                  msg="datamodel exists")
        stored = copy.deepcopy(body)
        stored.update(type="user", committed_at=None)
        sim.datamodel_head = dict(sim.datamodel_head or {}, schema=stored)
        return w.json_answer(stored)


def _route_mask_head_post(sim):
    require_root(sim, bottle.request)
    body = w.body(sim, want=dict)
    with sim.lock:
        names = [m.get("name") for m in body.get("masks") or []]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            w.fail(sim, 400, "SchemaDuplicateMaskName", "Duplicate mask name %s." % dupes[0], name=dupes[0])
        head = _head_schema(sim)
        stored = copy.deepcopy(body)
        # OAS MaskSchemaApi: `version` is always 1 on output, based_on_schema_version is set by the server.
        stored.update(type="user", version=1, based_on_schema_version=head["version"])
        stored.setdefault("max_mask_id", max([m.get("mask_id", 0) for m in body.get("masks") or []] or [0]))
        sim.datamodel_head = dict(sim.datamodel_head or {}, mask=stored)
        return w.json_answer(stored)


def _route_l10n_head_post(sim):
    require_root(sim, bottle.request)
    body = w.body(sim, want=dict)
    with sim.lock:
        w.ensure_state(sim)
        sim.datamodel_head = dict(sim.datamodel_head or {}, l10n=copy.deepcopy(body))
        return w.json_answer(body)


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
    reindex = w.query("reindex")
    if reindex not in (None, "", "skip", "reindex", "reindex_block"):
        w.fail(sim, 400, "ServerGeneric", "Unknown reindex value %r." % reindex)
    with sim.lock:
        w.ensure_state(sim)
        head = sim.datamodel_head
        if not head:
            return w.json_answer({"status": "ok"})           # nothing to commit
        if w.query("confirm") != "yes":
            # OAS: 202 whenever the change needs a reindex and/or changes constraints - any real edit does.
            return w.json_answer(_commit_tasks(), status=202)
        schema = copy.deepcopy(head.get("schema") or _head_schema(sim))
        schema["committed_at"] = w.now_iso()
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
        return w.json_answer({"status": "ok"})

# -------------------------------------------------------------------------------------------- config


def _route_config_post(sim):
    require_root(sim, bottle.request)
    body = w.body(sim, want=dict)
    if not body or not all(isinstance(v, dict) for v in body.values()):
        w.fail(sim, 400, "ServerGeneric", "The config body must be an object of objects.")
    with sim.lock:
        extras.check_config_files(sim, (body.get("system") or {}).get("config") or {})
        config = copy.deepcopy(sim.config) or {"system": {"config": {}}, "plugin": {}}
        # A plain POST replaces whole sections: system.config.<section> and plugin.<name>.
        for section, value in ((body.get("system") or {}).get("config") or {}).items():
            config.setdefault("system", {}).setdefault("config", {})[section] = copy.deepcopy(value)
        for name, value in (body.get("plugin") or {}).items():
            config.setdefault("plugin", {})[name] = copy.deepcopy(value)
        sim.config = config
        return w.json_answer(config)

# --------------------------------------------------------------------------------------------- tags


def _tag_usages_in_records(sim, tag_ids):
    """{tag id: [system object ids]} of the latest versions that carry one of `tag_ids`."""
    usages = {}
    for recs in sim.records.values():
        for rec in recs.values():
            for tag_id in set(rec["versions"][-1].get("_tags") or []) & tag_ids:
                usages.setdefault(tag_id, []).append(rec["_system_object_id"])
    return usages


def _binding_ids(entries):
    return {e["_id"] for e in entries or [] if isinstance(e, dict) and isinstance(e.get("_id"), int)}


def _tag_bindings(sim, tag_ids):
    """Auto-removable usages (OAS /tags post: pool_tag, objecttype_tag): {tag id: [context, ...]}."""
    usages = {}
    for pid, pool in sim.pools.items():
        for tag_id in _binding_ids(pool.get("_tags")) & tag_ids:
            usages.setdefault(tag_id, []).append("pool_tag:%d" % pid)
    for entry in sim.objecttypes:
        for tag_id in _binding_ids(entry.get("_tags")) & tag_ids:
            usages.setdefault(tag_id, []).append("objecttype_tag:%s" % entry["objecttype"]["name"])
    return usages


def _remove_tag_bindings(sim, tag_ids):
    keep = lambda entries: [e for e in entries or [] if not (isinstance(e, dict) and e.get("_id") in tag_ids)]
    sim.pools = {pid: dict(p, _tags=keep(p.get("_tags"))) for pid, p in sim.pools.items()}
    sim.objecttypes = [dict(o, _tags=keep(o.get("_tags"))) for o in sim.objecttypes]


def _tags_delete_tasks():
    return w.confirm_tasks("Delete tags", "The tags are still used in places where they can be removed.",
                           buttons=[{"text": "Remove the tags there", "name": "delete_policy",
                                     "value": "remove_tags"}])


def _route_tags_post(sim):
    """OAS /tags post: replaces the whole set.  A removed tag still used by records -> 400 TagsInUse;
    one only bound to pools / objecttypes -> 202 unless delete_policy=remove_tags."""
    require_root(sim, bottle.request)
    body = w.body(sim, want=list)
    policy = w.query("delete_policy")
    if policy not in (None, "", "remove_tags"):
        w.fail(sim, 400, "ServerGeneric", "Unknown delete_policy %r." % policy)
    with w.rollback(sim, "_seq", deep=("taggroups", "pools", "objecttypes")):
        new_groups, seen_tags = {}, set()
        for item in body:
            group = _stored_taggroup(sim, item, seen_tags)
            new_groups[group["taggroup"]["_id"]] = group
        removed = {t["tag"]["_id"] for g in sim.taggroups.values() for t in g["_tags"]} - seen_tags
        in_records = _tag_usages_in_records(sim, removed)
        if in_records:
            w.fail(sim, 400, "TagsInUse", "The tags can not be deleted, because they are used in %d places where "
                   "they have to be deleted manually" % sum(len(v) for v in in_records.values()),
                   usages=[{"tag_id": t, "context": "object", "ids": sorted(ids)}
                           for t, ids in sorted(in_records.items())])
        if _tag_bindings(sim, removed):
            if policy != "remove_tags":
                return w.json_answer(_tags_delete_tasks(), status=202)      # nothing saved
            _remove_tag_bindings(sim, removed)
        refs = [t["tag"].get("reference") for g in new_groups.values() for t in g["_tags"] if t["tag"].get("reference")]
        if len(refs) != len(set(refs)):
            w.fail(sim, 400, "DatabaseUniqueKeyViolation", "Duplicate tag reference.", name="tag.reference")
        sim.taggroups = new_groups
        return w.json_answer(list(new_groups.values()))


def _stored_taggroup(sim, item, seen_tags):
    """Tag group ids are server-issued: an existing one is updated (version + 1), none is created (1)."""
    block = (item or {}).get("taggroup") if isinstance(item, dict) else None
    if not isinstance(block, dict):
        w.fail(sim, 400, "ServerGeneric", "Each entry needs a taggroup object.")
    if block.get("type") not in ("checkbox", "choice"):
        w.fail(sim, 400, "ServerGeneric", "Unknown taggroup type %r (checkbox, choice)." % block.get("type"))
    gid = block.get("_id")
    if gid is not None and gid not in sim.taggroups:
        w.fail(sim, 400, "LookupNotFound", "Tag group %r does not exist (ids are server-issued)." % gid,
               key="_id", value=gid)
    stored_version = sim.taggroups[gid]["taggroup"]["_version"] if gid is not None else 0
    if "_version" in block:          # OAS TagGroup has no _version (the server counts it); if sent, it is checked
        w.check_next_version(sim, "taggroup", stored_version, block["_version"])
    gid = gid if gid is not None else sim.next_id("taggroup")
    group = {k: copy.deepcopy(v) for k, v in item.items() if k not in ("taggroup", "_tags")}
    group.update(_basetype="taggroup", taggroup=dict(w.clean_block(block), _id=gid, _version=stored_version + 1))
    group["_tags"] = [_stored_tag(sim, t, seen_tags) for t in item.get("_tags") or []]
    return group


def _stored_tag(sim, entry, seen):
    """Accept the wrapped {"tag": {...}} and the bare Tag form; keep a sent _id (tag ids are restored)."""
    block = entry.get("tag", entry) if isinstance(entry, dict) else {}
    extra = {k: copy.deepcopy(v) for k, v in entry.items() if k != "tag"} if "tag" in entry else {}
    tag_id = block.get("_id")
    if tag_id is None:
        tag_id = sim.next_id("tag")
    elif not isinstance(tag_id, int) or isinstance(tag_id, bool) or tag_id in seen:
        w.fail(sim, 400, "ServerGeneric", "Invalid or duplicate tag _id %r." % (tag_id,))
    else:
        sim.bump_seq("tag", tag_id)
    seen.add(tag_id)
    old = sim.tag_by_id(tag_id)
    w.check_next_version(sim, "tag", old["tag"]["_version"] if old else 0, block.get("_version"))
    tag = dict({"type": "individual", "displaytype": "facet", "enabled": True}, **w.clean_block(block))
    tag.update(_id=tag_id)
    extra.update(tag=tag)
    return extra

# ------------------------------------------------------------------------------------ groups / users


def _basetype_route(table, save):
    """POST of groups, pools or messages: root only, the whole array saved or nothing (rollback)."""
    def route(sim):
        require_root(sim, bottle.request)
        body = w.body(sim, want=list)
        with w.rollback(sim, "_seq", deep=(table,)):
            return w.json_answer([save(sim, item) for item in body])
    return route


def _addressed(sim, kind, block, table):
    """(stored id or None, version) of a group / pool / message write (OAS: decided by `_version`):
    version 1 (or none) creates and must not address a stored entry (ids are server-issued); a later
    version must address a stored entry by `_id` / `lookup:_id` and be its version + 1."""
    version = block.get("_version", 1)
    if version == 1:
        if block.get("_id") is not None or "lookup:_id" in block:
            stored_id = w.target_for_update(sim, kind, block)          # LookupNotFound when it names nothing
            w.check_next_version(sim, kind, table[stored_id][kind]["_version"], version)
        return None, 1
    stored_id = w.target_for_update(sim, kind, block)
    if stored_id is None:
        w.fail(sim, 400, "VersionMismatch", "Update without _id.", expected=1, got=version)
    w.check_next_version(sim, kind, table[stored_id][kind]["_version"], version)
    return stored_id, version


def _save_group(sim, item):
    w.check_keys(sim, "group", item)
    block = item["group"]
    gid, version = _addressed(sim, "group", block, sim.groups)
    if gid is None and block.get("type") == "system":
        w.fail(sim, 400, "GroupTypeNotAllowed", 'The group type "system" is not allowed.', type="system")
    if gid is not None:
        stored = sim.groups[gid]
        if block.get("type") not in (None, stored["group"].get("type")):
            w.fail(sim, 400, "GroupTypeChangeNotAllowed", "The group type cannot change.", type=block.get("type"))
    gid = gid or sim.next_id("group")
    w.check_unique_reference(sim, "group", block.get("reference"), gid)
    entry = {k: copy.deepcopy(v) for k, v in item.items() if k not in ("group", "_acl")}
    entry.update(_basetype="group", _system_rights=copy.deepcopy(item.get("_system_rights") or {}),
                 _acl=w.resolve_acl(sim, item.get("_acl")))
    entry["group"] = dict({"type": "easydb"}, **w.clean_block(block))
    entry["group"].update(_id=gid, _version=version)
    entry["group"].setdefault("name", block.get("reference") or "group%d" % gid)
    sim.groups[gid] = entry
    return entry


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NO_PASSWORD_TYPES = ("ldap", "sso", "saml", "email")
_ROOT_ONCE_KEYS = ("_created_at", "_last_seen_at")       # api.md 6.5: settable by root on version 1 (6.21.0)


def _route_user_post(sim):
    caller = require_user(sim, bottle.request)
    root = w.holds_root_right(sim, caller)
    skip = w.skip_constraints_param(sim)
    if skip and not root:
        w.fail(sim, 400, "ServerGeneric", "skip_constraints needs system.root.")
    body = w.body(sim, want=list)
    weak = [item for item in body if isinstance(item, dict) and not _password_ok(sim, item.get("_password"))]
    if weak and w.query("confirm") != "ignore_password_requirements":
        return w.json_answer(_password_tasks(sim), status=202)          # nothing saved
    with w.rollback(sim, "_seq", "collections", "collection_objects", "tokens", deep=("users", "passwords")):
        saved = [_save_user(sim, item, caller, root, skip) for item in body]
        return w.json_answer([_user_response(u) for u in saved])


def _password_rules(sim):
    return ((sim.config or {}).get("system", {}).get("config", {}).get("password") or {})


def _password_ok(sim, password):
    """A plain `_password` against the base config's complexity rules (password.check regexps)."""
    if not password:
        return True
    return all(re.search(rule.get("regexp") or "", password) for rule in _password_rules(sim).get("check") or [])


def _password_tasks(sim):
    """OAS UserPost202: resend with confirm=ignore_password_requirements to save anyway."""
    return w.confirm_tasks("Password Change", "One or more user passwords do not match the configured requirements: "
                           "%s Should the password be saved anyway?" % (_password_rules(sim).get("hint") or ""),
                           buttons=[{"text": "Save", "name": "confirm", "value": "ignore_password_requirements"}])


def _check_user_rights(sim, item, uid, caller, root):
    """Non-root callers may only edit themselves (the simulator models no user ACLs); root-only columns."""
    if not root and uid != w.user_id(caller):
        w.fail(sim, 403, "RightRequired", "Writing another user needs the user's ACL right.", right="write")
    for key in ("_password_hash",) + _ROOT_ONCE_KEYS:
        if key in item and not root:
            w.fail(sim, 400, "ColumnNeedsSystemRoot", "%s may only be set by system.root." % key, column=key)
    for key in _ROOT_ONCE_KEYS:
        if key in item and uid is not None:
            w.fail(sim, 400, "ColumnCanNotBeUpdated", "%s is set once, when the user is created." % key, column=key)


def _check_user_email(sim, email, uid, skip_constraints):
    """skip_constraints only skips the FORMAT check (OAS /user post); duplicates are always refused."""
    if not email:
        return
    if not skip_constraints and not _EMAIL.match(email):
        w.fail(sim, 400, "UserEmailMalformed", "Malformed e-mail %r." % email, email=email)
    for other_id, other in sim.users.items():
        # SILENT: compared case-insensitively (e-mail domains are, most mail systems treat it so)
        if other_id != uid and (other["user"].get("email") or "").lower() == email.lower():
            w.fail(sim, 409, "UserDuplicateEmail", 'Email "%s" already exists. User: %s.' % (
                email, other["user"].get("login") or other["user"].get("displayname")),
                email=email, name=other["user"].get("login") or other["user"].get("displayname"))


def _save_user(sim, item, caller, root, skip_constraints):
    w.check_keys(sim, "user", item)
    block = item["user"]
    uid = w.target_for_update(sim, "user", block)    # create = no _id (OAS /user post)
    _check_user_rights(sim, item, uid, caller, root)
    if uid is not None:
        w.check_next_version(sim, "user", sim.users[uid]["user"]["_version"], block.get("_version"))
    elif block.get("_version") not in (None, 1):
        w.fail(sim, 400, "VersionMismatch", "A new user has version 1.", expected=1, got=block.get("_version"))
    previous = sim.users.get(uid, {})
    merged = dict(previous.get("user") or {}, **w.clean_block(block))
    _check_user_email(sim, merged.get("email"), uid, skip_constraints)
    login = merged.get("login")
    for other_id, other in sim.users.items():
        if other_id != uid and login and other["user"].get("login") == login:
            w.fail(sim, 409, "UserDuplicateLogin", "Login %r exists." % login, login=login)
    if merged.get("type") == "system":
        # SILENT: like groups (GroupTypeNotAllowed), system users are the server's own
        w.fail(sim, 400, "UserTypeNotAllowed", 'The user type "system" is not allowed.', type="system")
    has_password = "_password_hash" in item or item.get("_password")
    if has_password and merged.get("type") in _NO_PASSWORD_TYPES:
        w.fail(sim, 400, "UnableToSetPasswordForUserType", "Users of type %s have no password." % merged["type"],
               type=merged["type"])
    create = uid is None
    uid = uid or sim.next_id("user")
    w.check_unique_reference(sim, "user", block.get("reference"), uid)
    entry = {k: copy.deepcopy(v) for k, v in item.items()
             if k not in ("user", "_groups", "_password", "_password_hash", "_acl")}
    if not create:
        entry.update({k: previous[k] for k in _ROOT_ONCE_KEYS if k in previous})
    entry.update(_basetype="user", _groups=w.group_refs(sim, item.get("_groups")))
    if "_acl" in item:
        entry["_acl"] = w.resolve_acl(sim, item["_acl"])
    entry["user"] = dict({"type": "easydb"}, **w.clean_block(block))
    entry["user"].update(_id=uid, _version=previous["user"]["_version"] + 1 if previous else 1)
    if item.get("_password"):
        entry["_password_hash"] = "sha256:" + hashlib.sha256(item["_password"].encode()).hexdigest()
        sim.passwords[login] = item["_password"]
    elif "_password_hash" in item:
        entry["_password_hash"] = item["_password_hash"]
        sim.passwords.pop(login, None)          # the hash is the password now (auth.check_password)
    elif "_password_hash" in previous:
        entry["_password_hash"] = previous["_password_hash"]
    if not create and entry.get("_password_hash") != previous.get("_password_hash"):
        _end_sessions(sim, uid)                 # api.md 2.2: a password change invalidates tokens (6.21.0)
    sim.users[uid] = entry
    if create:
        sim.add_home_collection(uid)            # the home collection comes with the user
    return entry


def _end_sessions(sim, uid):
    sim.tokens = {t: e for t, e in sim.tokens.items() if e.get("user_id") != uid}


def _user_response(entry):
    return {k: v for k, v in entry.items() if k not in ("_password_hash", "_password_salt")}

# -------------------------------------------------------------------------------------- pools, messages


def _route_pool_post(sim):
    """POST|PUT /pool: like the other basetypes, plus the watermark 202 (OAS PoolPost202): a changed
    watermark is saved only with confirm=resync|skip - checked after every entry passed its other checks."""
    require_root(sim, bottle.request)
    body = w.body(sim, want=list)
    extras.confirm_param(sim)
    with w.rollback(sim, "_seq", deep=("pools",)):
        changed = [0]
        saved = [_save_pool(sim, item, changed) for item in body]
        extras.ask_watermark_confirm(sim, changed[0])
        return w.json_answer(saved)


def _save_pool(sim, item, changed):
    w.check_keys(sim, "pool", item)
    block = item["pool"]
    pid, version = _addressed(sim, "pool", block, sim.pools)
    stored = sim.pools.get(pid)
    if "watermark" in block:
        extras.check_watermark(sim, "pool.watermark", block["watermark"])
        changed[0] += block["watermark"] != (stored["pool"].get("watermark") if stored else None)
    if block.get("is_system_pool") and not (stored and stored["pool"].get("is_system_pool")):
        w.fail(sim, 400, "UnableToSetIsSystemPool", "is_system_pool cannot be set.")
    if "lookup:_id_parent" in block:
        parent = w.lookup_basetype(sim, "pool", block["lookup:_id_parent"])
    elif block.get("_id_parent") is not None:
        parent = w.ref_id(sim, "pool", {"_id": block["_id_parent"]})
    else:
        parent = stored["pool"]["_id_parent"] if stored else None
    is_root_pool = bool(stored) and stored["pool"].get("reference") == "system:root"
    if parent is None and not is_root_pool:
        w.fail(sim, 400, "PoolNeedsParent", "A pool needs a parent pool.")
    pid = pid or sim.next_id("pool")
    w.check_unique_reference(sim, "pool", block.get("reference"), pid)
    entry = {"_acl": [], "_private_acl": False, "_tags": [], "_private_tags": False}
    entry.update({k: copy.deepcopy(v) for k, v in item.items() if k not in ("pool", "_acl", "_tags")})
    entry.update(_basetype="pool", _acl=w.resolve_acl(sim, item.get("_acl")),
                 _tags=_resolve_tag_list(sim, item.get("_tags") or []))
    entry["pool"] = dict({"is_system_pool": False}, **w.clean_block(block))
    entry["pool"].update(_id=pid, _version=version, _id_parent=parent)
    sim.pools[pid] = entry
    return entry


def _save_message(sim, item):
    w.check_keys(sim, "message", item)
    block = item["message"]
    mid, version = _addressed(sim, "message", block, sim.messages)
    mid = mid or sim.next_id("message")
    w.check_unique_reference(sim, "message", block.get("reference"), mid)
    entry = {k: copy.deepcopy(v) for k, v in item.items() if k not in ("message", "_groups")}
    entry.update(_basetype="message", _groups=w.group_refs(sim, item.get("_groups")))
    entry["message"] = w.clean_block(block)
    entry["message"].update(_id=mid, _version=version)
    sim.messages[mid] = entry
    return entry

# ------------------------------------------------------------------------------------ objecttypes, plugins


def _resolve_tag_list(sim, entries):
    """Pool/objecttype tag bindings: any nested {"lookup:_id": {...}} of a tag becomes {"_id": n}."""
    def walk(value):
        if isinstance(value, dict):
            if "lookup:_id" in value:                 # tag lookups accept only `reference` (api.md 6.7)
                rest = {k: walk(v) for k, v in value.items() if k != "lookup:_id"}
                return dict(rest, _id=w.lookup_basetype(sim, "tag", value["lookup:_id"]))
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value
    return walk(copy.deepcopy(entries))


def _route_objecttype_post(sim):
    """OAS /objecttype post: settings of existing objecttypes; `objecttype._id` must exist and `_version`
    be current + 1 (VersionMismatch); fields not sent keep their stored value (merge)."""
    require_root(sim, bottle.request)
    body = w.body(sim, want=list)
    extras.confirm_param(sim)
    with sim.lock, w.rollback(sim, "objecttypes"):
        stored = {o["objecttype"]["_id"]: o for o in sim.objecttypes}
        saved, changed = [], 0
        for item in body:
            block = (item or {}).get("objecttype") or {}
            current = stored.get(block.get("_id"))
            if current is None:
                w.fail(sim, 400, "ServerGeneric", "Objecttype %r does not exist." % (block.get("_id"),))
            w.check_next_version(sim, "objecttype", current["objecttype"]["_version"], block.get("_version"))
            if "watermark" in block:        # OAS ObjecttypeApi.objecttype.watermark (WatermarkApi)
                extras.check_watermark(sim, "objecttype.watermark", block["watermark"])
                changed += block["watermark"] != current["objecttype"].get("watermark")
            merged = copy.deepcopy(current)
            for key, value in item.items():
                if key == "objecttype":
                    merged["objecttype"].update({k: v for k, v in value.items() if k not in ("_id", "name")})
                elif key == "_acl":
                    merged["_acl"] = w.resolve_acl(sim, value)
                elif key == "_tags":
                    merged["_tags"] = [{"_id": _tag_id(sim, t)} for t in value or []]
                else:
                    merged[key] = copy.deepcopy(value)
            stored[current["objecttype"]["_id"]] = merged
            saved.append(merged)
        extras.ask_watermark_confirm(sim, changed)        # OAS ObjecttypePost202; nothing saved
        sim.objecttypes = [stored[o["objecttype"]["_id"]] for o in sim.objecttypes]
        return w.json_answer(saved)


def _tag_id(sim, entry):
    """A tag binding by `_id` or by `lookup:_id {reference}` (tag lookups accept only reference)."""
    if "lookup:_id" in entry:
        return w.lookup_basetype(sim, "tag", entry["lookup:_id"])
    if sim.tag_by_id(entry.get("_id")) is None:
        w.fail(sim, 400, "LookupNotFound", "Tag %r not found." % entry.get("_id"), key="_id", value=entry.get("_id"))
    return entry["_id"]


def _route_plugin_put(sim):
    """OAS /plugin/manage put: install one plugin (no `id`; type disk|zip|url; zip needs an uploaded file)."""
    require_root(sim, bottle.request)
    body = w.body(sim, want=dict)
    if body.get("id") or body.get("type") not in ("disk", "zip", "url"):
        w.fail(sim, 400, "ServerGeneric", "A new plugin needs a type (disk, zip, url) and no id.")
    zip_file = sim.files.get((body.get("zip_file") or {}).get("_id")) if body["type"] == "zip" else None
    usable = zip_file is not None and not zip_file.get("leave") and zip_file.get("status", "done") == "done"
    if body["type"] == "zip" and not usable:
        # api.md 6.4: a previously uploaded, not leave-on-remote file (and it needs its bytes: done)
        w.fail(sim, 400, "ServerGeneric", "zip_file must name an uploaded file that is done and not remote.")
    with sim.lock:
        # fylr reads the name from the plugin's manifest (PluginManageApi.name: "derived from the uploaded
        # plugin on create"): a zip plugin is named by the `name:` of its manifest.yml; url / disk
        # plugins (SILENT) by the body, as the simulator cannot fetch them. The name is known before the
        # duplicate check: a second zip of an installed plugin is refused like any other second install.
        if zip_file is not None:
            body = dict(body, name=_zip_manifest_name(sim, zip_file))
        if any(p["name"] == body.get("name") for p in sim.plugins):
            w.fail(sim, 400, "PluginDuplicateName", "Plugin %r exists." % body.get("name"), name=body.get("name"))
        # stricter: the OAS contradicts itself (PUT: "enabled state is taken from the request";
        # PluginManageApi.enabled: "A freshly uploaded plugin is created disabled; enable it with an
        # update") - created disabled whatever the body says; POST /plugin/manage/{id} enables it.
        plugin = {"id": max([p["id"] for p in sim.plugins] or [0]) + 1, "name": body.get("name"),
                  "enabled": False, "type": body["type"],
                  "url": body.get("url"), "path": body.get("path"), "update_policy": body.get("update_policy")}
        if zip_file is not None:
            plugin["zip_file"] = {"_id": zip_file["_id"]}
        sim.plugins = sim.plugins + [plugin]
        return w.json_answer(plugin)

def _zip_manifest_name(sim, zip_file):
    """`name:` of the manifest.yml inside a plugin zip; a zip without one is refused (400 ServerGeneric)."""
    try:
        with zipfile.ZipFile(io.BytesIO(zip_file["versions"]["original"])) as archive:
            manifest = next(n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "manifest.yml")
            text = archive.read(manifest).decode("utf-8")
        return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("name:"))
    except (KeyError, StopIteration, zipfile.BadZipFile, UnicodeDecodeError):
        w.fail(sim, 400, "ServerGeneric", "zip_file holds no plugin manifest with a name.")

# ------------------------------------------------------------------------------------------ collections


def _route_collection_list_put(sim):
    """PUT /collection/list: bulk create (6.8.0)."""
    caller = require_user(sim, bottle.request)
    body = w.body(sim, want=list)
    with w.rollback(sim, "_seq", deep=("collections", "collection_objects", "collection_props", "deferred_uuids")):
        return w.json_answer([_save_collection(sim, item, w.user_id(caller), create_only=True) for item in body])


def _route_collection_put(sim):
    """PUT|POST /collection: one collection, created with _version 1, updated with a higher one."""
    caller = require_user(sim, bottle.request)
    body = w.body(sim, want=dict)
    with w.rollback(sim, "_seq", deep=("collections", "collection_objects", "collection_props", "deferred_uuids")):
        return w.json_answer(_save_collection(sim, body, w.user_id(caller), create_only=False))


def _collection_parent(sim, block, stored):
    if "lookup:_id_parent" in block:
        return w.lookup_basetype(sim, "collection", block["lookup:_id_parent"])
    if block.get("_id_parent") is not None:
        return w.ref_id(sim, "collection", {"_id": block["_id_parent"]})
    return stored["collection"]["_id_parent"] if stored else None   # SILENT: none sent -> top level


def _collection_owner(sim, item, parent, caller_id):
    """OAS /collection/list put: "The _owner needs to be the owner of the parent" - SILENT: a different
    _owner is refused; without a parent the sent owner (or the caller) owns it."""
    owner = w.wrapped_ref_id(sim, "user", item["_owner"]) if item.get("_owner") else None
    if parent is not None:
        parent_owner = sim.collections[parent]["_owner"]["user"]["_id"]
        if owner not in (None, parent_owner):
            w.fail(sim, 400, "ServerGeneric", "The _owner must be the owner of the parent collection.")
        return parent_owner
    return owner or caller_id


def _save_collection(sim, item, caller_id, create_only):
    w.check_keys(sim, "collection", item)
    block = item["collection"]
    if block.get("type") == "user":
        # SILENT: home collections are created by the server with their user, never by a client
        w.fail(sim, 400, "ServerGeneric", 'Collections of type "user" are created by the server only.')
    version = block.get("_version", 1)
    cid = None
    if version == 1:
        if block.get("_id") is not None or "lookup:_id" in block:
            w.fail(sim, 400, "ServerGeneric", "A new collection has no _id (ids are server-issued).")
    elif create_only:
        w.fail(sim, 400, "ServerGeneric", "PUT /collection/list only creates collections (_version 1).")
    else:
        cid = w.target_for_update(sim, "collection", block)
        if cid is None:
            w.fail(sim, 400, "VersionMismatch", "Update without _id.", expected=1, got=version)
        w.check_next_version(sim, "collection", sim.collections[cid]["collection"]["_version"], version)
        if sim.collections[cid]["collection"].get("type") in ("user", "system"):
            w.fail(sim, 400, "ServerGeneric", "System and home collections are kept by the server.")
    stored = sim.collections.get(cid)
    parent = _collection_parent(sim, block, stored)
    if parent is not None and parent == cid:
        w.fail(sim, 400, "ServerGeneric", "A collection cannot be its own parent.")
    owner = _collection_owner(sim, item, parent, caller_id)
    cid = cid or sim.next_id("collection")
    w.check_unique_reference(sim, "collection", block.get("reference"), cid)
    entry = {k: copy.deepcopy(v) for k, v in item.items() if k in ("_private_acl",)}
    entry.update(_basetype="collection", _owner={"_basetype": "user", "user": {"_id": owner}},
                 _acl=w.resolve_acl(sim, item.get("_acl")))
    entry["collection"] = dict({"type": "workfolder"}, **w.clean_block(block))
    entry["collection"].pop("_count", None)          # client _count is ignored (6.14.0)
    entry["collection"].update(_id=cid, _version=version, _id_parent=parent,
                               uuid=block.get("uuid") or (stored or {}).get("collection", {}).get("uuid")
                               or str(uuid.uuid4()))
    sim.collections[cid] = entry
    sim.collection_objects.setdefault(cid, [])
    if item.get("objects") is not None:              # objects sent with the collection replace its list
        _set_collection_objects(sim, cid, {"objects": item["objects"]}, append=False)
    return entry


def _local_sysid(sim, goid):
    """System object id of a LOCAL _global_object_id ("<n>@local" or "<n>@<this instance>"), else None."""
    head, _, instance = goid.partition("@")
    if head.isdigit() and instance in ("local", sim.name):
        return int(head)
    return None


def _collection_entry(sim, cid, obj, uuids):
    """One `objects` element -> stored entry (store.py): local sysid, foreign goid, or uuid placeholder."""
    if not isinstance(obj, dict) or set(obj) - {"_global_object_id", "lookup:_global_object_id", "webfrontend_props"} \
            or ("_global_object_id" in obj) == ("lookup:_global_object_id" in obj):
        w.fail(sim, 400, "ServerGeneric", "An object is {_global_object_id | lookup:_global_object_id, "
                                          "webfrontend_props}.")
    if "_global_object_id" in obj:
        goid = obj["_global_object_id"]
        if not isinstance(goid, str):
            w.fail(sim, 400, "ServerGeneric", "_global_object_id must be a string.")
        sysid = _local_sysid(sim, goid)
        if sysid is None:
            return goid                     # foreign: stored verbatim without checks (OAS)
        if sysid not in sim.sysids:
            w.fail(sim, 400, "LookupNotFound", "Object %s not found." % goid, key="_global_object_id", value=goid)
        return sysid
    target = records.lookup_record(sim, None, obj["lookup:_global_object_id"], uuids, implied=False)
    if isinstance(target, records.Deferred):
        if target.key == "_uuid":
            records.defer_uuid(sim, target.value, ["collection", cid])
            return {"_uuid": target.value}
        return target.value
    return target


def _entry_key(entry):
    return "uuid:" + entry["_uuid"] if isinstance(entry, dict) else entry


def _route_collection_objects(sim, collection_id, append):
    require_user(sim, bottle.request)
    body = w.body(sim, want=dict)
    cid = int(collection_id) if str(collection_id).isdigit() else None
    with w.rollback(sim, "collection_objects", "collection_props", deep=("deferred_uuids",)):
        if cid not in sim.collections:
            w.fail(sim, 404, "ObjectNotFound", "Collection %s not found." % collection_id,
                   object="collection:%s" % collection_id)
        count = _set_collection_objects(sim, cid, body, append)
        return w.json_answer({"_version": sim.collections[cid]["collection"]["_version"], "count": count})


def _set_collection_objects(sim, cid, body, append):
    """Replace (or with append: push) the objects of collection `cid`; returns the number linked."""
    uuids = records.UuidIndex(sim)
    objects = body.get("objects") or []
    if not isinstance(objects, list):
        w.fail(sim, 400, "ServerGeneric", "objects must be a list.")
    entries = [(_collection_entry(sim, cid, obj, uuids), obj) for obj in objects]
    new = {_entry_key(e): e for e, _obj in entries}
    kept = [e for e in sim.collection_objects.get(cid, []) if _entry_key(e) not in new] if append else []
    ordered = kept + list(new.values())              # push moves existing entries to the end
    kept_keys = {_entry_key(e) for e in kept}
    props = {k: v for k, v in (sim.collection_props.get(cid) or {}).items() if append and k in kept_keys}
    props.update({_entry_key(e): copy.deepcopy(o["webfrontend_props"]) for e, o in entries
                  if o.get("webfrontend_props") is not None})
    sim.collection_objects[cid] = ordered
    sim.collection_props[cid] = props
    return len([e for e in ordered if not isinstance(e, dict)])

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
# easydb 5 names that only look like fylr ones: fylr calls the event USER_INSERT (parameters.md 6.1)
_EASYDB5_ONLY_TYPES = {"USER_CREATED"}


def event_type_group(event_type):
    """"FRONTEND", "PLUGIN", "SYSTEM" (any root-only system group), "TASK" or None (unknown to fylr)."""
    if not isinstance(event_type, str) or event_type in _EASYDB5_ONLY_TYPES:
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
    skip = w.skip_constraints_param(sim)
    if skip and not w.holds_root_right(sim, caller):
        w.fail(sim, 400, "ServerGeneric", "skip_constraints needs system.root.")
    body = w.body(sim, want=list)
    if w.flag("background"):
        # OAS: answered at once, saved afterwards; per-event errors are not reported (invalid ones dropped)
        threading.Thread(target=_save_events_later, args=(sim, copy.deepcopy(body), skip, w.user_id(caller)),
                         daemon=True, name="event-background").start()
        return w.json_answer({"background": "ok"})
    with w.rollback(sim, "_seq", "events"):
        return w.json_answer([_save_event(sim, item, skip, w.user_id(caller)) for item in body])


def _save_events_later(sim, items, skip, caller_id):
    time.sleep(sim.background_delay)
    for item in items:
        try:
            with w.rollback(sim, "_seq", "events"):
                _save_event(sim, item, skip, caller_id)
        except bottle.HTTPResponse:
            continue


def _save_event(sim, item, skip, caller_id):
    if not isinstance(item, dict) or not isinstance(item.get("event"), dict):
        w.fail(sim, 400, "ServerGeneric", "Each entry needs an event object.")
    block = item["event"]
    etype = block.get("type")
    group = event_type_group(etype)
    if group in (None, "TASK") or (group == "SYSTEM" and not skip):
        w.fail(sim, 400, "EventTypeNotAllowed", "The event type %s is not allowed." % etype, type=etype)
    if not skip and any(item.get(k) is not None or block.get(k) is not None for k in ("user", "user_id")):
        w.fail(sim, 400, "ServerGeneric", "An event user needs skip_constraints.")
    if item.get("user") is not None:
        uid = w.wrapped_ref_id(sim, "user", item["user"])
    elif item.get("user_id") is not None:
        uid = w.ref_id(sim, "user", {"_id": item["user_id"]})
    else:
        uid = caller_id
    eid = sim.next_id("event")
    event = {"_id": eid, "type": etype, "timestamp": block.get("timestamp") or w.now_iso(),
             "basetype": block.get("basetype"), "objecttype": block.get("objecttype"),
             "object_id": block.get("object_id"), "system_object_id": block.get("system_object_id"),
             "object_version": block.get("object_version"), "info": copy.deepcopy(block.get("info") or {}),
             "pollable": block.get("pollable", False), "schema": block.get("schema")}
    entry = {"_basetype": "event", "event": event, "user": {"_basetype": "user", "user": {"_id": uid}}}
    sim.events[eid] = entry
    return entry

# ------------------------------------------------------------------------------------------------ install


def install(app, sim):
    """Add the fylr write routes to `app` (a bottle.Bottle serving `sim`)."""
    w.ensure_state(sim)

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
        route(method, "/pool", _route_pool_post)
        route(method, "/message", _basetype_route("messages", _save_message))
        route(method, "/eas/put", files.route_eas_put)
        route(method, "/collection", _route_collection_put)
    route("PUT", "/collection/list", _route_collection_list_put)
    route("POST", "/collection/objects/<collection_id>",
          lambda s, collection_id: _route_collection_objects(s, collection_id, append=False))
    route("POST", "/collection/push/<collection_id>",
          lambda s, collection_id: _route_collection_objects(s, collection_id, append=True))
    route("POST", "/event/list", _route_event_list_post)
    extras.install(app, sim)
    route("POST", "/db/<objecttype>", records.route_db_post)
    route("DELETE", "/db/<objecttype>", records.route_db_delete)
    route("POST", "/eas/<file_id:int>", files.route_eas_file_post)
    route("POST", "/eas/rput", files.route_eas_rput)
    route("POST", "/eas/rput/bulk", files.route_eas_rput_bulk)
