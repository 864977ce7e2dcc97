from fylrmig import (E5_EVENT_TYPES, E5_MAX_CHUNK, EVENTS_NEVER_BACKED_UP, Api, ArgumentParser, BackupFolder,
                     FylrmigError, Param, add_params, collections, contextlib, datetime, fylr_knows_event, getpass,
                     is_home_collection, is_remote_file, is_system_entry, iter_file_entries, job_log, json_bytes,
                     log, logging, map_e5_event, mask_url_credentials, masked_argv, objects_in_page, os,
                     parse_event_filter, re, split_server_url, sys, time, url_credentials)

############################################################################## Check (source vs target)
# `fylrmig check`: a read-only, side by side proof of a migration (rclone check, pgcopydb compare). Both
# instances are read in pages; of every entry only a key is kept, built from what survives a migration
# (references, logins, system object ids and uuids, file names, event types and times), never from ids.
# What a restore never creates is left out on both sides: system users, groups, pools and the system:root
# collection (every instance has its own). Soft-deleted records are not counted on either side (the lists
# hide them). Exit 0 only when nothing of the source is missing; extra entries on the target are listed but
# never fail the check on their own: a target that holds more than the source is normal (No Purge).

CHECK_PARAMS = (
    Param("--source", "str", "", "API URL of the source instance (easydb 5 or fylr)", required=True),
    Param("--source-login", "str", "", "login on the source (root)", required=True),
    Param("--source-password", "str", "", "password on the source (or FYLRMIG_SOURCE_PASSWORD)", secret=True,
          required=True),
    Param("--source-client-id", "str", "", "OAuth2 client id of a fylr source; default fylr-web-frontend"),
    Param("--source-client-secret", "str", "", "OAuth2 client secret of a fylr source", secret=True),
    Param("--target", "str", "", "API URL of the fylr target", required=True),
    Param("--target-login", "str", "", "login on the target (root)", required=True),
    Param("--target-password", "str", "", "password on the target (or FYLRMIG_TARGET_PASSWORD)", secret=True,
          required=True),
    Param("--target-client-id", "str", "", "OAuth2 client id of the target; default fylr-web-frontend"),
    Param("--target-client-secret", "str", "", "OAuth2 client secret of the target", secret=True),
    Param("--manifest", "str", "", "the backup's manifest.json: what it left out on purpose is not missing"),
    Param("--deep", "bool", False, "also compare the sizes and checksums of the original files"),
    Param("--json", "bool", False, "print the report as JSON instead of the table"),
    Param("--insecure", "bool", False, "skip TLS certificate verification"),
    Param("--chunk-size", "int", 100, "entries per request (at most 1000)", aliases=("--chunk",), lo=1, hi=1000),
    Param("--retry-max-count", "int", 10, "retries of HTTP 502/503/504 and dropped connections", lo=0),
    Param("--retry-sleep-between", "int", 30, "seconds between retries", lo=0),
    Param("--log", "str", "", "log file (default: none; standard output holds the report)"),
    Param("--log-network", "bool", False, "log every request and response (secrets masked)", short="-n"),
    Param("--verbose", "bool", False, "debug logging", short="-v"),
    Param("--quiet", "bool", False, "no live progress line on the terminal", short="-q"),
)
CHECK_SECRET_FLAGS = frozenset(f for p in CHECK_PARAMS if p.secret for f in (p.flag,) + p.aliases)
CHECK_SIDES = ("source", "target")
SHOWN_ENTRIES = 20            # missing / extra entries named per line; the counts are always complete


