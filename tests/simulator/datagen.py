"""Deterministic test data for one simulated instance (see store.py for the stored forms).

generate(flavour, seed, size) builds a store.Instance: a datamodel of four objecttypes (`orte` is
hierarchical and has the unique column `code`; links between all of them incl. a forward link; nested
tables), basetypes, records with 1-4 versions, files with real bytes and renditions, collections and
events.  Everything derives from one random.Random(seed), so the same arguments always give the same
instance.

Traps a migration must handle, on purpose:
  * unique column history: orte A's version 1 holds the `code` that orte B (created after A's version 2,
    see the `_created` stamps) holds later - posting every version 1 before any version 2 collides;
  * every user has a home collection with the documented reference (user:ref: / user:login: / user:id:),
    records sit directly in some of them and workfolders are nested under them several levels deep;
  * a user without login (home user:id:<id>); easydb 5: two users share one e-mail address (case differs);
  * fylr: collections holding FOREIGN objects ("<n>@other-instance-<seed>"), soft-deleted records;
  * events of every easydb 5 type of the migration table (parameters.md 6.1) plus never-migrated ones;
    fylr also events about groups, pools, collections and messages (object_id = their _id).

Sizes: "empty" = fresh fylr target (system pools, system:root collection, root user, empty datamodel);
"tiny" ~50 records, "small" ~2,000, "medium_half" ~10,000, "medium" ~20,000, "large" ~100,000 (files stay
few: see _SIZES["files"]; medium_half, medium and large share one shape, so the benchmark compares sizes).
"""
import copy
import datetime
import gc
import hashlib
import io
import random
import struct
import uuid
import zipfile
import zlib

from . import store

# ---------------------------------------------------------------------------------------------- sizes

_SIZES = {
    "tiny": {"records": {"orte": 8, "personen": 10, "bilder": 20, "dokumente": 12},
             "files": {"bilder": 20, "dokumente": 12}, "extra_users": 0, "extra_pools": 0, "events": 40},
    "small": {"records": {"orte": 150, "personen": 400, "bilder": 1000, "dokumente": 450},
              "files": {"bilder": 150, "dokumente": 60}, "extra_users": 120, "extra_pools": 8, "events": 500},
    "medium_half": {"records": {"orte": 500, "personen": 2000, "bilder": 5000, "dokumente": 2500},
                    "files": {"bilder": 200, "dokumente": 80}, "extra_users": 130, "extra_pools": 15, "events": 1000},
    "medium": {"records": {"orte": 1000, "personen": 4000, "bilder": 10000, "dokumente": 5000},
               "files": {"bilder": 200, "dokumente": 80}, "extra_users": 130, "extra_pools": 15, "events": 1000},
    "large": {"records": {"orte": 5000, "personen": 20000, "bilder": 50000, "dokumente": 25000},
              "files": {"bilder": 300, "dokumente": 100}, "extra_users": 150, "extra_pools": 30, "events": 3000},
}
SIZES = ("empty", "tiny", "small", "medium_half", "medium", "large")

# ------------------------------------------------------------------------------------------ datamodel

# name -> (options, columns, nested tables).  Column type "link:<ot>" is a link column to <ot>.
DATAMODEL = [
    ("orte", {"hierarchical": True, "pool": False, "tags": False, "unique": ("code",)},
     [("name", "text_l10n"), ("code", "text_oneline"), ("einwohner", "integer"), ("breite", "number")], {}),
    ("personen", {"hierarchical": False, "pool": True, "tags": False},
     [("name", "text_oneline"), ("biografie", "text"), ("geboren", "date"), ("aktiv", "boolean"),
      ("geburtsort", "link:orte"), ("lieblingsbild", "link:bilder")],
     {"aliase": [("alias", "text_oneline"), ("sprache", "text_oneline")]}),
    ("bilder", {"hierarchical": False, "pool": True, "tags": True},
     [("titel", "text_l10n"), ("beschreibung", "text"), ("datum", "date"), ("anzahl", "integer"),
      ("bewertung", "number"), ("oeffentlich", "boolean"), ("fotograf", "link:personen"),
      ("aufnahmeort", "link:orte"), ("datei", "eas")],
     {"schlagworte": [("schlagwort", "text_oneline"), ("gewicht", "number"), ("ort", "link:orte")]}),
    ("dokumente", {"hierarchical": False, "pool": True, "tags": True},
     [("titel", "text_oneline"), ("inhalt", "text"), ("seiten", "integer"), ("verweis", "link:bilder"),
      ("datei", "eas")], {}),
]

_OPTIONS = {ot: opts for ot, opts, _columns, _nested in DATAMODEL}

_L10N_NAMES = {"orte": ("Orte", "Places"), "personen": ("Personen", "People"),
               "bilder": ("Bilder", "Images"), "dokumente": ("Dokumente", "Documents")}

# ------------------------------------------------------------------------------------------------ text

_WORDS_DE = ["Straße", "Brücke", "Köln", "Grüße", "Mühle", "Übersicht", "Bäckerei", "Fluss", "Sommer",
             "Kirche", "Markt", "Hafen", "Schloss", "Wald", "Größe", "Dom", "Tür", "Öl", "Fähre", "Ufer"]
_WORDS_EN = ["bridge", "river", "market", "harbour", "castle", "forest", "church", "summer", "winter",
             "street", "mill", "bakery", "tower", "garden", "station", "square", "lake", "field"]
# Tricky strings: CJK, right-to-left, emoji (incl. ZWJ sequence), quotes, control characters.
SPECIAL_TEXTS = ["東京の夜景", "北京 故宫博物院", "صورة من القاهرة", "שלום עולם", "🌍📷✨ Reise",
                 "Ελληνικά γράμματα", "Ça va? «Zitat» „Anführung“", 'Back\\slash "quoted" <tag> & amp',
                 "Zeile 1\nZeile 2\tTab", "Familie 👩‍👩‍👧‍👦 emoji", "Grüße aus Köln – Straßenbahn"]

_BASE_TIME = datetime.datetime(2019, 1, 1, tzinfo=datetime.timezone.utc)


def _iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def _uuid(rnd):
    return str(uuid.UUID(int=rnd.getrandbits(128), version=4))


def _words(rnd, words, n):
    return " ".join(rnd.choices(words, k=n))


def _text(rnd, index=None):
    """German-ish text; the first records cycle through SPECIAL_TEXTS so even 'tiny' has all of them."""
    if index is not None and index < len(SPECIAL_TEXTS):
        return SPECIAL_TEXTS[index]
    if rnd.random() < 0.1:
        return rnd.choice(SPECIAL_TEXTS)
    return _words(rnd, _WORDS_DE, rnd.randint(1, 4)).capitalize()


def _l10n(rnd, index=None):
    value = {"de-DE": _text(rnd, index), "en-US": _words(rnd, _WORDS_EN, 2).capitalize()}
    if index is not None and index % 3 == 0:
        value["ja-JP"] = "写真 " + str(index)
    return value

