"""fylr records of the instance simulator: POST /db/{objecttype} and DELETE /db/{objecttype}
(api.md 6.6, OAS /db/{objecttype}).  Everything the datamodel and the documented record keys do not
allow is refused; where the docs are silent the stricter reading is taken (marked SILENT at the code).

Record keys (SILENT, api.md 8 #6 "which top-level record keys are rejected is not documented"):
  top level   _objecttype and _mask (both required, OAS DbObject), _system_object_id, _uuid, _owner, _tags
              (only tables with tags; one tag per `choice` group unless skip_constraints), _comment,
              _create_user (root only), _created (accepted and IGNORED: timestamps are the server's), _acl
              (only acl tables; stored on the version); anything else -> 400 SchemaInconsistent.
  <ot> block  _id, _version, _version:auto_increment, lookup:_id, _pool (only pool tables), _id_parent /
              lookup:_id_parent (only hierarchical tables), _parents (only polyhierarchical tables),
              _nested:<table owned by it>, _reverse_nested:* (ignored), the table's columns; values are
              type checked per column type.  Nested rows: _uuid, the nested table's columns.
  links       {_objecttype (the column's target), _mask, <target>: {_id | lookup:_id}}
  file entries _id | lookup:_id {reference}, preferred (exactly one entry), name, frontend_prefs.
Lookups (api.md 6.7): exactly one key - _system_object_id, _uuid or a column with a unique key (SILENT:
another column -> 400 SchemaInconsistent); `_allow_defer` only with _system_object_id/_uuid, `_objecttype`
only where the table is not implied.  A version-1 create is addressed by the top-level _system_object_id /
_uuid only: a lookup:_id in a create must find its record (else LookupNotFound) and then the version is
wrong.  Deferred _uuid targets are stored as {"_objecttype","_uuid"} and resolved when saved (store.py).
Unique keys (schema unique_keys) hold among the latest versions of all records incl. trashed ones
(SILENT) -> DatabaseUniqueKeyViolation unless skip_constraints.  A parent below the record itself (its
latest versions' parents lead back to it, also when a deferred parent arrives) -> 400 SchemaInconsistent
(SILENT).  Saved and deleted records reach the
search index sim.index_lag seconds later (await_index: at once; skip_index: at the next reindex).
DELETE: [[_id, current version, comment]]; trash = records[ot][_id]["deleted_at"]; live records still
linking a target -> 202 (delete_policy remove | setnull | create_collection (not simulated) | undelete |
purge).
"""
import copy
import time
import uuid

import bottle

from .auth import require_user
from .files import file_by_lookup
from .writeutil import (Journal, _basetype_values, body, confirm_tasks, ensure_state, fail, flag, holds_root_right,
                        json_answer, lookup_basetype, now_iso, options_field, query, resolve_acl, rollback,
                        skip_constraints_param, user_id, wrapped_ref_id)

TOP_LEVEL_KEYS = {"_objecttype", "_mask", "_system_object_id", "_uuid", "_owner", "_tags", "_comment",
                  "_create_user", "_created"}
_LINK_KEYS = {"_objecttype", "_mask"}
_MISSING = object()
_FILE_ENTRY_KEYS = {"_id", "lookup:_id", "preferred", "name", "frontend_prefs"}

# ------------------------------------------------------------------------------------------- datamodel


class Table:
    """What POST /db needs of one schema table."""

    def __init__(self, sim, table):
        self.name = table["name"]
        self.columns = {c["name"]: ("link" if c.get("kind") == "link" else c.get("type"))
                        for c in table.get("columns") or []}
        self.checks = {name: _type_check(ctype) for name, ctype in self.columns.items()}   # _type_ok's test
        # (test, 0 plain | 1 link | 2 eas) of each column RecordBatch.fields / nested_rows handle inline; a column
        # whose name starts with "_" or "lookup:" is left out: those keep going through the general code
        self.kinds = {name: (self.checks[name], 1 if ctype == "link" else 2 if ctype == "eas" else 0)
                      for name, ctype in self.columns.items() if not name.startswith(("_", "lookup:"))}
        self.targets = {c["name"]: c.get("other_table_name_hint") for c in table.get("columns") or []
                        if c.get("kind") == "link"}
        self.pool, self.tags = bool(table.get("pool_link")), bool(table.get("has_tags"))
        self.hierarchical = bool(table.get("is_hierarchical"))
        self.polyhierarchical = bool(table.get("polyhierarchical"))
        self.acl = bool(table.get("acl_table"))
        self.nested = {"_nested:" + t["name"] for t in (sim.schema or {}).get("tables") or []
                       if (t.get("owned_by") or {}).get("other_table_name_hint") == self.name}
        self.unique_keys = [tuple(c.get("column_name_hint") for c in key.get("columns") or [])
                            for key in table.get("unique_keys") or []]
        self.masks = {m.get("name") for m in (sim.mask or {}).get("masks") or []
                      if m.get("table_name_hint") == self.name} | {"_all_fields"}
        self.row_keys = frozenset(self.columns) | self.nested | {"_uuid"}    # what a nested row may hold

    def unique_column(self, name):
        return (name,) in self.unique_keys


def tables(sim):
    return {t["name"]: Table(sim, t) for t in (sim.schema or {}).get("tables") or []}


def objecttype_names(sim):
    names = {t["name"] for t in (sim.schema or {}).get("tables") or [] if not t.get("owned_by")}
    return names | {o["objecttype"]["name"] for o in sim.objecttypes}


def _schema_error(sim, message):
    fail(sim, 400, "SchemaInconsistent", message, msg=message)


def _type_check(ctype):
    """The test of a non-null value of column type `ctype` as the record JSON has it (api.md 4.5); None:
    anything passes (unknown, custom types).  Chosen once per table (Table.checks), not once per value."""
    if ctype in ("text", "text_oneline", "string"):
        return _is_str
    if ctype == "text_l10n":
        return _is_l10n
    if ctype in ("date", "datetime", "date_range"):
        return _is_date
    if ctype == "integer":
        return _is_integer
    if ctype == "number":
        return _is_number
    if ctype == "boolean":
        return _is_bool
    if ctype == "link":
        return _is_dict
    if ctype == "eas":
        return _is_list
    return None


