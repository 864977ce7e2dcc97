"""fylr WRITE routes for "the rest of an instance" (issue 12): right presets, XML mappings, publish records,
global transitions, plugin updates, and the checks of file values outside records.

install(app, sim) adds (all in fylr's OpenAPI route list):

    POST /right/{context}/presets     PUT /xmlmapping/mapping     POST /publish     POST /transitions
    POST /plugin/manage/{id}

Every write is all or nothing (writeutil.rollback).  Where the docs are silent, or where the simulator is
deliberately stricter than the documented server, the code says `# stricter: ...`.

File values outside records (base config logo / favicon / collector logos, pool and objecttype watermarks,
plugin zips) name a file of the TARGET's EAS by `{"_id": n}`: check_file_value() refuses anything else, so
a restore that copies source file ids instead of uploading the files and rewriting the ids is caught.
"""
import copy

import bottle

from . import writeutil as w
from .auth import require_root
from .writeutil import API

# ------------------------------------------------------------------------------------------------- files

# File-typed paths of the fylr base config (OAS /config post requestBody: every property with
# "x-type": "file"), below system.config; "[]" walks a list.
CONFIG_FILE_PATHS = (("appearance", "logo"), ("appearance", "favicon"), ("appearance", "login_background"),
                     ("colorprofiles", "profiles", "[]", "profile"), ("export", "xslts", "[]", "xslt"),
                     ("languages", "database", "[]", "analyzer", "synonyms_file"),
                     ("publish", "collectors", "[]", "logo"))


def check_file_value(sim, where, value):
    """A file value is null or {"_id": <id of a file this instance holds>} (OAS: "The EAS-ID of the file").

    stricter: fylr documents no error for a missing file; a dangling id would show a broken logo or
    watermark, so it is refused with 400 ServerGeneric (also under save=ignore_errors)."""
    if value is None:
        return
    file_id = value.get("_id") if isinstance(value, dict) else None
    if not isinstance(file_id, int) or isinstance(file_id, bool) or file_id not in sim.files:
        w.fail(sim, 400, "ServerGeneric", "%s: %s names no file of this instance." % (where, _short(value)),
               field=where, value=value)


def _short(value):
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def _walk(node, path, where):
    """(where, value) of every value at `path` below node."""
    if not path:
        yield where, node
        return
    head, rest = path[0], path[1:]
    if head == "[]":
        for n, item in enumerate(node if isinstance(node, list) else []):
            yield from _walk(item, rest, "%s[%d]" % (where, n))
    elif isinstance(node, dict) and head in node:
        yield from _walk(node[head], rest, "%s.%s" % (where, head))


def check_config_files(sim, system_config):
    for path in CONFIG_FILE_PATHS:
        for where, value in _walk(system_config, path, "system.config"):
            check_file_value(sim, where, value)


_GRAVITIES = ("nw", "n", "ne", "w", "c", "e", "sw", "s", "se", "")


def check_watermark(sim, where, watermark):
    """OAS WatermarkApi: gravity from the compass set (`watermark.gravity "<v>" not supported`), image a
    file of this instance (or null: clears the watermark)."""
    if watermark is None:
        return
    if not isinstance(watermark, dict):
        w.fail(sim, 400, "ServerGeneric", "%s must be an object." % where)
    if watermark.get("gravity", "") not in _GRAVITIES:
        w.fail(sim, 400, "ServerGeneric", 'watermark.gravity "%s" not supported' % watermark.get("gravity"))
    check_file_value(sim, where + ".image", watermark.get("image"))


def confirm_param(sim):
    """confirm=resync|skip answers the renditions 202 of POST /pool and /objecttype; any other value is a
    generic 400 (OAS /objecttype post; stricter: the same for /pool, where the OAS is silent)."""
    value = w.query("confirm")
    if value in (None, ""):
        return None
    if value not in ("resync", "skip"):
        w.fail(sim, 400, "ServerGeneric", 'confirm "%s" not supported' % value)
    return value


def watermark_tasks(count):
    """OAS PoolPost202 / ObjecttypePost202: resend with confirm=resync (re-render now) or confirm=skip."""
    return w.confirm_tasks("Update renditions", "%d watermark change(s) need the renditions of stored files "
                           "updated. This may be done manually in /inspect/files." % count,
                           form=[w.options_field("confirm", [("Update now (recommended)", "resync"),
                                                              ("Skip", "skip")])],
                           buttons=[{"text": "Save"}])


