"""Canonical, id-independent dump of a simulated instance: canonical_dump(source) == canonical_dump(target)
after a faithful restore (tests may first apply documented transformations to one side, e.g. the
easydb 5 -> fylr event type mapping of parameters.md 6.1).
"""
import copy
import hashlib
import json

from .extras import CONFIG_FILE_PATHS


def canonical_dump(sim, strict=False):
    """JSON-able dict describing everything stored in `sim` in id-independent terms.

    Rules
    - Basetypes are keyed by `reference`; an empty reference falls back to `<kind>:<stored id>`
      (the documented backup fallback, parameters.md 7.1 - the backup writes it as the reference, so a
      restored target stores it literally and both sides produce the same key).
    - Cross references are written as such keys: user -> group keys, pool -> parent pool key,
      message -> group keys, collection -> parent collection key + owner user key, ACL `who` -> key.
    - Tags keep their ids (tag ids are restored, limitations.md): each tag lists its `_id`.
    - Every collection, home collections included, is keyed by its stored `reference` (fallback
      `collection:<id>`), with `owner` (user key) and `parent` (the parent's key) as fields: a home
      collection with the wrong reference, or a second one, shows.  `objects` lists local objects by
      system object id, foreign ones by their _global_object_id string, promised (deferred _uuid) ones
      as "uuid:<uuid>"; `webfrontend_props` is keyed by str() of those entries.
    - Records are keyed by str(_system_object_id) with objecttype, `_uuid`, `deleted` flag and every
      version in order: `_version`, owner/pool/tags as keys, parent as the parent's system object id,
      fields with links as {"_objecttype", "_system_object_id"}, nested rows with their `_uuid`, and file
      fields as [{preferred, name, original_filename, leave, status, versions: {name: sha256 of bytes}}]
      (a leave-on-remote original is "remote:<absolute url>" instead of a hash; a pending or failed
      file has no versions and says so in `status`).  A link promised by a deferred _uuid lookup is
      {"_objecttype", "_deferred_uuid"}.  Empty values (None, "", [], {}) are dropped: absent and empty
      compare equal.
    - Events are a sorted list without ids: type, basetype, objecttype, system_object_id,
      object_version, user key, timestamp, info, and `object_id` as the KEY of the entry the event is
      about when that is a user / group / pool / collection / message (basetype of that name, or an
      easydb 5 user event USER_LOGIN/USER_LOGOUT/USER_CREATED without basetype); object events leave it
      out (system_object_id names the record).
    - Datamodel: schema tables, masks and l10n (version numbers / commit stamps differ by design);
      config: system.config minus sections a restore never writes (default_locations, license,
      logging, purge; FG releases 6.7.0) plus plugin configs.
    - Excluded by design: every _id / _version of basetypes, the instance part of _global_object_id,
      the instance name, file ids and file references, collection uuids, and per-version server
      timestamps / creator / comment (api.md 4.5 GAP) - `strict=True` adds `_created`, `_last_modified`,
      `_comment`, `_create_user` and the `deleted_at` value for tests that restore those too.
    """
    with sim.lock:
        keys = _Keys(sim)
        return {
            "datamodel": _datamodel(sim),
            "objecttypes": {o["objecttype"]["name"]: _objecttype_settings(keys, o) for o in sim.objecttypes},
            "plugins": {p["name"]: _plugin(sim, p) for p in sim.plugins or [] if not p.get("auto_added")},
            "config": _config(sim),
            "groups": {keys.group(i): _group(sim, keys, e) for i, e in sim.groups.items()},
            "users": {keys.user(i): _user(keys, e) for i, e in sim.users.items()},
            "pools": {keys.pool(i): _pool(keys, e) for i, e in sim.pools.items()},
            "taggroups": {keys.basetype("taggroup", i, e): _taggroup(keys, e) for i, e in sim.taggroups.items()},
            "messages": {keys.basetype("message", i, e): _message(keys, e) for i, e in sim.messages.items()},
            "collections": _collections(sim, keys),
            "records": _records(sim, keys, strict),
            "events": _events(sim, keys),
        }