def _is_str(value):
    return isinstance(value, str)


def _is_l10n(value):
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _is_date(value):
    return isinstance(value, dict) and isinstance(value.get("value"), str)


def _is_integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_bool(value):
    return isinstance(value, bool)


def _is_dict(value):
    return isinstance(value, dict)


def _is_list(value):
    return isinstance(value, list)

# --------------------------------------------------------------------------------------- record lookups


class UuidIndex:
    """uuid -> sysid of every record, kept on the Instance from one request to the next: built anew for each
    POST it cost a third of the simulator's time in a 20,000 record restore, and more with every record.
    It stays valid while sim.sysids is the dict it was built beside, at the length it last saw: a create
    adds itself (add), a purge shrinks the dict, a rollback or a purge of everything replaces it; after any
    of those the next get() builds it again from the records."""

    def __init__(self, sim):
        self.sim = sim

    def _current(self):
        sim = self.sim
        cached = getattr(sim, "_uuid_index", None)
        if cached is None or cached[0] is not sim.sysids or cached[1] != len(sim.sysids):
            index = {r["_uuid"]: r["_system_object_id"] for recs in sim.records.values() for r in recs.values()}
            cached = sim._uuid_index = [sim.sysids, len(sim.sysids), index]
        return cached

    def get(self, value):
        return self._current()[2].get(value)

    def add(self, value, sysid):
        """A record just created (in sim.records and sim.sysids): one more entry, not a rebuild."""
        cached = getattr(self.sim, "_uuid_index", None)
        if cached is not None and cached[0] is self.sim.sysids and cached[1] == len(self.sim.sysids) - 1:
            cached[2][value] = sysid
            cached[1] += 1


class Deferred:
    """A lookup target promised with _allow_defer: by system id (links store the id) or by uuid."""

    def __init__(self, key, value):
        self.key, self.value = key, value


def lookup_record(sim, objecttype, lookup, uuids, implied=True, table_index=None):
    """System object id of the one record a lookup object names, or a Deferred.

    `objecttype` None = any table (then `_objecttype` may name it); implied=False allows `_objecttype`."""
    if not isinstance(lookup, dict):
        fail(sim, 400, "ServerGeneric", "Invalid lookup %r." % (lookup,), key="lookup:_id", value=lookup)
    keys = {k: v for k, v in lookup.items() if k != "_allow_defer" and not (k == "_objecttype" and not implied)}
    if not implied and lookup.get("_objecttype") is not None:
        objecttype = lookup["_objecttype"]
    if len(keys) != 1:
        fail(sim, 400, "ServerGeneric", "A record lookup names exactly one key, got %s." % sorted(lookup),
             key="lookup:_id", value=lookup)
    key, value = next(iter(keys.items()))
    allow_defer = lookup.get("_allow_defer", False)
    if "_allow_defer" in lookup and (key not in ("_system_object_id", "_uuid") or allow_defer is not True):
        fail(sim, 400, "ServerGeneric", "_allow_defer: true goes with _system_object_id or _uuid only.",
             key="lookup:_id", value=lookup)
    if key == "_system_object_id":
        hit_ot, _ = sim.record_by_sysid(value)
        if hit_ot and objecttype in (None, hit_ot):
            return value
        if hit_ot is None and allow_defer and isinstance(value, int) and not isinstance(value, bool):
            return Deferred(key, value)
    elif key == "_uuid":
        sysid = uuids.get(value)
        if sysid is not None and objecttype in (None, sim.sysids[sysid][0]):
            return sysid
        if sysid is None and allow_defer and isinstance(value, str):
            return Deferred(key, value)
    else:
        return _lookup_by_column(sim, objecttype, key, value, table_index or tables(sim))
    fail(sim, 400, "LookupNotFound", "Lookup %s=%r found no %s object." % (key, value, objecttype or ""),
         key=key, value=value)


def _lookup_by_column(sim, objecttype, key, value, table_index):
    table = table_index.get(objecttype)
    if table is None or key not in table.columns or not table.unique_column(key):
        # SILENT: a lookup by a custom column needs a unique column (only then it names one record)
        _schema_error(sim, "Lookup by %s.%s: not a unique column." % (objecttype, key))
    hits = [r["_system_object_id"] for r in (sim.records.get(objecttype) or {}).values()
            if r["versions"][-1]["fields"].get(key) == value]
    if len(hits) > 1:
        fail(sim, 400, "LookupFoundTooMany", "Lookup %s=%r found %d objects." % (key, value, len(hits)),
             count=len(hits), value=value)
    if not hits:
        fail(sim, 400, "LookupNotFound", "Lookup %s=%r found no %s object." % (key, value, objecttype),
             key=key, value=value)
    return hits[0]

# --------------------------------------------------------------------------------------- deferred uuids


def defer_uuid(sim, target_uuid, entry):
    """Note that `entry` (["link", ot, _id] | ["parent", ot, _id, version] | ["collection", cid]) waits for
    the record with `target_uuid`."""
    waiting = list(sim.deferred_uuids.get(target_uuid, []))
    if entry not in waiting:
        waiting.append(entry)
    sim.deferred_uuids = dict(sim.deferred_uuids, **{target_uuid: waiting})


def _replace_deferred(value, target_uuid, sysid):
    """Copy of a field value with every deferred link to target_uuid pointing at `sysid`."""
    if isinstance(value, dict):
        if value.get("_uuid") == target_uuid and "_objecttype" in value and "_system_object_id" not in value:
            return {"_objecttype": value["_objecttype"], "_system_object_id": sysid}
        return {k: _replace_deferred(v, target_uuid, sysid) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_deferred(v, target_uuid, sysid) for v in value]
    return value