# ----------------------------------------------------------------------------------------------- files


def _png(width, height, seed_bytes):
    """A real, valid RGB PNG whose pixels come from seed_bytes (repeated)."""
    raw_len = width * 3
    pool = (seed_bytes * (raw_len * height // len(seed_bytes) + 1))
    rows = b"".join(b"\x00" + pool[y * raw_len:(y + 1) * raw_len] for y in range(height))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9))
            + chunk(b"IEND", b""))


_RENDITION_SIZES = {"small": (8, 6), "preview": (16, 12), "full": (24, 18), "huge": (32, 24)}


def produce_version(original, version_name):
    """Deterministic rendition bytes (always a PNG) of `original` for `version_name`.

    The write side calls this too when a target "produces" renditions, so a round trip compares equal."""
    digest = hashlib.sha256(original + b"\0" + version_name.encode()).digest()
    width, height = _RENDITION_SIZES.get(version_name, (12, 9))
    return _png(width, height, digest)


def _pdf(title):
    text = title.encode("ascii", "replace").replace(b"(", b"[").replace(b")", b"]")
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
            b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
            b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 100]/Contents 4 0 R>>endobj\n"
            b"4 0 obj<</Length " + str(len(text) + 30).encode() + b">>stream\nBT /F1 12 Tf 10 50 Td ("
            + text + b") Tj ET\nendstream endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")


_FILE_KINDS = {
    # kind: (extension, class, mime type, renditions)
    "png": ("png", "image", "image/png", ("small", "preview")),
    "pdf": ("pdf", "office", "application/pdf", ("preview",)),
    "txt": ("txt", "unknown", "text/plain", ()),
    "zip": ("zip", "archive", "application/zip", ()),          # plugin zips only (never a record file)
}


def _file_name(rnd, ot, index, extension):
    if index % 7 == 3:
        return "Grüße aus 東京 %d.%s" % (index, extension)
    if index % 7 == 5:
        return "mein dokument (%d).%s" % (index, extension)
    return "%s_%04d.%s" % (ot, index, extension)


def _original_bytes(rnd, kind, name):
    if kind == "png":
        return _png(rnd.randint(12, 40), rnd.randint(8, 30), rnd.getrandbits(256).to_bytes(32, "big"))
    if kind == "pdf":
        return _pdf(name)
    return ("Text file %s\nÄÖÜ äöü ß – 東京 – 🌍\n" % name).encode("utf-8") * rnd.randint(1, 8)


def _make_file(sim, rnd, ot, index, uploader, when):
    kind = "png" if ot == "bilder" else rnd.choice(["pdf", "pdf", "txt"])
    extension, file_class, mime, renditions = _FILE_KINDS[kind]
    file_id = sim.next_id("file")
    name = _file_name(rnd, ot, index, extension)
    original = _original_bytes(rnd, kind, name)
    versions = {"original": original}
    manual = index % 11 == 4 and renditions     # manual rendition: original does not produce versions
    for version_name in renditions:
        versions[version_name] = (produce_version(original, version_name) if not manual
                                  else _png(10, 10, b"manual-" + name.encode()))
    leave = sim.flavour == "fylr" and index % 6 == 2
    sim.files[file_id] = {
        "_id": file_id, "original_filename": name, "extension": extension, "class": file_class,
        "mime_type": mime, "reference": ("import:%s:%d" % (ot, index)) if index % 4 == 1 else None,
        "leave": leave, "remote_url": ("/remote/%d/%s" % (file_id, name)) if leave else None,
        "produce_versions": not manual, "versions": versions, "status": "done",
        "upload_user": uploader, "date_uploaded": _iso(when),
    }
    return file_id

# ------------------------------------------------------------------------------------------ instance


def _new_instance(flavour, seed, login, password):
    rnd = random.Random(seed)
    if flavour == "fylr":
        sim = store.Instance(flavour=flavour, name=_uuid(random.Random("name%d" % seed)).replace("-", "")[:16],
                             version="v6.34.2")
    elif flavour == "easydb5":
        sim = store.Instance(flavour=flavour, name="easydb5-sim-%d" % seed, version="5.86.1")
    else:
        raise ValueError("unknown flavour %r" % flavour)
    sim.passwords[login] = password
    sim.signature_secret = "secret-%d" % seed
    return sim, rnd


def _add_user(sim, login, reference, *, email=None, first=None, last=None, utype="easydb",
              password=None, groups=(), displayname=None):
    """A user and its home collection."""
    uid = sim.next_id("user")
    entry = {"_basetype": "user",
             "user": {"_id": uid, "_version": 1, "login": login, "reference": reference, "type": utype,
                      "email": email, "first_name": first, "last_name": last,
                      "displayname": displayname or " ".join(x for x in (first, last) if x) or login},
             "_groups": [{"_basetype": "group", "group": {"_id": gid}} for gid in groups]}
    if password is not None:
        _set_password_hash(sim, entry, password)
    sim.users[uid] = entry
    sim.add_home_collection(uid)           # created WITH the user (lookups.en.md user collections)
    return uid


def _set_password_hash(sim, entry, password):
    """fylr: "sha256:<hex>"; easydb 5: "sha-512:<hex of sha512(salt+password)>" plus `_password_salt`."""
    if sim.flavour == "easydb5":
        salt = hashlib.md5(str(entry["user"]["_id"]).encode()).hexdigest()[:8]
        entry["_password_hash"] = "sha-512:" + hashlib.sha512((salt + password).encode()).hexdigest()
        entry["_password_salt"] = salt
    else:
        entry["_password_hash"] = "sha256:" + hashlib.sha256(password.encode()).hexdigest()


def _add_system_entities(sim, login, password):
    """What a freshly purged fylr has: the system:root collection, root user (with its home collection),
    system pools, a datamodel."""
    _add_collection(sim, 1, None, "system:root", {"en-US": "Root"}, "system")   # parent of home collections
    _add_user(sim, login, "system:root", email="root@example.com", first="Root", password=password)
    _add_pool(sim, None, "system:root", {"de-DE": "Wurzel", "en-US": "Root"}, system=True)
    _add_pool(sim, 1, "system:standard", {"de-DE": "Standard", "en-US": "Standard"}, system=True)
    if sim.flavour == "fylr":
        _add_pool(sim, 1, "system:none", {"de-DE": "Kein Pool", "en-US": "No pool"}, system=True)
    sim.schema = {"version": 1, "type": "user", "max_table_id": 0, "max_column_id": 0, "tables": []}
    sim.mask = {"type": "user", "version": 1, "based_on_schema_version": 1, "max_mask_id": 0, "masks": []}
    sim.config = _base_config(sim)
    sim.xmlmapping_profiles = copy.deepcopy(XML_PROFILES)