def check_secrets_from_environment(args, prompt=None):
    """Secrets need not be on the command line: an empty one is taken from FYLRMIG_<NAME>
    (FYLRMIG_SOURCE_PASSWORD, FYLRMIG_TARGET_CLIENT_SECRET, ...); a missing password is asked for on a
    terminal. (secret_from_environment knows the parameters of backup and restore only.)"""
    for p in CHECK_PARAMS:
        if p.secret and not getattr(args, p.dest, ""):
            setattr(args, p.dest, os.environ.get("FYLRMIG_" + p.dest.upper(), ""))
    for side in CHECK_SIDES:
        if prompt is not None and getattr(args, side) and not getattr(args, f"{side}_password"):
            login = getattr(args, f"{side}_login") or "the user"
            setattr(args, f"{side}_password",
                    prompt(f"password of {login} on the {side} {mask_url_credentials(getattr(args, side))}: "))


def check_check_args(args):
    """Ranges, URLs with embedded credentials and presence, like check_args does for backup and restore."""
    for p in CHECK_PARAMS:
        value = getattr(args, p.dest)
        if p.kind == "int" and ((p.lo is not None and value < p.lo) or (p.hi is not None and value > p.hi)):
            raise FylrmigError(f"{p.flag} {value} is out of range ({p.lo}..{p.hi if p.hi is not None else ''})")
    for side in CHECK_SIDES:
        embedded = url_credentials(getattr(args, side))
        if embedded:   # https://login:password@host stands in for --<side>-login / --<side>-password
            setattr(args, f"{side}_login", getattr(args, f"{side}_login") or embedded[0])
            setattr(args, f"{side}_password", getattr(args, f"{side}_password") or embedded[1])
            setattr(args, side, split_server_url(getattr(args, side)))
    check_secrets_from_environment(args, getpass.getpass if sys.stdin.isatty() else None)
    missing = [p.flag for p in CHECK_PARAMS if p.required and not getattr(args, p.dest)]
    if missing:
        raise FylrmigError("missing " + ", ".join(missing))


def check_api(args, side, logger=None):
    """The Api of one side, logged in; every failure names the side ("target: login as 'root' ... failed")."""
    try:
        api = Api(getattr(args, side), getattr(args, f"{side}_login"), getattr(args, f"{side}_password"),
                  getattr(args, f"{side}_client_id"), getattr(args, f"{side}_client_secret"), "", args.insecure,
                  args.retry_max_count, args.retry_sleep_between, log_network=args.log_network, logger=logger,
                  role=f"the {side}")
        api.connect()
    except FylrmigError as exc:
        raise FylrmigError(f"{side}: {exc}") from None
    if side == "target" and api.flavour != "fylr":
        raise FylrmigError(f"target: {api.url} is an easydb 5: a migration target is fylr")
    return api


def load_check_manifest(path):
    """The backup's manifest (backup-format.md 2.3); only its parameters and counts are used."""
    try:
        return BackupFolder(os.path.dirname(os.path.abspath(path))).load_manifest()
    except FylrmigError as exc:
        raise FylrmigError(f"--manifest: {exc}") from None


# -- reading one side: pages in, keys out

def paged_entries(api, fetch, size):
    """Every entry of a list read in pages of `size` (0 = unpaged). An empty first page is trusted only
    after the session is confirmed (fylr answers a dead token with 200 [], api.md 2.2); paging advances
    by objects, which a page with all_versions holds several entries of (api.md 4.5)."""
    offset = 0
    while True:
        page = fetch(offset, size)
        if not objects_in_page(page) and api.confirm_session():
            page = fetch(offset, size)
        yield from page
        count = objects_in_page(page)
        if not size or count < size:
            return
        offset += count


def page_size(api, chunk_size):
    return min(chunk_size, E5_MAX_CHUNK) if api.flavour == "easydb5" else chunk_size


def list_body(body):
    """easydb 5 event lists come as {"objects": [...]} or as a bare array (api.md 4.8)."""
    return body.get("objects", []) if isinstance(body, dict) else body or []


def unpaged_on_easydb5(api, path, size):
    """Pools and messages: easydb 5 answers all of them at once, fylr pages them."""
    if api.flavour == "easydb5":
        return paged_entries(api, lambda o, n: api.get(path) if o == 0 else [], 0)
    return paged_entries(api, lambda o, n: api.get(path, limit=n, offset=o), size)