def resolve_waiting(sim, record, objecttype, journal):
    """A record was saved: patch what waited for its system id (parents) or its uuid.  The records and
    collection entries it replaces go through `journal` (the batch's undo log)."""
    sysid, oid = record["_system_object_id"], record["_id"]
    for child_ot, child_id, number in sim.deferred_parents.get(sysid) or []:
        _set_parent(sim, child_ot, child_id, number, oid, journal)
    if sysid in sim.deferred_parents:
        sim.deferred_parents = {k: v for k, v in sim.deferred_parents.items() if k != sysid}
    waiting = sim.deferred_uuids.get(record["_uuid"]) or []
    if waiting:
        sim.deferred_uuids = {k: v for k, v in sim.deferred_uuids.items() if k != record["_uuid"]}
    for entry in waiting:
        if entry[0] == "parent":
            _set_parent(sim, entry[1], entry[2], entry[3], oid, journal)
        elif entry[0] == "link":
            rec = sim.records[entry[1]][entry[2]]
            journal.set(sim.records[entry[1]], entry[2], dict(rec, versions=[
                dict(v, fields=_replace_deferred(v["fields"], record["_uuid"], sysid)) for v in rec["versions"]]))
        elif entry[0] == "collection":
            _resolve_collection_entry(sim, entry[1], record["_uuid"], sysid, journal)


def refuse_a_loop(sim, ot, oid, parent):
    """SILENT (a tree cannot hold a record below itself; the docs do not say how fylr refuses it): a parent
    whose chain of parents (their latest versions) reaches the record is refused, the whole batch with it."""
    records, seen, node = sim.records.get(ot) or {}, set(), parent
    while node is not None and node not in seen:
        if node == oid:
            fail(sim, 400, "SchemaInconsistent", "%s %r cannot be placed below itself (parent %r)." % (ot, oid, parent),
                 key="_id_parent", value=parent)
        seen.add(node)
        versions = (records.get(node) or {}).get("versions") or [{}]
        node = versions[-1].get("_id_parent")


def _set_parent(sim, ot, child_id, number, parent_oid, journal):
    if number == len(sim.records[ot][child_id]["versions"]):   # the child's latest version: the tree now
        refuse_a_loop(sim, ot, child_id, parent_oid)
    child = dict(sim.records[ot][child_id])
    versions = list(child["versions"])
    versions[number - 1] = dict(versions[number - 1], _id_parent=parent_oid)
    child["versions"] = versions
    journal.set(sim.records[ot], child_id, child)


def _resolve_collection_entry(sim, cid, target_uuid, sysid, journal):
    entries = sim.collection_objects.get(cid)
    if entries is None:
        return
    placeholder = {"_uuid": target_uuid}
    resolved = [sysid if e == placeholder else e for e in entries]
    journal.set(sim.collection_objects, cid, list(dict.fromkeys(resolved)))
    props = dict(sim.collection_props.get(cid) or {})
    if "uuid:" + target_uuid in props:
        props[sysid] = props.pop("uuid:" + target_uuid)
        journal.set(sim.collection_props, cid, props)

# ---------------------------------------------------------------------------------------- search index


def index_later(sim, record, previous, params):
    """POST /search sees `record` sim.index_lag s later (store.py `indexed`); await_index: at once."""
    if params["await_index"]:
        record.pop("indexed", None)
        return record
    now = time.time()
    pending = (previous or {}).get("indexed")
    if pending and (pending["at"] is None or now < pending["at"]):
        before = pending["before"]                 # still the state the index had before
    elif previous is not None:
        before = {"version": len(previous["versions"]), "deleted_at": previous.get("deleted_at")}
    else:
        before = None
    record["indexed"] = {"at": None if params["skip_index"] else now + sim.index_lag, "before": before}
    return record


def reindex(sim):
    """POST /system/reindex (asynchronous, OAS): every record is searchable as it is sim.index_lag s later,
    also those saved with skip_index."""
    ready = time.time() + sim.index_lag
    for records in sim.records.values():
        for oid, rec in list(records.items()):
            indexed = rec.get("indexed")
            if indexed and (indexed["at"] is None or indexed["at"] > ready):
                records[oid] = dict(rec, indexed=dict(indexed, at=ready))

# ------------------------------------------------------------------------------------------ POST /db