def _add_pool(sim, parent, reference, name, system=False):
    pid = sim.next_id("pool")
    sim.pools[pid] = {"_basetype": "pool",
                      "pool": {"_id": pid, "_version": 1, "_id_parent": parent, "reference": reference,
                               "name": name, "is_system_pool": system},
                      "_acl": [], "_private_acl": False, "_tags": [], "_private_tags": False}
    return pid


def _add_collection(sim, owner, parent, reference, displayname, ctype):
    cid = sim.next_id("collection")
    sim.collections[cid] = {"_basetype": "collection",
                            "_owner": {"_basetype": "user", "user": {"_id": owner or 1}},
                            "collection": {"_id": cid, "_id_parent": parent, "_version": 1,
                                           "reference": reference, "displayname": displayname,
                                           "type": ctype, "uuid": str(uuid.UUID(int=cid * 7919 + 17))},
                            "_acl": []}
    sim.collection_objects[cid] = []
    return cid


def _base_config(sim):
    if sim.flavour == "fylr":
        config = {"appearance": {"logo": None}, "login": {"guest": False, "info": "Willkommen – ようこそ"},
                  "password": {"hint": "8+ chars", "check": [{"regexp": ".{8,}"}]},
                  "purge": {"allow_purge": sim.allow_purge, "purge_storage": True}}
        return {"system": {"config": config}, "plugin": {}}
    config = {"login.internet": {"value": False}, "login.welcome_text": {"value": "Willkommen"},
              "login.welcome_info": {"message": "Grüße – ようこそ"},
              "login.password_policy": {"hint": "8+ chars", "policy": [{"expression": ".{8,}"}]}}
    return {"system": {"config": config}, "plugin": {}}

# -------------------------------------------------------------------------------------------- basetypes


def _add_groups(sim):
    specs = [("editors", {"de-DE": "Redaktion", "en-US": "Editors"}),
             (None, {"de-DE": "Leser", "en-US": "Viewers"}),
             ("photographers", {"de-DE": "Fotograf:innen", "en-US": "Photographers", "ja-JP": "写真家"})]
    for reference, displayname in specs:
        gid = sim.next_id("group")
        sim.groups[gid] = {"_basetype": "group",
                           "group": {"_id": gid, "_version": 1, "reference": reference,
                                     "name": reference or "group%d" % gid, "displayname": displayname,
                                     "type": "easydb"},
                           "_system_rights": {}, "_acl": []}


def _add_users(sim, rnd, extra):
    """Users with and without reference (backups generate `user:<id>`), hashes, e-mail, LDAP."""
    sim.passwords["jdoe"] = "secret"
    _add_user(sim, "jdoe", "jdoe", email="jdoe@example.com", first="John", last="Doe", password="secret",
              groups=[1])
    _add_user(sim, "mueller", None, email="mueller@example.com", first="Jürgen", last="Müller", groups=[1, 2])
    _add_user(sim, "tanaka", "ref:tanaka", email="tanaka@example.jp", displayname="田中 太郎",
              password="パスワード", groups=[3])
    _add_user(sim, "ldapuser", "ldap:uid=ldapuser", utype="ldap", first="Lisa", last="Dap")
    _add_user(sim, "nomail", None, first="No", last="Mail", password="nomail-pw", groups=[2])
    _add_user(sim, "rana", None, email="rana@example.org", displayname="رنا", groups=[3])
    # No login and no reference: its home collection is user:id:<id>.  easydb 5 lets two users share an
    # e-mail address (fylr refuses that with UserDuplicateEmail; the address differs only in case here).
    _add_user(sim, None, None, utype="email", first="Gast", last="Ohne Login",
              email="MUELLER@example.com" if sim.flavour == "easydb5" else "gast@example.net")
    for n in range(extra):
        _add_user(sim, "user%04d" % n, ("user-ref-%d" % n) if n % 2 else None,
                  email="user%04d@example.com" % n, first=rnd.choice(_WORDS_DE), last=rnd.choice(_WORDS_EN),
                  password=("pw%d" % n) if n % 3 else None, groups=[rnd.randint(1, 3)])


def _add_pools(sim, rnd, extra):
    photos = _add_pool(sim, 1, "photos", {"de-DE": "Fotos", "en-US": "Photos"})
    _add_pool(sim, 1, None, {"de-DE": "Archiv", "en-US": "Archive"})
    year = _add_pool(sim, photos, "photos-2020", {"de-DE": "Fotos 2020", "en-US": "Photos 2020"})
    _add_pool(sim, year, None, {"de-DE": "Geheim – مخفي", "en-US": "Secret"})
    for n in range(extra):
        parent = rnd.choice(sorted(p for p in sim.pools if p != 3 or sim.flavour != "fylr"))
        _add_pool(sim, parent, ("pool-ref-%d" % n) if n % 2 else None, {"de-DE": "Pool %d" % n, "en-US": "Pool %d" % n})


def _add_taggroups(sim):
    specs = [("rights", "checkbox", {"de-DE": "Rechte", "en-US": "Rights"},
              [("public", {"de-DE": "Öffentlich", "en-US": "Public"}), (None, {"de-DE": "Intern", "en-US": "Internal"})]),
             (None, "choice", {"de-DE": "Status", "en-US": "Status"},
              [("released", {"de-DE": "Freigegeben", "en-US": "Released"}),
               (None, {"de-DE": "Entwurf 🚧", "en-US": "Draft 🚧"})])]
    for reference, tgtype, displayname, tags in specs:
        tgid = sim.next_id("taggroup")
        entries = []
        for tag_ref, tag_name in tags:
            tag_id = sim.next_id("tag")
            entries.append({"tag": {"_id": tag_id, "_version": 1, "reference": tag_ref, "displayname": tag_name,
                                    "type": "individual", "displaytype": "facet", "enabled": True}})
        sim.taggroups[tgid] = {"_basetype": "taggroup",
                               "taggroup": {"_id": tgid, "_version": 1, "reference": reference, "type": tgtype,
                                            "displayname": displayname},
                               "_tags": entries}


def _add_messages(sim):
    specs = [("eula", {"de-DE": "Nutzungsbedingungen", "en-US": "EULA"},
              {"de-DE": "<p>Bitte bestätigen – 確認</p>", "en-US": "<p>Please confirm</p>"}, "eula", [1]),
             (None, {"en-US": "Maintenance"}, {"en-US": "<b>Downtime</b> on Sunday 🛠"}, "info", [])]
    for reference, title, text, wtype, groups in specs:
        mid = sim.next_id("message")
        sim.messages[mid] = {"_basetype": "message",
                             "message": {"_id": mid, "_version": 1, "reference": reference, "title": title,
                                         "message": text, "webfrontend_type": wtype},
                             "_groups": [{"_basetype": "group", "group": {"_id": g}} for g in groups]}