class _Keys:
    """Reference keys of stored basetypes (with the `<kind>:<id>` fallback)."""

    def __init__(self, sim):
        self.sim = sim

    @staticmethod
    def basetype(kind, entry_id, entry):
        reference = entry[kind].get("reference")
        return reference if reference not in (None, "") else "%s:%s" % (kind, entry_id)

    def _of(self, kind, table, entry_id):
        if entry_id is None:
            return None
        entry = table.get(entry_id)
        return self.basetype(kind, entry_id, entry) if entry else "%s:missing:%s" % (kind, entry_id)

    def user(self, uid):
        return self._of("user", self.sim.users, uid)

    def group(self, gid):
        return self._of("group", self.sim.groups, gid)

    def pool(self, pid):
        return self._of("pool", self.sim.pools, pid)

    def tag(self, tag_id):
        entry = self.sim.tag_by_id(tag_id)
        return self.basetype("tag", tag_id, entry) if entry else "tag:missing:%s" % tag_id

    def collection(self, cid):
        return self._of("collection", self.sim.collections, cid)

    def message(self, mid):
        return self._of("message", self.sim.messages, mid)

    def who(self, value):
        """ACL `who` / any {"_basetype": kind, kind: {"_id": n}} wrapper -> {"_basetype", "key"}."""
        kind = value.get("_basetype") or next((k for k in ("user", "group") if k in value), None)
        inner = value.get(kind) if kind else None
        if kind in ("user", "group") and isinstance(inner, dict) and "_id" in inner:
            return {"_basetype": kind, "key": getattr(self, kind)(inner["_id"])}
        return value


def _pruned(value):
    """Drop None / "" / [] / {} recursively (absent and empty compare equal)."""
    if isinstance(value, dict):
        out = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _acl(keys, acl):
    result = []
    for entry in acl or []:
        entry = dict(entry)
        if isinstance(entry.get("who"), dict):
            entry["who"] = keys.who(entry["who"])
        entry.pop("_id", None)
        result.append(_pruned(entry))
    return sorted(result, key=lambda e: json.dumps(e, sort_keys=True))

# ------------------------------------------------------------------------------------------ sections


def _objecttype_settings(keys, entry):
    """Settings of an objecttype (its structure is in the datamodel): ACL by keys, tag bindings by id,
    the watermark with its image as file_ref()."""
    return _pruned({"acl": _acl(keys, entry.get("_acl")), "tags": sorted(t["_id"] for t in entry.get("_tags") or []),
                    "private_tags": entry.get("_private_tags"), "transitions": entry.get("_transitions"),
                    "maskfilters": entry.get("_maskfilters"), "columnfilters": entry.get("_columnfilters"),
                    "watermark": _watermark(keys.sim, entry["objecttype"].get("watermark"))})


def _plugin(sim, plugin):
    out = {k: plugin.get(k) for k in ("type", "url", "path", "enabled", "update_policy")}
    out["zip_file"] = file_ref(sim, plugin["zip_file"]) if plugin.get("zip_file") else None
    return _pruned(out)


def file_ref(sim, value):
    """A file value outside records ({"_id": n}) as what survives a migration: original filename and the
    sha256 of the original's bytes (ids differ between instances by design)."""
    info = sim.files.get(value.get("_id")) if isinstance(value, dict) else None
    if info is None:
        return {"missing_file": value}
    data = (info.get("versions") or {}).get("original")
    return {"original_filename": info.get("original_filename"),
            "sha256": hashlib.sha256(data).hexdigest() if data is not None else None}


def _watermark(sim, watermark):
    if not isinstance(watermark, dict):
        return watermark
    return dict(watermark, image=file_ref(sim, watermark["image"]) if watermark.get("image") else None)


def _datamodel(sim):
    tables = sorted((sim.schema or {}).get("tables") or [], key=lambda t: t.get("name") or "")
    masks = sorted((sim.mask or {}).get("masks") or [], key=lambda m: m.get("name") or "")
    return {"tables": tables, "masks": masks, "l10n": sim.l10n or {}}


_CONFIG_NOT_RESTORED = ("default_locations", "license", "logging", "purge")


def _config(sim):
    """system.config (fylr shape; easydb 5 flat keys as stored) with every file value as file_ref()."""
    system = copy.deepcopy(((sim.config or {}).get("system") or {}).get("config") or {})
    for where, holder, key in _config_file_slots(sim, system):
        holder[key] = file_ref(sim, holder[key]) if holder[key] is not None else None
    return _pruned({"system": {k: v for k, v in system.items() if k not in _CONFIG_NOT_RESTORED},
                    "plugin": (sim.config or {}).get("plugin") or {}})