def reference_of(entry, kind):
    """The reference a restore gives an entry: its own, else the documented fallback <kind>:<source id>."""
    body = entry.get(kind) or {}
    return body.get("reference") or f"{kind}:{body.get('_id')}"


def user_key(entry):
    user = entry.get("user") or {}
    return user.get("login") or reference_of(entry, "user")


def is_system_group(entry):
    group = entry.get("group") or {}
    return group.get("type") == "system" or str(group.get("reference") or "").startswith("system:")


class CheckReader:
    """Reads one instance into keys: {line name: Counter(key -> how often)}; `accounted` holds per line the
    entries that are never migrated by design (reason -> count). Nothing else of a record is kept."""

    def __init__(self, api, side, chunk_size=100, deep=False, with_hash=False, event_rules=None, until=None,
                 progress=None):
        self.api, self.side, self.deep, self.with_hash = api, side, deep, with_hash
        self.size = page_size(api, chunk_size)
        self.event_rules = event_rules or (lambda event: (event.get("type"), None))
        self.until = until            # events from this time on happened during the check itself
        self.progress = progress or (lambda text: None)
        self.lines = collections.defaultdict(collections.Counter)
        self.accounted = collections.defaultdict(collections.Counter)
        self.user_refs, self.instances, self.objecttypes = {}, {"local", api.instance_name} - {""}, []
        self.seen = 0

    def read(self):
        for step in (self.read_users, self.read_groups, self.read_pools, self.read_tags, self.read_messages,
                     self.read_records, self.read_collections, self.read_events):
            step()
        return self

    def _count(self, line, key, n=1):
        self.lines[line][key] += n
        self.seen += 1
        if self.seen % 500 == 0:
            self.progress(f"reading the {self.side}: {entries(self.seen)} ({line})")

    def read_users(self):
        a = self.api
        for entry in paged_entries(a, lambda o, n: a.get("/user", limit=n, offset=o), self.size):
            self.user_refs[(entry.get("user") or {}).get("_id")] = reference_of(entry, "user")
            if not reference_of(entry, "user").startswith("system:"):   # referenced, never created
                self._count("users", user_key(entry))

    def read_groups(self):
        a = self.api
        for entry in paged_entries(a, lambda o, n: a.get("/group", limit=n, offset=o), self.size):
            if not is_system_group(entry):   # fylr refuses system groups; every instance has its own
                self._count("groups", reference_of(entry, "group"))

    def read_pools(self):
        for entry in unpaged_on_easydb5(self.api, "/pool", self.size):
            if not is_system_entry(entry, "pool"):
                self._count("pools", reference_of(entry, "pool"))

    def read_tags(self):
        for group in self.api.get("/tags") or []:
            self._count("tag groups", reference_of(group, "taggroup"))
            for tag in group.get("_tags") or []:
                self._count("tags", reference_of(tag if "tag" in tag else {"tag": tag}, "tag"))

    def read_messages(self):
        for entry in unpaged_on_easydb5(self.api, "/message", self.size):
            self._count("messages", reference_of(entry, "message"))

    def read_records(self):
        self.objecttypes = sorted(ot["objecttype"]["name"] for ot in self.api.get("/objecttype") or [])
        for ot in self.objecttypes:
            self.lines[f"records {ot}"] = collections.Counter()   # a line even when it is empty
            self.lines[f"versions {ot}"] = collections.Counter()
            latest = None
            for record in self._record_versions(ot):
                if latest is not None and latest["_system_object_id"] != record["_system_object_id"]:
                    self._add_latest(ot, latest)
                latest = record
                self._count(f"versions {ot}", f"{ot} {record['_system_object_id']}")
            if latest is not None:
                self._add_latest(ot, latest)

    def _record_versions(self, ot):
        """Every version of every record, oldest first and a record's versions together (api.md 4.5)."""
        a = self.api
        params = {"format": "full", "all_versions": "true"}
        if a.flavour == "fylr":
            params["files_real_url"] = "true"   # a file left on remote shows its upstream URL (is_remote_file)
        return paged_entries(a, lambda o, n: a.get(f"/db/{ot}/_all_fields/list", limit=n, offset=o, **params),
                             self.size)

    def _add_latest(self, ot, record):
        """The latest version names the record (system object id and uuid) and its original files."""
        key = f"{ot} {record['_system_object_id']}"
        self.instances.add(str(record.get("_global_object_id") or "").partition("@")[2])
        self._count(f"records {ot}", f"{key} {record.get('_uuid') or ''}".rstrip())
        for entry in iter_file_entries(record):
            if entry.get("original_filename") and entry.get("status") != "failed":
                self._count("files", f"{key} {entry['original_filename']}{self._file_facts(entry)}")

    def _file_facts(self, entry):
        """--deep: the original's size, and its checksum where both sides give one (fylr's sha256 `hash`). A
        file left on remote has neither here: its bytes live upstream (the target keeps only the URL)."""
        if not self.deep:
            return ""
        if is_remote_file(entry, self.api.url, self.api.flavour):
            return " (left on remote)"
        original = (entry.get("versions") or {}).get("original") or {}
        size = original.get("filesize", entry.get("filesize"))
        facts = f" ({size if size is not None else '?'} bytes"
        digest = original.get("hash") or entry.get("hash")
        return facts + (f", sha256 {digest}" if self.with_hash and digest else "") + ")"

    def read_collections(self):
        """Collections keyed as the restore names them: a user's home collection after its user
        (`user:ref:<reference>`, _home_collection_reference), the others by reference or fallback."""
        a = self.api
        listed = []
        for entry in paged_entries(a, lambda o, n: a.get("/collection/list", limit=n, offset=o), self.size):
            if is_system_entry(entry, "collection"):
                continue
            key = self._collection_key(entry)
            self._count("collections", key)
            listed.append((entry["collection"]["_id"], key))   # ids and keys only: collections are few
        for coll_id, key in listed:
            for obj in self._collection_objects(coll_id):
                self._count("collection objects", f"{key} {self._object_key(obj)}")

    def _collection_key(self, entry):
        owner = ((entry.get("_owner") or {}).get("user") or {}).get("_id")
        if is_home_collection(entry, "collection") and owner in self.user_refs:
            return f"user:ref:{self.user_refs[owner]}"
        return reference_of(entry, "collection")   # also the home of a user gone: as the instance named it

    def _collection_objects(self, coll_id):
        a, size = self.api, (E5_MAX_CHUNK if self.api.flavour == "easydb5" else 100)
        return paged_entries(a, lambda o, n: list_body(a.get(f"/collection/objects/{coll_id}", offset=o, limit=n)),
                             size)

    def _object_key(self, obj):
        """The instance's own objects by system object id; objects of other instances by their global id."""
        gid = str(obj.get("_global_object_id") or "")
        sysid, _, instance = gid.partition("@")
        return f"object {sysid}" if sysid.isdigit() and instance in self.instances else gid

    def read_events(self):
        a = self.api
        params = {"sort": "_id.ASC"}
        if a.flavour == "easydb5":
            params["format"] = "json_full"
        fetch = lambda o, n: list_body(a.get("/event/list", limit=n, offset=o, **params))   # noqa: E731
        for entry in paged_entries(a, fetch, min(self.size, E5_MAX_CHUNK)):
            self._add_event(dict(entry.get("event", entry)))

    def _add_event(self, event):
        when = event_time(event.get("timestamp"))
        if self.until and when >= self.until:
            return   # the check's own logins, and whatever else happens while it runs
        etype, reason = self.event_rules(event)
        if reason:
            self.accounted[f"events {etype}"][reason] += 1
            self.lines.setdefault(f"events {etype}", collections.Counter())
            return
        sysid = event.get("system_object_id") or str(event.get("global_object_id") or "").partition("@")[0]
        self._count(f"events {etype}", f"{when} {('object ' + str(sysid)) if sysid else ''}".rstrip())