def ask_watermark_confirm(sim, changed):
    """Raise the 202 (nothing saved: callers run inside writeutil.rollback) when watermarks changed and
    the request carries no confirm.

    stricter: fylr asks only when stored files need new renditions; the simulator asks for every change
    of a watermark, also when a pool or objecttype is given its first one."""
    if changed and confirm_param(sim) is None:
        raise w.json_answer(watermark_tasks(changed), status=202)

# --------------------------------------------------------------------------------------------- presets

_PRESET_KEYS = {"_basetype", "right_preset", "_created_at", "_updated_at"}
_PRESET_BLOCK_KEYS = {"_id", "_version", "_position", "displayname", "description", "preset"}


def _route_presets_post(sim, context):
    """POST /right/{context}/presets (OAS): `_version` 1 inserts, a higher one updates `_id` (stored + 1);
    the saved presets are answered."""
    require_root(sim, bottle.request)              # system.rightpresetmanager; root has it
    if context not in ("object", "collection"):
        w.fail(sim, 400, "ServerGeneric", "Unknown context %r." % context, context=context)
    body = w.body(sim, want=list)
    with w.rollback(sim, "_seq", deep=("right_presets",)):
        saved = [_save_preset(sim, context, item) for item in body]
        return w.json_answer(saved)


def _save_preset(sim, context, item):
    if not isinstance(item, dict) or item.get("_basetype") != "right_preset" or \
            not isinstance(item.get("right_preset"), dict) or not isinstance(item["right_preset"].get("preset"), dict):
        w.fail(sim, 400, "ServerGeneric", "A preset needs _basetype right_preset and right_preset.preset.")
    block = item["right_preset"]
    unknown = sorted(set(item) - _PRESET_KEYS) + sorted("right_preset." + k for k in set(block) - _PRESET_BLOCK_KEYS)
    if unknown:           # stricter: keys outside PresetApi would be dropped by fylr's decoder
        w.fail(sim, 400, "ServerGeneric", "Keys not in PresetApi: %s." % ", ".join(unknown), keys=unknown)
    preset = block["preset"]
    if "share_url" in preset and context != "collection":
        w.fail(sim, 400, "ServerGeneric", "share_url is only supported in context collection.", context=context)
    _check_preset_rights(sim, preset.get("rights") or {})
    presets = sim.right_presets.setdefault(context, [])
    version = block.get("_version")
    if version == 1:
        if block.get("_id") is not None:
            # stricter: the OAS lets an insert keep a sent _id; ids are server-issued here, so a restore
            # that sends the source's ids is caught
            w.fail(sim, 400, "ServerGeneric", "A new preset (_version 1) must not carry an _id.")
        preset_id = max([p["right_preset"]["_id"] for ps in sim.right_presets.values() for p in ps] or [0]) + 1
        stored = None
    elif isinstance(version, int) and not isinstance(version, bool) and version > 1:
        stored = next((p for p in presets if p["right_preset"]["_id"] == block.get("_id")), None)
        if stored is None:
            w.fail(sim, 400, "ServerGeneric", "Preset %r does not exist in context %s." % (block.get("_id"), context))
        w.check_next_version(sim, "right_preset", stored["right_preset"]["_version"], version)
        preset_id = stored["right_preset"]["_id"]
    else:                 # stricter: the OAS decides by _version; without one the intent is unknown
        w.fail(sim, 400, "ServerGeneric", "A preset needs _version (1 inserts, stored + 1 updates).")
    new_block = copy.deepcopy(block)
    new_block.update(_id=preset_id, _version=version)
    if stored is not None and "share_url" not in preset and "share_url" in stored["right_preset"]["preset"]:
        new_block["preset"]["share_url"] = stored["right_preset"]["preset"]["share_url"]   # omitted: kept (OAS)
    entry = {"_basetype": "right_preset", "right_preset": new_block}
    sim.right_presets[context] = [entry if p is stored else p for p in presets] + ([] if stored else [entry])
    return entry