class RecordBatch:
    """One POST /db/{objecttype} request."""

    def __init__(self, sim, objecttype, caller, params, journal):
        self.sim, self.ot, self.caller, self.params = sim, objecttype, caller, params
        self.journal = journal                      # every write of the batch goes through it (undo log)
        self.caller_id = user_id(caller)
        self.is_root = holds_root_right(sim, caller)
        self.uuids = UuidIndex(sim)
        self.found = {}                             # basetype lookups of this batch (it changes no basetype)
        self.refs = {}                              # (kind, lookup key) -> {value: _id} (basetype_ref)
        self.deferred = set()
        self.choice_groups = None                   # [(choice tag group, its tag ids)] (check_choice_tags)
        # the datamodel cannot change during the batch (it runs under sim.lock): read it once, not per record
        self.tables = tables(sim)
        self.table = self.tables.get(objecttype)
        self.objecttypes = objecttype_names(sim)
        self.top_keys = self.block_keys = None      # no table: the first record fails on self.table as before
        if self.table is not None:
            self.top_keys = TOP_LEVEL_KEYS | {objecttype} | ({"_acl"} if self.table.acl else set())
            self.block_keys = self._block_keys(self.table)
        self.unique = None                          # key columns -> {values: set(sysid)}, built on first use
        self.current = None                         # (objecttype, _id) of the record being saved
        self.created = set()                        # system object ids created by this batch

    # -- one record -------------------------------------------------------------------------------
    def save(self, item):
        sim, ot = self.sim, self.ot
        if not isinstance(item, dict) or not isinstance(item.get(ot), dict):
            fail(sim, 400, "RecordUnmarshalJson", "Each record needs an object under %r." % ot, msg="missing block")
        self.check_top_level(item)
        block = item[ot]
        self.check_block_keys(block)
        existing, version = self.target(block)
        if existing is None:
            return self.create(item, block)
        self.check_identity(item, block, existing)
        return self.update(existing, item, block, version)

    def check_top_level(self, item):
        sim, ot = self.sim, self.ot
        if item.get("_objecttype") != ot:
            _schema_error(sim, "_objecttype %r does not match %r." % (item.get("_objecttype"), ot))
        if item.get("_mask") not in self.table.masks:
            _schema_error(sim, "Unknown mask %r for %s." % (item.get("_mask"), ot))
        if not item.keys() <= self.top_keys:        # (the common case: no unknown key, no list to sort)
            _schema_error(sim, "Unknown or read-only record keys %s." % sorted(set(item) - self.top_keys))
        if item.get("_tags") and not self.table.tags:
            _schema_error(sim, "%s has no tags." % ot)

    @staticmethod
    def _block_keys(table):
        allowed = {"_id", "_version", "_version:auto_increment", "lookup:_id"} | set(table.columns) | table.nested
        if table.pool:
            allowed.add("_pool")
        if table.hierarchical:
            allowed |= {"_id_parent", "lookup:_id_parent"}
        if table.polyhierarchical:
            allowed.add("_parents")
        return allowed

    def check_block_keys(self, block):
        allowed = self.block_keys
        if block.keys() <= allowed:                 # the common case, tested in C
            return
        unknown = sorted(k for k in block if k not in allowed and not k.startswith("_reverse_nested:"))
        if unknown:
            _schema_error(self.sim, "Unknown keys in %s: %s." % (self.ot, unknown))

    def target(self, block):
        """(stored record or None for a create, the version number to store)."""
        version = block.get("_version")
        if block.get("_version:auto_increment"):
            existing = self.addressed(block)
            return existing, (len(existing["versions"]) + 1 if existing else 1)
        if version in (None, 1):
            if "lookup:_id" in block:               # a create is addressed by top-level ids only
                existing = self.addressed(block)
                self.version_mismatch(len(existing["versions"]) + 1, version)
            return None, 1
        existing = self.addressed(block)
        if existing is None:
            self.version_mismatch(1, version)
        if version != len(existing["versions"]) + 1:
            self.version_mismatch(len(existing["versions"]) + 1, version)
        return existing, version

    def version_mismatch(self, expected, got):
        fail(self.sim, 400, "VersionMismatch", "%s: version %r given, %d expected." % (self.ot, got, expected),
             expected=expected, expectedversion=expected, got=got, receivedversion=got,
             currentversion=expected - 1, object=self.ot)

    def addressed(self, block):
        """Stored record an update addresses by <ot>._id or <ot>."lookup:_id" (api.md 6.6), or None."""
        sim, ot = self.sim, self.ot
        found = None
        if "lookup:_id" in block:
            sysid = lookup_record(sim, ot, block["lookup:_id"], self.uuids, table_index=self.tables)
            if isinstance(sysid, Deferred):
                fail(sim, 400, "LookupNotFound", "The object to update does not exist.", key=sysid.key,
                     value=sysid.value)
            found = sim.record_by_sysid(sysid)[1]
        if block.get("_id") is not None:
            rec = (sim.records.get(ot) or {}).get(block["_id"])
            if rec is None or (found is not None and rec is not found):
                fail(sim, 400, "LookupNotFound", "%s %r not found." % (ot, block["_id"]), key="_id",
                     value=block["_id"])
            found = rec
        return found

    def check_identity(self, item, block, existing):
        """_id, _system_object_id and _uuid are settable on version 1 only (api.md 6.6)."""
        for key, stored in (("_system_object_id", existing["_system_object_id"]), ("_uuid", existing["_uuid"])):
            if key in item and item[key] != stored:
                _schema_error(self.sim, "%s cannot change on an update (%r stored)." % (key, stored))

    def create(self, item, block):
        sim, ot = self.sim, self.ot
        sysid = item.get("_system_object_id")
        uid = item.get("_uuid")
        if sysid is not None and (not isinstance(sysid, int) or isinstance(sysid, bool) or sysid < 1):
            _schema_error(sim, "_system_object_id must be a positive integer.")
        if uid is not None and not isinstance(uid, str):
            _schema_error(sim, "_uuid must be a string.")
        # SILENT: an existing _system_object_id / _uuid / _id is a unique-key violation (never renumbered).
        if sysid is not None and sysid in sim.sysids:
            fail(sim, 400, "DatabaseUniqueKeyViolation", "_system_object_id %r exists." % sysid,
                 name="_system_object_id", value=sysid)
        uid = uid or str(uuid.uuid4())
        if self.uuids.get(uid) is not None:
            fail(sim, 400, "DatabaseUniqueKeyViolation", "_uuid %r exists." % uid, name="_uuid", value=uid)
        oid = block.get("_id")
        if oid is not None:
            if not isinstance(oid, int) or isinstance(oid, bool) or oid < 1:
                _schema_error(sim, "%s._id must be a positive integer." % ot)
            if oid in sim.records.get(ot, {}):
                fail(sim, 400, "DatabaseUniqueKeyViolation", "%s._id %r exists." % (ot, oid), name="_id", value=oid)
        else:
            oid = sim.next_id("obj:" + ot)
        sim.bump_seq("obj:" + ot, oid)
        if sysid is None:
            sysid = sim.next_id("sysid")
        sim.bump_seq("sysid", sysid)
        record = {"_id": oid, "_system_object_id": sysid, "_uuid": uid, "deleted_at": None, "versions": []}
        self.current = (ot, oid)
        record["versions"] = [self.version(item, block, 1, None, record)]
        if ot not in sim.records:
            self.journal.set(sim.records, ot, {})
        self.journal.set(sim.records[ot], oid, index_later(sim, record, None, self.params))
        self.journal.set(sim.sysids, sysid, (ot, oid))
        self.created.add(sysid)
        self.uuids.add(uid, sysid)
        resolve_waiting(sim, record, ot, self.journal)
        self.event("OBJECT_INSERT", sim.records[ot][oid])
        return sim.records[ot][oid]

    def update(self, existing, item, block, version):
        sim, ot = self.sim, self.ot
        self.current = (ot, existing["_id"])
        record = dict(existing)
        record["versions"] = existing["versions"] + [self.version(item, block, version, existing["versions"][-1],
                                                                  existing)]
        self.journal.set(sim.records[ot], existing["_id"], index_later(sim, record, existing, self.params))
        self.event("OBJECT_UPDATE", record)
        return record

    # -- one version ------------------------------------------------------------------------------
    def version(self, item, block, number, previous, record):
        """Stored Version; fields not sent are kept only with _version:auto_increment (merge)."""
        sim = self.sim
        merge = bool(block.get("_version:auto_increment")) and previous is not None
        if merge:
            fields = dict(previous["fields"])
            fields.update(self.fields(block))
        else:
            fields = self.fields(block)             # a new dict already: no copy into another one
        self.check_unique(fields, record)
        if "_create_user" in item:
            if not self.is_root:
                fail(sim, 403, "SystemRightRequired", "_create_user needs system.root.", rights=["system.root"])
            create_user = self.basetype_ref("user", item["_create_user"])
        else:
            create_user = self.caller_id
        now = now_iso()            # the server's time; a sent _created is ignored (SILENT)
        stored = {
            "_version": number, "_created": now, "_last_modified": now,
            "_comment": item.get("_comment"), "_create_user": create_user,
            "_owner": self.owner(item, previous, merge),
            "_pool": self.pool(block, previous, merge),
            "_id_parent": self.parent(block, previous, merge, number, record["_id"]),
            "_tags": self.tags(item, previous, merge),
            "fields": fields,
        }
        # Record `_acl` (only acl tables reach here, check_top_level): stored on the version by _id, last key
        if "_acl" in item:
            stored["_acl"] = resolve_acl(sim, item["_acl"])
        elif merge and "_acl" in previous:
            stored["_acl"] = previous["_acl"]
        return stored

    def owner(self, item, previous, merge):
        if "_owner" in item:
            return self.basetype_ref("user", item["_owner"])
        # SILENT: no _owner sent -> none (merge keeps the previous one).
        return previous["_owner"] if merge else None

    def pool(self, block, previous, merge):
        pool = previous["_pool"] if merge else None
        if block.get("_pool") is not None:
            pool = self.basetype_ref("pool", block["_pool"])
        if self.table.pool and pool is None and not self.params["skip_constraints"]:
            # OAS skip_constraints "permits objects without a pool"; the code is SILENT
            _schema_error(self.sim, "%s objects need a pool." % self.ot)
        return pool

    def basetype_ref(self, kind, wrapper):
        """wrapped_ref_id, remembered: for a wrapper {kind: {"lookup:_id": {key: value}}, ...} its answer depends
        on nothing but (kind, key, value) and the stored `key` values of the basetype's entries - other keys are
        not read, the lookup's index finds equal values alike, and no basetype changes during the batch.  Every
        other shape, and every refusal (it ends the batch), goes through wrapped_ref_id as it is."""
        try:
            lookup = wrapper[kind]["lookup:_id"]
        except (TypeError, KeyError):
            lookup = None                            # another shape: wrapped_ref_id as it is
        return self._remembered(kind, lookup, lambda: wrapped_ref_id(self.sim, kind, wrapper, self.found))

    def tag_ref(self, lookup):
        """lookup_basetype(sim, "tag", lookup), remembered like basetype_ref's answers."""
        return self._remembered("tag", lookup, lambda: lookup_basetype(self.sim, "tag", lookup, self.found))

    def _remembered(self, kind, lookup, answer):
        """answer() of a lookup {key: value}, remembered by (kind, key) and value; every other shape, and every
        refusal (it ends the batch), is answer() as it is."""
        try:
            (key, value), = lookup.items()
            answers = self.refs.get((kind, key))
            if answers is None:
                answers = self.refs[(kind, key)] = self._ref_answers(kind, key)
            ref = answers.get(value, _MISSING)       # TypeError: an unhashable value
        except (TypeError, ValueError, AttributeError):
            return answer()
        if ref is _MISSING:
            ref = answers[value] = answer()
        return ref

    def _ref_answers(self, kind, key):
        """{value: _id} of the lookups by `key` of basetype `kind` answered so far, also by earlier batches: kept
        on the Instance beside the (_id, stored value) pairs they were answered from, and used while those pairs
        are still equal to the basetype's now (a user or pool added, removed or changed between two batches,
        also in place: a new table of answers).  The pairs are what lookup_basetype's index is built of."""
        if kind not in ("user", "pool", "tag"):
            return {}                              # (only these reach here; anything else: this batch only)
        values = _basetype_values(self.sim, kind, key)
        cache = getattr(self.sim, "_basetype_answers", None)
        if cache is None:
            cache = self.sim._basetype_answers = {}
        kept = cache.get((kind, key))
        if kept is not None and kept[0] == values:
            return kept[1]
        answers = {}
        cache[(kind, key)] = (values, answers)
        return answers

    def tags(self, item, previous, merge):
        if "_tags" not in item:
            return list(previous["_tags"]) if merge else []
        result = []
        for entry in item["_tags"] or []:
            inner = entry.get("tag", entry) if isinstance(entry, dict) else {}
            if "lookup:_id" in inner:
                result.append(self.tag_ref(inner["lookup:_id"]))
            elif inner.get("_id") is not None and self.sim.tag_by_id(inner["_id"]):
                result.append(inner["_id"])
            else:
                fail(self.sim, 400, "TagNotFound", "Tag %r not found." % (inner,), tagid=inner.get("_id"))
        result = list(dict.fromkeys(result))
        self.check_choice_tags(result)
        return result

    def check_choice_tags(self, tag_ids):
        """One tag per `choice` tag group unless skip_constraints (OAS: it permits "multiple tags from the
        same tag group"); SILENT: the code."""
        if self.params["skip_constraints"] or not tag_ids:
            return
        if self.choice_groups is None:              # read once per batch: a batch changes no tag group
            self.choice_groups = [(tg, [t["tag"]["_id"] for t in tg["_tags"]]) for tg in self.sim.taggroups.values()
                                  if tg["taggroup"].get("type") == "choice"]
        for tg, ids in self.choice_groups:
            chosen = [i for i in ids if i in tag_ids]
            if len(chosen) > 1:
                _schema_error(self.sim, "Tags %s belong to the choice group %r." % (
                    chosen, tg["taggroup"].get("reference")))

    def parent(self, block, previous, merge, number, oid):
        parent = self._parent(block, previous, merge, number, oid)
        if parent is not None:                      # (no parent: no loop to look for)
            refuse_a_loop(self.sim, self.ot, oid, parent)
        return parent

    def _parent(self, block, previous, merge, number, oid):
        sim, ot = self.sim, self.ot
        if "lookup:_id_parent" in block:
            lookup = block["lookup:_id_parent"]
            if lookup is None:
                return None
            target = lookup_record(sim, ot, lookup, self.uuids, table_index=self.tables)
            if isinstance(target, Deferred):          # resolved when the parent is saved (resolve_waiting)
                if target.key == "_system_object_id":
                    sim.deferred_parents = dict(sim.deferred_parents)
                    sim.deferred_parents[target.value] = list(sim.deferred_parents.get(target.value, [])) + [
                        [ot, oid, number]]
                    self.deferred.add(target.value)
                else:
                    defer_uuid(sim, target.value, ["parent", ot, oid, number])
                return None
            return sim.sysids[target][1]
        if "_id_parent" in block:
            parent = block["_id_parent"]
            if parent is not None and parent not in (sim.records.get(ot) or {}):
                fail(sim, 400, "LookupNotFound", "Parent %r not found." % parent, key="_id_parent", value=parent)
            return parent
        return previous["_id_parent"] if merge else None

    # -- fields -----------------------------------------------------------------------------------
    def fields(self, block):
        result = {}
        table = self.table
        kinds = table.kinds
        for key, value in block.items():
            kind = kinds.get(key)
            if kind is None:                        # not a plain column name: as value() and before
                if key.startswith(("_", "lookup:")):
                    if key.startswith("_nested:"):
                        result[key] = self.nested_rows(key, value)
                    continue        # system keys; _reverse_nested:* objects are saved as their own objects
                result[key] = self.value(table, key, value)
            else:
                result[key] = self.column_value(table, key, value, kind)
        return result

    def column_value(self, table, key, value, kind):
        """value() for a plain column whose (test, 0 plain | 1 link | 2 eas) is `kind` (Table.kinds): the same
        test in the same order, without value()'s general steps."""
        if value is None:
            return None
        check, mode = kind
        if check is not None and not check(value):
            self.value(table, key, value)           # refuses it (nothing was changed yet)
        return value if mode == 0 else self.link(table, key, value) if mode == 1 else self.file_entries(value)

    def value(self, table, key, value):
        ctype = table.columns[key]
        if value is None:
            return None
        check = table.checks[key]
        if check is not None and not check(value):
            _schema_error(self.sim, "%s.%s: a %s value was expected, got %s." % (
                table.name, key, ctype, type(value).__name__))
        if ctype == "link":
            return self.link(table, key, value)
        if ctype == "eas":
            return self.file_entries(value)
        # stored as sent, no copy: the value comes fresh from this request's decoded body (body()), nothing
        # else holds it, and stored values are replaced, never mutated (writeutil.rollback)
        return value

    def nested_rows(self, key, rows):
        table = self.tables[key[len("_nested:"):]]
        if rows is None:
            return []
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            _schema_error(self.sim, "%s must be a list of rows." % key)
        result, seen = [], set()
        allowed, kinds = table.row_keys, table.kinds
        for row in rows:
            if not row.keys() <= allowed:           # (the common case tested in C, no list to sort)
                unknown = sorted(k for k in row if k != "_uuid" and k not in table.columns and k not in table.nested)
                _schema_error(self.sim, "Unknown keys in %s: %s." % (table.name, unknown))
            out = {"_uuid": row.get("_uuid") or str(uuid.uuid4())}
            if out["_uuid"] in seen and not self.params["skip_constraints"]:
                # OAS skip_constraints permits "duplicate nested _uuid values"
                fail(self.sim, 400, "DatabaseUniqueKeyViolation", "Duplicate nested _uuid.", name="_uuid")
            seen.add(out["_uuid"])
            for name, value in row.items():
                kind = kinds.get(name)
                if kind is None:                    # not a plain column name: as before
                    if name.startswith("_nested:"):
                        out[name] = self.nested_rows(name, value)
                    elif name != "_uuid":
                        out[name] = self.value(table, name, value)
                else:
                    out[name] = self.column_value(table, name, value, kind)
            result.append(out)
        return result

    def link(self, table, column, value):
        sim = self.sim
        target = value.get("_objecttype")
        if target != table.targets.get(column) or target not in self.objecttypes:
            _schema_error(sim, "%s.%s links %s objects, not %r." % (table.name, column, table.targets.get(column),
                                                                    target))
        inner = value.get(target)
        # (target is a valid objecttype name here: hashable).  First the common shape, exactly {_objecttype, _mask,
        # target: {lookup:_id}} (_objecttype and target are keys: they were read above), then the general test
        if (len(value) == 3 and "_mask" in value and target != "_mask" and isinstance(inner, dict) and len(inner) == 1
                and "lookup:_id" in inner):
            pass
        elif any(k not in _LINK_KEYS and k != target for k in value) or not isinstance(inner, dict) or \
                any(k != "_id" and k != "lookup:_id" for k in inner) or ("_id" in inner) == ("lookup:_id" in inner):
            _schema_error(sim, "A link to %s is {_objecttype, _mask, %s: {_id | lookup:_id}}." % (target, target))
        if "lookup:_id" in inner:
            lookup = inner["lookup:_id"]
            # The common case {"_system_object_id": <int>, "_allow_defer": true} (exactly these two keys): what
            # lookup_record answers for it, without its general steps - the system id when it names a record of
            # `target`, a deferral when it names no record.  A record of another objecttype (LookupNotFound)
            # and every other shape go through lookup_record as before.
            if type(lookup) is dict and len(lookup) == 2 and lookup.get("_allow_defer") is True:
                sysid = lookup.get("_system_object_id")
                if type(sysid) is int:
                    hit_ot = sim.record_by_sysid(sysid)[0]
                    if hit_ot is None:
                        self.deferred.add(sysid)
                        return {"_objecttype": target, "_system_object_id": sysid}
                    if hit_ot == target:
                        return {"_objecttype": target, "_system_object_id": sysid}
            sysid = lookup_record(sim, target, lookup, self.uuids, table_index=self.tables)
            if isinstance(sysid, Deferred):
                if sysid.key == "_uuid":
                    defer_uuid(sim, sysid.value, ["link"] + list(self.current))
                    return {"_objecttype": target, "_uuid": sysid.value}
                self.deferred.add(sysid.value)
                sysid = sysid.value
        else:
            rec = (sim.records.get(target) or {}).get(inner["_id"])
            if rec is None:
                fail(sim, 400, "LookupNotFound", "%s %r not found." % (target, inner["_id"]), key="_id",
                     value=inner["_id"])
            sysid = rec["_system_object_id"]
        return {"_objecttype": target, "_system_object_id": sysid}

    def file_entries(self, entries):
        sim = self.sim
        result = []
        for entry in entries:
            if not isinstance(entry, dict) or set(entry) - _FILE_ENTRY_KEYS \
                    or ("_id" in entry) == ("lookup:_id" in entry):
                _schema_error(sim, "A file entry is {_id | lookup:_id, preferred, name, frontend_prefs}.")
            if "lookup:_id" in entry:
                file_id = file_by_lookup(sim, entry["lookup:_id"])
            elif entry["_id"] in sim.files:
                file_id = entry["_id"]
            else:
                fail(sim, 400, "LookupNotFound", "File %r not found." % (entry["_id"],), key="_id", value=entry["_id"])
            stored = {"_id": file_id, "preferred": entry.get("preferred") is True, "name": entry.get("name")}
            if entry.get("frontend_prefs"):
                stored["frontend_prefs"] = copy.deepcopy(entry["frontend_prefs"])
            result.append(stored)
        if result and sum(e["preferred"] for e in result) != 1:
            _schema_error(sim, "Exactly one file entry must be preferred (api.md 4.6).")
        return result

    # -- unique keys ------------------------------------------------------------------------------
    def check_unique(self, fields, record):
        """A unique column value held by another record's latest version -> DatabaseUniqueKeyViolation."""
        if not self.table.unique_keys:
            return
        index = self.unique_index()
        sysid = record["_system_object_id"]
        old = record["versions"][-1]["fields"] if record["versions"] else {}
        for key in self.table.unique_keys:
            values = tuple(map(fields.get, key))
            holders = index[key].get(values, set()) - {sysid}
            if None not in values and holders and not self.params["skip_constraints"]:
                fail(self.sim, 400, "DatabaseUniqueKeyViolation",
                     "%s %s=%s is held by object %s." % (self.ot, "+".join(key), list(values), min(holders)),
                     name="%s.%s" % (self.ot, "+".join(key)))
            index[key].setdefault(tuple(map(old.get, key)), set()).discard(sysid)
            index[key].setdefault(values, set()).add(sysid)

    def unique_index(self):
        if self.unique is None:
            self.unique = {key: {} for key in self.table.unique_keys}
            for rec in (self.sim.records.get(self.ot) or {}).values():
                latest = rec["versions"][-1]["fields"]
                for key in self.table.unique_keys:     # (map: the tuple of latest.get(c) without a generator)
                    self.unique[key].setdefault(tuple(map(latest.get, key)), set()).add(rec["_system_object_id"])
        return self.unique

    # -- side effects -----------------------------------------------------------------------------
    def event(self, etype, record):
        if self.params["skip_events"]:
            return
        sim = self.sim
        eid = sim.next_id("event")
        self.journal.set(sim.events, eid, {
            "_basetype": "event", "user": {"_basetype": "user", "user": {"_id": self.caller_id}},
            "event": {"_id": eid, "type": etype, "timestamp": now_iso(), "basetype": "object", "objecttype": self.ot,
                      "object_id": record["_id"], "system_object_id": record["_system_object_id"],
                      "object_version": len(record["versions"]), "info": {}, "pollable": True, "schema": "USER"}})

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