def _add_misc(sim):
    """Right presets, XML mappings, global transitions and (fylr) the url plugin: the "rest of an
    instance" that names pools, objecttypes, users, groups and tags by their SOURCE ids."""
    pools = {e["pool"]["reference"]: i for i, e in sim.pools.items()}
    ots = {o["objecttype"]["name"]: o["objecttype"]["_id"] for o in sim.objecttypes}
    sim.right_presets = _right_presets(pools, ots)
    sim.xmlmappings = _xmlmappings(sim, ots)
    sim.transitions = _transitions(sim, ots)
    if sim.flavour == "fylr":
        sim.plugins = [{"id": 1, "name": "easydb-custom-data-type-gnd", "enabled": True, "type": "url",
                        "url": "https://plugins.example.invalid/gnd.zip", "update_policy": "never"}]
        sim.config["plugin"] = {"easydb-custom-data-type-gnd": {"config": {"endpoint": "https://gnd.example"}}}


def _preset(pid, position, displayname, rights, description=None, **extra):
    block = {"_id": pid, "_version": 1, "_position": position, "displayname": displayname,
             "preset": dict({"rights": rights}, **extra)}
    if description:
        block["description"] = description
    return {"_basetype": "right_preset", "right_preset": block}


def _right_presets(pools, ots):
    """PresetApi entries (OAS): rights items restricted to source pool / objecttype ids; the collection
    preset carries a share_url (only allowed in context collection)."""
    photos, bilder, dokumente = pools["photos"], ots["bilder"], ots["dokumente"]
    return {"object": [
        _preset(1, 0, {"de-DE": "Lesen", "en-US": "Read"}, {"read": {"pool_ids": [photos], "objecttype_ids": [bilder]}}),
        _preset(2, 1, {"de-DE": "Bearbeiten – 編集", "en-US": "Edit"},
                {"read": {"pool_ids": [photos, pools["photos-2020"]], "objecttype_ids": [bilder, dokumente]},
                 "write": {"pool_ids": [pools["photos-2020"]], "objecttype_ids": [bilder]}},
                description={"en-US": "Edit photos"}, default_expiration_hours=48)],
        "collection": [
        _preset(3, 0, {"de-DE": "Teilen", "en-US": "Share"}, {"read": {"pool_ids": [photos], "objecttype_ids": [bilder]}},
                share_url="https://media.example.com/share")]}


# Profiles an instance knows (from its base config files / plugins, never written through the API): the
# same set on every instance the simulator makes, sources and targets alike (purge keeps them).
XML_PROFILES = [
    {"profile": "dc.yml", "displayname": {"de-DE": "Dublin Core", "en-US": "Dublin Core"},
     "profile_type": {"xml_export": True, "dc_export": True}, "xml_base": "http://purl.org/dc/elements/1.1/",
     "tabs": [{"tab": "dc", "text": {"en-US": "DC"}, "fields": [{"name": "dc:title"}, {"name": "dc:creator"}]}]},
    {"profile": "exiftool.yml", "displayname": {"de-DE": "Exiftool", "en-US": "Exiftool"},
     "profile_type": {"exiftool_import": True, "exiftool_export": True},
     "tabs": [{"tab": "iptc", "text": {"en-US": "IPTC"}, "fields": [{"name": "IPTC:Headline"}, {"name": "XMP:Title"}]}]},
    {"profile": "lido.yml", "displayname": {"en-US": "LIDO"}, "profile_type": {"xml_export": True}, "tabs": []},
]


def _xmlmappings(sim, ots):
    """XmlMappingApi entries: two on exiftool.yml (bilder, dokumente), one on dc.yml (bilder)."""
    specs = [("exiftool.yml", ots["bilder"], {"de-DE": "IPTC-Import Bilder", "en-US": "IPTC import images"},
              {"exiftool_import": True}, [{"name": "IPTC:Headline", "easydb": [{"field": "titel"}]}]),
             ("exiftool.yml", ots["dokumente"], {"en-US": "XMP import – 文書"}, {"exiftool_import": True},
              [{"name": "XMP:Title", "easydb": [{"field": "titel"}]}]),
             ("dc.yml", ots["bilder"], {"en-US": "DC export images"}, {"xml_export": True, "dc_export": True},
              [{"name": "dc:title", "easydb": [{"field": "titel"}]}])]
    mappings = []
    for profile, table, displayname, profile_type, fields in specs:
        mappings.append({"id": sim.next_id("xmlmapping"), "idTable": table, "displayname": displayname,
                         "profile": profile, "profile_type": profile_type, "fields": fields,
                         "limited_extensions": ["jpg", "png"] if profile == "exiftool.yml" else [],
                         "recipe_configs": {}, "custom": True})
    return mappings


def _transitions(sim, ots):
    """Global transitions (TransitionApi): `who` names a user and a group by SOURCE _id, set_tags actions
    name tags by id (tag ids are restored unchanged)."""
    user = next(i for i, u in sim.users.items() if u["user"].get("login") == "jdoe")
    group = next(i for i, g in sim.groups.items() if g["group"].get("reference") == "editors")
    tags = {t["tag"].get("reference") or "tag%d" % t["tag"]["_id"]: t["tag"]["_id"]
            for tg in sim.taggroups.values() for t in tg["_tags"]}
    transitions = [
        {"_id": 1, "type": "process", "operations": ["INSERT", "UPDATE"], "sticky": False,
         "objecttype_ids": [ots["bilder"]], "who": [{"_basetype": "user", "user": {"_id": user}}],
         "actions": [{"type": "set_tags", "info": {"tags": [{"_id": tags["public"], "set": True}]}}]},
        {"_id": 2, "type": "resolve", "operations": ["UPDATE"], "sticky": True,
         "confirm": {"de-DE": "Freigeben?", "en-US": "Release?"},
         "objecttype_ids": [ots["bilder"], ots["dokumente"]], "who": [{"_basetype": "group", "group": {"_id": group}}],
         "actions": [{"type": "set_tags", "info": {"tags": [{"_id": tags["released"], "set": True}]}}]}]
    if sim.flavour == "fylr":
        transitions[1]["comment"] = "Redaktion gibt frei"      # fylr addition (OAS TransitionApi.comment)
    return transitions

# ------------------------------------------------------------------------------------------- datamodel