def _check_preset_rights(sim, rights):
    """RightItemApi `pool_ids` / `objecttype_ids` must name pools / objecttypes this instance holds.

    stricter: fylr documents UnknownRightValue only for values the right does not accept; a restore that
    keeps the source's ids would restrict the preset to unrelated pools, so unknown ids are refused too."""
    if not isinstance(rights, dict):
        w.fail(sim, 400, "ServerGeneric", "preset.rights must be an object.")
    objecttype_ids = {o["objecttype"]["_id"] for o in sim.objecttypes}
    for right, item in rights.items():
        if not isinstance(item, dict):
            w.fail(sim, 400, "ServerGeneric", "preset.rights.%s must be an object." % right)
        for param, known in (("pool_ids", sim.pools), ("objecttype_ids", objecttype_ids)):
            missing = [i for i in item.get(param) or [] if i not in known]
            if missing:
                w.fail(sim, 400, "UnknownRightValue", "%s.%s: unknown ids %s." % (right, param, missing),
                       right=right, param=param, value=missing)

# ---------------------------------------------------------------------------------------- xml mappings

_MAPPING_KEYS = {"id", "idTable", "displayname", "profile", "profile_type", "xml_base", "fields",
                 "limited_extensions", "recipe_configs", "custom"}
# profile_type flags a PUT reads (OAS XmlMappingApi: dc_export is read-only, plugins_import not persisted)
_PROFILE_TYPE_WRITABLE = ("xml_export", "exiftool_export", "exiftool_export_omit_empty", "exiftool_import")


def _route_mapping_put(sim):
    """PUT /xmlmapping/mapping: one XmlMappingApi; its `id` is ignored and a new one drawn."""
    require_root(sim, bottle.request)              # system.profile or system.root
    body = w.body(sim, want=dict)
    unknown = sorted(set(body) - _MAPPING_KEYS)
    if unknown:           # stricter: keys outside XmlMappingApi would be dropped silently
        w.fail(sim, 400, "ServerGeneric", "Keys not in XmlMappingApi: %s." % ", ".join(unknown), keys=unknown)
    profile = body.get("profile")
    if profile not in {p["profile"] for p in sim.xmlmapping_profiles}:
        # stricter: fylr accepts an unknown profile silently (OAS); such a mapping can never run
        w.fail(sim, 400, "ServerGeneric", "Unknown profile %r." % (profile,), profile=profile)
    table = body.get("idTable")
    if table not in (None, 0) and table not in {o["objecttype"]["_id"] for o in sim.objecttypes}:
        w.fail(sim, 400, "ServerGeneric", "idTable %r is no objecttype of this instance." % (table,), idTable=table)
    fields = body.get("fields") or []
    if not isinstance(fields, list) or not all(isinstance(f, dict) for f in fields):
        w.fail(sim, 400, "ServerGeneric", "fields must be an array of objects.")
    names = [f.get("name") for f in fields]
    if len(names) != len(set(names)):
        w.fail(sim, 400, "DatabaseUniqueKeyViolation", "Duplicate field name in the mapping.", name="mapping_field")
    with w.rollback(sim, "_seq", deep=("xmlmappings",)):
        mapping = {k: copy.deepcopy(v) for k, v in body.items() if k not in ("id", "custom", "profile_type")}
        mapping["profile_type"] = {k: v for k, v in (body.get("profile_type") or {}).items()
                                   if k in _PROFILE_TYPE_WRITABLE}
        mapping.update(id=sim.next_id("xmlmapping"), custom=True)
        sim.xmlmappings = sim.xmlmappings + [mapping]
        return w.json_answer(mapping)

# --------------------------------------------------------------------------------------------- publish


def collector_names(sim):
    """internalname of every collector of system.config.publish.collectors (OAS /config)."""
    system = ((sim.config or {}).get("system") or {}).get("config") or {}
    return {c.get("internalname") for c in (system.get("publish") or {}).get("collectors") or []
            if isinstance(c, dict)}


def _route_publish_post(sim):
    """POST /publish (OAS): per descriptor the collector first (PublishUnknownCollector), then blank uris
    (PublishInvalidData), then the object (404 ObjectNotFound, PublishDeletedObject for one in the trash).
    A descriptor with an existing `_id` updates that row."""
    require_root(sim, bottle.request)              # system.api.publish[post]
    body = w.body(sim, want=list)
    with w.rollback(sim, "_seq", deep=("publish",)):
        saved = [_save_publish(sim, item) for item in body]
        return w.json_answer(saved)