def _write_params(sim, caller):
    params = {"skip_constraints": skip_constraints_param(sim), "skip_events": flag("skip_events"),
              "skip_index": flag("skip_index"), "format": query("format") or "full",
              "await_index": str(query("await_index") or "0").strip() not in ("", "0", "false")}
    if params["skip_events"] and not holds_root_right(sim, caller):
        fail(sim, 403, "SystemRightRequired", "skip_events needs system.root.", rights=["system.root"])
    return params


def _objecttype_table(sim, objecttype):
    if objecttype not in objecttype_names(sim) or objecttype not in {t["name"] for t in (sim.schema or {}).get(
            "tables") or []}:
        fail(sim, 400, "UnknownObjecttype", "Unknown object type %s." % objecttype, objecttype=objecttype)


class _DryRun(Exception):
    """Raised to roll a dry_run batch back after it was validated completely."""

    def __init__(self, answer):
        super().__init__("dry run")
        self.answer = answer


def route_db_post(sim, objecttype):
    caller = require_user(sim, bottle.request)
    _objecttype_table(sim, objecttype)
    records = body(sim, code="RecordUnmarshalJson", want=list)
    params = _write_params(sim, caller)
    ensure_state(sim)
    # records, sysids, events and collection entries are journaled, not copied: a copy of all records per
    # request was O(all records); the uuid index may hold uuids of undone creates, so it is dropped.
    journal = Journal(on_undo=lambda: setattr(sim, "_uuid_index", None))
    try:
        with rollback(sim, "_seq", deep=("deferred_parents", "deferred_uuids"), journal=journal):
            batch = RecordBatch(sim, objecttype, caller, params, journal)
            saved = [batch.save(item) for item in records]
            if batch.deferred:      # 6.32.0: the sequence skips deferred system ids (all ints; a bump to the
                sim.bump_seq("sysid", max(batch.deferred))     # highest leaves it where one bump each would)
            latest = {r["_system_object_id"]: sim.record_by_sysid(r["_system_object_id"])[1] for r in saved}
            answer = [batch.response(latest[r["_system_object_id"]], params["format"]) for r in saved]
            if flag("dry_run"):
                # OAS dry_run: everything validated, nothing written, no ids drawn for objects to create
                raise _DryRun([_without_new_ids(a, objecttype) if r["_system_object_id"] in batch.created else a
                               for a, r in zip(answer, saved)])
            return json_answer(answer, compact=True)
    except _DryRun as dry:
        return json_answer(dry.answer, compact=True)