def event_time(text):
    """Event timestamps as one UTC spelling (a target may write +00:00 where the source wrote Z)."""
    try:
        when = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return str(text or "")
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")   # sorts as it reads


def source_event_rules(flavour, include_events=frozenset()):
    """(line name, reason it is never on the target or None) of a source event: parameters.md 6 as the
    restore applies it (map_e5_event, fylr_knows_event) and the backup's --include-events filter."""
    def rules(event):
        etype = event.get("type") or ""
        if etype in EVENTS_NEVER_BACKED_UP:
            return etype, "never backed up"
        if include_events is None or (include_events and etype not in include_events):
            return etype, "left out by --include-events"
        if flavour == "easydb5":
            if etype not in E5_EVENT_TYPES:
                return etype, "easydb 5 type without a fylr type"
            etype = map_e5_event(event)["type"]
        if not fylr_knows_event(etype):
            return etype, "a type fylr refuses"
        return etype, None
    return rules


# -- comparing

class Excuses:
    """What the backup left out on purpose, from its manifest (parameters, source_counts, runs): the
    reason a missing entry is accounted for, or None."""

    def __init__(self, manifest, source_counts):
        manifest = manifest or {}
        params = manifest.get("parameters") or {}
        self.active = bool(manifest)
        self.include = re.compile(params["include"]) if params.get("include") else None
        self.max_count = int(params.get("max_count") or 0)
        self.counts = manifest.get("source_counts") or {}
        self.all_versions = bool(manifest.get("all_versions", params.get("all_versions", True)))
        runs = manifest.get("runs") or [{}]
        self.backup_started = event_time(runs[-1].get("started_at")) if runs[-1].get("started_at") else None
        self.source_counts = source_counts
        self.left_out = set()     # "<ot> <sysid>" of records left out by --include / --max-count

    def objecttype(self, ot):
        if self.include and not self.include.search(ot):
            return "left out by --include"
        return None

    def records(self, ot, missing):
        """--max-count kept the first N of an objecttype: the missing ones are accounted for while no more
        are missing than the source holds beyond N (which ones it kept, the order of the list decided)."""
        reason = self.objecttype(ot)
        if not reason and self.max_count:
            allowed = self.source_counts.get(ot, 0) - self.counts.get(ot, min(self.source_counts.get(ot, 0),
                                                                            self.max_count))
            reason = f"left out by --max-count {self.max_count}" if sum(missing.values()) <= allowed else None
        if reason:
            self.left_out.update(" ".join(key.split(" ")[:2]) for key in missing)
        return (lambda key: reason) if reason else None

    def versions(self, ot, target):
        def excuse(key):
            if key in self.left_out:
                return self.objecttype(ot) or f"left out by --max-count {self.max_count}"
            if not self.all_versions and target[key]:
                return "backed up without --all-versions"
            return None
        return excuse if self.active else None

    def files(self, key):
        return "its record was left out" if " ".join(key.split(" ")[:2]) in self.left_out else None

    def events(self, key):
        if self.backup_started and key.split(" ")[0] >= self.backup_started:
            return "newer than the backup"
        return None