def _save_publish(sim, item):
    block = item.get("publish") if isinstance(item, dict) else None
    if not isinstance(block, dict):
        w.fail(sim, 400, "ServerGeneric", "A publish descriptor needs a publish object.")
    collector = block.get("collector")
    if collector not in collector_names(sim):
        w.fail(sim, 400, "PublishUnknownCollector", 'The collector "%s" is unknown and cannot be used. It must be '
               "configured in the base config." % (collector,), collector=collector)
    for name in ("publish_uri", "easydb_uri"):
        if not isinstance(block.get(name), str) or not block[name].strip():
            w.fail(sim, 400, "PublishInvalidData", 'The value "" of field "%s" is invalid.' % name, field=name, value="")
    sysid = block.get("system_object_id")
    _ot, record = sim.record_by_sysid(sysid) if isinstance(sysid, int) else (None, None)
    if record is None:    # OAS: an object that cannot be loaded is 404 ObjectNotFound (not a 400)
        w.fail(sim, 404, "ObjectNotFound", "Object #%s was not found" % (sysid,), object="#%s" % (sysid,))
    if record.get("deleted_at"):
        w.fail(sim, 400, "PublishDeletedObject", 'Unable to publish deleted object "#%d".' % sysid,
               object="#%d" % sysid)
    stored = None
    if block.get("_id") not in (None, 0):
        stored = next((p for p in sim.publish if p["publish"]["_id"] == block["_id"]), None)
        if stored is None:
            # stricter: the OAS updates a row named by `_id` and is silent on an id no row has; a restore
            # that sends the source's ids is refused instead of inserting under a foreign id
            w.fail(sim, 400, "ServerGeneric", "Publish %r does not exist." % block["_id"], value=block["_id"])
    out = {"_id": stored["publish"]["_id"] if stored else max([p["publish"]["_id"] for p in sim.publish] or [0]) + 1,
           "system_object_id": sysid, "collector": collector,
           "publish_uri": block["publish_uri"].strip(), "easydb_uri": block["easydb_uri"].strip()}
    version = block.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > 0:
        out["version"] = version       # echoed only when pinned (OAS PublishApi.version)
    entry = {"_basetype": "publish",
             "_timestamp_created": stored["_timestamp_created"] if stored else w.now_iso(), "publish": out}
    sim.publish = [entry if p is stored else p for p in sim.publish] + ([] if stored else [entry])
    return entry

# ----------------------------------------------------------------------------------------- transitions

_TRANSITION_TYPES = ("resolve", "reject", "exit_resolve", "exit_reject", "process")
_OPERATIONS = ("INSERT", "UPDATE", "DELETE")
_TRANSITION_KEYS = {"_id", "type", "operations", "comment", "confirm", "sticky", "who_not", "objecttype_ids",
                    "tagfilter:before", "tagfilter:after", "actions", "who"}
_BUILTIN_ACTIONS = ("set_tags", "change_owner", "email", "webhook")


def _route_transitions_post(sim):
    """POST /transitions (OAS): replaces the whole global set; entries with `_id` update that transition,
    the others are created; the persisted set is answered in the order sent."""
    require_root(sim, bottle.request)              # system.tagmanager
    body = w.body(sim, want=list)
    with w.rollback(sim, "_seq", deep=("transitions",)):
        stored_ids = {t.get("_id") for t in sim.transitions}
        saved = [_save_transition(sim, item, stored_ids) for item in body]
        sim.transitions = saved
        return w.json_answer(saved)


def _generic(sim, message, **parameters):
    w.fail(sim, 400, "ServerGeneric", message, **parameters)


def _save_transition(sim, item, stored_ids):
    if not isinstance(item, dict):
        _generic(sim, "A transition must be an object.")
    unknown = sorted(set(item) - _TRANSITION_KEYS)
    if unknown:           # stricter: keys outside TransitionApi would be dropped silently
        _generic(sim, "Keys not in TransitionApi: %s." % ", ".join(unknown), keys=unknown)
    if item.get("_id") is not None and item["_id"] not in stored_ids:
        _generic(sim, "Transition %r does not exist." % item["_id"], value=item["_id"])
    if item.get("type") not in _TRANSITION_TYPES:
        _generic(sim, "Unknown transition type %r." % (item.get("type"),), value=item.get("type"))
    operations = item.get("operations") or []
    if not isinstance(operations, list) or any(op not in _OPERATIONS for op in operations):
        _generic(sim, "Unknown operations %r." % (operations,), value=operations)
    objecttype_ids = {o["objecttype"]["_id"] for o in sim.objecttypes}
    missing = [i for i in item.get("objecttype_ids") or [] if i not in objecttype_ids]
    if missing:           # stricter: the OAS does not say; a transition for unknown objecttypes never fires
        _generic(sim, "Unknown objecttype ids %s." % missing, value=missing)
    for who in item.get("who") or []:
        _check_who(sim, who)
    for action in item.get("actions") or []:
        _check_action(sim, action)
    entry = copy.deepcopy(item)
    entry["_id"] = item.get("_id") if item.get("_id") is not None else sim.next_id("transition")
    return entry