def _without_new_ids(answer, objecttype):
    out = {k: v for k, v in answer.items() if k not in ("_system_object_id", "_global_object_id")}
    out[objecttype] = {k: v for k, v in answer[objecttype].items() if k != "_id"}
    return out

# ---------------------------------------------------------------------------------------- DELETE /db

_DELETE_POLICIES = ("remove", "setnull", "create_collection", "undelete", "purge")


def _links_to(value, targets):
    """True when a field value (incl. nested rows) links one of the system ids in `targets`."""
    if isinstance(value, dict):
        if "_objecttype" in value and value.get("_system_object_id") in targets:
            return True
        return any(_links_to(v, targets) for v in value.values())
    if isinstance(value, list):
        return any(_links_to(v, targets) for v in value)
    return False


def _cleared(value, targets):
    """Copy of a field value with every link to `targets` set to null (nested rows included)."""
    if isinstance(value, dict):
        if "_objecttype" in value and value.get("_system_object_id") in targets:
            return None
        return {k: _cleared(v, targets) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleared(v, targets) for v in value]
    return value


def _live_linkers(sim, targets):
    """System ids of LIVE records outside `targets` whose latest version links one of `targets`."""
    found = set()
    for records in sim.records.values():
        for rec in records.values():
            if rec.get("deleted_at") or rec["_system_object_id"] in targets:
                continue
            if _links_to(rec["versions"][-1]["fields"], targets):
                found.add(rec["_system_object_id"])
    return found