def _config_file_slots(sim, system):
    """(where, holder, key) of every file value in a stored system config; `where` names the fylr path
    (easydb 5: system.logo is appearance.logo, parameters.md 9; system["publish.collectors"].collectors is
    publish.collectors), list items of collectors by internalname, others by index."""
    def walk(node, path, where, holder=None, key=None):
        if not path:
            yield where, holder, key
            return
        head, rest = path[0], path[1:]
        if head == "[]":
            for n, item in enumerate(node if isinstance(node, list) else []):
                name = item.get("internalname") if isinstance(item, dict) else None
                yield from walk(item, rest, "%s[%s]" % (where, name or n), node, n)
        elif isinstance(node, dict) and head in node:
            yield from walk(node[head], rest, "%s%s%s" % (where, "" if where.endswith(":") else ".", head), node, head)
    if sim.flavour == "easydb5":
        if "logo" in system:
            yield "config:appearance.logo", system, "logo"
        collectors = {"publish": {"collectors": (system.get("publish.collectors") or {}).get("collectors")}}
        yield from walk(collectors, ("publish", "collectors", "[]", "logo"), "config:")
        return
    for path in CONFIG_FILE_PATHS:
        yield from walk(system, path, "config:")


def _group(sim, keys, entry):
    g = entry["group"]
    return _pruned({"name": g.get("name"), "displayname": g.get("displayname"), "type": g.get("type"),
                    "system_rights": entry.get("_system_rights"), "acl": _acl(keys, entry.get("_acl"))})


def _group_keys(keys, groups):
    return sorted(keys.group(g["group"]["_id"]) for g in groups or [])


def _user(keys, entry):
    u = entry["user"]
    return _pruned({"login": u.get("login"), "type": u.get("type"), "email": u.get("email"),
                    "first_name": u.get("first_name"), "last_name": u.get("last_name"),
                    "displayname": u.get("displayname"), "groups": _group_keys(keys, entry.get("_groups")),
                    "has_password": bool(entry.get("_password_hash"))})


def _pool(keys, entry):
    p = entry["pool"]
    return _pruned({"name": p.get("name"), "parent": keys.pool(p.get("_id_parent")),
                    "is_system_pool": bool(p.get("is_system_pool")), "acl": _acl(keys, entry.get("_acl")),
                    "watermark": _watermark(keys.sim, p.get("watermark"))})


def _taggroup(keys, entry):
    tg = entry["taggroup"]
    tags = {}
    for t in entry.get("_tags") or []:
        tag = t.get("tag", t)
        tags[keys.basetype("tag", tag["_id"], {"tag": tag})] = _pruned(
            {"_id": tag["_id"], "displayname": tag.get("displayname"), "type": tag.get("type"),
             "displaytype": tag.get("displaytype"), "enabled": tag.get("enabled")})
    return _pruned({"type": tg.get("type"), "displayname": tg.get("displayname"), "tags": tags})


def _message(keys, entry):
    m = entry["message"]
    return _pruned({"title": m.get("title"), "message": m.get("message"),
                    "webfrontend_type": m.get("webfrontend_type"), "groups": _group_keys(keys, entry.get("_groups"))})


def _collection_entry(entry):
    return "uuid:%s" % entry["_uuid"] if isinstance(entry, dict) else entry


def _collections(sim, keys):
    result = {}
    for cid, entry in sim.collections.items():
        c = entry["collection"]
        objects = [_collection_entry(e) for e in sim.collection_objects.get(cid) or []]
        props = (getattr(sim, "collection_props", None) or {}).get(cid) or {}
        key = keys.collection(cid)
        if key in result:                     # two collections with one reference: both must show
            key = "%s#%s" % (key, cid)
        result[key] = _pruned({
            "displayname": c.get("displayname"), "type": c.get("type"), "parent": keys.collection(c.get("_id_parent")),
            "owner": keys.user((entry.get("_owner") or {}).get("user", {}).get("_id")),
            "acl": _acl(keys, entry.get("_acl")), "objects": objects,
            "webfrontend_props": {str(s): p for s, p in props.items() if p is not None}})
    return result

# ------------------------------------------------------------------------------------------- records


def _records(sim, keys, strict):
    waiting = {}                                       # (ot, child _id, version) -> deferred parent sysid
    for parent_sysid, children in (getattr(sim, "deferred_parents", None) or {}).items():
        for ot, child_id, number in children:
            waiting[(ot, child_id, number)] = parent_sysid
    result = {}
    for ot, records in sim.records.items():
        for rec in records.values():
            entry = {"objecttype": ot, "_uuid": rec["_uuid"], "deleted": rec.get("deleted_at") is not None,
                     "versions": [_version(sim, keys, ot, rec, v, waiting, strict) for v in rec["versions"]]}
            if strict:
                entry["deleted_at"] = rec.get("deleted_at")
            result[str(rec["_system_object_id"])] = entry
    return result