def compare_line(name, source, target, excuse=None, accounted=None):
    """One line of the report: counts on both sides, the missing and extra entries (first 20 named) and
    what of the source is accounted for (never migrated by design, or left out by the backup)."""
    missing, extra = source - target, target - source
    unit = "versions" if name.startswith("versions ") else "times"
    reasons = collections.Counter(accounted or {})
    for key, n in list(missing.items()):
        reason = excuse(key) if excuse else None
        if reason:
            reasons[reason] += n
            del missing[key]
    source_total = sum(source.values()) + sum((accounted or {}).values())
    return {"name": name, "source": source_total, "target": sum(target.values()),
            "difference": sum(target.values()) - source_total,
            "missing_count": sum(missing.values()), "missing": shown_keys(missing, unit),
            "extra_count": sum(extra.values()), "extra": shown_keys(extra, unit),
            "accounted": sum(reasons.values()), "accounted_for": dict(sorted(reasons.items()))}


def shown_keys(counter, unit):
    """The first 20 keys in order; a key held n times more on one side says how often ("3 versions")."""
    keys = sorted(counter, key=natural_order)[:SHOWN_ENTRIES]
    return [key if counter[key] == 1 else f"{key} ({counter[key]} {unit})" for key in keys]


def natural_order(key):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


BASETYPE_LINES = ("users", "groups", "pools", "tag groups", "tags", "collections", "collection objects", "messages")