def _delete_targets(sim, objecttype, triples, policy):
    """Records named by [[_id, version, comment]], checked against the current version and their state."""
    found = []
    for triple in triples:
        if not (isinstance(triple, list) and len(triple) == 3 and all(
                isinstance(v, int) and not isinstance(v, bool) for v in triple[:2])
                and (triple[2] is None or isinstance(triple[2], str))):
            fail(sim, 400, "ServerGeneric", "Each entry is [object_id, version, comment].", value=triple)
        rec = (sim.records.get(objecttype) or {}).get(triple[0])
        trashed_wanted = policy in ("undelete", "purge")
        # SILENT: undelete/purge address trashed objects only, the other policies live ones only
        if rec is None or bool(rec.get("deleted_at")) != trashed_wanted:
            fail(sim, 400, "LookupNotFound", "%s %r not found%s." % (objecttype, triple[0],
                                                                     " in the trash" if trashed_wanted else ""),
                 key="_id", value=triple[0])
        if triple[1] != len(rec["versions"]):
            fail(sim, 400, "VersionMismatch", "Delete needs the current version %d." % len(rec["versions"]),
                 expected=len(rec["versions"]), got=triple[1], object=objecttype)
        found.append(rec)
    return found


def _delete_tasks():
    return confirm_tasks(
        "Delete objects", "The objects are still linked from other objects.",
        form=[options_field("delete_policy", (("Also delete the linking objects", "remove"),
                                              ("Keep them, clear their links", "setnull"),
                                              ("Collect them in a collection", "create_collection")),
                            disabled=("create_collection",))],      # not simulated: offered disabled
        buttons=[{"text": "Delete", "name": "confirm", "value": "yes"}])