def _build_datamodel(sim):
    tables, masks, l10n, objecttypes = [], [], {}, []
    column_id = 0
    for table_id, (ot, opts, columns, nested) in enumerate(DATAMODEL, start=1):
        table_columns, foreign_keys = [], []
        for name, ctype in columns:
            column_id += 1
            table_columns.append(_schema_column(name, ctype, column_id))
            if ctype.startswith("link:"):
                foreign_keys.append(_foreign_key(name, ctype[5:]))
            l10n["schema.%s.column.%s" % (ot, name)] = {"de-DE": name.capitalize(), "en-US": name}
        table = _schema_table(sim, ot, table_id, opts, table_columns, foreign_keys, None)
        table["unique_keys"] = [{"columns": [{"column_id": c["column_id"], "column_name_hint": c["name"]}]}
                                for c in table_columns if c["name"] in opts.get("unique", ())]
        tables.append(table)
        l10n["schema.%s.name" % ot] = {"de-DE": _L10N_NAMES[ot][0], "en-US": _L10N_NAMES[ot][1]}
        masks.append(_mask(ot, len(masks) + 1, [n for n, _ in columns]))
        objecttypes.append(_objecttype(sim, ot, table_id))
    for ot, opts, columns, nested in DATAMODEL:
        for nested_name, nested_columns in nested.items():
            table_id = len(tables) + 1
            table_columns, foreign_keys = [], []
            for name, ctype in nested_columns:
                column_id += 1
                table_columns.append(_schema_column(name, ctype, column_id))
                if ctype.startswith("link:"):
                    foreign_keys.append(_foreign_key(name, ctype[5:]))
            tables.append(_schema_table(sim, "%s__%s" % (ot, nested_name), table_id, {}, table_columns,
                                        foreign_keys, ot))
    sim.schema = {"version": 2, "based_on_version": 1, "type": "user", "max_table_id": len(tables),
                  "max_column_id": column_id, "tables": tables}
    sim.mask = {"type": "user", "version": 2, "based_on_schema_version": 2, "max_mask_id": len(masks),
                "masks": masks}
    sim.l10n = l10n
    sim.objecttypes = objecttypes


def _schema_column(name, ctype, column_id):
    if ctype.startswith("link:"):
        return {"kind": "link", "name": name, "type": "link", "column_id": column_id,
                "other_table_name_hint": ctype[5:], "not_null": False}
    return {"kind": "column", "name": name, "type": ctype, "column_id": column_id, "not_null": False}


def _foreign_key(name, target):
    return {"name": "fk_" + name, "columns": [{"column_name_hint": name}],
            "referenced_table": {"name_hint": target}, "on_delete": "RESTRICT"}


def _schema_table(sim, name, table_id, opts, columns, foreign_keys, owner):
    table = {"name": name, "table_id": table_id, "pool_link": opts.get("pool", False),
             "owned_by": {"other_table_name_hint": owner} if owner else None, "acl_table": False,
             "has_tags": opts.get("tags", False), "is_hierarchical": opts.get("hierarchical", False),
             "in_main_search": owner is None, "columns": columns, "foreign_keys": foreign_keys,
             "unique_keys": []}
    if sim.flavour == "fylr":
        table["polyhierarchical"] = False
        table["bidirectional"] = []
    return table


def _mask(ot, mask_id, columns):
    return {"mask_id": mask_id, "name": ot + "__standard", "table_name_hint": ot, "is_preferred": True,
            "fields": [{"kind": "field", "column_name_hint": c, "edit": {}, "output": {}} for c in columns]}


def _add_objecttype_settings(sim):
    """Objecttype settings a restore must carry over: an ACL naming a group, and tag bindings."""
    editors = next(g["group"]["_id"] for g in sim.groups.values() if g["group"].get("reference") == "editors")
    tag_ids = sorted(t["tag"]["_id"] for tg in sim.taggroups.values() for t in tg["_tags"])
    for entry in sim.objecttypes:
        if entry["objecttype"]["name"] == "bilder":
            entry["_acl"] = [{"who": {"_basetype": "group", "group": {"_id": editors}},
                              "rights": {"read": {}, "write": {}}}]
            entry["_tags"] = [{"_id": tag_ids[0]}]
            entry["_private_tags"] = True


def _objecttype(sim, ot, table_id):
    entry = {"_basetype": "objecttype", "objecttype": {"_id": table_id, "_version": 1, "name": ot,
                                                       "mapping_image_import": None},
             "_acl": [], "_tags": [], "_private_tags": False, "_transitions": [], "_maskfilters": [],
             "_columnfilters": []}
    if sim.flavour == "fylr":
        entry["_compiled_tags"] = []
        entry["_filename_replacements"] = []
    return entry

# ---------------------------------------------------------------------------------------------- records