def compare_readers(source, target, excuses):
    lines = [compare_line(name, source.lines[name], target.lines[name]) for name in BASETYPE_LINES]
    objecttypes = sorted(set(source.objecttypes) | set(target.objecttypes))
    for ot in objecttypes:
        name = f"records {ot}"
        missing = source.lines[name] - target.lines[name]
        lines.append(compare_line(name, source.lines[name], target.lines[name], excuses.records(ot, missing)))
    for ot in objecttypes:
        name = f"versions {ot}"
        lines.append(compare_line(name, source.lines[name], target.lines[name],
                                  excuses.versions(ot, target.lines[name])))
    lines.append(compare_line("files", source.lines["files"], target.lines["files"],
                              excuses.files if excuses.active else None))
    events = sorted({n for n in list(source.lines) + list(target.lines) if n.startswith("events ")})
    for name in events:
        lines.append(compare_line(name, source.lines[name], target.lines[name], excuses.events,
                                  source.accounted.get(name)))
    return lines


def check_instances(source_api, target_api, manifest=None, deep=False, progress=None, log=None, chunk_size=100):
    """Read both instances (logged in Api objects) and compare them line by line; read-only on both
    sides. Returns the report: {"source", "target", "lines": [...], "missing", "extra", "ok", "verdict"}."""
    logger = log or logging.getLogger("fylrmig")
    started = time.time()
    until = event_time(datetime.datetime.fromtimestamp(started, datetime.timezone.utc).isoformat())
    include_events = parse_event_filter((manifest or {}).get("include_events", ""))
    both_fylr = source_api.flavour == target_api.flavour == "fylr"
    readers = {}
    for side, api, rules in (("source", source_api, source_event_rules(source_api.flavour, include_events)),
                             ("target", target_api, None)):
        logger.info("check: reading the %s %s (%s)", side, api.url, api.flavour)
        try:
            readers[side] = CheckReader(api, side, chunk_size, deep, both_fylr, rules, until, progress).read()
        except FylrmigError as exc:   # a refused or failed read names its side, like a failed login
            raise FylrmigError(f"{side}: {exc}") from None
    source_counts = {ot: sum(readers["source"].lines[f"records {ot}"].values()) for ot in readers["source"].objecttypes}
    lines = compare_readers(readers["source"], readers["target"], Excuses(manifest, source_counts))
    report = {"source": side_facts(source_api), "target": side_facts(target_api), "deep": deep,
              "manifest": bool(manifest), "seconds": round(time.time() - started, 1), "lines": lines,
              "missing": sum(line["missing_count"] for line in lines),
              "extra": sum(line["extra_count"] for line in lines),
              "accounted": sum(line["accounted"] for line in lines)}
    report["ok"] = report["missing"] == 0
    report["verdict"] = verdict(report)
    for line in lines:
        if line["missing_count"]:
            logger.warning("check: %s: %d missing on the target: %s", line["name"], line["missing_count"],
                           ", ".join(line["missing"]))
    logger.info("check: %s", report["verdict"])
    return report


def side_facts(api):
    return {"url": mask_url_credentials(api.url), "flavour": api.flavour, "version": api.version}