def _trash(sim, sysids, params):
    now = now_iso()
    for sysid in sorted(sysids):
        ot, oid = sim.sysids[sysid]
        previous = sim.records[ot][oid]
        sim.records[ot][oid] = index_later(sim, dict(previous, deleted_at=now), previous, params)


def _set_links_null(sim, linkers, targets, caller_id, params):
    """delete_policy=setnull: each linking record gets a new version with those links cleared (SILENT)."""
    now = now_iso()
    for sysid in sorted(linkers):
        ot, oid = sim.sysids[sysid]
        previous = sim.records[ot][oid]
        latest = previous["versions"][-1]
        version = dict(latest, _version=latest["_version"] + 1, _created=now, _last_modified=now,
                       _comment="delete_policy setnull", _create_user=caller_id,
                       fields=_cleared(latest["fields"], targets))
        sim.records[ot][oid] = index_later(sim, dict(previous, versions=previous["versions"] + [version]),
                                           previous, params)


def _apply_delete(sim, targets, policy, caller_id, params):
    answer = {"policy": policy, "removed": [], "setnull": []}
    if policy == "undelete":
        for rec in targets:
            ot, oid = sim.sysids[rec["_system_object_id"]]
            sim.records[ot][oid] = index_later(sim, dict(rec, deleted_at=None), rec, params)
        return answer
    sysids = {r["_system_object_id"] for r in targets}
    if policy == "purge":
        for sysid in sysids:
            ot, oid = sim.sysids.pop(sysid)
            del sim.records[ot][oid]
        answer["removed"] = sorted(sysids)
        return answer
    linkers = _live_linkers(sim, sysids)
    if linkers and policy is None:
        return None
    if linkers and policy == "create_collection":
        fail(sim, 400, "ServerGeneric", "delete_policy=create_collection is not simulated.")
    while linkers and policy == "remove":                # also delete what links the deleted objects
        sysids |= linkers
        linkers = _live_linkers(sim, sysids)
    if linkers and policy == "setnull":
        _set_links_null(sim, linkers, sysids, caller_id, params)
        answer["setnull"] = sorted(linkers)
    _trash(sim, sysids, params)
    answer["removed"] = sorted(sysids)
    return answer


def route_db_delete(sim, objecttype):
    """OAS /db/{objecttype} delete: body [[object_id, version, comment]]; soft delete into the trash."""
    caller = require_user(sim, bottle.request)
    _objecttype_table(sim, objecttype)
    triples = body(sim, want=list)
    policy = query("delete_policy") or None
    if policy not in (None,) + _DELETE_POLICIES:
        fail(sim, 400, "ServerGeneric", "Unknown delete_policy %r." % policy)
    params = {"await_index": str(query("await_index") or "0").strip() not in ("", "0", "false"), "skip_index": False}
    with rollback(sim, "records", "sysids"):
        answer = _apply_delete(sim, _delete_targets(sim, objecttype, triples, policy), policy, user_id(caller),
                               params)
        if answer is None:
            return json_answer(_delete_tasks(), status=202)     # nothing was deleted
        return json_answer(answer)