def _check_who(sim, who):
    """WhoApi with `_basetype` user|group and that key; the principal by a numeric `_id` of this instance.

    stricter: the OAS shows who entries only with `_id` (WhoApi allows `lookup:_id`, TransitionApi's
    example and description do not) - a lookup is refused, and an unknown `_id` too."""
    kind = who.get("_basetype") if isinstance(who, dict) else None
    if kind not in ("user", "group") or not isinstance(who.get(kind), dict) or \
            any(k in who for k in ("user", "group") if k != kind):
        _generic(sim, "A who entry needs _basetype user or group and that key.", value=who)
    inner = who[kind]
    if "lookup:_id" in inner:
        _generic(sim, "who: %s lookups are not accepted, send the _id." % kind, value=inner)
    table = sim.users if kind == "user" else sim.groups
    if inner.get("_id") not in table:
        _generic(sim, "who: %s %r does not exist." % (kind, inner.get("_id")), value=inner.get("_id"))


def _check_action(sim, action):
    if not isinstance(action, dict) or not isinstance(action.get("info"), dict) or not action.get("type"):
        _generic(sim, "An action needs type and info.", value=action)
    kind = action["type"]
    if kind not in _BUILTIN_ACTIONS:
        # no plugin of the simulator registers transition actions: "resolves to no registered plugin callback"
        _generic(sim, "Unknown action type %r." % kind, value=kind)
    if kind == "set_tags":
        for tag in action["info"].get("tags") or []:
            tag_id = tag.get("_id") if isinstance(tag, dict) else None
            if sim.tag_by_id(tag_id) is None:      # stricter: the OAS does not say
                _generic(sim, "set_tags: tag %r does not exist." % (tag_id,), value=tag_id)
    if kind == "change_owner" and not action["info"].get("owner"):
        w.fail(sim, 400, "ChangeOwnerNotSelected", "change_owner needs an owner.")

# ----------------------------------------------------------------------------------------------- plugins


def _route_plugin_post(sim, plugin_id):
    """POST /plugin/manage/{id} (OAS): update a plugin (enable / disable it, its update policy or url);
    the body `id` must match the path."""
    require_root(sim, bottle.request)              # system.root or system.plugin
    body = w.body(sim, want=dict)
    if str(body.get("id")) != plugin_id:
        w.fail(sim, 400, "ServerGeneric", "The body id %r does not match the path id %s." % (body.get("id"), plugin_id))
    with sim.lock:
        stored = next((p for p in sim.plugins if p["id"] == body["id"]), None)
        if stored is None:
            w.fail(sim, 404, "PluginNotFound", "Plugin %s not found." % plugin_id, plugin=plugin_id)
        if body.get("name") not in (None, stored["name"]):      # read-only (from the manifest)
            w.fail(sim, 400, "ServerGeneric", "The plugin name cannot change.")
        updated = dict(stored, **{k: body[k] for k in ("enabled", "update_policy", "url") if k in body})
        updated["enabled"] = bool(updated.get("enabled"))
        sim.plugins = [updated if p is stored else p for p in sim.plugins]
        return w.json_answer(updated)

# ----------------------------------------------------------------------------------------------- install


def install(app, sim):
    def route(method, path, handler):
        app.route(API + path, method=method, callback=lambda **kw: handler(sim, **kw))
    route("POST", "/right/<context>/presets", _route_presets_post)
    route("PUT", "/xmlmapping/mapping", _route_mapping_put)
    route("POST", "/publish", _route_publish_post)
    route("POST", "/transitions", _route_transitions_post)
    route("POST", "/plugin/manage/<plugin_id>", _route_plugin_post)