class _RecordFactory:
    """Builds every record of every objecttype; ids are handed out first so links may point forward."""

    def __init__(self, sim, rnd, counts, file_counts):
        self.sim, self.rnd, self.counts, self.file_counts = sim, rnd, counts, file_counts
        self.user_ids = sorted(sim.users)
        self.pool_ids = [p for p, e in sorted(sim.pools.items()) if not e["pool"]["is_system_pool"]] + [2]
        self.tag_ids = [t["tag"]["_id"] for tg in sim.taggroups.values() for t in tg["_tags"]]
        self.choice_group = {t["tag"]["_id"]: gid for gid, tg in sim.taggroups.items() for t in tg["_tags"]
                             if tg["taggroup"]["type"] == "choice"}
        self.ids = {}          # ot -> list of (_id, sysid)

    def allocate(self):
        for ot, *_ in DATAMODEL:
            self.sim.records[ot] = {}
            self.ids[ot] = []
            for _ in range(self.counts[ot]):
                oid, sysid = self.sim.next_id("obj:" + ot), self.sim.next_id("sysid")
                self.ids[ot].append((oid, sysid))
                self.sim.sysids[sysid] = (ot, oid)

    def build_all(self):
        for ot, opts, columns, nested in DATAMODEL:
            for index, (oid, sysid) in enumerate(self.ids[ot]):
                self.sim.records[ot][oid] = self.record(ot, opts, columns, nested, index, oid, sysid)

    def record(self, ot, opts, columns, nested, index, oid, sysid):
        rnd = self.rnd
        n_versions = 1 + (index % 4 if index < 8 else rnd.choices((0, 1, 2, 3), (60, 25, 10, 5))[0])
        when = _BASE_TIME + datetime.timedelta(seconds=rnd.randrange(3 * 365 * 86400))
        fields = self.fields(ot, columns, nested, index, oid, when)
        base = {"_owner": rnd.choice(self.user_ids), "_pool": rnd.choice(self.pool_ids) if opts["pool"] else None,
                "_id_parent": self.parent(ot, index, oid) if opts["hierarchical"] else None,
                "_tags": self.tag_sample() if opts["tags"] else []}
        versions = []
        for number in range(1, n_versions + 1):
            if number > 1:
                fields = self.changed(ot, columns, fields)
                when += datetime.timedelta(hours=rnd.randint(1, 2000))
                base = self.changed_base(ot, opts, index, oid, base, number)
            versions.append(dict(base, _version=number, _created=_iso(when), _last_modified=_iso(when),
                                 _comment=None if number == 1 else "Änderung %d" % number,
                                 _create_user=rnd.choice(self.user_ids), fields=fields))
        deleted_at = None
        if self.sim.flavour == "fylr" and ot != "orte" and (index in (1, 2) or rnd.random() < 0.04):
            deleted_at = _iso(when + datetime.timedelta(days=3))
        return {"_id": oid, "_system_object_id": sysid, "_uuid": _uuid(rnd), "deleted_at": deleted_at,
                "versions": versions}

    def tag_sample(self):
        """0-2 tags, at most one of a `choice` tag group (fylr refuses more unless skip_constraints)."""
        tags, groups = [], set()
        for tag_id in self.rnd.sample(self.tag_ids, self.rnd.randint(0, 2)):
            group = self.choice_group.get(tag_id)
            if group is None or group not in groups:
                tags.append(tag_id)
                groups.add(group)
        return tags

    def parent(self, ot, index, oid):
        """Parents always have lower ids: the first 3 records form a chain, the first third are roots."""
        if index in (1, 2):
            return self.ids[ot][index - 1][0]
        if index == 0 or index < self.counts[ot] // 3:
            return None
        return self.ids[ot][self.rnd.randrange(index)][0]

    def changed_base(self, ot, opts, index, oid, base, number):
        base = dict(base)
        if opts["hierarchical"] and index == 3 and number == 2:
            base["_id_parent"] = self.ids[ot][0][0]     # moved to another root in version 2
        elif opts["tags"] and self.rnd.random() < 0.3:
            base["_tags"] = self.tag_sample()
        elif opts["pool"] and self.rnd.random() < 0.2:
            base["_pool"] = self.rnd.choice(self.pool_ids)
        return base

    def changed(self, ot, columns, fields):
        """A later version: shallow copy with one plain column changed (nested values are shared).
        Unique columns keep their value (the only change of one is the planned trap, unique_key_history)."""
        unique = _OPTIONS[ot].get("unique", ())
        fields = dict(fields)
        name, ctype = self.rnd.choice([c for c in columns if c[1] not in ("eas",) and not c[1].startswith("link")
                                       and c[0] not in unique])
        fields[name] = self.value(ctype, None)
        return fields

    def unique_key_history(self):
        """orte A (index 1) version 1 holds the code that orte B (index 5) holds later; A's version 2 has its
        own code and B is created after it.  Latest versions stay unique at every point in time, but a
        restore that posts every version 1 before any version 2 collides (DatabaseUniqueKeyViolation)."""
        if len(self.ids["orte"]) < 6:
            return
        records = self.sim.records["orte"]
        a, b = records[self.ids["orte"][1][0]], records[self.ids["orte"][5][0]]
        first = a["versions"][0]
        a["versions"][0] = dict(first, fields=dict(first["fields"], code=b["versions"][0]["fields"]["code"]))
        start = _parse_iso(b["versions"][0]["_created"])
        shift = _parse_iso(a["versions"][1]["_created"]) + datetime.timedelta(days=1) - start
        b["versions"] = [dict(v, _created=_iso(_parse_iso(v["_created"]) + shift),
                              _last_modified=_iso(_parse_iso(v["_last_modified"]) + shift)) for v in b["versions"]]

    def fields(self, ot, columns, nested, index, oid, when):
        values = {}
        for name, ctype in columns:
            if name in _OPTIONS[ot].get("unique", ()):
                values[name] = "%s-%05d" % (ot[:3].upper(), index)      # unique among all records
            elif ctype == "eas":
                values[name] = self.files(ot, index, when)
            elif ctype.startswith("link:"):
                values[name] = self.link(ot, name, ctype[5:], index)
            else:
                values[name] = self.value(ctype, index)
        for nested_name, nested_columns in nested.items():
            rows = []
            for r in range(self.rnd.randint(0, 3) if index >= 3 else index + 1):
                row = {"_uuid": _uuid(self.rnd)}
                for name, ctype in nested_columns:
                    row[name] = (self.link(ot, name, ctype[5:], index) if ctype.startswith("link:")
                                 else self.value(ctype, None))
                rows.append(row)
            values["_nested:%s__%s" % (ot, nested_name)] = rows
        return values

    def value(self, ctype, index):
        rnd = self.rnd
        if ctype == "text_l10n":
            return _l10n(rnd, index)
        if ctype in ("text", "text_oneline"):
            if index is not None and index % 9 == 8:
                return None
            return _text(rnd, index) if ctype == "text" else _text(rnd, None if index is None else index + 1).split("\n")[0]
        if ctype == "date":
            return {"value": "%04d-%02d-%02d" % (rnd.randint(1850, 2024), rnd.randint(1, 12), rnd.randint(1, 28))}
        if ctype == "integer":
            return rnd.choice((0, -7, 2 ** 40, rnd.randint(1, 100000)))
        if ctype == "number":
            return rnd.choice((3.14159, -0.5, 0.0, round(rnd.uniform(-1000, 1000), 4)))
        if ctype == "boolean":
            return rnd.random() < 0.5
        raise ValueError(ctype)

    def link(self, ot, column, target, index):
        """Links to any record of `target` (incl. forward links); dokumente #0 links a deleted bild."""
        if ot == "dokumente" and index == 0:
            return {"_objecttype": target, "_system_object_id": self.ids[target][1][1]}
        if self.rnd.random() < 0.15 or not self.ids[target]:
            return None
        return {"_objecttype": target, "_system_object_id": self.rnd.choice(self.ids[target])[1]}

    def files(self, ot, index, when):
        if index >= self.file_counts.get(ot, 0):
            return []
        uploader = self.rnd.choice(self.user_ids)
        entries = [{"_id": _make_file(self.sim, self.rnd, ot, index, uploader, when), "preferred": True,
                    "name": None}]
        if index % 5 == 2:
            entries.append({"_id": _make_file(self.sim, self.rnd, ot, index + 1000, uploader, when),
                            "preferred": False, "name": "Rückseite"})
        return entries

# ----------------------------------------------------------------------------------------- collections