def _version(sim, keys, ot, rec, version, waiting, strict):
    parent = version.get("_id_parent")
    if parent is not None:
        parent_rec = (sim.records.get(ot) or {}).get(parent)
        parent = parent_rec["_system_object_id"] if parent_rec else "missing:%s" % parent
    else:
        parent = waiting.get((ot, rec["_id"], version["_version"]))
    out = {"_version": version["_version"], "owner": keys.user(version.get("_owner")),
           "pool": keys.pool(version.get("_pool")), "parent": parent,
           "tags": sorted(keys.tag(t) for t in version.get("_tags") or []), "acl": _acl(keys, version.get("_acl")),
           "fields": _fields(sim, version.get("fields") or {})}
    if strict:
        out.update(_created=version.get("_created"), _last_modified=version.get("_last_modified"),
                   _comment=version.get("_comment"), _create_user=keys.user(version.get("_create_user")))
    return _pruned(out) | {"_version": version["_version"]}


def _fields(sim, fields):
    return _pruned({key: _value(sim, key, value) for key, value in fields.items()})


def _value(sim, key, value):
    if key.startswith("_nested:"):
        return [dict(_fields(sim, {k: v for k, v in row.items() if k != "_uuid"}), _uuid=row.get("_uuid"))
                for row in value or []]
    if isinstance(value, dict) and "_objecttype" in value:
        if "_system_object_id" not in value:          # promised by a deferred _uuid lookup
            return {"_objecttype": value["_objecttype"], "_deferred_uuid": value.get("_uuid")}
        return {"_objecttype": value["_objecttype"], "_system_object_id": value.get("_system_object_id")}
    if isinstance(value, list) and value and all(isinstance(v, dict) and "_id" in v for v in value):
        return [_file_entry(sim, v) for v in value]
    return value


def _absolute(sim, url):
    if url and url.startswith("/"):
        return (sim.base_url or "") + url
    return url


def _file_entry(sim, entry):
    info = sim.files.get(entry["_id"])
    out = {"preferred": bool(entry.get("preferred")), "name": entry.get("name")}
    if info is None:
        return dict(out, missing_file=True)
    status = info.get("status", "done")
    versions = {}
    if status in ("sync", "done"):            # a pending / failed file has no readable versions
        versions = {name: hashlib.sha256(data).hexdigest() for name, data in (info.get("versions") or {}).items()
                    if data is not None}
        if info.get("leave"):
            versions["original"] = "remote:%s" % _absolute(sim, info.get("remote_url"))
    return dict(out, original_filename=info.get("original_filename"), leave=bool(info.get("leave")),
                status=status, versions=versions)

# -------------------------------------------------------------------------------------------- events


_KEYED_BASETYPES = ("user", "group", "pool", "collection", "message")
_E5_USER_EVENTS = ("USER_LOGIN", "USER_LOGOUT", "USER_CREATED")      # easydb 5: no basetype, object_id = user


def _event_subject(keys, e):
    """Key of the user / group / pool / collection / message an event is about, else None."""
    kind = e.get("basetype")
    if kind is None and e.get("type") in _E5_USER_EVENTS:
        kind = "user"
    if kind not in _KEYED_BASETYPES or e.get("object_id") is None:
        return None
    return getattr(keys, kind)(e["object_id"])


def _events(sim, keys):
    result = []
    for entry in sim.events.values():
        e = entry["event"]
        out = {"type": e.get("type"), "basetype": e.get("basetype"), "objecttype": e.get("objecttype"),
               "system_object_id": e.get("system_object_id"), "object_version": e.get("object_version"),
               "user": keys.user(((entry.get("user") or {}).get("user") or {}).get("_id")),
               "timestamp": e.get("timestamp"), "info": e.get("info") or {}}
        subject = _event_subject(keys, e)
        if subject is not None:
            out["object_id"] = subject
        result.append(out)
    return sorted(result, key=lambda e: json.dumps(e, sort_keys=True, default=str))

# --------------------------------------------------------------------------- the rest of an instance


def extras_dump(sim):
    """What survives a migration of the rest of an instance (issue 12), id-independent like
    canonical_dump (which does not contain these sections): see the functions below."""
    with sim.lock:
        return {"right_presets": right_presets_dump(sim), "xmlmappings": xmlmappings_dump(sim),
                "publish": publish_dump(sim), "transitions": transitions_dump(sim),
                "files": nonrecord_files_dump(sim)}


def _sorted_json(items):
    return sorted(items, key=lambda e: json.dumps(e, sort_keys=True, ensure_ascii=False))


def _objecttype_names(sim, ids):
    names = {o["objecttype"]["_id"]: o["objecttype"]["name"] for o in sim.objecttypes}
    return sorted(names.get(i, "objecttype:missing:%s" % i) for i in ids or [])