def verdict(report):
    lines = [line for line in report["lines"] if line["missing_count"]]
    extra = f"; {entries(report['extra'])} more on the target (not a failure)" if report["extra"] else ""
    accounted = f", {report['accounted']} accounted for" if report["accounted"] else ""
    if not lines:
        return f"OK: nothing of the source is missing on the target{accounted}{extra}"
    names = ", ".join(line["name"] for line in lines[:5]) + (", ..." if len(lines) > 5 else "")
    return f"MISSING: {entries(report['missing'])} of the source not on the target ({names}){extra}"


def entries(n):
    return f"{n} {'entry' if n == 1 else 'entries'}"


def format_report(report):
    """The table (line, source, target, difference, missing, extra, accounted), the named entries of every
    line that differs, and the one-line verdict last."""
    head = ("line", "source", "target", "diff", "missing", "extra", "accounted")
    rows = [head] + [(l["name"], l["source"], l["target"], f"{l['difference']:+d}" if l["difference"] else "0",
                      l["missing_count"], l["extra_count"], l["accounted"]) for l in report["lines"]]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    out = [f"source {report['source']['flavour']} {report['source']['url']}  ->  target "
           f"{report['target']['flavour']} {report['target']['url']}"]
    for row in rows:
        out.append("  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in
                             enumerate(zip(row, widths))).rstrip())
    for line in report["lines"]:
        out += entry_lines(line)
    out.append(report["verdict"])
    return "\n".join(out)


def entry_lines(line):
    out = []
    for what in ("missing", "extra"):
        count = line[f"{what}_count"]
        if count:
            more = f" (first {SHOWN_ENTRIES} named)" if len(line[what]) == SHOWN_ENTRIES < count else ""
            out.append(f"{line['name']}: {count} {what}{more}: " + ", ".join(line[what]))
    if line["accounted"]:
        out.append(f"{line['name']}: {line['accounted']} accounted for: " +
                   ", ".join(f"{n} {reason}" for reason, n in line["accounted_for"].items()))
    return out


def terminal_progress(quiet):
    """A live line on a terminal only; logs and pipes never get it."""
    if quiet or not sys.stderr.isatty():
        return None
    return lambda text: sys.stderr.write("\r\x1b[K" + text[:120]) and sys.stderr.flush()


@contextlib.contextmanager
def check_log(args):
    """--log FILE gets the log; without it nothing is logged (standard output holds the report, and
    Python's last-resort handler must not put warnings between the lines on standard error)."""
    if args.log:
        with job_log(args.log, args.verbose):
            yield
        return
    quiet = logging.NullHandler()
    log.addHandler(quiet)
    try:
        yield
    finally:
        log.removeHandler(quiet)


def cmd_check(args, argv):
    """Log in to both sides, compare, print the table (or --json); 0 only when nothing is missing."""
    check_check_args(args)
    manifest = load_check_manifest(args.manifest) if args.manifest else None
    with check_log(args):
        log.info("fylrmig check: %s", " ".join(masked_argv(["fylrmig", *argv])))
        source, target = check_api(args, "source", log), check_api(args, "target", log)
        progress = terminal_progress(args.quiet)
        try:
            report = check_instances(source, target, manifest, args.deep, progress, log, args.chunk_size)
        finally:
            if progress:
                sys.stderr.write("\r\x1b[K")
    print(json_bytes(report, pretty=True).decode("utf-8") if args.json else format_report(report))
    return 0 if report["ok"] else 1


def main_check(argv):
    """Temporary entry point (`check ...` argv) until the lead wires `check` into fylrmig.main."""
    argv = [str(a) for a in argv]
    parser = ArgumentParser(prog="fylrmig check", allow_abbrev=False,
                            description="Compare a migrated fylr target with its source, read-only.")
    parser.secret_argv = tuple(argv)
    add_params(parser, CHECK_PARAMS)
    args = parser.parse_args(argv[1:] if argv[:1] == ["check"] else argv)
    try:
        return cmd_check(args, argv)
    except FylrmigError as exc:
        print(f"fylrmig: error: {exc}", file=sys.stderr)
        return 1