def _add_collections(sim, rnd):
    """Home collections (created with the users) get records directly and nested workfolders, three levels
    deep, under every kind of home reference (user:ref:, user:login:, user:id:); plus a presentation, a big
    collection and (fylr) foreign objects."""
    sysids = sorted(sim.sysids)
    homes = {c["_owner"]["user"]["_id"]: cid for cid, c in sorted(sim.collections.items())
             if c["collection"]["type"] == "user"}
    for uid in sorted(sim.users)[:9]:
        home = homes[uid]
        if uid % 2 or uid == 1:
            sim.collection_objects[home] = rnd.sample(sysids, min(len(sysids), 2))   # records directly at home
        if uid == 1:
            continue
        folder = _add_collection(sim, uid, home, "collection:fav-%d" % uid if uid % 2 else None,
                                 {"de-DE": "Favoriten – お気に入り", "en-US": "Favourites"}, "workfolder")
        child = _add_collection(sim, uid, folder, None, {"en-US": "Sub folder"}, "workfolder")
        grandchild = _add_collection(sim, uid, child, "deep-%d" % uid, {"en-US": "Deep folder"}, "workfolder")
        sim.collection_objects[folder] = rnd.sample(sysids, min(len(sysids), rnd.randint(2, 6)))
        sim.collection_objects[child] = rnd.sample(sysids, min(len(sysids), 3))
        sim.collection_objects[grandchild] = rnd.sample(sysids, min(len(sysids), 1))
        if sim.flavour == "fylr" and uid % 3 == 0:
            # foreign objects: stored and rendered verbatim (OAS /collection/objects/{collectionId} post)
            sim.collection_objects[child] = sim.collection_objects[child] + [
                "%d@other-instance-%d" % (n, uid) for n in (7, 70)]
            sim.collection_props[child] = {"7@other-instance-%d" % uid: {"note": "fremd – 外部"}}
    show = _add_collection(sim, 2, None, "presentation-1", {"en-US": "Presentation"}, "presentation")
    sim.collection_objects[show] = sysids[:4]
    sim.collection_props[show] = {s: {"slide": n + 1, "layout": "wide"} for n, s in enumerate(sysids[:2])}
    big = _add_collection(sim, 1, None, "big", {"en-US": "Big collection"}, "workfolder")
    sim.collection_objects[big] = sysids[:250]

# ----------------------------------------------------------------------------------------------- events

_EVENTS_NEVER_MIGRATED = ["OBJECT_INDEX", "SESSION_INVALID", "FRONTEND_ERROR", "COLLECTION_OWNER_RIGHTS_ERROR"]
# easydb 5: every row of the migration table (parameters.md 6.1), then types that are never migrated.
E5_MIGRATED_EVENT_TYPES = [
    "ASSET_DOWNLOAD_CONFIRMATION_MESSAGE", "CUSTOM_TYPE_UPDATER_RESPONSE", "CUSTOM_TYPE_UPDATER_START",
    "CUSTOM_TYPE_UPDATER_RESPONSE_ERROR", "CUSTOM_TYPE_UPDATER_RESPONSE_FAILED", "SCHEMA_COMMIT", "DETAIL_VIEW",
    "EMAIL_SENT", "DOWNLOAD_EXPORT", "ASSET_DOWNLOAD", "ASSET_EXPORT_DOWNLOAD", "OBJECT_DELETE", "OBJECT_INSERT",
    "OBJECT_UPDATE", "SEARCH", "USER_CREATED", "USER_LOGIN", "USER_LOGOUT", "WEBHOOK_OK", "WEBHOOK_ERROR"]
EVENT_TYPES = {
    "easydb5": E5_MIGRATED_EVENT_TYPES + ["JANITOR_SESSION_PURGE", "EXPORT"] + _EVENTS_NEVER_MIGRATED,
    "fylr": ["OBJECT_INSERT", "OBJECT_UPDATE", "OBJECT_DELETE", "USER_LOGIN", "USER_LOGOUT", "USER_INSERT",
             "DATAMODEL_COMMIT", "FILE_DOWNLOAD", "DETAIL_VIEW", "SEARCH", "EXPORT_DOWNLOAD", "EMAIL_SENT",
             "WEBHOOK", "TASK_START", "GROUP_INSERT", "POOL_UPDATE", "COLLECTION_INSERT",
             "MESSAGE_INSERT"] + _EVENTS_NEVER_MIGRATED,
}
_OBJECT_EVENTS = {"OBJECT_INSERT", "OBJECT_UPDATE", "OBJECT_DELETE", "OBJECT_INDEX", "DETAIL_VIEW"}
USER_EVENTS = {"USER_LOGIN", "USER_LOGOUT", "USER_CREATED", "USER_INSERT"}     # object_id = the user's _id
_FILE_EVENTS = {"ASSET_DOWNLOAD", "ASSET_EXPORT_DOWNLOAD", "FILE_DOWNLOAD", "ASSET_DOWNLOAD_CONFIRMATION_MESSAGE"}
_EXPORT_EVENTS = {"DOWNLOAD_EXPORT", "EXPORT_DOWNLOAD"}
# fylr events about a basetype entry: type prefix -> (basetype, Instance table); object_id = the entry's _id
_BASETYPE_EVENTS = {"GROUP_": ("group", "groups"), "POOL_": ("pool", "pools"),
                    "COLLECTION_INSERT": ("collection", "collections"), "MESSAGE_": ("message", "messages")}


def _add_events(sim, rnd, count):
    types = EVENT_TYPES[sim.flavour]
    sysids, file_ids, user_ids = sorted(sim.sysids), sorted(sim.files), sorted(sim.users)
    when = _BASE_TIME
    for n in range(max(count, len(types))):
        etype = types[n] if n < len(types) else rnd.choice(types)
        when += datetime.timedelta(minutes=rnd.randint(1, 600))
        _add_event(sim, rnd, etype, when, sysids, file_ids, user_ids)


def _add_event(sim, rnd, etype, when, sysids, file_ids, user_ids):
    eid = sim.next_id("event")
    uid = rnd.choice(user_ids)
    event = {"_id": eid, "type": etype, "timestamp": _iso(when), "basetype": None, "objecttype": None,
             "object_id": None, "system_object_id": None, "object_version": None, "info": {},
             "pollable": etype in _OBJECT_EVENTS, "schema": None}
    basetype = next((v for k, v in _BASETYPE_EVENTS.items() if etype.startswith(k)), None)
    if etype in _OBJECT_EVENTS and sysids:
        ot, record = sim.record_by_sysid(rnd.choice(sysids))
        event.update(basetype="object", objecttype=ot, object_id=record["_id"], schema="USER",
                     system_object_id=record["_system_object_id"],
                     object_version=rnd.randint(1, len(record["versions"])))
    elif etype in USER_EVENTS:
        subject = rnd.choice(user_ids)
        event.update(basetype="user" if sim.flavour == "fylr" else None, object_id=subject)
        event["info"] = {"login": sim.users[subject]["user"]["login"]}
    elif etype == "SESSION_INVALID":
        event["info"] = {"login": sim.users[uid]["user"]["login"], "reason": "expired"}
    elif etype in _FILE_EVENTS and file_ids:
        fid = rnd.choice(file_ids)
        if etype != "ASSET_DOWNLOAD_CONFIRMATION_MESSAGE" or sim.flavour == "fylr":   # E5: no basetype there
            event["basetype"] = "asset" if sim.flavour == "easydb5" else "file"
        event["info"] = {"export": {"_id": 12}, "export_user_id": uid, "assets": [{"id": fid}], "eas_id": fid}
    elif etype in _EXPORT_EVENTS:
        event["info"] = {"export": {"_id": 30 + eid}, "export_user_id": uid}
    elif basetype is not None:
        kind, table = basetype
        event.update(basetype=kind, object_id=rnd.choice(sorted(getattr(sim, table))))
        event["info"] = {"detail": "%s %d" % (kind, eid)}
    else:
        event["info"] = {"detail": "Ereignis %d – 事件" % eid}
    sim.events[eid] = {"_basetype": "event", "event": event,
                       "user": {"_basetype": "user", "user": {"_id": uid}}}

