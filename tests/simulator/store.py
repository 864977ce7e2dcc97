"""In-memory state of ONE simulated instance (easydb 5 or fylr).

The contract every simulator module codes against (datagen fills it, app.py renders it per flavour,
writes.py fills it from fylr POST bodies, dump.py canonicalises it).  The stored form is flavour
neutral and id based; the HTTP layer converts it to the documented easydb 5 / fylr JSON shapes.

Stored forms (all plain dicts, JSON-able):

basetypes  - kept in fylr API shape exactly as GET returns them on fylr, keyed by their `_id`:
    sim.groups[id]      {"_basetype":"group","group":{"_id","_version","reference","name","displayname","type"},
                         "_system_rights":{}, "_acl":[]}
    sim.users[id]       {"_basetype":"user","user":{"_id","_version","login","reference","type","email",
                         "first_name","last_name","displayname"},"_groups":[{"_basetype":"group","group":{"_id":gid}}],
                         "_password_hash": "<method>:<hash>" or absent,
                         "_created_at" / "_last_seen_at": iso-str or absent (set by root when the user is created)}
                         (easydb 5 renders email as `_emails` list and the hash as `_password_insecure_hash*`.)
                         Every user has exactly one home collection (see sim.collections).
    sim.pools[id]       {"_basetype":"pool","pool":{"_id","_version","_id_parent","reference","name","is_system_pool"},
                         "_acl":[],"_private_acl":False,"_tags":[],"_private_tags":False}
                         system pools: reference "system:root" (id 1, parent None), "system:standard" (parent 1)
    sim.taggroups[id]   {"_basetype":"taggroup","taggroup":{"_id","_version","reference","type","displayname"},
                         "_tags":[{"tag":{"_id","_version","reference","displayname","type","displaytype","enabled"}}]}
    sim.messages[id]    {"_basetype":"message","message":{"_id","_version","reference","title","message",
                         "webfrontend_type"},"_groups":[{"_basetype":"group","group":{"_id":gid}}]}
    sim.collections[id] {"_basetype":"collection","_owner":{"_basetype":"user","user":{"_id":uid}},
                         "collection":{"_id","_id_parent","_version","reference","displayname","type","uuid"},"_acl":[]}
                         system collection: reference "system:root" (id 1, parent None)
                         home collections (type "user"): exactly one per user, created WITH the user
                         (Instance.add_home_collection): parent = the system:root collection, owner = that user,
                         reference fixed at creation by home_reference(): "user:ref:<user reference>", else
                         "user:login:<login>", else "user:id:<user id>" (a later change of the user is not followed)
    sim.collection_objects[coll_id] = [entry, ...]          (order kept); an entry is
                         int  - the system object id of a LOCAL object (it may not exist yet: deferred lookup),
                         str  - a FOREIGN _global_object_id ("<n>@<other instance>"), stored verbatim,
                         {"_uuid": str} - a local object promised by a deferred _uuid lookup (replaced by its
                                system object id when that object is saved; not rendered until then)
    sim.events[id]      {"_basetype":"event","event":{"_id","type","timestamp","basetype","objecttype","object_id",
                         "system_object_id","object_version","info","pollable","schema"},
                         "user":{"_basetype":"user","user":{"_id":uid}}}
                         `type` is stored in the SOURCE flavour's vocabulary (easydb 5 types on an easydb5 instance).
                         object_id is the _id of the entry the event is about: the record's _id for object
                         events, the user's id for USER_LOGIN/USER_LOGOUT/USER_CREATED/USER_INSERT (basetype
                         "user" on fylr, None on easydb 5), the group / pool / collection / message id for
                         events of basetype "group" / "pool" / "collection" / "message".

datamodel  - sim.schema (GET /schema/user/CURRENT body), sim.mask (GET /mask/CURRENT), sim.l10n (flat key map),
             sim.objecttypes (GET /objecttype body, list), sim.config (fylr shape {"system":{"config":{...}},
             "plugin":{}}; easydb 5 renders it without the inner "config" layer), sim.plugins (list, fylr only).
             Column types used: text, text_oneline, text_l10n, date, integer, number, boolean, link, eas,
             plus nested tables (`_nested:<ot>__<name>`) owned by a table.

records    - sim.records[objecttype][_id] = Record, a dict:
    {"_id": int, "_system_object_id": int, "_uuid": str, "deleted_at": None | iso-str,
     "versions": [Version, ...],               oldest first, versions[k]["_version"] == k + 1
     "indexed": {"at": epoch | None, "before": None | {"version": n, "deleted_at": ...}}   (optional)}
    `indexed` present = the search index lags behind: until `at` (None = until POST /system/reindex)
    POST /search sees the state `before` (None = the record is not in the index yet).  Absent = indexed.
    Version:
    {"_version": n, "_created": iso, "_last_modified": iso, "_comment": str|None, "_create_user": uid,
     "_owner": uid|None, "_pool": pool_id|None, "_id_parent": parent _id|None, "_tags": [tag_id, ...]
     (at most one tag of a `choice` tag group), "_acl": [...] (only on tables with acl_table; who by _id),
     "fields": {
        "<text col>": "str", "<l10n col>": {"de-DE": "...", "en-US": "..."}, "<date col>": {"value": "2020-01-31"},
        "<int/number col>": 12, "<boolean col>": True,
        "<link col>": {"_objecttype": "orte", "_system_object_id": 17} | None,
                      (a link whose target was promised by a deferred `_uuid` lookup is stored as
                       {"_objecttype": "orte", "_uuid": "..."} until that target is saved)
        "<eas col>": [{"_id": file_id, "preferred": True, "name": None}],
        "_nested:<ot>__<name>": [{"_uuid": "...", "<col>": value, ...}],
     }}
    sim.sysids[sysid] = (objecttype, _id)       index for lookups / links

files      - sim.files[file_id] = FileInfo dict:
    {"_id", "original_filename", "extension", "class", "mime_type", "reference": str|None,
     "leave": bool (stored as remote reference, never packed), "remote_url": str|None,
     "produce_versions": bool, "versions": {"original": b"...", "preview": b"...", ...},
     "status": "pending" | "processing" | "done" | "failed"      (fylr file status; absent = "done"),
     "fetch_id": str (only while an rput fetch is under way), "pending_versions": {name: fetch_id}
                 (manual renditions uploaded by rput whose fetch is under way), "failed_versions":
                 {name: why} (manual renditions whose rput fetch failed; rendered with status "failed"),
     "fetch_error": str (why the rput fetch of a "failed" file failed)}
     bytes are real; sha256(versions[v]) is what tests compare.  A file in "pending"/"processing" has no
     bytes yet, a "failed" one never gets any: versions is {} for both (renditions are readable only in
     "sync"/"done", OAS components.schemas.file.status).

Added by the read side (datagen / auth / app), same rules (plain JSON-able dicts):
    sim.users[id]["_password_salt"]   easydb 5 only: salt rendered as `_password_insecure_hash_salt`
                                      (the stored `_password_hash` is then "<md5|sha-512>:<hex>")
    sim.pools: fylr instances also have "system:none" (id 3, parent 1, is_system_pool True)
    sim.collection_props[coll_id][entry] = webfrontend props dict of a collection_objects entry (sysid int,
                                           foreign goid str, or "uuid:<uuid>" for a promised one; absent = None)
    sim.right_presets = {"object": [PresetApi...], "collection": [...]}  (GET /right/{ctx}/presets body)
    sim.xmlmappings = [XmlMappingApi ...]   (GET /xmlmapping/mapping/{id} body; `idTable` = objecttype _id)
    sim.xmlmapping_profiles = [XmlMappingProfile without `mappings`]   (the profiles the instance knows: from
                         its config files, the same set on every generated instance; a purge keeps them)
    sim.publish = [PublishApi ...]   sim.transitions = [TransitionApi ...]   (global transitions only)
    Files outside records (datagen._add_nonrecord_files), each {"_id": file id} of a file in sim.files:
        config:  fylr system.config.appearance.{logo,favicon,login_background}, publish.collectors[].logo, ...
                 (writes.CONFIG_FILE_PATHS); easydb 5 system.logo and system["publish.collectors"].collectors[].logo
        pools:   sim.pools[id]["pool"]["watermark"] = {"image": {"_id"}, "gravity", "dissolve"}  (WatermarkApi)
        objecttypes (fylr): entry["objecttype"]["watermark"] likewise
        plugins (fylr): {"type": "zip", "zip_file": {"_id"}}
    sim.tokens[token] = {"kind": "session"|"access"|"refresh", "user_id": int|None,
                         "expires_at": epoch seconds, "client_id": str|None, "scope": str}
    sim.oauth_clients = {client_id: secret or None (public client)}
    sim.status = "ready" | "startup" | "purge" | "busy" | "reindex"   (fylr x-fylr-status; startup/purge/busy
                 answer every request with 503 before any handler, like fylr's status middleware)
    sim.status_until   epoch seconds after which `status` falls back to "ready" (0 = stays); a purge sets
                 status "purge" for sim.purge_busy_seconds after POST /system/purgeall has answered
    sim.read_only_until  epoch seconds until which fylr answers writes 400 ReadOnlyMode (0 = not read-only)
    sim.rput_delay     seconds between the answer of /eas/rput(/bulk) and the start of its background fetch
    sim.background_delay  seconds before POST /event/list?background=true does its work
    sim.index_lag      seconds until a saved/deleted record is seen by POST /search (await_index skips the lag)
    sim.signature_secret  HMAC key of x-fylr-signature file URL parameters
    sim.e5_event_envelope = "objects" | "array"   shape of E5 GET /event/list (undocumented; default objects)
    sim.e5_event_json_full = True   False simulates easydb < 5.140: format=json_full answers the short format
    Leave-on-remote files: remote_url may be relative ("/remote/<file_id>/<filename>"); it is then
    served by this simulator and rendered as sim.base_url + remote_url.

Everything is mutated under sim.lock (one RLock) because the simulator is served by several threads.
Instance.clone() gives an independent deep copy (tests cache generated instances and clone them).
"""
import copy
import itertools
import threading
import uuid
from dataclasses import dataclass, field