def right_presets_dump(sim):
    """{context: [preset, ...]} sorted; a preset is {displayname, description, position, preset} with every
    rights item's pool_ids as pool keys (reference or pool:<id>) and objecttype_ids as objecttype names."""
    keys = _Keys(sim)
    out = {}
    for context, presets in (sim.right_presets or {}).items():
        dumped = []
        for entry in presets:
            block = entry["right_preset"]
            preset = copy.deepcopy(block.get("preset") or {})
            for item in (preset.get("rights") or {}).values():
                if isinstance(item, dict) and "pool_ids" in item:
                    item["pool_ids"] = sorted(keys.pool(i) for i in item["pool_ids"] or [])
                if isinstance(item, dict) and "objecttype_ids" in item:
                    item["objecttype_ids"] = _objecttype_names(sim, item["objecttype_ids"])
            dumped.append(_pruned({"displayname": block.get("displayname"), "description": block.get("description"),
                                   "position": block.get("_position"), "preset": preset}))
        out[context] = _sorted_json(dumped)
    return _pruned(out)


def xmlmappings_dump(sim):
    """Sorted [{displayname, profile, objecttype (name), fields, limited_extensions, xml_base, recipe_configs,
    profile_type}]; profile_type keeps only the flags a PUT persists (dc_export / plugins_import are not)."""
    writable = ("xml_export", "exiftool_export", "exiftool_export_omit_empty", "exiftool_import")
    out = []
    for m in sim.xmlmappings or []:
        table = m.get("idTable")
        out.append(_pruned({
            "displayname": m.get("displayname"), "profile": m.get("profile"),
            "objecttype": _objecttype_names(sim, [table])[0] if table else None, "fields": m.get("fields"),
            "limited_extensions": m.get("limited_extensions"), "xml_base": m.get("xml_base"),
            "recipe_configs": m.get("recipe_configs"),
            "profile_type": {k: v for k, v in (m.get("profile_type") or {}).items() if k in writable and v}}))
    return _sorted_json(out)


def publish_dump(sim):
    """Sorted [{system_object_id, collector, publish_uri, easydb_uri, version (only when pinned, > 0)}]."""
    out = []
    for entry in sim.publish or []:
        p = entry["publish"]
        version = p.get("version") if isinstance(p.get("version"), int) and p.get("version") > 0 else None
        out.append(_pruned({"system_object_id": p.get("system_object_id"), "collector": p.get("collector"),
                            "publish_uri": p.get("publish_uri"), "easydb_uri": p.get("easydb_uri"),
                            "version": version}))
    return _sorted_json(out)


def transitions_dump(sim):
    """Sorted global transitions without `_id`: `who` as {_basetype, key} (user / group reference or the
    <kind>:<id> fallback), objecttype_ids as names, tag ids unchanged (they are restored)."""
    keys = _Keys(sim)
    out = []
    for t in sim.transitions or []:
        t = {k: copy.deepcopy(v) for k, v in t.items() if k != "_id"}
        t["who"] = _sorted_json(keys.who(w) for w in t.get("who") or [])
        t["objecttype_ids"] = _objecttype_names(sim, t.get("objecttype_ids"))
        out.append(_pruned(t))
    return _sorted_json(out)


def nonrecord_files_dump(sim):
    """Sorted [[where, original filename, sha256 of the original]] of every file used outside records:
    "config:appearance.logo", "config:publish.collectors[<internalname>].logo", ... (fylr paths for both
    flavours), "pool:<key>:watermark", "objecttype:<name>:watermark", "plugin:<name>:zip_file"."""
    slots = [(where, holder[key]) for where, holder, key in
             _config_file_slots(sim, ((sim.config or {}).get("system") or {}).get("config") or {})]
    keys = _Keys(sim)
    for pid, entry in sim.pools.items():
        slots.append(("pool:%s:watermark" % keys.pool(pid), (entry["pool"].get("watermark") or {}).get("image")))
    for entry in sim.objecttypes:
        slots.append(("objecttype:%s:watermark" % entry["objecttype"]["name"],
                      (entry["objecttype"].get("watermark") or {}).get("image")))
    for plugin in sim.plugins or []:
        slots.append(("plugin:%s:zip_file" % plugin.get("name"), plugin.get("zip_file")))
    out = []
    for where, value in slots:
        if value is not None:
            ref = file_ref(sim, value)
            out.append([where, ref.get("original_filename"), ref.get("sha256") or "missing:%s" % (value,)])
    return sorted(out)