# --------------------------------------------------------------------------------------------- entry


def generate(flavour, seed=1, size="tiny", login="root", password="admin"):
    """A complete, deterministic store.Instance of `flavour` ("easydb5" | "fylr")."""
    if size not in SIZES:
        raise ValueError("size must be one of %s" % (SIZES,))
    was_enabled = gc.isenabled()
    gc.disable()          # millions of acyclic dicts: the cyclic GC would only rescan them again and again
    try:
        return _generate(flavour, seed, size, login, password)
    finally:
        if was_enabled:
            gc.enable()


def _generate(flavour, seed, size, login, password):
    sim, rnd = _new_instance(flavour, seed, login, password)
    _add_system_entities(sim, login, password)
    if size == "empty":
        return sim
    spec = _SIZES[size]
    _add_groups(sim)
    _add_users(sim, rnd, spec["extra_users"])
    _add_pools(sim, rnd, spec["extra_pools"])
    _add_taggroups(sim)
    _add_messages(sim)
    _build_datamodel(sim)
    _add_objecttype_settings(sim)
    _add_misc(sim)
    factory = _RecordFactory(sim, rnd, spec["records"], spec["files"])
    factory.allocate()
    factory.build_all()
    factory.unique_key_history()
    _add_collections(sim, rnd)
    _add_events(sim, rnd, spec["events"])
    _add_publish(sim)
    _add_nonrecord_files(sim, seed)
    return sim

# ------------------------------------------------------------------------------ publish, non-record files


def _add_publish(sim):
    """Publish records (PublishApi): the first bild by datacite (not pinned: `version` 0 is the stored
    "tracks the current version"), a live bild with history pinned to its version 2, a dokument by europeana."""
    first_bild = sim.records["bilder"][1]["_system_object_id"]
    pinned = next(r for r in sim.records["bilder"].values()
                  if r["deleted_at"] is None and len(r["versions"]) >= 2)["_system_object_id"]
    dokument = next(r for r in sim.records["dokumente"].values() if r["deleted_at"] is None)["_system_object_id"]
    specs = [(first_bild, "datacite", 0, "https://doi.example/10.1234/%d", "2021-05-05T10:00:00Z"),
             (pinned, "datacite", 2, "https://doi.example/10.1234/%d.v2", "2021-06-01T08:30:00Z"),
             (dokument, "europeana", 0, "https://europeana.example/item/%d", "2022-01-02T12:00:00Z")]
    sim.publish = []
    for n, (sysid, collector, version, uri, when) in enumerate(specs, start=1):
        publish = {"_id": n, "version": version, "system_object_id": sysid, "collector": collector,
                   "publish_uri": uri % sysid, "easydb_uri": "https://sim.example/detail/%d" % sysid}
        if n > 1 and not version:
            del publish["version"]          # OAS PublishApi.version: echoed only when a version is pinned
        sim.publish.append({"_basetype": "publish", "_timestamp_created": when, "publish": publish})


def _zip(members):
    """A real, deterministic ZIP archive (fixed member timestamps)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 5)), data)
    return buffer.getvalue()


def _add_extra_file(sim, name, original, kind):
    """A file that no record uses (logo, watermark, plugin zip): real bytes in the EAS, renditions like a
    record file of its kind.  Drawn after every record file, so record file ids and counts stay as they were."""
    extension, file_class, mime, renditions = _FILE_KINDS[kind]
    file_id = sim.next_id("file")
    versions = {"original": original}
    versions.update({v: produce_version(original, v) for v in renditions})
    sim.files[file_id] = {
        "_id": file_id, "original_filename": name, "extension": extension, "class": file_class, "mime_type": mime,
        "reference": None, "leave": False, "remote_url": None, "produce_versions": True, "versions": versions,
        "status": "done", "upload_user": 1, "date_uploaded": _iso(_BASE_TIME)}
    return {"_id": file_id}


def _png_file(sim, seed, name, width, height):
    return _add_extra_file(sim, name, _png(width, height, hashlib.sha256(b"%d:%s" % (seed, name.encode())).digest()),
                           "png")


# Publish collectors registered in the base config (OAS /config: system.config.publish.collectors[], a
# collector is named by `internalname`; its `logo` is a file).  easydb 5 has no inner "config" layer and
# flat dotted keys: there the list sits at system["publish.collectors"]["collectors"] (undocumented shape).
def _collectors(logo):
    return [{"internalname": "datacite", "displayname": {"de-DE": "DataCite", "en-US": "DataCite"},
             "display_format": "name_type_doi", "logo": logo},
            {"internalname": "europeana", "displayname": {"en-US": "Europeana"}, "display_format": "name"}]


def _add_nonrecord_files(sim, seed):
    """Files outside records: base config logo and a collector logo, a pool watermark, (fylr) the bilder
    objecttype watermark and a zip plugin.  fylr: system.config.appearance.logo; easydb 5: system.logo
    (parameters.md 9)."""
    logo = _png_file(sim, seed, "Logo – ロゴ.png", 20, 8)
    collector_logo = _png_file(sim, seed, "datacite-logo.png", 12, 12)
    watermark = _png_file(sim, seed, "wasserzeichen.png", 16, 16)
    system = sim.config["system"]["config"]
    if sim.flavour == "fylr":
        system["appearance"] = dict(system.get("appearance") or {}, logo=logo)
        system["publish"] = {"collectors": _collectors(collector_logo)}
    else:
        system["logo"] = logo
        system["publish.collectors"] = {"collectors": _collectors(collector_logo)}
    photos = next(i for i, e in sim.pools.items() if e["pool"].get("reference") == "photos")
    # OAS WatermarkApi: image (file), gravity (compass code), dissolve (opacity in percent)
    sim.pools[photos]["pool"]["watermark"] = {"image": watermark, "gravity": "se", "dissolve": 50}
    if sim.flavour != "fylr":
        return          # easydb 5: neither an objecttype watermark nor plugin management (api.md 4.3)
    ot_mark = _png_file(sim, seed, "bilder-watermark.png", 10, 6)
    bilder = next(o for o in sim.objecttypes if o["objecttype"]["name"] == "bilder")
    bilder["objecttype"]["watermark"] = {"image": ot_mark, "gravity": "c", "dissolve": 30}
    manifest = b"name: fylr-example-zip\nversion: 1.0\n"
    plugin_zip = _add_extra_file(sim, "fylr-example-zip.zip", _zip([("fylr-example-zip/manifest.yml", manifest)]),
                                 "zip")
    sim.plugins.append({"id": 2, "name": "fylr-example-zip", "enabled": True, "type": "zip",
                        "zip_file": plugin_zip, "update_policy": "never"})