def home_reference(user):
    """Reference of a user's home collection (E5 datamanagement/lookups.en.md), from the user block as it
    is when the user is created: user:ref:<reference>, else user:login:<login>, else user:id:<_id>."""
    if user.get("reference") not in (None, ""):
        return "user:ref:%s" % user["reference"]
    if user.get("login") not in (None, ""):
        return "user:login:%s" % user["login"]
    return "user:id:%s" % user["_id"]


@dataclass
class Instance:
    flavour: str                     # "easydb5" | "fylr"
    name: str = "sim-instance"       # E5 settings.name / fylr settings.name (instance part of _global_object_id)
    version: str = ""                # filled per flavour by datagen ("5.86.1" / "v6.34.2")
    base_url: str = ""               # set by server.serve(): "http://127.0.0.1:<port>" (no /api/v1)
    allow_purge: bool = True         # fylr: fylr.allowpurge + system.purge.allow_purge
    token_lifetime: float = 3600.0   # seconds a session token / access token lives (tests shorten it)
    signature_lifetime: float = 3600.0  # seconds an x-fylr-signature in a file URL stays valid
    passwords: dict = field(default_factory=dict)   # login -> plain password (auth only, never rendered)

    schema: dict = field(default_factory=dict)
    mask: dict = field(default_factory=dict)
    l10n: dict = field(default_factory=dict)
    objecttypes: list = field(default_factory=list)
    config: dict = field(default_factory=dict)
    plugins: list = field(default_factory=list)

    groups: dict = field(default_factory=dict)
    users: dict = field(default_factory=dict)
    pools: dict = field(default_factory=dict)
    taggroups: dict = field(default_factory=dict)
    messages: dict = field(default_factory=dict)
    collections: dict = field(default_factory=dict)
    collection_objects: dict = field(default_factory=dict)
    events: dict = field(default_factory=dict)

    records: dict = field(default_factory=dict)
    sysids: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)

    collection_props: dict = field(default_factory=dict)
    right_presets: dict = field(default_factory=lambda: {"object": [], "collection": []})
    xmlmappings: list = field(default_factory=list)
    xmlmapping_profiles: list = field(default_factory=list)
    publish: list = field(default_factory=list)
    transitions: list = field(default_factory=list)

    tokens: dict = field(default_factory=dict, repr=False)
    oauth_clients: dict = field(default_factory=lambda: {"fylr-web-frontend": None, "web-client": "foo"})
    status: str = "ready"
    signature_secret: str = "sim-signature-secret"
    e5_event_envelope: str = "objects"
    e5_event_json_full: bool = True
    status_until: float = 0.0        # epoch seconds; status falls back to "ready" afterwards (0 = never)
    purge_busy_seconds: float = 0.3  # fylr answers 503 (x-fylr-status: purge) this long after a purge
    read_only_until: float = 0.0     # epoch seconds; fylr refuses writes with ReadOnlyMode until then
    rput_delay: float = 0.05         # seconds before an rput fetch starts (it runs after the answer)
    background_delay: float = 0.05   # seconds before POST /event/list?background=true does its work
    index_lag: float = 0.2           # seconds until POST /search sees a saved record (unless await_index)

    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _seq: dict = field(default_factory=dict, repr=False)

    def clone(self):
        """Deep copy with its own lock and sequences (the RLock itself cannot be copied)."""
        with self.lock:
            skip = {"lock": self.lock, "_seq": self._seq}
            twin = copy.copy(self)
            for name, value in vars(self).items():
                if name not in skip:
                    setattr(twin, name, copy.deepcopy(value))
            twin.lock = threading.RLock()
            twin._seq = {}
            for kind, counter in self._seq.items():
                nxt = next(counter)
                self._seq[kind] = itertools.count(nxt)
                twin._seq[kind] = itertools.count(nxt)
            return twin

    def next_id(self, kind):
        """Next id of a sequence: kind is 'user', 'group', 'pool', 'taggroup', 'tag', 'message',
        'collection', 'event', 'file', 'sysid' or 'obj:<objecttype>'. Ids start at 1."""
        with self.lock:
            counter = self._seq.setdefault(kind, itertools.count(1))
            return next(counter)

    def bump_seq(self, kind, used_id):
        """Make sure the sequence `kind` never hands out `used_id` again (restored tag ids, system ids)."""
        with self.lock:
            current = self._seq.get(kind)
            nxt = next(current) if current else 1
            self._seq[kind] = itertools.count(max(nxt, used_id + 1))

    def record_by_sysid(self, sysid):
        """(objecttype, Record) for a system object id, or (None, None)."""
        hit = self.sysids.get(sysid)
        if not hit:
            return None, None
        ot, oid = hit
        return ot, self.records[ot][oid]

    def tag_by_id(self, tag_id):
        for tg in self.taggroups.values():
            for entry in tg["_tags"]:
                if entry["tag"]["_id"] == tag_id:
                    return entry
        return None

    def system_collection_id(self):
        """_id of the collection with reference "system:root", or None."""
        return next((i for i, c in self.collections.items() if c["collection"].get("reference") == "system:root"),
                    None)

    def add_home_collection(self, user_id):
        """Create the home collection of user `user_id` (called when the user is created; see home_reference)."""
        with self.lock:
            cid = self.next_id("collection")
            self.collections[cid] = {
                "_basetype": "collection", "_owner": {"_basetype": "user", "user": {"_id": user_id}},
                "collection": {"_id": cid, "_id_parent": self.system_collection_id(), "_version": 1,
                               "reference": home_reference(self.users[user_id]["user"]),
                               "displayname": {"en-US": "Home"}, "type": "user",
                               "uuid": str(uuid.UUID(int=cid * 7919 + 17))},
                "_acl": []}
            self.collection_objects[cid] = []
            return cid

    def find_by_reference(self, kind, reference):
        """Basetype entry of kind ('user','group','pool','taggroup','message','collection') by reference."""
        table = {"user": self.users, "group": self.groups, "pool": self.pools, "taggroup": self.taggroups,
                 "message": self.messages, "collection": self.collections}[kind]
        for entry in table.values():
            if entry[kind].get("reference") == reference:
                return entry
        return None
