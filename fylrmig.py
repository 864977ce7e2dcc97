"""fylrmig -- move a whole easydb 5 or fylr instance into fylr, over the instances' HTTP JSON APIs.

    fylrmig backup  --server URL --login L --password P --dir DIR     read a source into a backup folder
    fylrmig restore --manifest DIR/manifest.json --server URL ...     write a backup folder into a fylr
    fylrmig check   --source URL ... --target URL ...                 prove a migration, side by side
    fylrmig serve   [--host 127.0.0.1] [--port 8080] [--data DIR]     the /inspect/migration/ web page

One engine behind the command line and the page. Every unit of work is a row in a SQLite ledger
(jobs.sqlite.sql), so any run can be continued after any interruption with nothing missing and nothing
duplicated. Formats and parameters follow fylr's own `fylr backup` / `fylr restore`. References such as
(api.md 6.5) or (parameters.md 8.1) name sections of the reference documents in docs/spec/.
"""
__version__ = "0.1.0"

import argparse
import collections
import contextlib
import copy
import dataclasses
import datetime
import fcntl
import functools
import gc
import getpass
import gzip
import hashlib
import hmac
import importlib
import importlib.util
import io
import json
import logging
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time
import urllib.parse
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor


class LazyModule:
    """A module imported where it is first used: a command-line job never touches the web framework,
    whose import was a third of `import fylrmig` (138 -> 90 ms with the interpreter's start)."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        module = importlib.import_module(self._name)
        globals()[self._name] = module   # later uses in this module skip the proxy
        return getattr(module, attr)


# fylrmig.py copied alone (no bottle): main() says in one line what is missing
bottle = LazyModule("bottle") if importlib.util.find_spec("bottle") else None

try:   # optional: decoding and encoding every record is most of a backup's own CPU; orjson does it several
    import orjson   # times faster. The single-file bundle (pure Python) and any install without it use json.
except ImportError:
    orjson = None

HERE = os.path.dirname(os.path.abspath(__file__))
SINGLE_FILE_HINT = ("copy fylrmig.py together with its views/ folder and jobs.sqlite.sql, or build the single file "
                    "with 'fylrmig bundle fylrmig.pyz' on a machine that has fylrmig and copy that")


def resource_text(name):
    """A resource (jobs.sqlite.sql, views/*.tpl) as text: beside the module (a checkout, an editable
    install), inside the single-file build (read through the module's own loader), or under
    <prefix>/share/fylrmig (an installed package). One loader for all three."""
    loader = globals().get("__loader__")
    for path in (os.path.join(HERE, name), os.path.join(sys.prefix, "share", "fylrmig", name)):
        try:
            if loader is not None and hasattr(loader, "get_data"):
                return loader.get_data(path).decode("utf-8")
            with open(path, encoding="utf-8") as fh:
                return fh.read()
        except OSError:
            continue
    raise FylrmigError(f"{name} is missing beside {__file__}: {SINGLE_FILE_HINT}")


LEDGER_SCHEMA_VERSION = 1
DEFAULT_DATA_DIR = os.environ.get("FYLRMIG_DATA", "fylrmig-data")
API_BASE = "/api/v1"
MASK = "***"

log = logging.getLogger("fylrmig")


############################################################################## Settings and errors

class FylrmigError(Exception):
    """An error the user can act on: printed as one line, never with a traceback."""


class ApiError(FylrmigError):
    """A server answered with an error; `code` is the server's error code (fylr "UserRequired",
    easydb 5 "error.user.login_failed", OAuth2 "invalid_grant")."""

    def __init__(self, method, path, status, code, text="", body=None):
        self.method, self.path, self.status, self.code, self.body = method, path, status, code, body
        detail = f": {text}" if text and text != code else ""
        super().__init__(f"{method} {path} failed with HTTP {status} {code}{detail}")


class FolderInUse(FylrmigError):
    """Another backup or restore holds the folder's lock."""


class RetriesExhausted(FylrmigError):
    """A request kept failing with what is normally transient (gateway errors, a locked database, dropped
    connections): the message says what happened, how often, and on which request."""


class EffectUnknown(FylrmigError):
    """A write that is not safe to repeat blindly failed in a way that leaves open whether the server
    did it (dropped connection, gateway timeout): the caller checks the target before sending it again."""


class Cancelled(FylrmigError):
    """The job was cancelled (web page Cancel button); its chunks stay as they are for a later continue."""


# Events fylr backup never writes, even when asked for explicitly (parameters.md 6.2).
EVENTS_NEVER_BACKED_UP = frozenset({"OBJECT_INDEX", "SESSION_INVALID", "FRONTEND_ERROR",
                                    "COLLECTION_OWNER_RIGHTS_ERROR"})

# easydb 5 event type -> fylr event type (parameters.md 6.1); E5 types not listed are never migrated.
E5_EVENT_TYPES = {
    "ASSET_DOWNLOAD_CONFIRMATION_MESSAGE": "ASSET_DOWNLOAD_CONFIRMATION_MESSAGE",
    "CUSTOM_TYPE_UPDATER_RESPONSE": "CUSTOM_DATA_TYPE_UPDATER",
    "CUSTOM_TYPE_UPDATER_START": "CUSTOM_DATA_TYPE_UPDATER",
    "CUSTOM_TYPE_UPDATER_RESPONSE_ERROR": "CUSTOM_DATA_TYPE_UPDATER_ERROR",
    "CUSTOM_TYPE_UPDATER_RESPONSE_FAILED": "CUSTOM_DATA_TYPE_UPDATER_ERROR",
    "SCHEMA_COMMIT": "DATAMODEL_COMMIT",
    "DETAIL_VIEW": "DETAIL_VIEW",
    "EMAIL_SENT": "EMAIL_SENT",
    "DOWNLOAD_EXPORT": "EXPORT_DOWNLOAD",
    "ASSET_DOWNLOAD": "FILE_DOWNLOAD",
    "ASSET_EXPORT_DOWNLOAD": "FILE_DOWNLOAD",
    "OBJECT_DELETE": "OBJECT_DELETE",
    "OBJECT_INSERT": "OBJECT_INSERT",
    "OBJECT_UPDATE": "OBJECT_UPDATE",
    "SEARCH": "SEARCH",
    "USER_CREATED": "USER_INSERT",
    "USER_LOGIN": "USER_LOGIN",
    "USER_LOGOUT": "USER_LOGOUT",
    "WEBHOOK_OK": "WEBHOOK",
    "WEBHOOK_ERROR": "WEBHOOK_ERROR",
}

# Event basetypes whose object_id names a basetype entry (restored with a new id, found by reference).
BASETYPE_EVENT_KINDS = ("user", "group", "pool", "collection", "message")

E5_MAX_CHUNK = 1000   # easydb 5 answers at most 1000 objects per page


def crash_point(name):
    """Where the crash tests kill fylrmig: FYLRMIG_CRASH_AT="<name>:<n>" sends this process SIGKILL the
    n-th time it passes <name> (a kill -9 at an exact point; unset, it costs a dict lookup)."""
    if _CRASH_AT and name in _CRASH_AT:
        with _CRASH_LOCK:
            _CRASH_AT[name] -= 1
            if _CRASH_AT[name] == 0:
                os.kill(os.getpid(), signal.SIGKILL)


_CRASH_AT = {n: int(c) for n, _, c in (p.partition(":") for p in os.environ.get("FYLRMIG_CRASH_AT", "").split(","))
             if n and c.isdigit()}
_CRASH_LOCK = threading.Lock()


def now():
    return time.time()


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else ""


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path, data, sync=True):
    """Write bytes so that `path` either does not exist or is complete (temp file, fsync, rename). Without
    sync the caller makes it durable itself (fsync_paths before its ledger row commits)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def is_json_file(path):
    try:
        with open(path, "rb") as fh:
            json_loads(fh.read())
        return True
    except (OSError, ValueError):
        return False


def fsync_paths(paths):
    """Make files (and folders: their entries) durable, once, before the ledger row naming them commits.
    Many files at once (an emit step's payloads) take one sync of the file system instead of an fsync
    each: on some disks every fsync costs a millisecond or more."""
    paths = list(paths)
    if len(paths) > 16 and hasattr(os, "sync"):
        os.sync()
        return
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json_atomic(path, value, pretty=True):
    write_atomic(path, json_bytes(value, pretty))


# One encoder each, made once: json.dumps with options builds a new encoder at every call (measurable at
# one call per record version).
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
_PRETTY_JSON = json.JSONEncoder(ensure_ascii=False, indent=2)


def json_bytes(value, pretty=False):
    """Compact (or indented) UTF-8 JSON; compact output is the same with orjson and without."""
    if orjson is not None and not pretty:
        try:   # keys not all strings (ids as keys) are rare; allowing them costs a fifth of the encoding
            return orjson.dumps(value)
        except TypeError:
            return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    return (_PRETTY_JSON if pretty else _COMPACT_JSON).encode(value).encode("utf-8")


def json_loads(data):
    """A JSON document (bytes or text) -> value. A response body is decoded from its bytes here, never by
    requests' .json(), which guesses the text encoding first."""
    return orjson.loads(data) if orjson is not None else json.loads(data)


def read_json(path):
    return parse_json_bytes(read_nofollow(path), path.endswith(".gz"))


def parse_json_bytes(data, gzipped=False):
    """A payload's bytes (UTF-8, gzipped or not) -> value; invalid UTF-8 or JSON raises ValueError."""
    return json_loads(gzip.decompress(data) if gzipped else data)


def read_nofollow(path):
    """A file's bytes; a symbolic link in its place is refused, never followed (O_NOFOLLOW)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def open_append_nofollow(path):
    """A log file opened for appending; a symbolic link in its place is refused, never followed."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    return os.fdopen(fd, "a", encoding="utf-8")


def inside(root, path):
    """True when `path`, symlinks resolved, is `root` or below it."""
    root, path = os.path.realpath(root), os.path.realpath(path)
    return path == root or path.startswith(root + os.sep)


############################################################################## Parameters

@dataclasses.dataclass(frozen=True)
class Param:
    """One command line parameter; the same table drives argparse, log masking and the web forms."""
    flag: str
    kind: str                      # "str", "int", "bool", "choice"
    default: object
    help: str
    aliases: tuple = ()
    short: str = ""
    choices: tuple = ()
    secret: bool = False
    required: bool = False
    lo: int = None
    hi: int = None

    @property
    def dest(self):
        return self.flag[2:].replace("-", "_")


COMMON_PARAMS = (
    Param("--verbose", "bool", False, "debug logging", short="-v"),
    Param("--log-network", "bool", False, "log every request and response (secrets masked)", short="-n"),
    Param("--quiet", "bool", False, "no live progress lines and no summary on the terminal (the log is kept)",
          short="-q"),
    Param("--server", "str", "", "API URL of the instance, with or without /api/v1", required=True),
    Param("--login", "str", "", "login of the user (root, or a user with enough rights)", short="-l", required=True),
    Param("--password", "str", "", "password of the user", short="-p", secret=True, required=True),
    Param("--client-id", "str", "", "OAuth2 client id (fylr); default fylr-web-frontend"),
    Param("--client-secret", "str", "", "OAuth2 client secret; empty for public clients", secret=True),
    Param("--client-token-url", "str", "", "OAuth2 token URL; derived from --server when empty"),
    Param("--insecure", "bool", False, "skip TLS certificate verification"),
    Param("--log", "str", "", "log file (default: standard output)"),
    Param("--purge", "bool", False, "start over: delete what exists (exclusive with --continue)"),
    Param("--continue", "bool", False, "resume an interrupted run from the ledger (exclusive with --purge)"),
    Param("--verify", "bool", False, "check the payloads of an existing backup against the ledger and exit"),
    Param("--chunk-size", "int", 100, "objects per request (backup: at most 1000 from easydb 5; restore: at "
          "most 1000)", aliases=("--chunk",), lo=1, hi=10000),
    Param("--max-count", "int", 0, "at most this many records per objecttype (0 = all)",
          aliases=("--maximum-count", "--limit"), lo=0),
    Param("--max-parallel", "int", 1, "parallel workers (0 = number of CPUs)", lo=0),
    Param("--include-events", "str", "", "'' = all event types, '-' = none, 'A,B' = only these"),
    Param("--retry-max-count", "int", 10, "retries of HTTP 502/503/504 and dropped connections", lo=0),
    Param("--retry-sleep-between", "int", 30, "seconds between retries", lo=0),
    Param("--data", "str", DEFAULT_DATA_DIR, "data folder holding the ledger jobs.sqlite (and the page's backups)"),
)

BACKUP_PARAMS = (
    Param("--dir", "str", "", "backup folder (created if missing)", short="-d", required=True),
    Param("--compression", "int", 0, "0 = plain .json payloads, 1..9 = gzip level (.json.gz)", lo=0, hi=9),
    Param("--all-versions", "bool", False, "back up all history versions of every record"),
    Param("--include-deleted", "bool", False, "also back up soft-deleted records"),
    Param("--include", "str", "", "only objecttypes whose internal name matches this regular expression"),
    Param("--include-files", "choice", "", "pack file bytes under files/: '' (URLs only), original, with-versions",
          choices=("", "original", "with-versions")),
    Param("--pretty", "bool", False, "indented JSON payloads"),
)

RESTORE_PARAMS = (
    Param("--manifest", "str", "", "path to the backup's manifest.json", required=True),
    Param("--base-config", "str", "", "base config file to upload ('-' = none; default the backup's)"),
    Param("--datamodel", "str", "", "datamodel file to upload ('-' = none; default the backup's)"),
    Param("--skip-constraints", "bool", False, "send skip_constraints with record and user posts"),
    Param("--skip-reindex", "bool", False, "do not start a reindex at the end"),
    Param("--include-password", "bool", False, "restore users' password hashes (needs has_passwords)"),
    Param("--include-deleted-linked", "bool", False, "keep links to soft-deleted or purged records"),
    Param("--allow-incomplete", "bool", False, "restore a backup that did not finish (cancelled, failed, running)"),
    Param("--file-api", "choice", "", "how files are transferred: '', put, rput, rput_leave, rput_bulk, "
          "rput_bulk_leave", choices=("", "put", "rput", "rput_leave", "rput_bulk", "rput_bulk_leave")),
    Param("--file-api-access-token", "str", "", "source access token that replaces x-fylr-signature in file URLs",
          secret=True),
    Param("--file-version", "str", "original", "source rendition uploaded as the target's original"),
    Param("--upload-versions", "bool", False, "upload the source's renditions instead of producing them"),
    Param("--rename-versions", "str", "", "rename renditions: <class>.<version>:<new>[,...]; empty new drops it"),
    Param("--upload-ignore-files-with-errors", "bool", False, "strip a failing file from its record and go on"),
    Param("--max-parallel-upload-files", "int", 4, "parallel file uploads", lo=0, hi=100),
    Param("--timeout-min", "int", 10, "HTTP timeout towards the target, minutes", lo=1),
)

SERVE_PARAMS = (
    Param("--host", "str", "127.0.0.1", "address to bind (other than loopback needs --access-token)"),
    Param("--port", "int", 8080, "port to bind", lo=0, hi=65535),
    Param("--data", "str", DEFAULT_DATA_DIR, "data folder: jobs.sqlite and backups/"),
    Param("--access-token", "str", "", "token required from browsers when binding a non-loopback address",
          secret=True),
)

def instance_params(side, what):
    """URL, login, password and OAuth2 client of one instance a command logs in to (`check`: two of them)."""
    env = f"FYLRMIG_{side.upper()}_PASSWORD"
    return (Param(f"--{side}", "str", "", f"API URL of {what}", required=True),
            Param(f"--{side}-login", "str", "", f"login on the {side} (root)", required=True),
            Param(f"--{side}-password", "str", "", f"password on the {side} (or {env})", secret=True, required=True),
            Param(f"--{side}-client-id", "str", "", f"OAuth2 client id of a fylr {side}; default fylr-web-frontend"),
            Param(f"--{side}-client-secret", "str", "", f"OAuth2 client secret of a fylr {side}", secret=True))


# `fylrmig check`: two instances, each with its own login; nothing is written anywhere.
CHECK_PARAMS = instance_params("source", "the source instance (easydb 5 or fylr)") + instance_params(
    "target", "the fylr target") + (
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

SECRET_FLAGS = frozenset(f for p in COMMON_PARAMS + BACKUP_PARAMS + RESTORE_PARAMS + SERVE_PARAMS + CHECK_PARAMS
                         if p.secret for f in (p.flag,) + p.aliases)


ALL_FLAGS = frozenset(f for p in COMMON_PARAMS + BACKUP_PARAMS + RESTORE_PARAMS + SERVE_PARAMS + CHECK_PARAMS
                     for f in (p.flag,) + p.aliases)
# (server, login, password) of each instance a command logs in to: URL credentials, prompts
LOGINS = {"backup": (("server", "login", "password"),), "restore": (("server", "login", "password"),),
          "check": (("source", "source_login", "source_password"), ("target", "target_login", "target_password"))}


def params_for(kind):
    return {"backup": COMMON_PARAMS + BACKUP_PARAMS, "restore": COMMON_PARAMS + RESTORE_PARAMS,
            "check": CHECK_PARAMS, "serve": SERVE_PARAMS}[kind]


def parse_bool(text):
    """The one reader of a boolean: command line values and the page's checkboxes."""
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on", "y", "t"):
        return True
    if value in ("0", "false", "no", "off", "n", "f", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def masked_argv(argv):
    """The command line with every secret value replaced by ***, for logs, the ledger and error messages:
    every spelling argparse accepts (--password, --pass, --passw=..., -p X, -pX), misspelt secret flags,
    and secrets inside URLs (also URL-encoded ones)."""
    out, hide_next = [], False
    for arg in argv:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if is_secret_flag(flag):
            out.append(f"{flag}={MASK}" if eq else arg)
            hide_next = not eq
        elif arg.startswith("-p") and not arg.startswith("--") and len(arg) > 2:
            out.append("-p" + MASK)   # -pSECRET: the value attached to the short flag
        else:
            out.append(mask_url_credentials(arg))
    return out


def is_secret_flag(flag):
    """A flag that takes a secret: -p, a secret flag or an abbreviation argparse may read as one, or an
    unknown long flag whose name says password, secret or token (a typo must not print the secret
    either). A flag that is exactly another parameter's (--file-api, --include-password) is not."""
    if flag == "-p":
        return True
    if not flag.startswith("--") or len(flag) < 4:
        return False
    if flag in ALL_FLAGS:
        return flag in SECRET_FLAGS
    matches = [f for f in ALL_FLAGS if f.startswith(flag)]
    if matches:
        return any(f in SECRET_FLAGS for f in matches)
    return re.search(r"pa?s+w|secr|tok", flag) is not None


def mask_url_credentials(text):
    """http://user:secret@host -> http://user:***@host; access_token / token query values -> *** (also
    when URL-encoded inside another URL's query)."""
    text = re.sub(r"(https?(?::|%3[Aa])(?://|%2[Ff]%2[Ff])[^/:@\s%]+(?::|%3[Aa]))[^@/\s]+(?:@|%40)", rf"\1{MASK}@",
                  text)
    return re.sub(r"((?:access_token|token|password|client_secret|refresh_token|x-fylr-signature)(?:=|%3[Dd]))"
                  r"[^&\s\"']+", rf"\1{MASK}", text)


def secret_from_environment(args, kind, prompt=None):
    """Secrets need not be on the command line (where the process list shows them): an empty one is
    taken from FYLRMIG_<NAME> (FYLRMIG_PASSWORD, FYLRMIG_CLIENT_SECRET, FYLRMIG_FILE_API_ACCESS_TOKEN),
    and a missing password is asked for on a terminal."""
    for p in params_for(kind):
        if p.secret and not getattr(args, p.dest, ""):
            setattr(args, p.dest, os.environ.get("FYLRMIG_" + p.dest.upper(), ""))
    if prompt is None or getattr(args, "verify", False):
        return
    for server, login, password in LOGINS.get(kind, ()):
        if not getattr(args, password):
            setattr(args, password, prompt(f"password of {getattr(args, login) or 'the user'} on "
                                           f"{mask_url_credentials(getattr(args, server))}: "))


def public_params(args, kind):
    """Parameters as stored in the ledger and the manifest: every secret is ***."""
    out = {}
    for p in params_for(kind):
        value = getattr(args, p.dest)
        out[p.dest] = MASK if (p.secret and value) else value
    out["server"] = mask_url_credentials(out.get("server") or "")
    return out


############################################################################## Ledger (SQLite: jobs, chunks, files, ids)

def process_owner():
    """Identity of this process on claimed rows (shown, never trusted: the folder lock decides)."""
    return f"{socket.gethostname()}:{os.getpid()}"


LOCK_FILE = ".fylrmig.lock"


class FolderLock:
    """One job per backup folder, held by the operating system: an flock on <folder>/.fylrmig.lock for
    the job's life, released however the process ends (kill -9, crash, zombie) and never by a reused pid."""

    def __init__(self, folder):
        self.folder, self.path, self._fd = folder, os.path.join(folder, LOCK_FILE), None

    def acquire(self, what):
        try:
            os.makedirs(self.folder, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise FylrmigError(f"cannot write backup folder {self.folder}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise FolderInUse(f"{self.folder} is in use by {holder}: one backup or restore at a time per "
                              "folder; wait until it ends or cancel it") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"a {what} (process {os.getpid()} on {socket.gethostname()}, since {iso(now())})".encode())
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.close(self._fd)   # closing the descriptor drops the flock
            self._fd = None


def folder_in_use(folder):
    """True while some process (this one included) holds the folder's lock."""
    try:
        fd = os.open(os.path.join(folder, LOCK_FILE), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


INTERRUPTED = ("interrupted: the fylrmig process running this job ended before it (killed, crashed, or the "
               "machine or page server restarted); Continue finishes it")


class Ledger:
    """The SQLite ledger of one data folder. One write connection behind a lock (BEGIN IMMEDIATE); every
    reader thread opens its own connection, so the web page never waits on a job."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._lock = threading.RLock()
        self._local = threading.local()
        try:
            self._db = self._connect()
            self._apply_schema()
        except sqlite3.Error as exc:
            raise FylrmigError(f"cannot open ledger {self.path}: {exc}") from None

    def _connect(self):
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout = 30000")
        db.execute("PRAGMA synchronous = NORMAL")
        return db

    def _apply_schema(self):
        self._db.executescript(resource_text("jobs.sqlite.sql"))
        with self.write() as db:
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (LEDGER_SCHEMA_VERSION,))
            elif row[0] > LEDGER_SCHEMA_VERSION:
                raise FylrmigError(f"ledger {self.path} was written by a newer fylrmig (schema {row[0]})")

    @contextlib.contextmanager
    def write(self):
        """One writing transaction: BEGIN IMMEDIATE so a read-then-write never fails with SQLITE_BUSY."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def read(self):
        """A connection of the calling thread for reads."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    def close(self):
        with self._lock:
            self._db.close()

    # -- jobs

    def create_job(self, name, kind, folder, params, setup):
        with self.write() as db:
            cur = db.execute(
                "INSERT INTO jobs (name, kind, dir, params, setup, state, owner, heartbeat, started_at) "
                "VALUES (?, ?, ?, ?, ?, 'queued', '', 0, ?)",
                (name, kind, os.path.abspath(folder), json.dumps(params), json.dumps(setup), now()))
            return cur.lastrowid

    def latest_job(self, folder, kind):
        row = self.read().execute("SELECT * FROM jobs WHERE dir = ? AND kind = ? ORDER BY id DESC LIMIT 1",
                                  (os.path.abspath(folder), kind)).fetchone()
        return dict(row) if row else None

    def job(self, job_id):
        row = self.read().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return dict(row) if row else None

    def jobs(self):
        return [dict(r) for r in self.read().execute("SELECT * FROM jobs ORDER BY id")]

    def update_job(self, job_id, **fields):
        if not fields:
            return
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self.write() as db:
            db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*fields.values(), job_id))

    def claim_job(self, job_id):
        """Mark a job running by this process (the caller holds the folder's lock)."""
        me = process_owner()
        with self.write() as db:
            db.execute("UPDATE jobs SET state = 'running', owner = ?, heartbeat = ?, cancel_requested = 0, "
                       "finished_at = NULL, last_error = NULL WHERE id = ?", (me, now(), job_id))
        return me

    def mark_orphans_interrupted(self):
        """Running jobs whose folder nobody holds were interrupted (kill -9, crash, restart): say so."""
        changed = 0
        for job in self.jobs():
            if job["state"] in ("running", "queued") and not folder_in_use(job["dir"]):
                self.update_job(job["id"], state="interrupted", last_error=INTERRUPTED)
                changed += 1
        return changed

    # -- chunks

    def chunk(self, job_id, key):
        row = self.read().execute("SELECT * FROM chunks WHERE job_id = ? AND key = ?", (job_id, key)).fetchone()
        return dict(row) if row else None

    def chunks(self, job_id, prefix=""):
        rows = self.read().execute("SELECT * FROM chunks WHERE job_id = ? AND key >= ? AND key < ? ORDER BY key",
                                   (job_id, prefix, prefix + "\uffff"))
        return [dict(r) for r in rows]

    def start_chunk(self, job_id, key):
        """Mark a chunk running (creating it); returns its previous state (None for a new chunk)."""
        with self.write() as db:
            row = db.execute("SELECT state FROM chunks WHERE job_id = ? AND key = ?", (job_id, key)).fetchone()
            db.execute(
                "INSERT INTO chunks (job_id, key, state, attempts, owner, updated_at) VALUES (?, ?, 'running', 1, ?, ?) "
                "ON CONFLICT (job_id, key) DO UPDATE SET state = 'running', attempts = attempts + 1, "
                "owner = excluded.owner, error = NULL, updated_at = excluded.updated_at",
                (job_id, key, process_owner(), now()))
            return row["state"] if row else None

    def finish_chunk(self, job_id, key, items=0, *, sha256=None, size=0, output=None, ids=()):
        """Mark a chunk done (creating it if it was never started); `ids` ((kind, source_id, target), ...) are
        recorded in the same transaction."""
        with self.write() as db:
            db.execute("INSERT INTO chunks (job_id, key, state, attempts, items, sha256, bytes, output, owner, "
                       "updated_at) VALUES (?, ?, 'done', 1, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, key) DO UPDATE "
                       "SET state = 'done', items = excluded.items, sha256 = excluded.sha256, bytes = excluded.bytes, "
                       "output = excluded.output, error = NULL, updated_at = excluded.updated_at",
                       (job_id, key, items, sha256, size, None if output is None else json.dumps(output),
                        process_owner(), now()))
            db.executemany("INSERT OR REPLACE INTO ids (job_id, kind, source_id, target) VALUES (?, ?, ?, ?)",
                           [(job_id, kind, str(src), str(tgt)) for kind, src, tgt in ids])

    def fail_chunk(self, job_id, key, error):
        with self.write() as db:
            db.execute("UPDATE chunks SET state = 'failed', error = ?, updated_at = ? WHERE job_id = ? AND key = ?",
                       (str(error)[:2000], now(), job_id, key))

    def chunk_counts(self, job_id):
        rows = self.read().execute("SELECT state, COUNT(*) AS n, SUM(items) AS items FROM chunks WHERE job_id = ? "
                                   "GROUP BY state", (job_id,))
        return {r["state"]: {"chunks": r["n"], "items": r["items"] or 0} for r in rows}

    # -- files

    def file_row(self, job_id, source_id, version):
        row = self.read().execute("SELECT * FROM files WHERE job_id = ? AND source_id = ? AND version = ?",
                                  (job_id, str(source_id), version)).fetchone()
        return dict(row) if row else None

    def set_file(self, job_id, source_id, version, state, **fields):
        cols = ["state", "updated_at"] + list(fields)
        values = [state, now()] + list(fields.values())
        with self.write() as db:
            db.execute(
                f"INSERT INTO files (job_id, source_id, version, {', '.join(cols)}) VALUES (?, ?, ?, "
                f"{', '.join('?' for _ in cols)}) ON CONFLICT (job_id, source_id, version) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in cols),
                (job_id, str(source_id), version, *values))

    def file_counts(self, job_id):
        rows = self.read().execute("SELECT state, COUNT(*) AS n, SUM(bytes) AS b FROM files WHERE job_id = ? "
                                   "GROUP BY state", (job_id,))
        return {r["state"]: {"files": r["n"], "bytes": r["b"] or 0} for r in rows}

    # -- ids

    def ids(self, job_id, kind):
        rows = self.read().execute("SELECT source_id, target FROM ids WHERE job_id = ? AND kind = ?", (job_id, kind))
        return {r["source_id"]: r["target"] for r in rows}

    def put_ids(self, job_id, kind, mapping):
        with self.write() as db:
            db.executemany("INSERT OR REPLACE INTO ids (job_id, kind, source_id, target) VALUES (?, ?, ?, ?)",
                           [(job_id, kind, str(s), str(t)) for s, t in mapping.items()])


############################################################################## API client (auth, retries, flavours)

RETRY_STATUSES = frozenset({502, 503, 504, 429, 423})   # gateway errors, status middleware, rate limit, DB lock
E5_SESSION_CODES = frozenset({"error.user.session_not_found", "error.user.session_invalid",
                              "error.user.not_authenticated"})
FYLR_SESSION_CODES = frozenset({"UserRequired", "InvalidToken", "AuthSessRequired"})
DEFAULT_CLIENT_ID = "fylr-web-frontend"


def split_server_url(url):
    """'https://x/api/v1/' or 'https://x' -> 'https://x' (the instance URL without the API base).
    Credentials embedded as https://login:password@x never stay in it (see url_credentials)."""
    url = (url or "").strip()
    if not re.match(r"^https?://[^/\s]+", url):
        raise FylrmigError(f"--server must be an http(s) URL, got {mask_url_credentials(url)!r}")
    parts = urllib.parse.urlsplit(url.rstrip("/"))
    url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    if url.endswith(API_BASE):
        url = url[: -len(API_BASE)]
    return url


def url_credentials(url):
    """(login, password) embedded in a server URL (restore.md's http://<login>:<password>@host), or None."""
    parts = urllib.parse.urlsplit((url or "").strip())
    if parts.username is None:
        return None
    return urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")


def error_code(body):
    """The error code of an error body of either flavour, or of an OAuth2 error."""
    if isinstance(body, dict):
        for key in ("code", "error"):
            if isinstance(body.get(key), str):
                return body[key]
    return ""


def error_text(body):
    if isinstance(body, dict):
        for key in ("error_description", "description", "error"):
            if isinstance(body.get(key), str) and body[key] != error_code(body):
                return body[key]
    return ""


class JsonAnswer:
    """An answer's bytes, decoded by whoever needs its value (Api.call(lazy=True)): the thread that fetched
    it can ask for the next page at once instead of decoding this one first."""

    def __init__(self, method, path, content):
        self.method, self.path, self.content = method, path, content

    def value(self):
        try:
            return json_loads(self.content) if self.content else None
        except ValueError:
            raise ApiError(self.method, self.path, 200, "InvalidJSON", "the answer is not JSON") from None


def answer_value(answer):
    return answer.value() if isinstance(answer, JsonAnswer) else answer


def environment_once_session(requests):
    """A requests Session that reads proxies and CA bundle from the environment once per host instead of
    for every request (requests walks every environment variable twice a request: 0.35 ms of CPU, a fifth
    of the main thread's time between two restore chunks). Our requests pass the same settings every time
    (no per-request proxies, verify or cert), so the answer per host and stream flag is the same too.
    A plain request (a body of bytes or none, no files, no auth object) is prepared and sent without the
    steps fylrmig never needs on the way out (netrc lookup, merging of cookie jars and hooks): 0.24 ms of
    the 0.69 ms of CPU a request costs; cookies and redirects of the answer are handled as requests does."""
    from requests.cookies import extract_cookies_to_jar
    from requests.hooks import default_hooks
    from requests.structures import CaseInsensitiveDict

    class Session(requests.Session):
        def merge_environment_settings(self, url, proxies, stream, verify, cert):
            if proxies or verify is not None or cert is not None:
                return super().merge_environment_settings(url, proxies, stream, verify, cert)
            key = (urllib.parse.urlsplit(url).netloc, stream, self.trust_env, self.verify)
            if key not in self._environment:
                self._environment[key] = super().merge_environment_settings(url, proxies, stream, verify, cert)
            settings = self._environment[key]
            return dict(settings, proxies=dict(settings["proxies"]))

        def request(self, method, url, params=None, data=None, headers=None, json=None, files=None,
                    timeout=None, stream=None, **others):
            if files or json is not None or others or self.auth or not isinstance(data, (bytes, type(None))):
                return super().request(method, url, params=params, data=data, headers=headers, json=json,
                                       files=files, timeout=timeout, stream=stream, **others)
            prepared = requests.PreparedRequest()
            prepared.prepare_method(method)
            prepared.prepare_url(url, params)
            prepared.headers = CaseInsensitiveDict(self.headers)
            prepared.headers.update(headers or {})
            if self.cookies:
                prepared.prepare_cookies(self.cookies)
            prepared.prepare_body(data, None)
            prepared.hooks = default_hooks()
            settings = self.merge_environment_settings(prepared.url, {}, stream, None, None)
            response = self.get_adapter(prepared.url).send(prepared, timeout=timeout, **settings)
            if "set-cookie" in response.headers:
                extract_cookies_to_jar(self.cookies, prepared, response.raw)
            if response.is_redirect:   # followed as requests.Session.send follows it
                history = [response, *self.resolve_redirects(response, prepared, timeout=timeout, **settings)]
                response = history.pop()
                response.history = history
            if not stream:
                response.content
            return response
    session = Session()
    session._environment = {}
    return session


class Api:
    """HTTP client of one instance: knows its flavour, keeps the session alive, retries what may be retried."""

    def __init__(self, server, login, password, *, client_id="", client_secret="", client_token_url="",
                 insecure=False, retry_max_count=10, retry_sleep_between=30, timeout=600, log_network=False,
                 cancelled=lambda: False, logger=None, role="server"):
        import requests   # on first use: the bundle's loader and `fylrmig --help` need not have it yet
        self._requests = requests
        self.url = split_server_url(server)
        self.login, self._password = login, password
        self.client_id = client_id or DEFAULT_CLIENT_ID
        self._client_secret = client_secret
        self.token_url = client_token_url or self.url + "/api/oauth2/token"
        self.verify_tls = not insecure
        self.retry_max_count, self.retry_sleep_between = retry_max_count, retry_sleep_between
        self.timeout, self.log_network, self.cancelled = timeout, log_network, cancelled
        self.log = logger or log
        self.role = role   # "the source" / "the target" in messages
        self.on_retry = lambda text: None   # the job shows it as the step under way
        self.on_request = lambda: None      # a request is about to wait for its answer (Pacer.turn)
        self.flavour, self.settings = "", {}
        self._token, self._refresh_token, self._token_expires = None, None, 0.0
        self._auth_lock = threading.Lock()
        self._local = threading.local()
        # every thread's session, closed once its thread has ended: a requests Session sits in reference
        # cycles, so without this its sockets stayed open until the cyclic GC came round
        self._sessions, self._sessions_lock = {}, threading.Lock()
        self.retries = 0
        self._slots = contextlib.nullcontext()   # see limit_parallel
        if insecure:
            import urllib3
            urllib3.disable_warnings()

    # -- connection

    def _session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = environment_once_session(self._requests)
            session.verify = self.verify_tls
            with self._sessions_lock:
                self._close_sessions(lambda thread: not thread.is_alive())
                self._sessions[threading.current_thread()] = session
        return session

    def _close_sessions(self, which):
        for thread in [t for t in self._sessions if which(t)]:
            self._sessions.pop(thread).close()

    def close(self):
        """Close the connections of every thread (the job is over; a thread that goes on opens new ones)."""
        with self._sessions_lock:
            self._close_sessions(lambda thread: True)
        self._local = threading.local()

    def api_url(self, path):
        return self.url + API_BASE + path

    def connect(self, first_contact=True):
        """Detect the flavour and log in; every problem ends as one clear FylrmigError. At the first
        contact a refused connection or an unknown host name is a wrong URL, not a hiccup: it is not
        retried (after a purge, the server restarting is retried like any gateway error)."""
        self.settings = self._probe_settings(first_contact)
        self.flavour = self._detect_flavour(self.settings)
        self._login()
        return self

    def _probe_settings(self, first_contact=True):
        url = self.api_url("/settings")

        def once():
            try:
                response = self._send("GET", url, auth=False)
            except self._requests.exceptions.SSLError as exc:
                raise FylrmigError(f"TLS error talking to {self.url} (use --insecure to skip verification): "
                                   f"{type(exc).__name__}") from None
            except self._requests.exceptions.ConnectionError as exc:
                if first_contact and short_reason(exc) in ("connection refused", "name or service not known"):
                    raise FylrmigError(f"cannot reach {self.url}: {short_reason(exc)}") from None
                raise
            return response
        try:
            response = self._with_retries("GET", url, once)
        except ApiError as exc:
            raise FylrmigError(f"{self.url} is not an easydb 5 or fylr instance: GET {API_BASE}/settings answered "
                               f"HTTP {exc.status}") from None
        try:
            body = response.json()
        except ValueError:
            raise FylrmigError(f"{self.url} is not an easydb 5 or fylr instance: /settings is not JSON") from None
        self._settings_headers = {k.lower(): v for k, v in response.headers.items()}
        return body

    def _detect_flavour(self, settings):
        """api.md 1: fylr has x-fylr-status / fylr-only keys and no `api` field; easydb 5 has `api`."""
        headers = getattr(self, "_settings_headers", {})
        fylr_keys = {"capabilities", "external_url", "build_commit", "version_full", "num_cpu", "index_names"}
        if "x-fylr-status" in headers or fylr_keys & set(settings):
            return "fylr"
        if "api" in settings or {"easydb_version", "server_version", "db-name"} & set(settings) \
                or "x-easydb-api-version" in headers:
            return "easydb5"
        raise FylrmigError(f"{self.url}: cannot tell whether this is easydb 5 or fylr from /settings")

    @property
    def version(self):
        return str(self.settings.get("easydb_version") or self.settings.get("version") or "")

    @property
    def instance_name(self):
        return str(self.settings.get("name") or self.settings.get("instance") or "")

    # -- authentication

    def _login(self):
        with self._auth_lock:
            if self.flavour == "easydb5":
                self._login_easydb5()
            else:
                self._login_fylr()

    def _login_easydb5(self):
        session = self._raw("GET", "/session", auth=False)
        token = session.get("token")
        form = {"token": token, "login": self.login, "password": self._password, "method": "easydb"}
        try:
            self._raw("POST", "/session/authenticate", auth=False, data=form)
        except ApiError as exc:
            raise FylrmigError(f"login as {self.login!r} on {self.url} failed: {exc.code}") from None
        self._token, self._token_expires = token, float("inf")

    def _login_fylr(self, refresh=False):
        form = {"grant_type": "password", "username": self.login, "password": self._password,
                "client_id": self.client_id, "scope": "offline"}
        if refresh and self._refresh_token:
            form = {"grant_type": "refresh_token", "refresh_token": self._refresh_token, "client_id": self.client_id}
        if self._client_secret:
            form["client_secret"] = self._client_secret
        try:
            body = self._raw("POST", self.token_url, auth=False, data=form, absolute=True)
        except ApiError as exc:
            if refresh:
                self._refresh_token = None
                return self._login_fylr()
            raise FylrmigError(f"login as {self.login!r} on {self.url} failed: {exc.code}"
                               + (f" ({error_text(exc.body)})" if error_text(exc.body) else "")) from None
        if not body.get("access_token"):
            raise FylrmigError(f"login on {self.url} failed: the token answer holds no access_token")
        self._token = body["access_token"]
        self._refresh_token = body.get("refresh_token") or self._refresh_token
        lifetime = float(body.get("expires_in") or 86400)
        self._token_expires = now() + 0.8 * lifetime   # renew at 80 % of the lifetime (api.md 2.2)

    def renew_session(self, stale_token):
        """Log in again (fylr: refresh first) unless another thread already did."""
        with self._auth_lock:
            if self._token != stale_token:
                return
            self.log.info("session of %s expired, logging in again", self.url)
            if self.flavour == "easydb5":
                self._login_easydb5()
            else:
                self._login_fylr(refresh=True)

    def _ensure_fresh_token(self):
        if self.flavour == "fylr" and now() >= self._token_expires:
            self.renew_session(self._token)

    def access_token(self):
        self._ensure_fresh_token()
        return self._token

    def confirm_session(self):
        """fylr treats a dead token as anonymous and some lists then answer 200 [] (api.md 2.2): an empty
        page is trusted only after this check. Returns True when the session had to be renewed."""
        token = self._token
        try:
            if self.flavour == "fylr":
                self._raw("GET", "/user/session")
            else:
                self._raw("GET", "/session")
            return False
        except ApiError as exc:
            if exc.code in FYLR_SESSION_CODES | E5_SESSION_CODES or exc.status == 401:
                self.renew_session(token)
                return True
            raise

    def _auth(self, headers, params):
        if self.flavour == "easydb5":
            headers["X-Easydb-Token"] = self._token
        else:
            headers["Authorization"] = f"Bearer {self._token}"

    # -- requests

    def limit_parallel(self, n):
        """At most n requests in flight from all threads together: a backup reads ahead on more threads
        than --max-parallel (ReadAhead), the source still gets no more than that at once."""
        self._slots = threading.BoundedSemaphore(n)

    def get(self, path, **params):
        return self.call("GET", path, params=params)

    def post(self, path, body=None, **params):
        return self.call("POST", path, params=params, json_body=body)

    def put(self, path, body=None, **params):
        return self.call("PUT", path, params=params, json_body=body)

    def call(self, method, path, params=None, json_body=None, data=None, files=None, absolute=False,
             idempotent=True, lazy=False):
        """One API call with session renewal (once) and retries; returns the decoded JSON body. A write
        that must not be repeated blindly (idempotent=False) raises EffectUnknown where a retry would
        risk doing it twice."""
        self._ensure_fresh_token()
        token = self._token
        request = dict(params=params, json_body=json_body, data=data, files=files, absolute=absolute,
                       idempotent=idempotent, lazy=lazy)
        try:
            return self._raw(method, path, **request)
        except ApiError as exc:
            if not (self._is_session_error(exc) or self._anonymous_refusal(exc, path)):
                raise
            self.renew_session(token)
            return self._raw(method, path, **request)

    def _is_session_error(self, exc):
        if self.flavour == "easydb5":
            return exc.status in (400, 401, 403) and exc.code in E5_SESSION_CODES
        return exc.status == 401 or exc.code in FYLR_SESSION_CODES

    def _anonymous_refusal(self, exc, path):
        """fylr's /eas routes answer a dead token as an anonymous caller, 403 and never 401 (OAS /eas): a
        403 there is a session error only if the session check says so (then it was renewed)."""
        return self.flavour == "fylr" and exc.status == 403 and path.startswith("/eas") and self.confirm_session()

    def download(self, url, dest_path):
        """Stream a file to dest_path (atomically); returns (bytes, sha256). An expired x-fylr-signature
        is replaced by the access token (parameters.md 8.2)."""
        try:
            return self._download(url, dest_path)
        except ApiError as exc:
            if self.flavour != "fylr" or exc.status not in (401, 403):
                raise
            return self._download(with_access_token(url, self.access_token()), dest_path)

    def download_plain(self, url, dest_path):
        """A download without any session (easydb 5 EAS URLs, signed or token-carrying fylr URLs)."""
        return self._download(url, dest_path)

    def _download(self, url, dest_path):
        def fetch():
            with self._slots:   # the whole download is one request in flight
                return self._receive(url, dest_path)
        return self._with_retries("GET", url, fetch)

    def _receive(self, url, dest_path):
        """One streamed GET into dest_path, replaced whole or not at all: (bytes, sha256)."""
        response = self._send("GET", url, stream=True)
        digest, size = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(dest_path))
        try:
            with os.fdopen(fd, "wb") as fh:
                for block in response.iter_content(1 << 16):
                    fh.write(block)
                    digest.update(block)
                    size += len(block)
            expected = response.headers.get("Content-Length")
            if expected is not None and int(expected) != size:
                raise self._requests.exceptions.ChunkedEncodingError(f"short read: {size} of {expected} bytes")
            os.replace(tmp, dest_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return size, digest.hexdigest()

    def _raw(self, method, path, params=None, json_body=None, data=None, files=None, auth=True, absolute=False,
             idempotent=True, lazy=False):
        url = path if absolute else self.api_url(path)

        def once():
            for part in (files or {}).values():   # a retried upload sends the file from its start again
                part[1].seek(0)
            response = self._send(method, url, params=params, json_body=json_body, data=data, files=files,
                                  auth=auth)
            if lazy and response.status_code != 202:
                return JsonAnswer(method, path, response.content)
            try:
                body = json_loads(response.content) if response.content else None
            except ValueError:
                raise ApiError(method, path, response.status_code, "InvalidJSON",
                               "the answer is not JSON") from None
            if response.status_code == 202:   # confirm-and-resend: nothing was done (api.md 0.3)
                raise ApiError(method, path, 202, "ConfirmationRequired", confirmation_text(body), body)
            return body
        return self._with_retries(method, url, once, idempotent)

    def _send(self, method, url, params=None, json_body=None, data=None, files=None, auth=True, stream=False):
        headers = {"Accept": "application/json"}
        params = dict(params or {})
        if isinstance(json_body, bytes):   # encoded once by the caller (who also hashes it)
            data, json_body = json_body, None
            headers["Content-Type"] = "application/json; charset=utf-8"
        if auth and self._token:
            self._auth(headers, params)
        started = now()
        self.on_request()
        with contextlib.nullcontext() if stream else self._slots:   # a stream's reader holds its slot
            response = self._session().request(method, url, params=params or None, json=json_body, data=data,
                                               files=files, headers=headers, timeout=self.timeout, stream=True)
            if not stream:
                self._read_whole_body(response)
        if self.log_network:
            self.log.info("%s %s -> %s (%.0f ms, %s bytes)", method, mask_url_credentials(response.url),
                      response.status_code, 1000 * (now() - started),
                      response.headers.get("Content-Length", "?"))
        if response.status_code >= 400:
            self._raise_for(method, url, response)
        return response

    def _read_whole_body(self, response):
        """The body in one read from C. requests reads it in 10 KB steps of Python, and each step waits for
        the GIL again while the main thread transforms the previous page: a 600 KB page took 55 ms instead
        of 37 ms to arrive, and the source waited for the next request that long. Errors become the
        exceptions requests' own reading raises (retried by _with_retries)."""
        import urllib3.exceptions as u3
        req = self._requests.exceptions
        try:
            response._content = response.raw.read(decode_content=True) or b""
        except u3.ProtocolError as exc:
            raise req.ChunkedEncodingError(exc) from None
        except u3.ReadTimeoutError as exc:
            raise req.ConnectionError(exc) from None
        except u3.DecodeError as exc:
            raise req.ContentDecodingError(exc) from None
        except u3.SSLError as exc:
            raise req.SSLError(exc) from None
        finally:
            response._content_consumed = True
            response.close()   # the connection goes back to the pool (once read, it already has)

    def _raise_for(self, method, url, response):
        try:
            body = json_loads(response.content)
        except ValueError:
            body = None
        code = error_code(body) or response.reason or str(response.status_code)
        path = urllib.parse.urlsplit(url).path
        error = ApiError(method, path, response.status_code, code, error_text(body), body)
        error.server_status = response.headers.get("x-fylr-status", "")
        raise error

    def _with_retries(self, method, url, attempt, idempotent=True):
        """Retry 502/503/504 (and 423, 429) and dropped connections or timeouts (api.md 3.3), each retry
        logged; everything else is raised at once. A write that is not idempotent is not repeated here
        after such a failure: EffectUnknown tells its caller to check the target first."""
        req = self._requests.exceptions
        where = f"{method} {urllib.parse.urlsplit(url).path}"
        tries, waited_since = 0, None
        while True:
            if self.cancelled():
                raise Cancelled("cancelled")
            try:
                return attempt()
            except ApiError as exc:
                if self._busy(exc, where, waited_since):
                    waited_since = waited_since or now()
                    continue
                if exc.status not in RETRY_STATUSES:
                    raise
                reason = f"answered HTTP {exc.status}" + (f" {exc.code}" if exc.code == "DatabaseLockError" else "")
            except (req.ConnectionError, req.ChunkedEncodingError, req.Timeout) as exc:
                reason = f"did not answer ({short_reason(exc)})"
            if not idempotent:
                raise EffectUnknown(f"{self.role} {reason} to {where}: whether it was done is unknown")
            if tries == self.retry_max_count:
                times = f"{tries + 1} times in a row" if tries else "once, and no retry is allowed"
                raise RetriesExhausted(f"{self.role} {reason} {times} ({where})")
            tries += 1
            self.retries += 1
            self.log.warning("retry %d/%d of %s: %s %s", tries, self.retry_max_count, where, self.role, reason)
            self.on_retry(f"waiting for {self.role}: retry {tries} of {self.retry_max_count} ({self.role} {reason}, "
                          f"{where})")
            self.pause(self.retry_sleep_between)

    def pause(self, seconds):
        """Wait between retries, but a Cancel from the page ends the wait at once."""
        deadline = now() + seconds
        while now() < deadline:
            if self.cancelled():
                raise Cancelled("cancelled")
            time.sleep(min(0.2, max(deadline - now(), 0)))

    def _busy(self, exc, where, waited_since):
        """fylr's status middleware answers 503 with x-fylr-status startup/purge/busy/reindex while it cannot
        work (api.md 1, 3.3): wait until it is ready (bounded by the request timeout), counting no retry."""
        if exc.status != 503 or getattr(exc, "server_status", "") not in ("startup", "purge", "busy", "reindex"):
            return False
        if waited_since is None:
            self.log.info("%s is busy (%s): waiting until it is ready (%s)", self.role, exc.server_status, where)
        elif now() - waited_since > self.timeout:
            raise RetriesExhausted(f"{self.role} stayed busy ({exc.server_status}) for {self.timeout:.0f} s ({where})")
        time.sleep(0.2)
        return True


def confirmation_text(body):
    """What a 202 answer asks to confirm, in one line (its tasks' titles and messages)."""
    tasks = (body or {}).get("tasks") if isinstance(body, dict) else None
    return "; ".join(f"{t.get('title', '')}: {t.get('message', '')}".strip(": ") for t in tasks or []
                     if isinstance(t, dict)) or "the target asks for a confirmation"


def short_reason(exc):
    """A one-line reason for a requests exception, without URLs that might carry secrets."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "Connection reset",
                   "Connection aborted", "IncompleteRead", "short read", "Remote end closed"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__


def with_access_token(url, token):
    """Remove every x-fylr-signature from a file URL and append access_token (parameters.md 8.2)."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
             if k not in ("x-fylr-signature", "access_token")]
    query.append(("access_token", token))
    return parts._replace(query=urllib.parse.urlencode(query)).geturl()


############################################################################## Backup folder (manifest, payloads, files/)

IMPORT_TYPE_ARRAYS = {"plugin": "plugins", "tags": "tags", "group": "groups", "user": "users", "pool": "pools",
                      "objecttype": "objecttypes", "message": "messages", "db": "objects",
                      "collection": "collections", "collection_objects": "collection_objects", "event": "events",
                      "mapping": "mappings", "right_preset": "presets", "transition": "transitions",
                      "publish": "publish"}
# A POST of these replaces the target's whole set (api.md 6.5, OAS /transitions): one payload, one request.
WHOLE_SET_KINDS = frozenset({"tags", "transition"})
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_backup_name(name):
    """Backup names become folder names under the data folder: no separators, no dot-dot, no surprises."""
    if not SAFE_NAME.match(name or "") or ".." in name:
        raise FylrmigError(f"unsafe backup name {name!r}: use letters, digits, '.', '_' and '-' (max 128)")
    return name


def file_relpath(file_id, filename, version=None, extension=None):
    """files/<id floored to 1e6>/<id floored to 1e3>/<id>-<filename> (backup-format.md 8); renditions
    <id>-<basename>-<version>.<ext> beside their original."""
    fid = int(file_id)
    safe = sanitize_filename(filename or "file")
    if version and version != "original":
        base = safe.rsplit(".", 1)[0] if "." in safe else safe
        safe = f"{base}-{sanitize_filename(version)}" + (f".{sanitize_filename(extension)}" if extension else "")
    return f"files/{fid // 1000000 * 1000000}/{fid // 1000 * 1000}/{fid}-{safe}"


def sanitize_filename(name):
    cleaned = re.sub(r"[\x00-\x1f/\\]", "_", str(name)).strip()
    return cleaned.lstrip(".") or "file"


class BackupFolder:
    """A backup folder: manifest.json, datamodel.json, base_config.json, payloads, files/, logs, spool."""

    def __init__(self, path):
        self.path = os.path.abspath(path)

    def join(self, *parts):
        return os.path.join(self.path, *parts)

    def member(self, relpath):
        """The path of a file the backup names (payload, packed file, datamodel): a relative path that
        stays inside the folder, symlinks resolved; anything else is refused, never followed."""
        parts = str(relpath or "").replace("\\", "/").split("/")
        if not relpath or os.path.isabs(str(relpath)) or any(p in ("", ".", "..") for p in parts):
            raise FylrmigError(f"broken backup: {relpath!r} is not a file name inside {self.path}")
        path = os.path.join(self.path, *parts)
        if not inside(self.path, path):
            raise FylrmigError(f"broken backup: {relpath!r} leads out of {self.path}")
        return path

    def read_member(self, relpath):
        try:
            return read_nofollow(self.member(relpath))
        except FileNotFoundError:
            raise FylrmigError(f"broken backup: {relpath}: missing") from None
        except OSError as exc:
            raise FylrmigError(f"broken backup: cannot read {relpath}: {exc.strerror or exc}") from None

    def links_out(self):
        """The first entry of the folder that is a symbolic link leading out of it, or None."""
        for folder, dirs, names in os.walk(self.path):
            for name in dirs + names:
                path = os.path.join(folder, name)
                if os.path.islink(path) and not inside(self.path, path):
                    return path
        return None

    @property
    def manifest_path(self):
        return self.join("manifest.json")

    @property
    def spool(self):
        return self.join(".spool")

    def exists(self):
        """A folder holding anything but log files (and the lock) is an existing backup."""
        return os.path.isdir(self.path) and any(not n.endswith(".log") and n != LOCK_FILE
                                                for n in os.listdir(self.path))

    def remove_temp_files(self):
        """Temporary files of writes that a kill -9 cut short: never complete, never referenced."""
        removed = 0
        for folder, _, names in os.walk(self.path):
            for name in names:
                if name.startswith(".tmp-"):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(folder, name))
                        removed += 1
        return removed

    def purge(self):
        """Delete everything of a backup but its logs (a web job may be writing backup.log right now)."""
        for name in os.listdir(self.path):
            path = self.join(name)
            if name.endswith(".log") or name == LOCK_FILE:
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)

    def load_manifest(self):
        try:
            manifest = read_json(self.manifest_path)
        except FileNotFoundError:
            raise FylrmigError(f"{self.manifest_path} does not exist") from None
        except (ValueError, OSError, EOFError) as exc:
            raise FylrmigError(f"broken manifest {self.manifest_path}: {type(exc).__name__}: "
                               f"{getattr(exc, 'strerror', None) or exc}") from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("payloads"), list) \
                or not all(isinstance(n, str) for n in manifest["payloads"]):
            raise FylrmigError(f"broken manifest {self.manifest_path}: no list of payload names")
        return manifest

    def save_manifest(self, manifest):
        write_json_atomic(self.manifest_path, manifest)

    def write_payload(self, name, envelope, compression, pretty):
        """Write one payload atomically; returns (bytes written, sha256 of the file)."""
        data = json_bytes(envelope, pretty)
        if compression:
            data = gzip.compress(data, compresslevel=compression, mtime=0)
        write_atomic(self.join(name), data)
        return len(data), sha256_bytes(data)


def payload_name(seq, import_type, batch, compression, objecttype=None, version=None, level=None):
    """NNNN__<import_type>[__<objecttype>][__v<version>][__level_<LL>]__batch_<BBBB>.json[.gz]"""
    parts = [f"{seq:04d}", import_type]
    if objecttype:
        parts.append(objecttype)
    if version is not None:
        parts.append(f"v{version}")
    if level is not None:
        parts.append(f"level_{level:02d}")
    parts.append(f"batch_{batch:04d}")
    return "__".join(parts) + (".json.gz" if compression else ".json")


def backup_completeness(manifest):
    """(complete?, words): a backup is whole when its run ended done ('this backup is incomplete
    (cancelled): 149 of 3,208 records' otherwise). A manifest without a state (made by hand) counts whole."""
    status = (manifest.get("state") or {}).get("status", "done")
    if status == "done":
        return True, "complete"
    records = sum(((manifest.get("counts") or {}).get("objecttypes") or {}).values())
    expected = sum((manifest.get("source_counts") or {}).values())
    of = f"{records:,} of {expected:,} records" if expected else f"{records:,} records so far"
    return False, f"this backup is incomplete ({status}): {of}"


def verify_backup(folder, ledger=None):
    """Re-check every payload of a backup (and packed file) against manifest and ledger; returns a list
    of problems, one line each, naming the payload."""
    manifest = folder.load_manifest()
    info = manifest.get("payload_info", {})
    problems = []
    for name in manifest["payloads"]:
        problems += verify_payload(folder, name, info.get(name, {}))
    job = ledger.latest_job(folder.path, "backup") if ledger else None
    if job:
        for row in ledger.read().execute("SELECT path, sha256 FROM files WHERE job_id = ? AND state = 'done'",
                                         (job["id"],)):
            path = folder.join(row["path"])
            if not os.path.isfile(path):
                problems.append(f"{row['path']}: file missing")
            elif sha256_file(path) != row["sha256"]:
                problems.append(f"{row['path']}: file damaged (checksum differs)")
    return problems


def verify_payload(folder, name, expected):
    try:
        load_payload(folder, name, expected)
    except FylrmigError as exc:
        return [str(exc).replace("broken backup: ", "")]
    return []


def read_payload_bytes(folder, name, expected):
    """A payload's bytes: inside the folder, not a link, its sha256 the one the manifest recorded."""
    data = folder.read_member(name)
    if expected.get("sha256") and sha256_bytes(data) != expected["sha256"]:
        raise FylrmigError(f"broken backup: {name}: damaged (its sha256 differs from the manifest's)")
    return data


def load_payload(folder, name, expected):
    """A payload's envelope, read once: read_payload_bytes, its entry count the manifest's, valid JSON of
    a known import type. Anything else is one line naming it."""
    data = read_payload_bytes(folder, name, expected)
    try:
        envelope = parse_json_bytes(data, name.endswith(".gz"))
    except (ValueError, OSError, EOFError) as exc:
        raise FylrmigError(f"broken backup: {name}: damaged ({type(exc).__name__})") from None
    kind = envelope.get("import_type") if isinstance(envelope, dict) else None
    if kind not in IMPORT_TYPE_ARRAYS:
        raise FylrmigError(f"broken backup: {name}: unknown import_type {kind!r}")
    items = envelope.get(IMPORT_TYPE_ARRAYS[kind])
    if not isinstance(items, list):
        raise FylrmigError(f"broken backup: {name}: no {IMPORT_TYPE_ARRAYS[kind]} array")
    if "count" in expected and expected["count"] != len(items):
        raise FylrmigError(f"broken backup: {name}: holds {len(items)} entries, the manifest says "
                           f"{expected['count']}")
    return envelope


############################################################################## Progress

class Progress:
    """Done / total per phase, rate and ETA, and the step under way in words; shown on a terminal, logged,
    and kept in the ledger for the page. What a continued run skips counts as done, not in the rate."""

    def __init__(self, ledger, job_id, interactive, logger=None):
        self.ledger, self.job_id, self.interactive = ledger, job_id, interactive
        self.log = logger or log
        self.phases, self.phase, self.step_text = {}, "", ""
        self.run_started = now()
        self._lock = threading.Lock()
        self._last_show = self._last_log = self._last_save = 0.0

    def _entry(self, phase):
        return self.phases.setdefault(phase, {"done": 0, "skipped": 0, "total": 0, "started": None, "ended": None})

    def plan(self, phase, total):
        """A phase whose size is known before it starts (a restore knows every payload's count)."""
        with self._lock:
            self._entry(phase)["total"] = total

    def set_phase(self, phase, total=None):
        """Saved at once when the phase changes (a restore sets the same phase again for each version of
        an objecttype: that costs no ledger write)."""
        changed = phase != self.phase or total is not None
        with self._lock:
            if self.phase and self.phase != phase:
                self._entry(self.phase)["ended"] = now()
                if self.interactive:   # the finished phase keeps its line; the next one gets a new line
                    sys.stderr.write("\r\x1b[K" + self._line_of(self.phase) + "\n")
            self.phase = phase
            entry = self._entry(phase)
            entry["started"], entry["ended"] = entry["started"] or now(), None
            if total is not None:
                entry["total"] = total
        self.save(force=changed)

    def add(self, phase, n, total=None, skipped=False):
        with self._lock:
            entry = self._entry(phase)
            entry["started"] = entry["started"] or now()
            entry["done"] += n
            entry["skipped"] += n if skipped else 0
            if total is not None:
                entry["total"] = total
            if not skipped:
                self.step_text = ""
        self.tick()

    def step(self, text):
        """What the job does right now, when counts alone would look like a standstill (a retry, files
        the target is still fetching)."""
        with self._lock:
            self.step_text = text
        self.save()
        self._show(text)

    def line(self):
        with self._lock:
            return self._line_of(self.phase)

    def _line_of(self, phase):
        entry = dict(self.phases.get(phase) or {"done": 0, "skipped": 0, "total": 0})
        done, total = entry["done"], entry["total"]
        rate = phase_rate(entry, now())
        eta = (total - done) / rate if rate > 0 and total > done else 0
        total_text = f"/{total:,}" if total else ""
        skipped = f", {entry['skipped']:,} done before" if entry.get("skipped") else ""
        return f"{phase}: {done:,}{total_text} ({rate:,.0f}/s, ETA {format_seconds(eta)}{skipped})"

    def summary(self, what, retries):
        """The lines a terminal keeps at the end: every phase's count, skipped work, retries, time."""
        with self._lock:
            phases = [f"  {name}: {p['done']:,}" + (f" ({p['skipped']:,} done before)" if p.get("skipped") else "")
                      for name, p in self.phases.items() if p.get("done")]
        return "\r\x1b[K" + f"{what} in {format_seconds(now() - self.run_started)}, {retries} retries:\n" + \
            "\n".join(phases)

    def note(self, text):
        """A line about what the job waits for (files the target is fetching), shown like progress."""
        self.step(text)

    def _show(self, text):
        t = now()
        if self.interactive and t - self._last_show > 0.5:
            self._last_show = t
            sys.stderr.write("\r\x1b[K" + text[:200])
            sys.stderr.flush()
        if t - self._last_log > 30:
            self._last_log = t
            self.log.info("progress %s", text)

    def tick(self):
        self._show(self.line())
        self.save()

    def save(self, force=False):
        t = now()
        if force or t - self._last_save > 1:
            self._last_save = t
            with self._lock:
                counters = json.dumps({"phase": self.phase, "phases": self.phases, "step": self.step_text,
                                       "run_started": self.run_started})
            self.ledger.update_job(self.job_id, counters=counters, phase=self.phase, heartbeat=t)

    def finish(self):
        if self.interactive:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
        with self._lock:
            self.step_text = ""
        self.save(force=True)


def phase_rate(entry, until):
    """Items per second of what this run did itself (skipped items are done, but took no time)."""
    if not entry.get("started"):
        return 0.0
    elapsed = max((entry.get("ended") or until) - entry["started"], 1e-3)
    return max(entry.get("done", 0) - entry.get("skipped", 0), 0) / elapsed


def format_seconds(seconds):
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


############################################################################## Jobs: what backup and restore share

class JobBase:
    """What backup and restore share: the run from claim to end state, single steps as ledger chunks,
    cancel between chunks, parallel workers, and the line that says what a continued run skips and redoes.

    An engine provides `kind`, `folder_path(args)`, `validate()`, `setup()` (the facts a --continue must
    not change), `prepare()` (which ends by creating or continuing its job row), `_run_steps()`,
    `_write_end_state(state, error)` and `_done_summary(result)`."""

    kind = None

    def __init__(self, args, ledger, cancel_event=None, interactive=False, logger=None):
        self.args, self.ledger = args, ledger
        self.log = logger or log
        self.cancel_event = cancel_event or threading.Event()
        self.interactive = interactive
        self.folder = BackupFolder(self.folder_path(args))
        self.api = self.job_id = self.progress = None
        self.locks = KeyedLocks()
        self._cancel_read_at = 0.0

    @staticmethod
    def folder_path(args):
        raise NotImplementedError

    def validate(self):
        raise NotImplementedError

    def setup(self):
        raise NotImplementedError

    def prepare(self):
        raise NotImplementedError

    def _run_steps(self):
        raise NotImplementedError

    def _write_end_state(self, state, error):
        raise NotImplementedError

    def _done_summary(self, result):
        raise NotImplementedError

    def _job_to_continue(self):
        """The job a --continue resumes, its setup compared with this run's; None without --continue."""
        if not getattr(self.args, "continue"):
            return None
        job = self.ledger.latest_job(self.folder.path, self.kind)
        if not job:
            raise FylrmigError(f"nothing to continue: no {self.kind} of {self.folder.path} in the ledger "
                               f"{self.ledger.path} (continue with the --data folder it was started with)")
        old = continuable_setup(job)
        differences = setup_differences({k: old.get(k) for k in self.setup()}, self.setup())
        if differences:
            raise FylrmigError("cannot continue with different parameters: " + "; ".join(differences))
        return job

    def _continue_or_create_job(self, job, setup):
        """The job row: a continued one takes this run's parameters, else a new row is made. Engines call
        this last in prepare(), so a refused start leaves no row behind (but _record_failed_start's)."""
        params = public_params(self.args, self.kind)
        if job:
            self.folder.remove_temp_files()
            self.ledger.update_job(job["id"], params=json.dumps(params))
            return job["id"]
        return self.ledger.create_job(os.path.basename(self.folder.path), self.kind, self.folder.path, params, setup)

    def run(self):
        """Run the whole job under the folder's lock; an error ends it failed (or cancelled) with the
        message, then propagates. A job that fails before it starts still leaves its error in the ledger."""
        self.lock = FolderLock(self.folder.path)
        try:
            self.prepare()
        except Exception as exc:
            if not isinstance(exc, FolderInUse):
                self._record_failed_start(exc)
            self.lock.release()
            raise
        try:
            return self._run_prepared()
        finally:
            self.lock.release()
            if self.api is not None:
                self.api.close()

    def _run_prepared(self):
        started = now()
        # The thread that fetches the next page waits for the GIL while this one transforms the current
        # page; a shorter switch interval lets it send and receive sooner (measured: about 7 % less wall
        # time of a 20,000 record backup with one worker, 1 ms instead of Python's 5 ms).
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        self.ledger.claim_job(self.job_id)
        self.progress = Progress(self.ledger, self.job_id, self.interactive, self.log)
        self.api.on_retry = self.progress.step
        self._report_resume()
        try:
            result = self._run_steps()
        except BaseException as exc:
            state = "cancelled" if isinstance(exc, Cancelled) else "failed"
            self._end(started, state, "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc))
            raise
        self._end(started, "done")
        self.log.info("%s done: %s, %d retries", self.kind, self._done_summary(result), self.api.retries)
        if self.interactive:
            sys.stderr.write(self.progress.summary(f"{self.kind} done", self.api.retries) + "\n")
        return result

    def _record_failed_start(self, exc):
        """The page shows a job that could not start (wrong password, unreachable server, broken backup):
        on the job it was to continue, or on a new row of its own."""
        job_id = self.job_id
        if job_id is None and getattr(self.args, "continue"):
            job_id = (self.ledger.latest_job(self.folder.path, self.kind) or {}).get("id")
        if job_id is None:
            job_id = self.ledger.create_job(os.path.basename(self.folder.path), self.kind, self.folder.path,
                                            public_params(self.args, self.kind), {})
        self.ledger.update_job(job_id, state="failed", finished_at=now(), last_error=f"could not start: {exc}")

    def _end(self, started, state, error=None):
        job = self.ledger.job(self.job_id)
        self.ledger.update_job(self.job_id, state=state, finished_at=now(), last_error=error,
                               runtime=job["runtime"] + now() - started)
        self.progress.finish()
        self._write_end_state(state, error)

    def cancelled(self):
        return self.cancel_event.is_set()

    def _check_cancel(self):
        """Between chunks: the page's Cancel sets the event, or the ledger flag for a job run elsewhere (read
        at most every half second: a ledger read per chunk costs more than the chunk's own bookkeeping)."""
        if not self.cancel_event.is_set() and self.job_id and now() - self._cancel_read_at > 0.5:
            self._cancel_read_at = now()
            if self.ledger.job(self.job_id)["cancel_requested"]:
                self.cancel_event.set()
        if self.cancelled():
            raise Cancelled("cancelled")

    def _report_resume(self):
        counts = self.ledger.chunk_counts(self.job_id)
        done = counts.get("done", {}).get("chunks", 0)
        redo = sum(counts.get(s, {}).get("chunks", 0) for s in ("running", "failed", "ready"))
        if done or redo or getattr(self.args, "continue"):   # a continue says so, even when nothing was done yet
            self.log.info("continuing: skipping %d chunks already done, redoing %d that were in flight", done, redo)

    def _step(self, name, fn):
        """A step done once per job (purge, datamodel, ...); fn may return facts kept with its chunk."""
        key = f"step/{name}"
        chunk = self.ledger.chunk(self.job_id, key)
        if chunk and chunk["state"] == "done":
            return
        self._check_cancel()
        self.progress.set_phase(name, 1)
        self.ledger.start_chunk(self.job_id, key)
        try:
            facts = fn() or {}
        except Exception as exc:
            self.ledger.fail_chunk(self.job_id, key, exc)
            raise
        crash_point(f"step-{name}")
        self.ledger.finish_chunk(self.job_id, key, 1, sha256=facts.get("sha256"), size=facts.get("bytes", 0),
                                 output=facts or None)
        self.progress.add(name, 1)
        self.log.info("step %s done", name)

    def workers(self):
        """--max-parallel, 0 meaning one per CPU."""
        return self.args.max_parallel or os.cpu_count() or 1

    def _run_parallel(self, tasks, workers=None):
        """Run tasks (any iterable, consumed lazily) on --max-parallel (or `workers`) workers with at most
        twice that many in flight, so memory stays bounded however many chunks there are; results in task
        order."""
        workers = workers or self.workers()
        if workers <= 1:
            return [task() for task in tasks]
        results, pending = [], collections.deque()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            try:
                for task in tasks:
                    pending.append(pool.submit(task))
                    if len(pending) >= 2 * workers:
                        results.append(pending.popleft().result())
                while pending:
                    results.append(pending.popleft().result())
            except BaseException as exc:
                self.cancel_event.set()   # the other workers stop at their next chunk
                reason = isinstance(exc, Cancelled) and failure_among(pending)
                if reason:   # this task stopped because a later one failed: that one's error says why
                    raise reason from None
                raise
        return results


def failure_among(futures):
    """The first error of these futures that is not a cancel (once they have ended), or None."""
    for future in futures:
        error = future.exception()
        if error is not None and not isinstance(error, Cancelled):
            return error
    return None


class JobPart:
    """A collaborator of a job, one thing it does (uploading files, mapping events, ...). It reaches the
    job's shared things through these properties and anything else as `self.job.<name>`, so who calls
    what stays greppable."""

    def __init__(self, job):
        self.job = job

    args = property(lambda self: self.job.args)
    api = property(lambda self: self.job.api)
    ledger = property(lambda self: self.job.ledger)
    log = property(lambda self: self.job.log)
    job_id = property(lambda self: self.job.job_id)


class KeyedLocks:
    """One lock per key, made on first use (a file reference, a file version, the refresh of one kind)."""

    def __init__(self):
        self._locks, self._guard = {}, threading.Lock()

    def __call__(self, key):
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


def make_api(args, cancel_event=None, logger=None, role="server"):
    cancel_event = cancel_event or threading.Event()
    return Api(args.server, args.login, args.password, client_id=args.client_id, client_secret=args.client_secret,
               client_token_url=args.client_token_url, insecure=args.insecure, retry_max_count=args.retry_max_count,
               retry_sleep_between=args.retry_sleep_between, timeout=60 * getattr(args, "timeout_min", 10),
               log_network=args.log_network, cancelled=cancel_event.is_set, logger=logger, role=role)


def batched(entries, size):
    batch = []
    for entry in entries:
        batch.append(entry)
        if size and len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def unpaged(offset, fetch):
    """An endpoint without paging is one page at offset 0."""
    return fetch() if offset == 0 else []


def continuable_setup(job):
    """The setup a --continue must match; a job that never started has none and cannot be continued."""
    setup = json.loads(job["setup"] or "{}")
    if not setup:
        raise FylrmigError(f"nothing to continue: the last {job['kind']} of {job['dir']} failed before it "
                           f"started ({job['last_error'] or 'no reason recorded'}); start it anew")
    return setup


def setup_differences(old, new):
    return [f"{key} was {old.get(key)!r}, now {new.get(key)!r}" for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key)]


def parse_event_filter(text):
    """'' = all types (empty set), '-' = none (None), 'A,B' = only these."""
    text = (text or "").strip()
    if text == "-":
        return None
    return frozenset(t.strip() for t in text.split(",") if t.strip())


def sysid_of_global_id(gid):
    head = str(gid or "").split("@", 1)[0]
    return int(head) if head.isdigit() else None


############################################################################## Backup engine

FILE_KEYS_KEPT = ("preferred", "name", "frontend_prefs", "original_filename", "extension", "class",
                  "technical_metadata", "original_filename_basename", "produce_versions")


class Source:
    """One thing a backup reads in pages and writes as payloads (a basetype, one objecttype, events)."""

    def __init__(self, name, import_type, fetch_page, page_size, objecttype=None, total=None, context=None):
        self.name, self.import_type, self.objecttype = name, import_type, objecttype
        self.fetch_page, self.page_size, self.total = fetch_page, page_size, total
        self.context = context   # right presets: `object` or `collection`, in the envelope and the name


class BackupJob(JobBase):
    """`fylrmig backup`: reads a source instance into a backup folder, every page a ledger chunk."""

    kind = "backup"

    @staticmethod
    def folder_path(args):
        return args.dir

    def __init__(self, args, ledger, cancel_event=None, interactive=False, logger=None):
        super().__init__(args, ledger, cancel_event, interactive, logger)
        self._step_seq = 0
        self._table_index = None
        self._source_counts = {}
        self.transforms, self.sources, self.manifests = BackupTransforms(self), SourceCatalog(self), ManifestWriter(self)
        self.spool = PageSpool(self)

    # -- preparing

    def validate(self):
        """Everything that can be refused before anything is read or written."""
        args = self.args
        if args.purge and getattr(args, "continue"):
            raise FylrmigError("--purge and --continue are mutually exclusive")
        if args.include:
            try:
                re.compile(args.include)
            except re.error as exc:
                raise FylrmigError(f"--include: invalid regular expression {args.include!r}: {exc}") from None
        if not 1 <= args.chunk_size:
            raise FylrmigError("--chunk-size must be at least 1")
        self.include_events = parse_event_filter(args.include_events)

    def setup(self):
        """The facts a --continue must not change."""
        a = self.args
        return {"server": split_server_url(a.server), "login": a.login, "chunk_size": a.chunk_size,
                "max_count": a.max_count, "include": a.include, "all_versions": a.all_versions,
                "include_deleted": a.include_deleted, "include_events": a.include_events,
                "include_files": a.include_files, "compression": a.compression, "pretty": a.pretty}

    def prepare(self):
        """Connect, then create/continue/purge the job and folder. Nothing is written before the source
        has answered and every parameter is known to be acceptable."""
        self.validate()
        self.api = make_api(self.args, self.cancel_event, self.log, role="the source")
        self.api.connect()
        if self.api.flavour == "easydb5" and self.args.chunk_size > E5_MAX_CHUNK:
            raise FylrmigError(f"--chunk-size {self.args.chunk_size} is too large for an easydb 5 source "
                               f"(easydb 5 returns at most {E5_MAX_CHUNK} objects per request)")
        self.lock.acquire(self.kind)   # before the folder is touched, after the source has answered
        self.job_id = self._open_job()
        self.transforms.refs = {kind: self.ledger.ids(self.job_id, kind) for kind in
                     ("tag", "taggroup", "group", "user", "pool", "collection", "message")}

    def _open_job(self):
        a, folder = self.args, self.folder
        existing = folder.exists()
        cont = getattr(a, "continue")
        if existing and not (a.purge or cont):
            raise FylrmigError(f"backup folder {folder.path} exists: use --continue to resume or --purge to "
                               "start over")
        if cont and existing:
            return self._continue_or_create_job(self._job_to_continue(), None)
        try:
            if existing and a.purge:
                folder.purge()
            os.makedirs(folder.path, exist_ok=True)
            probe = folder.join(".write-test")
            write_atomic(probe, b"")
            os.unlink(probe)
        except OSError as exc:
            raise FylrmigError(f"cannot write backup folder {folder.path}: {exc.strerror or exc}") from None
        return self._continue_or_create_job(None, self.setup())

    # -- running

    def _write_end_state(self, state, error):
        with contextlib.suppress(FylrmigError, OSError):
            self.manifests.write_manifest(status=state)
        if state == "done":
            shutil.rmtree(self.folder.spool, ignore_errors=True)

    def _done_summary(self, manifest):
        return f"{len(manifest['payloads'])} payloads, counts {json.dumps(manifest['counts'], sort_keys=True)}"

    def _run_steps(self):
        os.makedirs(self.folder.spool, exist_ok=True)
        self.manifests.write_manifest(status="running")
        self._step("datamodel", self._backup_datamodel)
        self._step("base_config", self._backup_base_config)
        objecttypes = self.sources.objecttypes()   # counted for "N of M" of an unfinished one
        self._source_counts = dict(zip(objecttypes, self._run_parallel(
            functools.partial(self.sources.record_count, ot) for ot in objecttypes)))
        with ReadAhead(self) as ahead:
            basetypes = list(self.sources.basetype_sources())
            ahead.fetch_together(basetypes)
            for source in basetypes:
                self._backup_source(source, fetched=ahead.enabled)
            # read while the records are: collections (their object lists name records), publish records, events
            ahead.start(self.sources.collection_sources(), self._publish_and_events())
            for source in self.sources.record_sources():
                self._backup_source(source)
            for source, fetched in ahead.in_order():
                self._backup_source(source, fetched)
        return self.manifests.write_manifest(status="done")

    def _publish_and_events(self):
        yield self.sources.publish_source()
        if self.include_events is not None:
            yield self.sources.event_source()

    def emitted_sources(self):
        """Names of the sources whose payloads a run before this one wrote."""
        return {c["key"].split("/", 2)[2] for c in self.ledger.chunks(self.job_id, "emit/") if c["state"] == "done"}

    def _backup_datamodel(self):
        a = self.api
        fmt = {"format": "json"} if a.flavour == "easydb5" else {}
        schema = a.get("/schema/user/CURRENT", **fmt)
        mask = a.get("/mask/CURRENT", **fmt)
        keys = a.get("/l10n/user/CURRENT")
        datamodel = {"version": schema.get("version", 1), "format_version": 1, "schema": schema, "mask": mask,
                     "keys": keys}
        return self._write_document("datamodel.json", datamodel)

    def _backup_base_config(self):
        return self._write_document("base_config.json", self.transforms.loose_files.mark(self.api.get("/config"), "base config"))

    def _write_document(self, name, value):
        data = json_bytes(value, pretty=True)
        write_atomic(self.folder.join(name), data)
        return {"file": name, "bytes": len(data), "sha256": sha256_bytes(data)}

    def _backup_source(self, source, fetched=False):
        """One source's pages (`fetched`: spooled already by ReadAhead) into its payloads."""
        self._check_cancel()
        self._step_seq += 1
        emit_key = f"emit/{self._step_seq:04d}/{source.name}"
        emitted = self.ledger.chunk(self.job_id, emit_key)
        self.progress.set_phase(source.name, source.total)
        if emitted and emitted["state"] == "done":
            self.progress.add(source.name, sum(json.loads(c["output"]).get("objects", c["items"]) for c in
                                               self.ledger.chunks(self.job_id, f"fetch/{source.name}@")
                                               if c["state"] == "done"), skipped=True)
            return
        if source.import_type == "db":
            stream = self._stream_records(source)
            self._check_cancel()
            self.ledger.start_chunk(self.job_id, emit_key)
            payloads, info, items = self._emit_stream(source, stream)
        else:
            if not fetched:
                self.spool.fetch_all_pages(source)
            self._check_cancel()
            self.ledger.start_chunk(self.job_id, emit_key)
            payloads, info, items = self._emit(source)
        crash_point("emitted")
        out = {"payloads": payloads, "info": info, "has_passwords": self.transforms.has_passwords}
        self.ledger.finish_chunk(self.job_id, emit_key, items, output=out,
                                 ids=[(kind, s, t) for kind, m in self.transforms.new_refs.items() for s, t in m.items()])
        self.transforms.keep_new_refs()
        self.progress.add(source.name, 0)
        self.manifests.write_manifest(status="running")
        shutil.rmtree(os.path.join(self.folder.spool, "emit-" + source.name.replace("/", "__")), ignore_errors=True)

    # -- records: pages streamed into payloads

    def _stream_records(self, source):
        """Every page of an objecttype through a RecordStream, in order, while the next pages are fetched."""
        table = self._tables().get(source.objecttype) or {}
        replay = bool(self.args.all_versions and table.get("unique_keys"))
        stream = RecordStream(self, source, ordered_later=replay or bool(table.get("is_hierarchical")),
                              replay=replay, unique=unique_key_columns(table) if replay else ())
        rows = self.ledger.chunks(self.job_id, f"fetch/{source.name}@")
        start = stream.resume(rows)
        self.progress.add(source.name, sum(json.loads(r["output"])["objects"] for r in rows
                                           if r["state"] == "done" and int(r["key"].rsplit("@", 1)[1]) < start),
                          skipped=True)
        self._hierarchical = stream.ordered_later and not replay
        try:
            for offset, page, objects in self.spool.pages(source, start):
                self._check_cancel()
                key = self.spool.page_key(source, offset)
                stream.add(page)   # no 'running' row first: resume() goes by the done pages alone
                out = {"items": len(page), "objects": objects, "full": objects >= source.page_size,
                       "stream": copy.deepcopy(stream.state)}
                crash_point("page-spooled")
                self.ledger.finish_chunk(self.job_id, key, len(page), output=out)
                crash_point("page-done")
                self.progress.add(source.name, objects)
                page = None   # freed before waiting for the next page, not after (see pages())
        finally:
            stream.close()
        return stream

    def _tables(self):
        """The source's tables by name, from the backup's datamodel.json."""
        if self._table_index is None:
            schema = read_json(self.folder.join("datamodel.json")).get("schema") or {}
            self._table_index = {t["name"]: t for t in schema.get("tables") or []}
        return self._table_index

    def _emit_stream(self, source, stream):
        """The stream's batches become the source's payloads: named in order, linked into the folder (the
        spool keeps its copy until the emit chunk commits), made durable with one fsync each. Their sha256
        was taken while they were written (it is in the batch's name): no payload is read back."""
        start = sum(len(json.loads(c["output"])["payloads"]) for c in self.ledger.chunks(self.job_id, "emit/")
                    if c["state"] == "done")
        names, total, info = [], 0, {}
        for group_key, files in stream.batches():
            for batch_no, (path, count, digest) in enumerate(files, 1):
                name = self._payload_name(source, start + len(names) + 1, group_key, batch_no)
                final = self.folder.join(name)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(final)
                os.link(path, final)
                info[name] = {"import_type": "db", "count": count, "sha256": digest, "bytes": os.path.getsize(path),
                              "source": source.name, "objecttype": source.objecttype}
                names.append(name)
                total += count
                crash_point("payload-written")
        fsync_paths([self.folder.join(n) for n in names] + [self.folder.path])
        return names, info, total

    # -- files (--include-files)

    # -- emitting payloads

    def _emit(self, source):
        """Transform the spooled pages of a source into ordered payload files; returns (names, their
        payload_info, entries written)."""
        self.transforms.new_refs = {}
        groups = self._emit_groups(source)
        start = sum(len(json.loads(c["output"])["payloads"]) for c in self.ledger.chunks(self.job_id, "emit/")
                    if c["state"] == "done")
        names, total, info = [], 0, {}
        for group_key, entries in groups:
            for batch_no, batch in enumerate(batched(entries, self.args.chunk_size if source.import_type
                                                     not in WHOLE_SET_KINDS else 0), 1):
                name = self._payload_name(source, start + len(names) + 1, group_key, batch_no)
                envelope = {"import_type": source.import_type}
                if source.objecttype:
                    envelope["objecttype"] = source.objecttype
                if source.context:
                    envelope["context"] = source.context
                envelope[IMPORT_TYPE_ARRAYS[source.import_type]] = batch
                size, digest = self.folder.write_payload(name, envelope, self.args.compression, self.args.pretty)
                crash_point("payload-written")
                info[name] = {"import_type": source.import_type, "count": len(batch), "sha256": digest,
                              "bytes": size, "source": source.name}
                if source.objecttype:
                    info[name]["objecttype"] = source.objecttype
                if source.context:
                    info[name]["context"] = source.context
                names.append(name)
                total += len(batch)
        return names, info, total

    def _payload_name(self, source, seq, group_key, batch_no):
        """Hierarchies name every payload's level (level_00 too); history names every version, or every
        step of a replay (`step_<n>`: its batches go out side by side; `history_<n>` of older fylrmig or an
        older spool, one batch per step in time order: sent one after the other)."""
        version, level = group_key if group_key else (None, None)
        if version in ("history", "step"):
            objecttype = source.objecttype + ("__deleted" if source.name.endswith("/deleted") else "")
            return payload_name(seq, "db", batch_no, self.args.compression, f"{objecttype}__{version}_{level:04d}")
        if not self._hierarchical:
            level = None
        if source.import_type == "db":
            objecttype = source.objecttype + ("__deleted" if source.name.endswith("/deleted") else "")
            return payload_name(seq, "db", batch_no, self.args.compression, objecttype,
                                version if self.args.all_versions else None, level)
        return payload_name(seq, source.import_type, batch_no, self.args.compression, source.context, level=level)

    def _emit_groups(self, source):
        """[(group key, entries)] of a basetype, collection or event source in payload order: pools and
        collections level by level (records go through a RecordStream instead)."""
        transform = {"plugin": self.transforms.transform_plugin, "tags": self.transforms.transform_tags, "group": self.transforms.transform_group,
                     "user": self.transforms.transform_user, "pool": self.transforms.transform_pool, "objecttype": self.transforms.transform_objecttype,
                     "message": self.transforms.transform_message, "collection": self.transforms.transform_collection,
                     "collection_objects": self.transforms.transform_collection_objects,
                     "event": self.transforms.transform_event, "mapping": self.transforms.transform_mapping,
                     "right_preset": self.transforms.transform_right_preset, "transition": self.transforms.transform_transition,
                     "publish": self.transforms.transform_publish}[source.import_type]
        pages = self.spool.spooled_pages(source.name)
        self._hierarchical = source.import_type in ("pool", "collection")
        entries = (e for page in pages for e in transform(page))   # streamed: events can be millions
        if source.import_type in ("pool", "collection"):
            return group_by_level(list(entries), source.import_type, lambda pid: self.transforms.ref(source.import_type, pid))
        return [(None, entries)]


class PageSpool(JobPart):
    """Pages of the source, fetched on --max-parallel workers and kept: record pages go on to a RecordStream as
    they arrive, other pages into the spool folder until their source is complete; every page a ledger chunk
    (`fetch/<source>@<offset>`), and with --include-files the files of a record page packed with it."""

    def pages(self, source, start):
        """(offset, entries, objects) in order from `start`. --max-parallel requests are in flight (at least
        one: the source is asked for the next page while this one is processed); pages go on past the
        counted total until a short page, unless --max-count set the total."""
        workers = self.job.workers()
        pool = ThreadPoolExecutor(max_workers=workers)
        inflight, state = collections.deque(), {"next": start, "limit": source.total or None}

        def top_up():
            while len(inflight) < 2 * workers and (state["limit"] is None or state["next"] < state["limit"]):
                offset = state["next"]
                inflight.append((offset, pool.submit(self._page_with_files, source, offset)))
                state["next"] += source.page_size
        try:
            top_up()
            while inflight:
                offset, future = inflight.popleft()
                page, objects = future.result()
                if objects is None:   # decoded here: the worker is already asking for the next page
                    page, objects = self._decoded_page(source, page, offset)
                if objects < source.page_size:
                    yield offset, page, objects
                    return
                if not inflight and state["limit"] is not None and not self.args.max_count:
                    state["limit"] = None   # the count was stale: go on until a short page
                top_up()
                yield offset, page, objects
                # Freeing a page's 100 records costs about a third of decoding them: done here, before
                # the wait for the next page, it overlaps with the source's work instead of adding to ours.
                page = None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


    def _page_with_files(self, source, offset):
        answer = source.fetch_page(offset, source.page_size)
        if not self.args.include_files:
            return answer, None
        page, objects = self._decoded_page(source, answer, offset)   # packing needs the entries: on the worker
        self._pack_files(page)
        return page, objects


    def page_key(self, source, offset):
        return f"fetch/{source.name}@{offset:010d}"


    def fetch_all_pages(self, source, workers=None):
        """Planned pages run on --max-parallel (or `workers`) workers; then pages continue until a short
        page. A source without a count (users, messages, events) is read that many pages at a time instead
        of one round trip after the other; what lies past the first short page is not kept."""
        workers = workers or self.job.workers()
        if source.page_size and source.total:
            offsets = list(range(0, source.total, source.page_size))
        else:
            offsets = [0]
        results = self.job._run_parallel([lambda o=o: self._fetch_page(source, o) for o in offsets], workers)
        offset, last = offsets[-1], results[-1]
        width = 1 if source.total else workers
        while last["full"] and source.page_size and not (source.total and offset + source.page_size >= source.total
                                                         and self.args.max_count):
            wave = [offset + source.page_size * n for n in range(1, width + 1)]
            outs = self.job._run_parallel([lambda o=o: self._fetch_page(source, o) for o in wave], workers)
            for offset, last in zip(wave, outs):
                if not last["full"]:
                    self._drop_spooled(source, [o for o in wave if o > offset])
                    break

    def _drop_spooled(self, source, offsets):
        """Pages asked for past the end: empty, unless the source grew meanwhile (then paging one by one
        would not have read them either)."""
        for offset in offsets:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._spool_path(source, offset))


    def _fetch_page(self, source, offset):
        key = self.page_key(source, offset)
        chunk = self.ledger.chunk(self.job_id, key)
        if chunk and chunk["state"] == "done" and is_json_file(self._spool_path(source, offset)):
            out = json.loads(chunk["output"])
            self.job.progress.add(source.name, out.get("objects", out["items"]))
            return out
        self.job._check_cancel()
        self.ledger.start_chunk(self.job_id, key)
        try:
            page, raw_count = self._get_page(source, offset)
            if self.args.include_files and source.import_type == "db":
                self._pack_files(page)
            data = json_bytes(page)
            # no fsync per page (one costs more than the page): a page a power loss damaged is not JSON
            # and is fetched again by a continued run (is_json_file above)
            write_atomic(self._spool_path(source, offset), data, sync=False)
        except Exception as exc:
            self.ledger.fail_chunk(self.job_id, key, exc)
            raise
        out = {"items": len(page), "objects": raw_count,
               "full": bool(source.page_size) and raw_count >= source.page_size}
        crash_point("page-spooled")
        self.ledger.finish_chunk(self.job_id, key, len(page), sha256=sha256_bytes(data), size=len(data), output=out)
        crash_point("page-done")
        self.job.progress.add(source.name, raw_count)
        return out


    def _get_page(self, source, offset):
        return self._decoded_page(source, source.fetch_page(offset, source.page_size), offset)

    def _decoded_page(self, source, answer, offset):
        """(entries, objects the server returned for this page): paging advances by objects, and with
        all_versions a page holds several versions of each object (api.md 4.5)."""
        page = answer_value(answer)
        if not objects_in_page(page) and self.api.confirm_session():
            page = answer_value(source.fetch_page(offset, source.page_size))   # the empty page came from a dead session
        return list(page), objects_in_page(page)


    def _spool_path(self, source, offset):
        folder = os.path.join(self.job.folder.spool, source.name.replace("/", "__"))
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, f"{offset:010d}.json")


    def spooled_pages(self, source_name):
        folder = os.path.join(self.job.folder.spool, source_name.replace("/", "__"))
        if not os.path.isdir(folder):
            return
        for name in sorted(os.listdir(folder)):
            if name.endswith(".json") and not name.startswith("."):
                with open(os.path.join(folder, name), "rb") as fh:
                    yield json.loads(fh.read())


    def _pack_files(self, page):
        for record in page:
            for entry in iter_file_entries(record):
                self.pack_file(entry)


    def pack_file(self, entry):
        file_id = entry.get("_id")
        if file_id is None:
            return
        versions = entry.get("versions") or {}
        wanted = ["original"] if self.args.include_files == "original" else list(versions)
        if is_remote_file(entry, self.api.url, self.api.flavour):
            wanted = [v for v in wanted if v != "original"]   # the upstream original is never packed
        for version in wanted:
            info = versions.get(version) or {}
            if not info.get("url"):
                continue
            relpath = file_relpath(file_id, entry.get("original_filename"), version,
                                   info.get("extension") or entry.get("extension"))
            with self.job.locks((file_id, version)):
                row = self.ledger.file_row(self.job_id, file_id, version)
                if row and row["state"] == "done" and os.path.exists(self.job.folder.join(relpath)):
                    continue
                os.makedirs(os.path.dirname(self.job.folder.join(relpath)), exist_ok=True)
                size, digest = self.api.download(info["url"], self.job.folder.join(relpath))
                crash_point("file-packed")
                self.ledger.set_file(self.job_id, file_id, version, "done", path=relpath, bytes=size, sha256=digest)


class ReadAhead(JobPart):
    """At --max-parallel > 1 the sources spooled whole are read while other work goes on: the basetypes all
    at once, the collections, publish records and events while the records are read and transformed (the
    main thread's CPU, which the source would otherwise wait for, then the other way round). Only reading
    moves: every page is still a `fetch/` ledger chunk, and the main thread emits every source in payload
    order. The requests share --max-parallel slots with the record pages (Api.limit_parallel); each
    background chain reads at most half as many pages at once, so record pages still get their turn."""

    def __init__(self, job):
        super().__init__(job)
        self.enabled = job.workers() > 1
        self._chains, self._threads = [], []
        self._failure = None   # the first error of a background read: it also cancels the main thread

    def __enter__(self):
        if self.enabled:
            self.api.limit_parallel(self.job.workers())
        return self

    def __exit__(self, kind, exc, tb):
        if kind is not None and self._threads:
            self.job.cancel_event.set()   # the background reads stop at their next page
        for thread in self._threads:
            thread.join()
        if isinstance(exc, Cancelled) and self._failure is not None:
            raise self._failure from None   # the reason, not the cancel it caused
        return False

    def fetch_together(self, sources):
        """Every page of these sources, the sources side by side (each one's pages as fetch_all_pages reads
        them); sources a run before this one emitted are left alone."""
        if self.enabled:
            emitted = self.job.emitted_sources()
            self.job._run_parallel([functools.partial(self.job.spool.fetch_all_pages, s)
                                    for s in sources if s.name not in emitted])

    def start(self, *chains):
        """Read each chain of sources (a generator: a later source may be made from what an earlier one
        spooled) one source after the other, the chains side by side in background threads; without
        read-ahead, in_order() hands the sources over unread."""
        if not self.enabled:
            self._chains = [((source, False) for source in chain) for chain in chains]
            return
        width = max(1, self.job.workers() // 2)
        emitted = self.job.emitted_sources()
        for chain in chains:
            ready = queue.SimpleQueue()   # (source, Future of its reading) in payload order, then None
            thread = threading.Thread(target=self._read_chain, args=(chain, ready, width, emitted),
                                      name="fylrmig-read-ahead", daemon=True)
            self._chains.append(self._handed_over(ready))
            self._threads.append(thread)
            thread.start()

    def in_order(self):
        """(source, fetched) in payload order, each once its pages are spooled; a reading error is raised
        here, in the main thread."""
        for chain in self._chains:
            yield from chain

    @staticmethod
    def _handed_over(ready):
        for source, reading in iter(ready.get, None):
            reading.result()
            yield source, True

    def _read_chain(self, chain, ready, width, emitted):
        reading = Future()
        try:
            for source in chain:
                ready.put((source, reading))
                if source.name not in emitted:
                    self.job.spool.fetch_all_pages(source, width)
                reading.set_result(True)
                reading = Future()
        except BaseException as exc:   # reading a page, or making the next source (from spooled collections)
            if not isinstance(exc, Cancelled) and self._failure is None:
                self._failure = exc
            reading.set_exception(exc)
            ready.put((None, reading))
        finally:
            ready.put(None)


class ManifestWriter(JobPart):
    """manifest.json from the ledger: exactly the payloads of done emit steps, in order, with their facts."""

    def __init__(self, job):
        super().__init__(job)
        self.has_passwords = False   # whether a done emit step wrote a password hash

    def write_manifest(self, status):
        """The manifest lists exactly the payloads of done emit steps, in order (the ledger is the truth)."""
        payloads, info, old = [], {}, {}
        with contextlib.suppress(FylrmigError):
            old = self.job.folder.load_manifest() if os.path.exists(self.job.folder.manifest_path) else {}
        for chunk in self.ledger.chunks(self.job_id, "emit/"):
            if chunk["state"] == "done":
                out = json.loads(chunk["output"])
                payloads += out["payloads"]
                info.update(out["info"])
                self.has_passwords = self.has_passwords or bool(out.get("has_passwords"))
        manifest = self._manifest(payloads, info, status, old)
        self.job.folder.save_manifest(manifest)
        crash_point("manifest-written")
        return manifest

    def _manifest(self, payloads, info, status, old):
        a, api = self.args, self.api
        job = self.ledger.job(self.job_id)
        counts = {}
        for meta in info.values():
            if meta["import_type"] == "db":
                ots = counts.setdefault("objecttypes", {})
                ots[meta["objecttype"]] = ots.get(meta["objecttype"], 0) + meta["count"]
            else:
                counts[meta["import_type"]] = counts.get(meta["import_type"], 0) + meta["count"]
        files = self.ledger.file_counts(self.job_id).get("done", {})
        counts["files"] = files.get("files", 0)
        runs = old.get("runs", [])
        run = {"mode": "continue" if getattr(a, "continue") else ("purge" if a.purge else "new"),
               "started_at": iso(job["started_at"]), "status": status}
        if not runs or runs[-1].get("started_at") != run["started_at"]:
            runs.append(run)
        else:
            runs[-1].update(run)
        return {
            "source": f"{api.flavour} {api.url}", "batch_size": a.chunk_size, "payload_base_uri": "",
            "eas_type": "url", "skip_head_request": True, "eas_skip_errors": True, "eas_replace_url": "",
            "mapping": None, "payloads": payloads,
            "fylrmig_format": 1, "tool": {"name": "fylrmig", "version": __version__},
            "source_instance": {"flavour": api.flavour, "url": api.url, "api_url": api.url + API_BASE,
                                "version": api.version, "name": api.instance_name,
                                "host": urllib.parse.urlsplit(api.url).hostname, "settings": api.settings},
            "datamodel": "datamodel.json", "base_config": "base_config.json",
            "has_passwords": self.has_passwords or self.job.transforms.has_passwords,
            "compression": a.compression, "pretty": a.pretty, "include_files": a.include_files,
            "all_versions": a.all_versions, "include_deleted": a.include_deleted,
            "include_events": a.include_events, "parameters": public_params(a, "backup"),
            "state": {"status": status, "phase": self.job.progress.phase if self.job.progress else ""},
            "runs": runs, "runtime_seconds": round(job["runtime"], 1),
            "payload_info": info, "counts": counts,
            "source_counts": {ot: min(n, a.max_count) if a.max_count else n for ot, n in self.job._source_counts.items()}
            or old.get("source_counts", {}),
        }


class SourceCatalog(JobPart):
    """What a backup reads, in payload order (backup-format.md 5), as Sources: how each is paged, counted and
    fetched from this source's flavour."""

    def __init__(self, job):
        super().__init__(job)
        self.coll_ids = None

    def basetype_sources(self):
        a, size = self.api, min(self.args.chunk_size, 1000)
        fylr = a.flavour == "fylr"
        if fylr:
            yield Source("plugin", "plugin", lambda o, n: unpaged(o, lambda: a.get("/plugin/manage").get("plugins", [])), 0)
        yield Source("tags", "tags", lambda o, n: unpaged(o, lambda: a.get("/tags")), 0)
        yield Source("group", "group", lambda o, n: a.get("/group", limit=n, offset=o), size)
        yield Source("user", "user", lambda o, n: a.get("/user", limit=n, offset=o, include_password="true"), size)
        yield Source("mapping", "mapping", lambda o, n: unpaged(o, self._xml_mappings), 0)
        if fylr:
            yield Source("pool", "pool", lambda o, n: a.get("/pool", limit=n, offset=o), size)
        else:
            yield Source("pool", "pool", lambda o, n: unpaged(o, lambda: a.get("/pool")), 0)
        yield Source("objecttype", "objecttype", lambda o, n: unpaged(o, lambda: a.get("/objecttype")), 0)
        for context in ("object", "collection"):
            yield Source(f"right_preset/{context}", "right_preset",
                         lambda o, n, c=context: unpaged(o, lambda: a.get(f"/right/{c}/presets")), 0, context=context)
        yield Source("transition", "transition", lambda o, n: unpaged(o, lambda: a.get("/transitions")), 0)
        if fylr:
            yield Source("message", "message", lambda o, n: a.get("/message", limit=n, offset=o), size)
        else:
            yield Source("message", "message", lambda o, n: unpaged(o, lambda: a.get("/message")), 0)

    def _xml_mappings(self):
        """Every XML mapping in full: the list names them inside their profiles (api.md 4.4)."""
        ids = [m.get("id") for profile in self.api.get("/xmlmapping/list") or [] for m in profile.get("mappings") or []]
        return [self.api.get(f"/xmlmapping/mapping/{i}") for i in sorted(set(ids) - {None})]

    def publish_source(self):
        """Publish records after the objects they name; easydb 5 pages them (limit <= 1000), fylr documents
        no paging and answers all of them."""
        a = self.api
        if a.flavour == "easydb5":
            return Source("publish", "publish", lambda o, n: a.get("/publish", limit=n, offset=o),
                          min(self.args.chunk_size, 1000))
        return Source("publish", "publish", lambda o, n: unpaged(o, lambda: a.get("/publish")), 0)

    def objecttypes(self):
        names = sorted(ot["objecttype"]["name"] for ot in self.api.get("/objecttype"))
        if self.args.include:
            pattern = re.compile(self.args.include)
            names = [n for n in names if pattern.search(n)]
        return names

    def record_sources(self):
        """Soft-deleted records of every objecttype first: the restore trashes them right after posting
        them, before any live record links to them (a delete of a linked record needs a policy that
        would cut the links)."""
        objecttypes = self.objecttypes()
        if self.args.include_deleted and self.api.flavour == "fylr":
            for ot in objecttypes:
                yield Source(f"db/{ot}/deleted", "db", self._deleted_page_fetcher(ot), self.args.chunk_size,
                             objecttype=ot)
        for ot in objecttypes:
            total = self.job._source_counts[ot] if ot in self.job._source_counts else self.record_count(ot)
            if self.args.max_count:
                total = min(total, self.args.max_count)
            yield Source(f"db/{ot}", "db", self._record_page_fetcher(ot, total), self.args.chunk_size,
                         objecttype=ot, total=total)

    def record_count(self, ot):
        # limit 1, not 0: a count must never turn into every record of the objecttype on a server that
        # reads 0 as "no limit"
        body = self.api.post("/search", {"objecttypes": [ot], "offset": 0, "limit": 1, "format": "short"})
        return int(body.get("count") or 0)

    def _record_page_fetcher(self, ot, total):
        params = {"format": "full"}
        if self.args.all_versions:
            params["all_versions"] = "true"
        if self.api.flavour == "fylr":
            params["files_real_url"] = "true"

        def fetch(offset, limit):
            if total and offset >= total:
                return []
            limit = min(limit, total - offset) if total else limit
            return self.api.call("GET", f"/db/{ot}/_all_fields/list", params=dict(params, limit=limit, offset=offset),
                                 lazy=True)
        return fetch

    def _deleted_page_fetcher(self, ot):
        """Soft-deleted records are only found by a search with include_deleted (api.md 4.5 GAP). With
        --all-versions their history comes from the single-record call with all_versions (few records);
        where the target answers nothing there, the deleted latest version from the search is kept."""
        def fetch(offset, limit):
            body = self.api.post("/search", {"objecttypes": [ot], "offset": offset, "limit": limit, "format": "full",
                                             "include_deleted": True,
                                             "sort": [{"field": "_system_object_id", "order": "ASC"}]})
            hits = body.get("objects", [])
            deleted = [o for o in hits if o.get("_latest_version_deleted_at")]
            if self.args.all_versions:
                deleted = [v for hit in deleted for v in self._deleted_history(ot, hit)]
            return PageWithRaw(deleted, len(hits))
        return fetch

    def _deleted_history(self, ot, hit):
        params = {"all_versions": "true", "format": "full"}
        if self.api.flavour == "fylr":
            params["files_real_url"] = "true"
        found = self.api.get(f"/db/{ot}/_all_fields/system_object_id/{hit['_system_object_id']}", **params)
        return found or [hit]

    def collection_sources(self):
        a, size = self.api, min(self.args.chunk_size, 1000)
        yield Source("collection", "collection", lambda o, n: a.get("/collection/list", limit=n, offset=o), size)
        # one page per collection: counted once the collections are in, so the lists go out on --max-parallel
        # workers (one by one they cost a round trip each, most of a backup with few records)
        yield Source("collection_objects", "collection_objects", self._collection_objects_page, 1,
                     total=len(self._collection_ids()))

    def _collection_objects_page(self, offset, limit):
        """One page = the whole object list of the offset-th collection (paged in itself)."""
        collections = self._collection_ids()
        if offset >= len(collections):
            return []
        coll_id = collections[offset]
        objects, start, size = [], 0, 1000 if self.api.flavour == "easydb5" else 100
        while True:
            body = self.api.get(f"/collection/objects/{coll_id}", offset=start, limit=size)
            page = body.get("objects", []) if isinstance(body, dict) else body
            objects += page
            start += len(page)
            if len(page) < size or (isinstance(body, dict) and start >= int(body.get("count") or 0)):
                break
        return [{"collection_id": coll_id, "objects": objects}]

    def _collection_ids(self):
        if self.coll_ids is None:
            ids = []
            for page in self.job.spool.spooled_pages("collection"):
                ids += [c["collection"]["_id"] for c in page if not is_system_entry(c, "collection")]
            self.coll_ids = ids
        return self.coll_ids

    def event_source(self):
        params = {"sort": "_id.ASC"}
        if self.api.flavour == "easydb5":
            params["format"] = "json_full"
        size = min(self.args.chunk_size, 1000)

        def fetch(offset, limit):
            body = self.api.get("/event/list", limit=limit, offset=offset, **params)
            return body.get("objects", []) if isinstance(body, dict) else body
        return Source("event", "event", fetch, size)


class BackupTransforms(JobPart):
    """Source entries -> payload entries (backup-format.md 4.5, 4.6): ids become references (the documented
    fallback `<kind>:<id>` where the source had none), users and groups named by reference, easydb 5 shapes
    in fylr's words, files as file entries. It keeps the reference of every entry it saw (refs, new_refs)
    for the entries that point at them later."""

    def __init__(self, job):
        super().__init__(job)
        self.refs, self.new_refs = {}, {}   # kind -> {source id: reference}: kept in the ledger / of this emit
        self.has_passwords = False
        self.own_instances = self.objecttype_name_of = None
        self.loose_files = LooseFileFinder(job)
        self.wrappers = {}   # (kind, source id) -> its lookup wrapper, shared: references never change in a run
        self.ref_cache = {}   # (kind, source id) -> a reference kept in refs (final): records ask ~1 per field

    def keep_new_refs(self):
        """The references an emit step found are kept once its ledger row holds them."""
        for kind, mapping in self.new_refs.items():
            self.refs.setdefault(kind, {}).update({str(s): t for s, t in mapping.items()})

    def _remember(self, kind, source_id, target):
        self.new_refs.setdefault(kind, {})[str(source_id)] = target

    def ref(self, kind, source_id):
        """Reference of a basetype entry by its source id (the documented fallback when it had none)."""
        if source_id is None:
            return None
        key = (kind, source_id)
        if key in self.ref_cache:
            return self.ref_cache[key]
        kept = self.refs.get(kind, {}).get(str(source_id))
        if kept:
            self.ref_cache[key] = kept
            return kept
        return self.new_refs.get(kind, {}).get(str(source_id)) or f"{kind}:{source_id}"

    def transform_plugin(self, page):
        return [self.loose_files.mark({k: v for k, v in p.items() if k != "id"}, f"plugin {p.get('name')}")
                for p in page]

    def transform_tags(self, page):
        out = []
        for tg in page:
            group = dict(tg["taggroup"])
            gid = group.pop("_id", None)
            group.update(_version=1, reference=group.get("reference") or f"taggroup:{gid}")
            self._remember("taggroup", gid, group["reference"])
            tags = [self._tag_entry(t) for t in tg.get("_tags", [])]
            rest = {k: v for k, v in tg.items() if k not in ("taggroup", "_tags")}
            out.append({**rest, "_basetype": "taggroup", "taggroup": group, "_tags": tags})
        return out

    def _tag_entry(self, entry):
        """Tags keep their source _id (tag ids are restored, parameters.md 7.1); OAS lists bare tags, E5 and
        the importer wrap them as {"tag": {...}}: accept both, write the wrapped form."""
        tag = dict(entry.get("tag", entry))
        tag.update(_version=1, reference=tag.get("reference") or f"tag:{tag['_id']}")
        self._remember("tag", tag["_id"], tag["reference"])
        rest = {k: self._acl(v) if k == "_acl" else v for k, v in entry.items() if k != "tag"} if "tag" in entry else {}
        return {**rest, "tag": tag}

    def transform_group(self, page):
        out = []
        for entry in page:
            group = dict(entry["group"])
            gid = group.pop("_id")
            if group.get("type") == "system":   # fylr refuses system groups (GroupTypeNotAllowed)
                continue
            group.update(_version=1, reference=group.get("reference") or f"group:{gid}")
            self._remember("group", gid, group["reference"])
            out.append({**entry, "group": group, "_acl": self._acl(entry.get("_acl"))})
        return out

    def transform_user(self, page):
        out = []
        for entry in page:
            user = dict(entry["user"])
            uid = user.pop("_id")
            user.update(_version=1, reference=user.get("reference") or f"user:{uid}")
            self._remember("user", uid, user["reference"])
            if user["reference"].startswith("system:"):
                continue   # system users exist on every target; they are referenced, not created
            new = {k: v for k, v in entry.items() if not k.startswith("_password") and k != "_emails"}
            new["user"] = user
            self._convert_email(entry, user)
            self._convert_password(entry, new)
            new["_groups"] = [self._group_link(g) for g in entry.get("_groups", []) if self._known_group(g)]
            out.append(new)
        return out

    def _convert_email(self, entry, user):
        """easydb 5 keeps a list _emails; fylr one user.email (api.md 6.5)."""
        emails = entry.get("_emails") or []
        primary = next((e.get("email") for e in emails if e.get("is_primary")), None)
        primary = primary or user.pop("_primary_email", None) or (emails[0].get("email") if emails else None)
        user.pop("_primary_email", None)
        if primary and not user.get("email"):
            user["email"] = primary

    def _convert_password(self, entry, new):
        """fylr `_password_hash` is kept; easydb 5's insecure hash becomes "<method>:<hash>" (with the salt as
        "<method>:<salt>:<hash>"): the docs leave fylr's exact format open (backup-format.md 4.6 GAP)."""
        if entry.get("_password_hash"):
            new["_password_hash"] = entry["_password_hash"]
        elif entry.get("_password_insecure_hash"):
            parts = [entry.get("_password_insecure_hash_method") or "md5", entry.get("_password_insecure_hash_salt"),
                     entry["_password_insecure_hash"]]
            new["_password_hash"] = ":".join(p for p in parts if p)
        if new.get("_password_hash"):
            self.has_passwords = True   # kept with the emit step's ledger row (a continued run knows it)

    def _known_group(self, link):
        gid = (link.get("group") or {}).get("_id")
        return str(gid) in self.refs.get("group", {}) or str(gid) in self.new_refs.get("group", {})

    def _group_link(self, link):
        gid = link["group"]["_id"]
        out = {k: v for k, v in link.items() if k != "group"}
        if out.get("type") == "sso":   # easydb 5 "sso" membership is fylr "saml" (releases 6.28.0)
            out["type"] = "saml"
        return {**out, "_basetype": "group", "group": {"lookup:_id": {"reference": self.ref("group", gid)}}}

    def _who(self, who):
        """A user/group wrapper with a source _id -> the same wrapper with a reference lookup (one object per
        user or group: records name the same few owners thousands of times)."""
        if not isinstance(who, dict):
            return who
        for kind in ("user", "group"):
            inner = who.get(kind)
            if isinstance(inner, dict) and "_id" in inner:
                return self._shared_wrapper(kind, inner["_id"], lambda ref, kind=kind: {
                    "_basetype": kind, kind: {"lookup:_id": {"reference": ref}}})
        return who

    def _acl(self, acl):
        if not isinstance(acl, list):
            return acl
        out = []
        for rule in acl:
            rule = {k: v for k, v in rule.items() if k != "_id"}
            if "who" in rule:
                rule["who"] = self._who(rule["who"])
            out.append(rule)
        return out

    def transform_pool(self, page):
        entries = self._tree_entries(page, "pool")
        for entry in entries:   # the body itself: `pool` keys name pools, never files
            self.loose_files.mark(entry["pool"], f"pool {entry['pool']['reference']}")
        return entries

    def transform_collection(self, page):
        return self._tree_entries(page, "collection")

    def _tree_entries(self, page, kind):
        """Pools and collections: fallback references, parents as references; system entries and user home
        collections are referenced but never created. Levels are resolved once all pages are read
        (group_by_level)."""
        out = []
        for entry in page:
            body = dict(entry[kind])
            source_id = body.pop("_id")
            parent = body.pop("_id_parent", None)
            body.update(_version=1, reference=body.get("reference") or f"{kind}:{source_id}")
            if is_home_collection(entry, kind):
                body["reference"] = self._home_collection_reference(entry)
            self._remember(kind, source_id, body["reference"])
            if is_system_entry(entry, kind) or is_home_collection(entry, kind):
                continue
            new = {k: v for k, v in entry.items() if k not in (kind,)}
            for key in ("_acl", "_private_acl"):
                if isinstance(new.get(key), list):
                    new[key] = self._acl(new[key])
            if "_owner" in new:
                new["_owner"] = self._who(new["_owner"])
            new[kind] = body
            new["__id"], new["__parent"] = source_id, parent
            out.append(new)
        return out

    def _home_collection_reference(self, entry):
        """The target creates a user's home collection with the user and names it after the user as
        restored there (lookups.en.md): every restored user has a reference, so it is `user:ref:<reference>`,
        whatever the source's own home collection was called (`user:login:…`, `user:id:…`)."""
        owner = ((entry.get("_owner") or {}).get("user") or {}).get("_id")
        return f"user:ref:{self.ref('user', owner)}"

    def transform_objecttype(self, page):
        out = [{**ot, "_acl": self._acl(ot.get("_acl")), "objecttype": dict(ot["objecttype"])} for ot in page]
        for entry in out:
            self.loose_files.mark(entry["objecttype"], f"objecttype {entry['objecttype'].get('name')}")
        return out

    def transform_mapping(self, page):
        """XML mappings get new ids on the target: the source id is kept for the objecttypes that name
        it, the objecttype a mapping serves by its name."""
        names = self._objecttype_names()
        out = []
        for mapping in page:
            entry = {k: v for k, v in mapping.items() if k not in ("id", "idTable")}
            entry["_fylrmig_source_id"] = mapping.get("id")
            if mapping.get("idTable") is not None:
                entry["_fylrmig_objecttype"] = names.get(mapping["idTable"], f"objecttype:{mapping['idTable']}")
            out.append(entry)
        return out

    def transform_right_preset(self, page):
        out = []
        for entry in page:
            preset = {k: v for k, v in entry["right_preset"].items() if k != "_id"}
            out.append({**entry, "right_preset": self._id_lists_as_refs(dict(preset, _version=1))})
        return out

    def transform_transition(self, page):
        out = []
        for transition in page:
            transition = {k: v for k, v in transition.items() if k != "_id"}
            if isinstance(transition.get("who"), list):
                transition["who"] = [self._who(w) for w in transition["who"]]
            out.append(self._id_lists_as_refs(transition))
        return out

    def transform_publish(self, page):
        return [{"_basetype": "publish", "publish": {k: v for k, v in entry["publish"].items() if k != "_id"}}
                for entry in page]

    def _id_lists_as_refs(self, value):
        """`pool_ids` / `objecttype_ids` -> `lookup:pool_ids` (references) / `lookup:objecttype_ids` (names)."""
        names = None
        for node in iter_dicts(value):
            for field in [k for k in node if k in ID_LIST_KINDS and isinstance(node[k], list)]:
                kind = ID_LIST_KINDS[field]
                if kind == "objecttype" and names is None:
                    names = self._objecttype_names()
                ids = node.pop(field)
                node[f"lookup:{field}"] = [names.get(i, f"objecttype:{i}") if kind == "objecttype"
                                           else self.ref(kind, i) for i in ids]
        return value

    def _objecttype_names(self):
        if self.objecttype_name_of is None:
            self.objecttype_name_of = {o["objecttype"]["_id"]: o["objecttype"]["name"]
                                        for o in self.api.get("/objecttype") or []}
        return self.objecttype_name_of

    def transform_message(self, page):
        out = []
        for entry in page:
            msg = dict(entry["message"])
            mid = msg.pop("_id")
            if "type" in msg and "webfrontend_type" not in msg:      # easydb 5 names (api.md 6.5)
                msg["webfrontend_type"] = msg.pop("type")
            if "message_html" in msg and "message" not in msg:
                msg["message"] = msg.pop("message_html")
            msg.update(_version=1, reference=msg.get("reference") or f"message:{mid}")
            self._remember("message", mid, msg["reference"])
            groups = [self._group_link(g) for g in entry.get("_groups", []) if self._known_group(g)]
            out.append({**entry, "message": msg, "_groups": groups})
        return out

    def transform_collection_objects(self, page):
        """The source's own objects become deferred system-id lookups; an object of another instance keeps
        its _global_object_id exactly (fylr stores foreign ids as they are: OAS /collection/objects)."""
        out = []
        for item in page:
            objects = []
            for obj in item["objects"]:
                gid = obj.get("_global_object_id")
                props = obj.get("webfrontend_props", obj.get("_webfrontend_props"))
                if self._is_own_object(gid):
                    lookup = {"_system_object_id": sysid_of_global_id(gid), "_allow_defer": True}
                    objects.append({"lookup:_global_object_id": lookup, "webfrontend_props": props})
                elif gid:
                    objects.append({"_global_object_id": gid, "webfrontend_props": props})
            ref = self.ref("collection", item["collection_id"])
            out.append({"collection": {"lookup:_id": {"reference": ref}}, "objects": objects})
        return out

    def _is_own_object(self, gid):
        """`<sysid>@<instance>` of the source itself: `@local`, or the instance part its own records carry."""
        sysid, _, instance = str(gid or "").partition("@")
        return sysid.isdigit() and instance in self._own_instance_ids()

    def _own_instance_ids(self):
        """The instance part of the source's _global_object_ids (api.md 1: opaque, so it is read off a
        record rather than guessed from /settings)."""
        if self.own_instances is None:
            own = {"local", self.api.instance_name}
            for ot in self.job.sources.objecttypes():
                records = self.api.get(f"/db/{ot}/_all_fields/list", limit=1, offset=0, format="short")
                own.update(str(r.get("_global_object_id") or "").partition("@")[2] for r in records)
                if records:
                    break
            self.own_instances = own - {""}
        return self.own_instances

    def transform_event(self, page):
        out = []
        for entry in page:
            event = dict(entry.get("event", entry))
            etype = event.get("type")
            if etype in EVENTS_NEVER_BACKED_UP or (self.job.include_events and etype not in self.job.include_events):
                continue
            event.pop("_id", None)
            new = {k: v for k, v in entry.items() if k not in ("event", "_user", "_session")}
            new.update(_basetype="event", event=event)
            user = entry.get("user") or entry.get("_user")
            if isinstance(user, dict):
                new["user"] = self._who(user if "user" in user else {"_basetype": "user", "user": user})
            refs = self._event_refs(event)
            if refs:   # ids do not survive a restore, references do (see RestoreJob._map_event)
                new["_fylrmig_refs"] = refs
            out.append(new)
        return out

    def _event_refs(self, event):
        """References of the basetype entries an event names by id: its object (a user, group, pool,
        collection or message event) and the exporting user of a download."""
        refs = {}
        kind = event_basetype(event, self.api.flavour)
        if kind in BASETYPE_EVENT_KINDS and event.get("object_id") is not None:
            refs["object_id"] = self.ref(kind, event["object_id"])
        export_user = (event.get("info") or {}).get("export_user_id")
        if export_user is not None:
            refs["export_user_id"] = self.ref("user", export_user)
        return refs

    def transform_db(self, page, parents):
        out, seen = [], {}
        for record in page:
            sysid = record["_system_object_id"]
            seen[sysid] = seen.get(sysid, 0) + 1     # history renumbered 1..n: the target starts at 1
            out.append(self._record(record, seen[sysid], parents))
        return out

    def _record(self, record, version, parents):
        ot = record["_objecttype"]
        obj = record.get(ot) or {}
        new = {"_objecttype": ot, "_mask": "_all_fields", "_system_object_id": record["_system_object_id"],
               "_uuid": record.get("_uuid")}
        for key in ("_comment", "_created", "_last_modified", "_latest_version_deleted_at"):
            value = record.get(key)
            if value is not None:
                new[key] = value
        if record.get("_tags"):
            new["_tags"] = [self._tag_lookup(t.get("_id", t.get("tag", {}).get("_id"))) for t in record["_tags"]]
        if record.get("_owner"):
            new["_owner"] = self._who(record["_owner"])
        creator = record.get("_create_user")
        if creator is not None:
            new["_create_user"] = self._who(creator if isinstance(creator, dict) else
                                            {"_basetype": "user", "user": {"_id": creator}})
        body = {"_version": version}
        pool = (obj.get("_pool") or {}).get("pool") or {}
        if pool.get("_id") is not None:
            body["_pool"] = self._pool_lookup(pool["_id"])
        level = 0
        if parents:
            parent_sysid, level = parents.parent_and_level(obj.get("_id"), version)
            if parent_sysid:
                body["lookup:_id_parent"] = {"_system_object_id": parent_sysid, "_allow_defer": True}
        value_of = self._value
        for key, value in obj.items():   # is_field_key and _value's first test, inlined: ~10 per record
            if key[:1] != "_" or key.startswith(FIELD_KEY_PREFIXES):
                body[key] = value if value.__class__ not in (dict, list) else value_of(value)
        new[ot] = body
        new["__version"], new["__level"] = (version if self.args.all_versions else 1), level
        return new

    def _tag_lookup(self, tag_id):
        return self._shared_wrapper("tag", tag_id, lambda ref: {"lookup:_id": {"reference": ref}})

    def _pool_lookup(self, pool_id):
        return self._shared_wrapper("pool", pool_id, lambda ref: {"pool": {"lookup:_id": {"reference": ref}}})

    def _shared_wrapper(self, kind, source_id, make):
        """One lookup wrapper per user, group, tag or pool once its reference is final (kept in refs):
        records name the same few thousands of times. Nothing changes a wrapper later."""
        key = (kind, source_id)
        wrapper = self.wrappers.get(key)
        if wrapper is None:
            wrapper = make(self.ref(kind, source_id))
            if str(source_id) in self.refs.get(kind, {}):
                self.wrappers[key] = wrapper
        return wrapper

    def _value(self, value):
        """Field values: links become deferred system-id lookups, files get the portable file form,
        nested rows are converted field by field. Decoded JSON holds plain dicts and lists, so the class
        is compared instead of isinstance (this runs for every field of every record)."""
        kind = value.__class__
        if kind is dict:
            return self._link(value) if "_objecttype" in value else value
        if kind is not list or not value:   # most values: text, numbers, dates
            return value
        if is_file_list(value):
            return [self.file_entry(f) for f in value]
        if all(v.__class__ is dict for v in value):
            value_of = self._value
            return [{k: v if v.__class__ not in (dict, list) else value_of(v) for k, v in row.items() if k != "_id"}
                    for row in value]
        return value

    def _link(self, link):
        ot = link["_objecttype"]
        sysid = link.get("_system_object_id")
        if sysid is None:
            return link
        out = {"_objecttype": ot, "_mask": "_all_fields",
               ot: {"lookup:_id": {"_system_object_id": sysid, "_allow_defer": True}}}
        if "_latest_version_deleted_at" in link or "_purged_or_deferred" in link:   # rare: one test first
            for marker in ("_latest_version_deleted_at", "_purged_or_deferred"):
                if link.get(marker):
                    out[marker] = link[marker]   # the restore drops such links unless --include-deleted-linked
        return out

    def file_entry(self, entry):
        """backup-format.md 4.7: the source id lives only in `reference`; `path` for packed renditions."""
        file_id = entry.get("_id")
        versions = entry.get("versions") or {}
        out = {k: entry[k] for k in FILE_KEYS_KEPT if k in entry}
        host = url_parts(self.api.url).hostname
        leave = is_remote_file(entry, self.api.url, self.api.flavour)
        out.update({"eas:url": (versions.get("original") or {}).get("url"),
                    "eas:filename": entry.get("original_filename"),
                    "reference": f"{host}:eas:{file_id}:original", "leave": leave, "versions": {}})
        for name, info in versions.items():
            if not isinstance(info, dict):
                continue
            item = {k: info[k] for k in ("url", "status", "extension", "class", "filesize") if k in info}
            if self.args.include_files and not (leave and name == "original"):
                relpath = file_relpath(file_id, entry.get("original_filename"), name,
                                       info.get("extension") or entry.get("extension"))
                if os.path.exists(self.job.folder.join(relpath)):
                    item["path"] = relpath
            out["versions"][name] = item
        return out

class LooseFileFinder:
    """The backup's side of files that are not record fields (base config logo and favicon, pool and
    objecttype watermarks, plugin zips): an `{"_id": N}` the source's EAS knows as a file is kept like a
    record file (packed with --include-files, its URL otherwise) and marked `{"fylrmig:file": <entry>}`
    where the id stood; the restore uploads it and puts the target's id there."""

    def __init__(self, job):
        self.job = job

    def mark(self, value, where):
        candidates = list(loose_file_candidates(value))
        if not candidates:
            return value
        files = self._source_files(sorted({container[key]["_id"] for container, key, _ in candidates}))
        for container, key, path in candidates:
            info = files.get(str(container[key]["_id"]))
            if not info:
                continue   # an id of something else: kept as it is
            if self.job.args.include_files:
                self.job.spool.pack_file(info)
            entry = dict(self.job.transforms.file_entry(info), used_by=f"{where} {path}")
            kept = {k: v for k, v in container[key].items() if k == "frontend_prefs"}
            container[key] = {**kept, LOOSE_FILE: entry}
        return value

    def _source_files(self, ids):
        files = {}
        for batch in batched(ids, 100):
            answer = self.job.api.get("/eas", ids=json.dumps(batch)) or {}
            files.update(answer if isinstance(answer, dict) else {str(f.get("_id")): f for f in answer})
        return files


class RecordStream:
    """The records of one source on their way from pages to payloads, each response decoded once and each
    entry encoded and written once. A group whose order is final (history version by version, no
    hierarchy) streams its entries straight into its open batch, which becomes its payload file when
    full (renamed, its sha256 known from the writing), so writing overlaps with fetching. Hierarchies
    (levels need every parent) and history replays (time order needs every version) append to a line
    file with an index beside it and are ordered when the last page is in. Every done page records the
    stream's state, so a continued run cuts the files back to the last page it knows and goes on."""

    def __init__(self, job, source, ordered_later, replay, unique=()):
        self.job, self.source, self.args = job, source, job.args
        self.ordered_later, self.replay = ordered_later, replay
        self.unique = unique   # a replay's unique keys (column names each): their values go into the index
        self.dir = os.path.join(job.folder.spool, "emit-" + source.name.replace("/", "__"))
        # group -> batches finished; file -> its size; group -> entries in its open batch
        self.state = {"batches": {}, "sizes": {}, "counts": {}}
        self._files, self._digests = {}, {}   # open files; group -> sha256 of its open batch so far

    # -- resume

    def resume(self, rows):
        """Cut the files back to the state the last of the consecutive done pages recorded; returns the
        offset to fetch next (pages done after a gap are fetched again)."""
        expected, last = 0, None
        for row in rows:
            out = json.loads(row["output"] or "{}")
            if row["state"] != "done" or "stream" not in out or int(row["key"].rsplit("@", 1)[1]) != expected:
                break
            last, expected = out, expected + self.source.page_size
        if last is None or "counts" not in last["stream"]:   # nothing yet, or a spool of an older fylrmig
            return self._start_over()
        self.state = last["stream"]
        for name, size in self.state["sizes"].items():
            path = os.path.join(self.dir, name)
            if name.startswith("open-") and not os.path.exists(path):
                self._reopen_finished(name, path)
            if not os.path.exists(path) or os.path.getsize(path) < size:
                return self._start_over()   # never fill a gap with zeros: fetch the source again
            with open(path, "r+b") as fh:
                fh.truncate(size)   # a file only grows until its batch is finished
        for name in os.listdir(self.dir):
            if name not in self.state["sizes"] and not self._is_written_batch(name):
                os.unlink(os.path.join(self.dir, name))
        for group in self.state["counts"]:
            with open(os.path.join(self.dir, self._open_name(group)), "rb") as fh:
                self._digests[group] = hashlib.sha256(fh.read())
        return expected

    def _reopen_finished(self, open_name, path):
        """A batch finished after the last recorded page (the run stopped before that page's row): its
        file is the open batch plus the lines and end that came later, which the truncation cuts off.
        Rewritten for --pretty or --compression it cannot be reopened: the stream starts over."""
        if self.args.pretty or self.args.compression:
            return
        finished = "batch-" + open_name[len("open-"):] + "-"
        for name in os.listdir(self.dir):
            if name.startswith(finished):
                os.rename(os.path.join(self.dir, name), path)

    def _start_over(self):
        self.state, self._digests = {"batches": {}, "sizes": {}, "counts": {}}, {}
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        return 0

    def _is_written_batch(self, name):
        match = BATCH_FILE.match(name)
        return bool(match) and int(match.group(2)) <= self.state["batches"].get(match.group(1), 0)

    # -- pages

    def add(self, page):
        """Transform one page's records and write them; the state to record is self.state after it."""
        entries = self.job.transforms.transform_db(page, None)
        if self.ordered_later:
            self._add_to_order_later(page, entries)
        else:
            self._add_in_final_order(entries)
        for fh in self._files.values():
            fh.flush()

    def _add_to_order_later(self, page, entries):
        """Lines in arrival order plus an index row each: batches are cut once the whole source is in."""
        for record, entry in zip(page, entries):
            version, _ = entry.pop("__version"), entry.pop("__level")
            offset = self._append("lines-all", json_bytes(entry) + b"\n")
            obj = record.get(record["_objecttype"]) or {}
            index = [obj.get("_id"), version, obj.get("_id_parent"), record.get("_system_object_id_parent"),
                     entry["_system_object_id"], offset, version_time(entry)]
            if self.replay:
                index.append(unique_values(entry[record["_objecttype"]], self.unique))
            self._append("index", json_bytes(index) + b"\n")

    def _add_in_final_order(self, entries):
        """Each version number is a group of batches; a page's entries of one group leave in one write."""
        by_group = {}
        for entry in entries:
            version = entry.pop("__version")
            del entry["__level"]
            by_group.setdefault(version, []).append(json_bytes(entry))
        for version, encoded in by_group.items():
            self._add_to_batches(f"v{version:06d}", encoded)

    def _add_to_batches(self, group, encoded):
        """Encoded entries appended to the group's open batch, which is finished at --chunk-size entries."""
        while encoded:
            count = self.state["counts"].get(group, 0)
            taken, encoded = encoded[:self.args.chunk_size - count], encoded[self.args.chunk_size - count:]
            if count:
                data = b"," + b",".join(taken)
            else:
                self._digests[group] = hashlib.sha256()
                data = payload_head("db", self.source.objecttype) + b",".join(taken)
            self._write_open(group, data)
            self.state["counts"][group] = count + len(taken)
            if count + len(taken) >= self.args.chunk_size:
                self._finish_batch(group)

    def _write_open(self, group, data):
        self._append(self._open_name(group), data)
        self._digests[group].update(data)

    def _open_number(self, group):
        return self.state["batches"].get(group, 0) + 1

    def _open_name(self, group):
        """The file of a group's open batch, numbered: the next batch must not reuse the name of one that
        a continued run may have to reopen."""
        return f"open-{group}-{self._open_number(group):06d}"

    def _append(self, name, data):
        fh = self._files.get(name)
        if fh is None:
            # a page's lines leave in one write at add()'s flush, not one per 8 KB (half the time, measured)
            fh = self._files[name] = open(os.path.join(self.dir, name), "ab", buffering=1 << 20)
        offset = self.state["sizes"].get(name, 0)   # the file's size: what resume cut it to, plus our writes
        fh.write(data)
        self.state["sizes"][name] = offset + len(data)
        return offset

    def _finish_batch(self, group):
        """The open batch of a group in final order becomes a payload file (named when the source ends):
        closed and renamed, or rewritten once for --pretty or --compression. A batch the state does not
        count yet is removed (or reopened) by resume()."""
        name, number = self._open_name(group), self._open_number(group)
        self._write_open(group, PAYLOAD_END)
        self._files.pop(name).close()
        path, count = os.path.join(self.dir, name), self.state["counts"].pop(group)
        digest = self._digests.pop(group)
        if self.args.pretty or self.args.compression:
            with open(path, "rb") as fh:
                self._write_batch(group, number, count, fh.read())
            os.unlink(path)
        else:
            os.rename(path, os.path.join(self.dir, batch_file_name(group, number, count, digest.hexdigest())))
        del self.state["sizes"][name]
        self.state["batches"][group] = number

    def _write_batch(self, group, number, count, envelope):
        """No temporary file: a batch the state does not count yet is removed by resume() anyway."""
        if self.args.pretty:
            envelope = json_bytes(json_loads(envelope), pretty=True)
        data = gzip.compress(envelope, compresslevel=self.args.compression, mtime=0) if self.args.compression \
            else envelope
        digest = sha256_bytes(data)
        path = os.path.join(self.dir, batch_file_name(group, number, count, digest))
        with open(path, "wb") as fh:
            fh.write(data)
        return path, digest

    def close(self):
        for fh in self._files.values():
            fh.close()
        self._files = {}

    # -- the end of the source

    def batches(self):
        """[(group key, [(path, count, sha256), ...])] in payload order, the last batches finished first."""
        self.close()
        if self.ordered_later:
            return self._ordered_batches()
        for group in sorted(self.state["counts"]):
            self._finish_batch(group)
        out = {}
        for name in os.listdir(self.dir):
            match = BATCH_FILE.match(name)
            if match:
                out.setdefault(int(match.group(1)[1:]), []).append(
                    (int(match.group(2)), os.path.join(self.dir, name), int(match.group(3)), match.group(4)))
        return [((version, None), [(path, n, digest) for _, path, n, digest in sorted(items)])
                for version, items in sorted(out.items())]

    def _ordered_batches(self):
        """Hierarchies level by level per version (parents found in the index), or a replay in time order;
        the parent lookup is added to each line here, the one place a line is decoded again. The index is
        held as one small tuple per version (a row: stamp, version, sysid, offset, _id, unique values), not
        as its decoded lines: this is the one part of a backup whose memory grows with the records."""
        path = os.path.join(self.dir, "index")
        parents, rows, hierarchical = ParentIndex(), [], False
        for line in read_bytes_lines(path) if os.path.exists(path) else ():
            oid, version, parent, parent_sysid, sysid, offset, stamp, *unique = json_loads(line)
            parents.add(version, oid, sysid, parent, parent_sysid)
            hierarchical = hierarchical or parent is not None or parent_sysid is not None
            rows.append((stamp, version, sysid, offset, oid, unique[0] if unique else None))
        out = []
        for number, (key, group) in enumerate(self._order(rows, parents, hierarchical), 1):
            files = []
            for batch_no, batch in enumerate(batched(group, self.args.chunk_size), 1):
                offsets = [row[3] for row in batch]
                lines = [self._with_parent(line, row, parents, hierarchical) for row, line in
                         zip(batch, read_lines_bytes_at(os.path.join(self.dir, "lines-all"), offsets))]
                envelope = payload_envelope("db", self.source.objecttype, lines)
                path, digest = self._write_batch(f"o{number:06d}", batch_no, len(lines), envelope)
                files.append((path, len(lines), digest))
            out.append((key, files))
        return out

    def _order(self, rows, parents, hierarchical):
        """[(group key, rows)]: a replay's steps, or (version, level) buckets parents first."""
        if self.replay:
            last = {}
            for n, (stamp, version, sysid, *rest) in enumerate(rows):   # a record's versions in their order
                stamp = last[sysid] = max(stamp, last.get(sysid, float("-inf")))
                rows[n] = (stamp, version, sysid, *rest)
            rows.sort(key=lambda row: row[:4])
            if any(row[5] is None for row in rows):   # a spool of an older fylrmig: one batch after the other
                return [(("history", n), batch) for n, batch in
                        enumerate(history_batches(rows, self.args.chunk_size), 1)]
            return [(("step", n), step) for n, step in enumerate(replay_steps(rows, parents), 1)]
        buckets = {}
        for row in rows:
            level = parents.level(row[4], row[1]) if hierarchical else 0
            buckets.setdefault((row[1] if self.args.all_versions else 1, level), []).append(row)
        return sorted(buckets.items(), key=lambda bucket: bucket[0])

    def _with_parent(self, line, row, parents, hierarchical):
        if not hierarchical:
            return line
        parent_sysid = parents.parent_sysid(row[4], row[1])
        if not parent_sysid:
            return line
        entry = json.loads(line)
        ot = entry["_objecttype"]
        body = {"_version": entry[ot].get("_version"),
                "lookup:_id_parent": {"_system_object_id": parent_sysid, "_allow_defer": True}}
        body.update(entry[ot])
        entry[ot] = body
        return json_bytes(entry) + b"\n"


PAYLOAD_END = b"]}"
BATCH_FILE = re.compile(r"^batch-([a-z]\d{6})-(\d{6})-n(\d+)-([0-9a-f]{64})\.json$")   # group, number, count, sha256


def batch_file_name(group, number, count, digest):
    return f"batch-{group}-{number:06d}-n{count}-{digest}.json"


def payload_head(import_type, objecttype):
    """A payload's bytes up to its first entry: entries follow, joined by commas, then PAYLOAD_END."""
    head = {"import_type": import_type}
    if objecttype:
        head["objecttype"] = objecttype
    return json_bytes(head)[:-1] + f',"{IMPORT_TYPE_ARRAYS[import_type]}":['.encode()


def payload_envelope(import_type, objecttype, lines):
    """A payload's bytes from entries encoded once, without decoding them again."""
    return payload_head(import_type, objecttype) + b",".join(line.rstrip(b"\n") for line in lines) + PAYLOAD_END


def read_bytes_lines(path):
    with open(path, "rb") as fh:
        return [line for line in fh if line.strip()]


def read_lines_bytes_at(path, offsets):
    with open(path, "rb") as fh:
        for offset in offsets:
            fh.seek(offset)
            yield fh.readline()


def objects_in_page(page):
    if isinstance(page, PageWithRaw):
        return page.raw_count
    if page and isinstance(page[0], dict) and "_system_object_id" in page[0]:
        return len({entry["_system_object_id"] for entry in page})
    return len(page)


class PageWithRaw(list):
    """A filtered page that remembers how many entries the server returned (for paging)."""

    def __init__(self, items, raw_count):
        super().__init__(items)
        self.raw_count = raw_count


class ParentIndex:
    """Parents and hierarchy levels of one hierarchical objecttype, per history version: a record may
    move in the tree between versions, and version n of every record is posted level by level."""

    def __init__(self):
        self.versions = {}   # _id -> {version: (sysid, parent _id, parent sysid)}
        self._levels = {}

    def add(self, version, oid, sysid, parent, parent_sysid):
        self.versions.setdefault(oid, {})[version] = (sysid, parent, parent_sysid)

    def _at(self, oid, version):
        """The record's facts at `version`, or at its newest version below (it may have fewer)."""
        history = self.versions.get(oid)
        if not history:
            return None
        return history.get(version) or history[max((v for v in history if v <= version), default=min(history))]

    def parent_sysid(self, oid, version):
        _, parent, parent_sysid = self._at(oid, version) or (None, None, None)
        if parent_sysid is None and parent is not None:
            parent_sysid = (self._at(parent, version) or (None,))[0]
        return parent_sysid

    def parent_and_level(self, oid, version):
        return self.parent_sysid(oid, version), self.level(oid, version)

    def level(self, oid, version):
        chain, current = [], oid
        while current is not None and (current, version) not in self._levels and current not in chain:
            chain.append(current)
            facts = self._at(current, version)
            current = facts[1] if facts else None
        base = self._levels.get((current, version), -1) if current is not None else -1
        for depth, node in enumerate(reversed(chain), 1):
            self._levels[(node, version)] = base + depth
        return self._levels.get((oid, version), 0)


def group_by_level(entries, kind, ref_of):
    """Parents before children: [((None, level), entries)]; parent ids become reference lookups."""
    by_id = {e["__id"]: e for e in entries}
    levels = {}

    def level(entry, seen=()):
        key = entry["__id"]
        if key not in levels:
            parent = by_id.get(entry["__parent"])
            levels[key] = 0 if parent is None or key in seen else level(parent, seen + (key,)) + 1
        return levels[key]

    groups = {}
    for entry in entries:
        groups.setdefault(level(entry), []).append(entry)
    return [((None, lvl), [strip_tree_keys(e, kind, ref_of) for e in groups[lvl]]) for lvl in sorted(groups)]


def strip_tree_keys(entry, kind, ref_of):
    entry = dict(entry)
    entry.pop("__id")
    parent = entry.pop("__parent")
    if parent is not None:
        entry[kind] = {**entry[kind], "lookup:_id_parent": {"reference": ref_of(parent)}}
    return entry


def is_system_entry(entry, kind):
    body = entry.get(kind) or {}
    ref = body.get("reference") or ""
    return bool(body.get("is_system_pool") or body.get("is_system_collection") or ref.startswith("system:"))


FIELD_KEY_PREFIXES = ("_nested:", "_reverse_nested:")


def is_field_key(key):
    """Keys of a record's objecttype block that hold data: the columns and nested tables. `_id`, `_version`,
    `_pool`, `_id_parent` are written by the transform; every other `_x` key is the server's."""
    return not key.startswith("_") or key.startswith(FIELD_KEY_PREFIXES)


# -- entries beside records: files outside records, id lists, keys of entries without a reference

# Where a file that is not a record field stood, the backup keeps its file entry under this key.
LOOSE_FILE = "fylrmig:file"
# Keys whose `{"_id": …}` names a basetype entry, never a file.
NOT_FILE_KEYS = frozenset({"user", "group", "pool", "collection", "objecttype", "tag", "taggroup", "message",
                           "right_preset", "mask", "owner", "_owner", "who"})
# Id lists in right presets and transitions: ids do not survive a migration, pool references and
# objecttype names do (`lookup:<field>` in a backup).
ID_LIST_KINDS = {"pool_ids": "pool", "objecttype_ids": "objecttype"}


def iter_dicts(value):
    """Every dict inside a JSON value, the value itself first."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def iter_children(node):
    return node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()


def loose_file_candidates(value):
    """(container, key, dotted path) of every `{"_id": <int>}` below `value` that may name a file: the ids
    are checked with the source's EAS before anything is taken for a file (the docs list where files
    stand outside records, api.md 4.6, but not every key)."""
    stack = [(value, "")]
    while stack:
        node, path = stack.pop()
        for key, child in iter_children(node):
            where = f"{path}.{key}" if path else str(key)
            if key in NOT_FILE_KEYS or not isinstance(child, (dict, list)):
                continue
            if isinstance(child, dict) and isinstance(child.get("_id"), int) and not isinstance(child["_id"], bool) \
                    and "_basetype" not in child:
                yield node, key, where
            else:
                stack.append((child, where))


def iter_loose_files(value):
    """(container, key) of every file the backup marked inside `value`."""
    stack = [value]
    while stack:
        node = stack.pop()
        for key, child in iter_children(node):
            if isinstance(child, dict) and LOOSE_FILE in child:
                yield node, key
            elif isinstance(child, (dict, list)):
                stack.append(child)


def loca_label(value):
    if isinstance(value, dict):
        return next((str(v) for v in value.values() if v), "?")
    return str(value) if value else "?"


def mapping_key(mapping):
    return json.dumps([mapping.get("profile"), mapping.get("idTable"), mapping.get("displayname")], sort_keys=True)


def mapping_label(mapping):
    return f"{loca_label(mapping.get('displayname'))} ({mapping.get('profile')})"


def preset_key(preset):
    return json.dumps(preset.get("displayname"), sort_keys=True)


def publish_key(publish):
    return json.dumps([publish.get("system_object_id"), publish.get("collector"), publish.get("publish_uri")])


def is_home_collection(entry, kind):
    """A user's home collection: created by the server with the user, never by a client."""
    return kind == "collection" and (entry.get(kind) or {}).get("type") == "user"


def is_file_list(value):
    return (isinstance(value, list) and value and isinstance(value[0], dict)
            and ("versions" in value[0] or "original_filename" in value[0]))


def iter_file_entries(record):
    """Every file entry in a record (top-level file fields and file fields inside nested rows)."""
    stack = [record.get(record.get("_objecttype")) or {}]
    while stack:
        obj = stack.pop()
        for value in obj.values():
            if is_file_list(value):
                yield from value
            elif isinstance(value, list):
                stack.extend(v for v in value if isinstance(v, dict))


@functools.lru_cache(maxsize=16)
def url_parts(url):
    """urlsplit of the few URLs asked again for every file (the source's own)."""
    return urllib.parse.urlsplit(url)


def is_source_file_url(url, source_url):
    """A download URL of the source instance itself (not an upstream URL of a leave-on-remote file)."""
    own, parts = url_parts(source_url), urllib.parse.urlsplit(url)
    return parts.netloc == own.netloc and parts.path.startswith(API_BASE + "/eas/")


def is_remote_file(entry, source_url, flavour):
    """Files stored "leave on remote" are never packed. fylr marks none of them explicitly, but with
    files_real_url their original's URL is the upstream one instead of the source's own download route."""
    if entry.get("leave") or entry.get("is_remote") or entry.get("remote"):
        return True
    if flavour != "fylr":
        return False   # easydb 5 serves every file from its own EAS
    url = ((entry.get("versions") or {}).get("original") or {}).get("url") or ""
    return bool(url) and not is_source_file_url(url, source_url)


def version_time(record):
    """When a record version was saved (epoch seconds), from the keys both flavours send with history."""
    for key in ("_last_modified", "_created"):
        with contextlib.suppress(ValueError):
            if record.get(key):
                return datetime.datetime.fromisoformat(str(record[key]).replace("Z", "+00:00")).timestamp()
    return float("-inf")


def history_batches(rows, size):
    """Index rows in time order cut into batches of at most `size` that never hold a record twice."""
    batch, seen = [], set()
    for row in rows:
        sysid = row[2]
        if len(batch) >= size or sysid in seen:
            yield batch
            batch, seen = [], set()
        batch.append(row)
        seen.add(sysid)
    if batch:
        yield batch


def unique_key_columns(table):
    """The column names of each unique key of a datamodel table."""
    names = {c.get("column_id"): c.get("name") for c in table.get("columns") or []}
    return [[c.get("column_name_hint") or names.get(c.get("column_id")) for c in key.get("columns") or []]
            for key in table.get("unique_keys") or []]


def unique_values(body, keys):
    """Per unique key the values a record version holds, as one text (None: a column is empty, and an empty
    column holds nothing). Sorted keys: equal values give equal texts."""
    out = []
    for columns in keys:
        values = [body.get(c) for c in columns]
        out.append(None if None in values else json.dumps(values, sort_keys=True, ensure_ascii=False))
    return out


def replay_steps(rows, parents):
    """The versions of a history replay (index rows in time order: stamp, version, sysid, offset, _id,
    unique values) as steps whose versions may go to the target together and in any order: each version comes a step
    after the one that must be there first -
      * its record's previous version;
      * for a unique value it takes, the version with which the record holding it before let it go;
      * every record above it in the tree as it stood then, at the version it had then (a parent moved
        later, or not yet, could otherwise close a loop in the tree for as long as two steps are apart).
    A step holds a record at most once. Batches in time order (history_batches) began anew whenever a
    record came again: 75 steps of one request for the 1,663 versions of orte in the benchmark; steps as
    long as these chains are 10, and the batches of a step go out side by side."""
    step_of, parent_of, held, let_go, steps = {}, {}, {}, {}, []
    for row in rows:
        _, version, sysid, _, oid, values = row
        step = step_of.get(sysid, 0)
        before = held.get(sysid) or [None] * len(values)
        for key, (old, new) in enumerate(zip(before, values)):
            if new is not None and new != old:
                step = max(step, let_go.get((key, new), 0))
        parent = parents.parent_sysid(oid, version)
        above, seen = parent, set()
        while above is not None and above not in seen:
            seen.add(above)
            step = max(step, step_of.get(above, 0))
            above = parent_of.get(above)
        step += 1
        for key, (old, new) in enumerate(zip(before, values)):
            if old is not None and old != new:
                let_go[(key, old)] = max(let_go.get((key, old), 0), step)
        held[sysid], step_of[sysid], parent_of[sysid] = values, step, parent
        if len(steps) < step:
            steps.append([])
        steps[step - 1].append(row)
    return steps


############################################################################## Restore engine

# Where a fylr base config must never be overwritten by a restore (releases 6.7.0).
CONFIG_NEVER_RESTORED = ("default_locations", "license", "logging", "purge")

# easydb 5 base config -> fylr base config (parameters.md 9): (E5 key, E5 field path, fylr path)
E5_CONFIG_MAP = (
    ("system", ("logo",), ("appearance", "logo")),
    ("system", ("login.internet", "value"), ("login", "guest")),
    ("system", ("login.welcome_info", "message"), ("login", "info")),
    ("system", ("login.welcome_text", "value"), ("login", "label")),
    ("system", ("login.forgotten_password_process", "show_in_login_dialog"), ("password", "showforgot")),
    ("system", ("login.password_policy", "hint"), ("password", "hint")),
    # not in the documented table (which says it is incomplete): publish records need their collectors,
    # and easydb 5's collector items have fylr's shape (internalname, displayname, display_format, logo)
    ("system", ("publish.collectors", "collectors"), ("publish", "collectors")),
)

# Event types fylr knows (parameters.md 6.3), as exact names and prefixes; TASK* is always refused.
FYLR_EVENT_TYPES = frozenset({
    "BACKUP_DONE", "BACKUP_FAILED", "BASE_CONFIG_UPDATE", "BASE_CONFIG_ERROR", "DATAMODEL_COMMIT",
    "CUSTOM_DATA_TYPE_UPDATER", "CUSTOM_DATA_TYPE_UPDATER_ERROR", "EMAIL_SENT", "EMAIL_SENT_FAILED",
    "FILE_METADATA", "FILE_METADATA_ERROR", "FILE_PRODUCE", "FILE_PRODUCE_ERROR", "FILE_DELETE",
    "FILE_DELETE_ERROR", "FILE_MOVE", "FILE_MOVE_ERROR", "NOTIFICATION_SCHEDULER_FAILED", "OBJECT_INSERT",
    "OBJECT_UPDATE", "OBJECT_DELETE", "OBJECT_UNDELETE", "OBJECT_PURGE", "OBJECTTYPE_UPDATE",
    "COLLECTION_INSERT", "COLLECTION_UPDATE", "COLLECTION_DELETE", "COLLECTION_UPLOAD", "JANITOR",
    "JANITOR_ERROR", "WEBHOOK", "WEBHOOK_ERROR", "INDEX_SWITCH", "DETAIL_VIEW", "SEARCH", "FRONTEND_ERROR",
    "ASSET_DOWNLOAD_CONFIRMATION_MESSAGE", "FILE_DOWNLOAD", "FILE_DOWNLOAD_ERROR", "OBJECT_DOWNLOAD",
    "EXPORT_DOWNLOAD", "EXPORT_DOWNLOAD_ERROR", "USER_LOGIN", "USER_LOGIN_FAILED", "USER_LOGOUT"})
FYLR_EVENT_PREFIXES = ("LICENSE_", "USER_", "GROUP_", "POOL_", "TAG_", "MESSAGE_", "TRANSITION_", "MAPPING_",
                       "OBJECT_INDEX", "REINDEX_", "EXPORT_", "FILE_UPLOAD", "LDAP_", "SAML_", "PLUGIN")
# Top-level record keys a POST /db may carry (OAS DbObject, api.md 6.6). What the backup keeps beside them
# (_created, _last_modified, _latest_version_deleted_at) is the server's to set: deleted records are trashed.
RECORD_WRITE_KEYS = frozenset({"_objecttype", "_mask", "_system_object_id", "_uuid", "_owner", "_tags",
                               "_comment", "_create_user"})
PROGRESS_FILE_SECONDS = 2   # progress.json (a snapshot for operators; the ledger is the truth) at most this often
# Errors that mean "this was stored already" when a chunk that was in flight is sent again.
ALREADY_STORED_CODES = frozenset({"DatabaseUniqueKeyViolation", "VersionMismatch", "UserDuplicateLogin"})
PASSWORDLESS_USER_TYPES = frozenset({"ldap", "sso", "saml", "email"})


def fylr_knows_event(event_type):
    if event_type.startswith("TASK"):
        return False
    return event_type in FYLR_EVENT_TYPES or event_type.startswith(FYLR_EVENT_PREFIXES)


RENAME_CLASS = re.compile(r"^[A-Za-z0-9_-]+$")


def parse_rename_versions(text):
    """'<class>.<version>:<new>[,...]' -> {(class, version): new}; an empty new version drops the rendition
    (parameters.md 8.1). The one reader of this format: command line, ledger and the page's prefill."""
    rows = []
    for term in (t.strip() for t in (text or "").split(",")):
        if not term:
            continue
        left, colon, new = term.partition(":")
        cls, dot, version = left.partition(".")
        if not colon or not dot:
            raise FylrmigError(f"{term!r} is not <class>.<version>:<new version>")
        rows.append((cls.strip(), version.strip(), new.strip()))
    return rename_version_rows(rows)


def rename_version_rows(rows):
    """[(class, version, new version)] -> {(class, version): new}: the one check of a rename list, whether
    it came as text or as the rows of the page's table."""
    renames = {}
    for cls, version, new in rows:
        if not RENAME_CLASS.match(cls):
            raise FylrmigError(f"file class {cls!r}: letters, digits, '_' and '-' only")
        if not version:
            raise FylrmigError(f"{cls}: the version to rename is missing")
        for part in (version, new):
            if re.search(r"[:,\s]", part):
                raise FylrmigError(f"version name {part!r} may not contain ':', ',' or spaces")
        if (cls, version) in renames:
            raise FylrmigError(f"{cls}.{version} is renamed twice")
        renames[(cls, version)] = new
    return renames


def format_rename_versions(renames):
    return ",".join(f"{cls}.{version}:{new}" for (cls, version), new in renames.items())


def restore_phase(meta):
    """The progress phase of a payload (its payload_info or envelope): its import type, records by
    objecttype (the names a backup's phases have)."""
    kind = meta.get("import_type") or ""
    return f"db/{meta.get('objecttype')}" if kind == "db" else kind


def payload_group(name):
    """Payloads of one group (same type, objecttype, version, level; differing only in batch) hold
    independent entries and may be sent in parallel."""
    return re.sub(r"^\d+__|__batch_\d+(\.json(\.gz)?)$", "", name)


def record_waves(run):
    """The groups of a run of record payloads as waves that go out one after the other, the groups of a
    wave side by side: the n-th group of every objecttype in the n-th wave (all first versions before the
    second ones, as backup-format.md 5 step 9 orders them). An objecttype's groups (versions, levels,
    replay steps) keep their order, and nothing of one objecttype waits for another's: links between them
    are deferred lookups (4.5) that the target resolves whenever their record arrives. With --max-parallel
    4 a restore of 20,000 records drained its connections at 22 group ends instead of 10, and a group of one
    or two chunks left the others idle. Kept one group per wave: soft-deleted records (each objecttype's
    are posted and trashed before any live record may link to them, SourceCatalog.record_sources) and an
    older backup's history groups (their chunks go one after the other)."""
    groups = [payload_group(members[0]).split("__") for members in run]   # db, objecttype[, deleted][, ...]
    deleted = [parts[2:3] == ["deleted"] for parts in groups]
    if len(run) == 1 or any("__history_" in members[0] for members in run) or \
            deleted != sorted(deleted, reverse=True) or min(map(len, groups)) < 2:
        return [[members] for members in run]
    waves, chains = [[members] for members, gone in zip(run, deleted) if gone], {}
    for members, parts, gone in zip(run, groups, deleted):
        if not gone:
            chains.setdefault(parts[1], []).append(members)
    start = len(waves)
    for chain in chains.values():
        for number, members in enumerate(chain):
            if start + number == len(waves):
                waves.append([])
            waves[start + number].append(members)
    return waves


def payload_of_key(key):
    """The payload a restore chunk's ledger key (post/<payload>/<index>) belongs to."""
    return key.split("/")[1]


def payload_groups(names):
    """Consecutive payloads of the same group, in manifest order."""
    group, members = None, []
    for name in names:
        if members and payload_group(name) != group:
            yield members
            members = []
        group = payload_group(name)
        members.append(name)
    if members:
        yield members


@dataclasses.dataclass
class ReadyChunk:
    """A restore chunk made ready to send: its ledger key, the prepared entries and their encoded body
    (done: the ledger had it done already, nothing to send)."""
    key: str
    kind: str
    envelope: dict
    items: int
    prepared: list = None
    data: "EncodedBody" = None
    done: bool = False
    in_flight: bool = None   # a record chunk's row is marked running when it is prepared: its earlier state


class EncodedBody(collections.namedtuple("EncodedBody", "data sha256")):
    """A request body and its sha256 (for the ledger), both made by the helper that prepares the chunk:
    hashed after the answer came, it kept the main thread from sending the next chunk 0.3 ms a chunk."""
    __slots__ = ()

    @classmethod
    def of(cls, data):
        return cls(data, sha256_bytes(data))


class Pacer:
    """Gives a helper thread its turns: one piece of CPU work each time the main thread is about to wait
    (a request on its way, or the main thread waiting for the helper itself). A helper that works
    whenever it can takes the GIL in the main thread's short steps between two requests, several sqlite
    calls each, and every handover costs the main thread a switch interval: the target waited 5.2 ms
    between two chunks of a restore (median, 373 chunks, one worker), 2.1-2.4 ms when paced."""

    def __init__(self, patience=0.05):
        self._turns, self.patience = 0, patience   # patience: a helper never waits longer than this
        self._changed = threading.Condition()

    def turn(self):
        with self._changed:
            self._turns += 1
            self._changed.notify_all()

    def current(self):
        with self._changed:
            return self._turns

    def wait_for_turn(self, seen):
        """Returns the turn to pass to the next call, once there is one after `seen` (or patience ran out)."""
        with self._changed:
            self._changed.wait_for(lambda: self._turns != seen, self.patience)
            return self._turns


def prepared_ahead(chunks, depth, pacer=None, each_turn=None):
    """Run the `chunks` generator in a thread of its own, at most `depth` items ahead of the consumer, so
    preparing (CPU, file uploads) overlaps with sending; its errors reach the consumer. The generator
    is advanced in the pacer's turns; without one, each item the consumer takes is a turn. `each_turn()`
    runs first in every turn (the Bookkeeper's writes: one helper thread does both)."""
    queue, stop, end = collections.deque(), threading.Event(), object()
    ready = threading.Condition()   # the consumer waits on it for an item
    own_pacer = pacer is None
    pacer = pacer or Pacer(patience=0.2)
    iterator, first = iter(chunks), pacer.current()

    def produce():
        turn = first
        try:
            while True:
                turn = pacer.wait_for_turn(turn)
                if stop.is_set():
                    return
                if each_turn is not None:
                    each_turn()
                if len(queue) >= depth:
                    continue   # no room: the next turn
                item = next(iterator, end)
                with ready:
                    queue.append(item)
                    ready.notify_all()
                if item is end:
                    return
        except BaseException as exc:   # handed over to the consumer, which raises it
            with ready:
                queue.append(exc)
                ready.notify_all()

    thread = threading.Thread(target=produce, daemon=True, name="fylrmig-prepare")
    thread.start()
    try:
        while True:
            with ready:
                if not queue:
                    pacer.turn()   # waiting for the helper: its turn
                while not queue:
                    ready.wait(0.2)
                item = queue.popleft()
            if own_pacer:
                pacer.turn()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        pacer.turn()
        thread.join()


class Bookkeeper:
    """Ledger rows of chunks the target answered, written in the next turn of the helper that prepares the
    chunks (prepared_ahead runs write_queued() at each turn, before it prepares), while the next chunk is
    on its way: only a chunk's 'running' row must precede its request (a row still 'running' makes a
    continued run look the chunk up in the target first, DESIGN.md). flush() before anything reads those
    rows (the next group, the trash step, the end of the job). later() only queues: waking a thread there
    took the GIL from the main thread between two chunks (the wait between two chunks 2.09 -> 1.00 ms).
    No thread of its own: two helpers woken by the same turn took the GIL from each other while the target
    worked (fylrmig's wall time minus the target's CPU 0.1-0.6 s less in 6 of 6 pairs, 20,000 records)."""

    def __init__(self):
        self._queued, self._running, self._error = collections.deque(), 0, None
        self._idle = threading.Condition()

    def later(self, write):
        if self._error is not None:
            raise self._error   # an earlier write's error ends the job here
        self._queued.append(write)

    def release(self, value):
        """Let go of a sent chunk's entries in the helper's turn (held by the queued no-op until then):
        freeing 100 records' dicts cost the main thread 0.6 ms between two requests."""
        self._queued.append(lambda: value)

    def _take_queued(self):
        """Under self._idle: later() appends meanwhile (a deque's append and popleft are atomic)."""
        return [self._queued.popleft() for _ in range(len(self._queued))]

    def _write(self, writes):
        try:
            for write in writes:
                write()
        except BaseException as exc:   # the job ends: raised by the main thread's next later() or flush()
            self._error = exc

    def write_queued(self):
        """The helper's turn: what is queued now is written."""
        with self._idle:
            writes = self._take_queued()
            self._running = len(writes)
        self._write(writes)
        with self._idle:
            self._running = 0
            self._idle.notify_all()

    def flush(self):
        """Every queued write done when it returns: what the helper has begun is waited for, the rest is
        written right here (the main thread waits anyway; a handover to the helper cost more)."""
        with self._idle:
            while self._running and self._error is None:
                self._idle.wait(0.05)
            writes = self._take_queued() if self._error is None else []
        self._write(writes)
        if self._error is not None:
            raise self._error


class TakeWhile:
    """Items of a shared iterator while they pass a test; the first that does not stays for the next taker."""

    def __init__(self, iterator):
        self.iterator, self.held = iterator, []

    def take(self, test):
        while True:
            item = self.held.pop() if self.held else next(self.iterator, None)
            if item is None:
                return
            if not test(item):
                self.held.append(item)
                return
            yield item


class Preflight:
    """What a restore proves before its first write to the target, so that nothing irreversible (a purge)
    happens on inputs that would stop it half-way: no link leads out of the backup folder; the datamodel
    and base config parse; the target lets this login purge; one file URL answers as the target will
    fetch it; every payload is inside the folder, intact (sha256), parses, and its packed files exist.
    Payloads are read one at a time, so memory stays flat however large the backup."""

    def __init__(self, job):
        self.job, self.folder, self.args = job, job.folder, job.args
        self.file_entry = None

    def run(self):
        started = now()
        link = self.folder.links_out()
        if link:
            raise FylrmigError(f"{link} is a symbolic link that leads out of the backup folder: refused")
        self._inputs()
        if self.job.mode == "purge":
            self._purge_allowed()
        elif self.job.mode == "plain":
            self._warn_when_not_empty()
        count, size, packed = self._payloads()
        self._file_url()
        self.job.log.info("preflight: %d payloads (%s) and %d packed files checked in %.1f s", count,
                          human_size(size), packed, now() - started)

    def _inputs(self):
        for kind, path in (("datamodel", self.job.datamodel_file), ("base_config", self.job.base_config_file)):
            if not path:
                continue
            try:
                value = read_json(path)
            except (OSError, ValueError, EOFError) as exc:
                raise FylrmigError(f"--{kind.replace('_', '-')}: {path} is not readable JSON "
                                   f"({type(exc).__name__})") from None
            if not isinstance(value, dict) or (kind == "datamodel" and not isinstance(value.get("schema"), dict)):
                raise FylrmigError(f"--{kind.replace('_', '-')}: {path} is not a {kind.replace('_', ' ')} "
                                   "(a JSON object" + (" with a schema)" if kind == "datamodel" else ")"))

    def _purge_allowed(self):
        """Only the system:root user may purge, and only where the base config allows it (api.md 5)."""
        api = self.job.api
        session = api.get("/user/session") or {}
        reference = ((session.get("user") or {}).get("user") or {}).get("reference")
        if reference != "system:root":
            raise FylrmigError(f"--purge needs the target's system:root user; {api.login!r} is not it")
        purge = (((api.get("/config") or {}).get("system") or {}).get("config") or {}).get("purge") or {}
        if purge.get("allow_purge") is False:
            raise FylrmigError(f"{api.url} does not allow purging (base config system.purge.allow_purge is off)")

    def _warn_when_not_empty(self):
        """No Purge into a target that holds records: allowed (a target set up by hand may), but said, with
        what it means: records the target holds already are found by their system object id and skipped."""
        held = int((self.job.api.post("/search", {"offset": 0, "limit": 1, "format": "short"}) or {}).get("count") or 0)
        if held:
            self.job.log.warning("the target holds %d records already (No Purge): records of the backup it holds "
                                 "are found by their system object id and not sent again", held)

    def _payloads(self):
        info = self.job.manifest.get("payload_info") or {}
        count = size = packed = 0
        for name in self.job.manifest["payloads"]:
            self.job._check_cancel()
            expected = info.get(name) or {}
            size += expected.get("bytes", 0)
            count += 1
            if self._digest_is_enough(expected):
                read_payload_bytes(self.folder, name, expected)
                continue
            envelope = load_payload(self.folder, name, expected)
            if envelope["import_type"] == "db":
                packed += self._packed_files(name, envelope["objects"])
        return count, size, packed

    def _digest_is_enough(self, expected):
        """Before a purge every payload is parsed: one written broken (its sha256 rewritten to match) must
        stop the restore while the target still holds its data. Without a purge nothing irreversible
        follows, and a sha256 fylrmig recorded proves the very bytes it wrote, which were JSON then: such a
        payload is parsed when it is restored (load_payload, again), not here as well (a tenth of a 20,000
        record restore), unless this check needs its entries: packed files, or a file entry whose URL to try."""
        manifest = self.job.manifest
        if self.job.mode == "purge" or not (expected.get("sha256") and "fylrmig_format" in manifest):
            return False
        if expected.get("import_type") != "db":
            return True
        return not manifest.get("include_files") and not (self.args.file_api and self.file_entry is None)

    def _packed_files(self, name, records):
        found = 0
        for entry in iter_payload_files_of(records):
            for version in (entry.get("versions") or {}).values():
                if isinstance(version, dict) and version.get("path"):
                    if not os.path.isfile(self.folder.member(version["path"])):
                        raise FylrmigError(f"broken backup: {version['path']} (named in {name}) is missing")
                    found += 1
            if self.file_entry is None and not entry.get("leave") and not self.job.files.packed_path(entry):
                self.file_entry = entry
        return found

    def _file_url(self):
        """One file the target will fetch (or fylrmig, with put) is fetched now: an expired signature or a
        wrong access token shows before the purge, not after it."""
        if not self.args.file_api or self.file_entry is None:
            return
        entry = self.file_entry
        url = self.job.files.url((self.job.files.source_version(entry)[1] or {}).get("url"))
        if not url:
            return
        downloader = self.job.files.source_downloader()
        try:
            downloader._with_retries("GET", url, lambda: downloader._send("GET", url, auth=False, stream=True).close())
        except ApiError as exc:
            problem = (f"the source's {file_label(entry)} answers HTTP {exc.status}"
                       f"{self.job.files.signature_hint(entry, exc)}")
            if exc.status in (401, 403) or not self.args.upload_ignore_files_with_errors:
                raise FylrmigError(problem) from None
            self.job.log.warning("%s (files that fail are left out: --upload-ignore-files-with-errors)", problem)


class RestoreJob(JobBase):
    """`fylrmig restore`: writes a backup folder into a fylr target, every posted chunk and uploaded file a
    ledger row, so a continued run sends only what the target does not hold yet."""

    kind = "restore"

    @staticmethod
    def folder_path(args):
        return os.path.dirname(os.path.abspath(args.manifest))

    def __init__(self, args, ledger, cancel_event=None, interactive=False, logger=None):
        super().__init__(args, ledger, cancel_event, interactive, logger)
        self.manifest = None
        self.counters = {"skipped_events": {}, "file_errors": 0, "duplicate_refs": 0, "files": 0}
        self._guard = threading.Lock()
        self.sender, self.files, self.target_ids = ChunkSender(self), FileUploader(self), TargetIds(self)
        self.basetypes, self.records, self.events = BasetypeWriter(self), RecordWriter(self), EventMapper(self)
        self.extras = InstanceExtras(self)

    # -- preparing

    def validate(self):
        a = self.args
        cont = getattr(a, "continue")
        if a.purge and cont:
            raise FylrmigError("--purge and --continue are mutually exclusive")
        if cont and (a.base_config or a.datamodel):
            raise FylrmigError("--base-config and --datamodel are not allowed with --continue")
        if a.chunk_size > 1000:
            raise FylrmigError(f"--chunk-size {a.chunk_size} is above the maximum of 1000")
        if a.file_api.startswith("rput_bulk") and a.upload_ignore_files_with_errors:
            raise FylrmigError("--upload-ignore-files-with-errors is not available with --file-api " + a.file_api)
        try:
            self.renames = parse_rename_versions(a.rename_versions)
        except FylrmigError as exc:
            raise FylrmigError(f"--rename-versions: {exc}") from None
        self.manifest = self.folder.load_manifest()
        complete, state = backup_completeness(self.manifest)
        if not complete and not a.allow_incomplete:
            raise FylrmigError(f"{state}: restore it anyway with --allow-incomplete")
        if a.include_password and not self.manifest.get("has_passwords"):
            raise FylrmigError("--include-password: the backup holds no password hashes (has_passwords is false)")
        if a.upload_versions and self.manifest.get("include_files") == "original":
            raise FylrmigError("--upload-versions needs the renditions, but this backup packed originals only "
                               "(--include-files=original)")
        missing = [n for n in self.manifest["payloads"] if not os.path.isfile(self.folder.member(n))]
        if missing:
            raise FylrmigError(f"broken backup: payload {missing[0]} listed in the manifest is missing"
                               + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        self.source_flavour = (self.manifest.get("source_instance") or {}).get("flavour", "fylr")
        self.include_events = parse_event_filter(a.include_events)

    def setup(self):
        a = self.args
        return {"server": split_server_url(a.server), "manifest_sha256": sha256_file(self.folder.manifest_path),
                "file_api": a.file_api, "file_version": a.file_version, "upload_versions": a.upload_versions,
                "rename_versions": a.rename_versions, "include_events": a.include_events,
                "include_password": a.include_password, "include_deleted_linked": a.include_deleted_linked,
                "chunk_size": a.chunk_size, "max_count": a.max_count}

    def prepare(self):
        """Everything the restore will need is proven before the first write to the target (a purge
        above all): the backup read end to end, the inputs parsed, the target and its rights, a file URL.
        The job row is created last, so a refused start leaves the ledger as it was."""
        self.validate()
        self.api = make_api(self.args, self.cancel_event, self.log, role="the target")
        self.api.connect()
        if self.api.flavour != "fylr":
            raise FylrmigError(f"{self.api.url} is an easydb 5: a restore target must be fylr")
        self.lock.acquire(self.kind)
        job = self._find_job()
        self.datamodel_file = self._input_file("datamodel")
        self.base_config_file = self._input_file("base_config")
        Preflight(self).run()
        self.job_id = self._continue_or_create_job(job, self.original)

    def _find_job(self):
        """The job a --continue resumes (its setup must match), else None; sets the mode and the
        original setup (a continue keeps the first run's datamodel and base config choices)."""
        a = self.args
        job = self._job_to_continue()
        if job:
            self.original = continuable_setup(job)
            self.mode = self.original["mode"]
            return job
        self.mode = "purge" if a.purge else "plain"
        self.original = dict(self.setup(), mode=self.mode, datamodel=a.datamodel, base_config=a.base_config)
        return None

    def _input_file(self, kind):
        """The datamodel / base config file to upload: the given path, '-' for none, or the backup's."""
        given = self.original.get(kind) or ""
        if given == "-" or self.mode not in ("purge", "plain"):
            return None
        path = given or self.folder.member(self.manifest.get(kind) or f"{kind}.json")
        if not os.path.isfile(path):
            if given or kind == "datamodel":
                raise FylrmigError(f"--{kind.replace('_', '-')}: {path} does not exist")
            return None   # restores of backups without a base config entry must work (releases 6.6.2)
        return path

    # -- running

    def _write_end_state(self, state, error):
        with contextlib.suppress(OSError):
            self._write_progress(state, error)
        shutil.rmtree(self.folder.join(".restore-tmp"), ignore_errors=True)

    def _done_summary(self, result):
        return json.dumps(self._summary(), sort_keys=True)

    def _summary(self):
        out = dict(self.counters)
        out["not_restored"] = len(self.ledger.ids(self.job_id, "not_restored"))
        out["chunks"] = self.ledger.chunk_counts(self.job_id)
        return out

    def _run_steps(self):
        if self.mode == "purge":
            self._step("purge", self._purge)
        if self.datamodel_file and self.mode in ("purge", "plain"):
            self._step("datamodel", self._upload_datamodel)
        if self.base_config_file and self.mode in ("purge", "plain"):
            self._step("base_config", self._upload_base_config)
        self._restore_payloads()
        if not self.args.skip_reindex:
            self._step("reindex", self._reindex)

    def _reindex(self):
        self.api.post("/system/reindex", None, blockFrontend="true")

    def _purge(self):
        """purgeall sets the root password to ours, so the login keeps working (parameters.md 2)."""
        self.api.post("/system/purgeall", None, set_password=self.args.password)
        self.api.connect(first_contact=False)   # purge ends every session; /settings answers 503 meanwhile

    def _upload_datamodel(self):
        datamodel = read_json(self.datamodel_file)
        if same_tables(self.api.get("/schema/user/CURRENT"), datamodel["schema"]):
            self.log.info("the target's datamodel is this backup's already (a run stopped after its commit)")
            return
        head = self.api.get("/schema/user/HEAD")
        schema = dict(datamodel["schema"], version=head.get("version"), based_on_version=head.get("based_on_version"))
        for key in ("max_table_id", "max_column_id"):
            schema[key] = max(schema.get(key) or 0, head.get(key) or 0)
        self.api.post("/schema/user/HEAD", schema)
        if datamodel.get("mask"):
            self.api.post("/mask/HEAD", datamodel["mask"])
        if datamodel.get("keys"):
            self.api.post("/l10n/user/HEAD", datamodel["keys"])
        self.api.post("/schema/commit", None, confirm="yes", reindex="skip")

    def _upload_base_config(self):
        config = read_json(self.base_config_file)
        if self.source_flavour == "easydb5":
            unmapped = sorted(set((config.get("system") or {})) - {path[0] for _, path, _ in E5_CONFIG_MAP})
            if unmapped:
                self.not_restored(f"easydb 5 base config settings {', '.join(unmapped)}",
                                   "fylr has no documented equivalent (parameters.md 9)")
            config = convert_e5_config(config)
        system = dict((config.get("system") or {}).get("config") or {})
        for key in CONFIG_NEVER_RESTORED:
            system.pop(key, None)
        body = {"system": {"config": system}}
        if isinstance(config.get("plugin"), dict):
            body["plugin"] = config["plugin"]
        self.files.put_in_loose_files(body)
        self.api.post("/config", body, save="ignore_errors", confirm="yes", reindex="skip")

    # -- payloads

    def _restore_payloads(self):
        names = self.manifest["payloads"]
        self.pacer = Pacer()
        self.api.on_request = self.pacer.turn
        self.bookkeeper = Bookkeeper()
        try:
            self._restore_runs(names)
        finally:
            self.bookkeeper.flush()

    def _restore_runs(self, names):
        info = self.manifest.get("payload_info", {})
        for name in names:   # a phase per payload type (and objecttype), each with its known size
            self.progress.plan(restore_phase(info.get(name) or {}), 0)
        for name in names:
            self.progress.phases[restore_phase(info.get(name) or {})]["total"] += (info.get(name) or {}).get("count", 0)
        self.object_ids = {}
        self.kept_per_type = {}
        self._progress_written = now()
        for run in self._runs(payload_groups(names)):
            self._restore_run(run)

    def _restore_run(self, run):
        """The groups of a run, wave by wave, their chunks prepared by one helper thread."""
        waves = record_waves(run)
        names = [n for wave in waves for members in wave for n in members]
        with contextlib.closing(prepared_ahead(self._prepared_chunks(names), 2 * self.workers(), self.pacer,
                                               self.bookkeeper.write_queued)) as prepared:
            chunks = TakeWhile(prepared)
            for wave in waves:
                self.progress.set_phase(restore_phase(self.manifest.get("payload_info", {}).get(wave[0][0]) or {}))
                members = [n for group in wave for n in group]
                self._restore_group(members, chunks.take(lambda c, m=frozenset(members): payload_of_key(c.key) in m))
                for group in wave:
                    self._after_group(group)

    def _after_group(self, members):
        """progress.json now and then; soft-deleted records trashed once the last group of their source is in."""
        if now() - self._progress_written >= PROGRESS_FILE_SECONDS:
            self._write_progress("running")
            self._progress_written = now()
        info, names = self.manifest.get("payload_info", {}), self.manifest["payloads"]
        source = info.get(members[-1], {}).get("source") or ""
        if not source.endswith("/deleted"):
            return
        of_source = [n for n in names if info.get(n, {}).get("source") == source]
        if of_source[-1] == members[-1]:
            self.records.trash_deleted_records(source, of_source)

    def _runs(self, groups):
        """Consecutive groups of records form one run, prepared by one helper: the next group's first chunks
        are ready when a group ends (a version or level of an objecttype; 86 of them in a 20,000 record
        backup). Preparing a record chunk needs nothing the target answered. Every other group is a run
        of its own (collection object lists need the target's object ids, for one)."""
        run = []
        for members in groups:
            if run and not (self._holds_records(run[-1]) and self._holds_records(members)):
                yield run
                run = []
            run.append(members)
        if run:
            yield run

    def _holds_records(self, members):
        info = (self.manifest.get("payload_info") or {}).get(members[0]) or {}
        return info.get("import_type", "db" if "__db__" in members[0] else None) == "db"

    def _restore_group(self, names, chunks):
        """Chunks of one group are independent and go out in parallel, except the steps of a history
        replay, whose order is the point."""
        try:
            if "__history_" in names[0]:
                for chunk in chunks:
                    self.sender.store_chunk(chunk)
            else:
                self._run_parallel(functools.partial(self.sender.store_chunk, chunk) for chunk in chunks)
        finally:
            self.bookkeeper.flush()

    def _prepared_chunks(self, names):
        """The chunks of a group of payloads, read one payload at a time, each made ready to send (entries
        rewritten for the target, files uploaded, the body encoded once) while earlier ones are sent."""
        info = self.manifest.get("payload_info") or {}
        for name in names:
            envelope = load_payload(self.folder, name, info.get(name, {}))   # checked again right before use
            kind = envelope.get("import_type")
            entries = envelope.pop(IMPORT_TYPE_ARRAYS.get(kind, ""), [])
            size = 0 if kind in WHOLE_SET_KINDS else self.args.chunk_size
            for index, chunk in enumerate(batched(self.records.limit(name, kind, envelope, entries), size)):
                key = f"post/{name}/{index:05d}"
                row = self.ledger.chunk(self.job_id, key)
                if row and row["state"] == "done":
                    yield ReadyChunk(key, kind, envelope, len(chunk), done=True)
                    continue
                self._check_cancel()
                prepared = self._prepare(kind, chunk, envelope)
                ready = ReadyChunk(key, kind, envelope, len(chunk), prepared, self._encoded(kind, prepared))
                if kind == "db":   # its 'running' row written here, in the helper's turn: one commit less
                    ready.in_flight = self.ledger.start_chunk(self.job_id, key) in ("running", "failed")
                    crash_point("chunk-prepared")
                yield ready

    def _prepare(self, kind, entries, envelope):
        """Entries as the target takes them (tags, groups, pools, messages and collections go as the backup
        wrote them)."""
        prepare = {"tags": self.basetypes.prepare_tags, "plugin": self.basetypes.prepare_plugin, "objecttype": self.basetypes.prepare_objecttype,
                   "user": self.basetypes.prepare_user, "collection_objects": self.basetypes.prepare_collection_objects,
                   "event": self.events.prepare_event, "db": self.records.prepare_db, "pool": self.basetypes.prepare_pool,
                   "mapping": self.extras.prepare_mapping, "right_preset": self.extras.prepare_right_preset,
                   "transition": self.extras.prepare_transition, "publish": self.extras.prepare_publish}.get(kind)
        return prepare(entries, envelope) if prepare else entries

    def _encoded(self, kind, prepared):
        return None if kind in ("collection_objects", "plugin", "mapping") else EncodedBody.of(json_bytes(prepared))

    def not_restored(self, what, why):
        """Something of the source the target does not get: said by name in the log, counted in the summary
        and listed on the status page (progress.json)."""
        self.log.warning("not restored: %s: %s", what, why)
        self.ledger.put_ids(self.job_id, "not_restored", {what: why})   # kept across --continue

    def count(self, counter, n=1, key=None):
        """Add to a counter of the summary (`key`: one of a counter's named parts, e.g. an event type)."""
        with self._guard:
            if key is None:
                self.counters[counter] = self.counters.get(counter, 0) + n
            else:
                parts = self.counters.setdefault(counter, {})
                parts[key] = parts.get(key, 0) + n

    # -- progress.json

    def _write_progress(self, status, error=None):
        """The documented progress.json: a snapshot of the ledger for operators and the page."""
        job = self.ledger.job(self.job_id)
        payloads = {}
        for chunk in self.ledger.chunks(self.job_id, "post/"):
            name = payload_of_key(chunk["key"])
            entry = payloads.setdefault(name, {"status": "done", "sent": 0, "chunks": 0})
            entry["chunks"] += 1
            entry["sent"] += chunk["items"] if chunk["state"] == "done" else 0
            if chunk["state"] != "done":
                entry["status"] = "partial"
        steps = {k.split("/", 1)[1]: c["state"] for c in self.ledger.chunks(self.job_id, "step/")
                 for k in [c["key"]]}
        progress = {"fylrmig_progress": 1, "manifest": "manifest.json",
                    "manifest_sha256": json.loads(job["setup"])["manifest_sha256"],
                    "target": {"url": self.api.url, "version": self.api.version, "name": self.api.instance_name},
                    "params": json.loads(job["params"]), "status": status, "started_at": iso(job["started_at"]),
                    "updated_at": iso(now()), "steps": steps, "payloads": payloads,
                    "counters": dict(self.counters, not_restored=self.ledger.ids(self.job_id, "not_restored")),
                    "last_error": error}
        write_json_atomic(self.folder.join("progress.json"), progress)


class ChunkSender(JobPart):
    """One chunk of entries into the target, once: skipped when its ledger row is done; a chunk that may have
    reached the target before (a run killed after sending it, an answer lost on the way) is first reduced to
    what the target does not hold yet (DESIGN.md), then sent, and the ids it got are kept with its row."""

    def store_chunk(self, chunk):
        if chunk.done:
            self.job.progress.add(restore_phase(chunk.envelope), chunk.items, skipped=True)
            return
        # its row was read when it was prepared, and only this job writes it; a record chunk's row is
        # finished while the next chunk is on its way (Bookkeeper)
        self.chunk_of(chunk.key, chunk.items, lambda in_flight: self._send_chunk(chunk, in_flight),
                      phase=restore_phase(chunk.envelope), known_not_done=True, finish_later=chunk.kind == "db",
                      in_flight=chunk.in_flight)
        self.job.target_ids.forget(chunk.kind)   # read again from the ledger, which now holds its ids
        if chunk.kind == "db":
            self.job.bookkeeper.release(chunk.prepared)
            chunk.prepared = chunk.data = None

    def chunk_of(self, key, items, send, phase, known_not_done=False, finish_later=False, in_flight=None):
        """One unit of restore work as a ledger chunk: skipped when done; `send(in_flight)` returns
        (ids, sha256) and learns whether an earlier run may have sent it already (`in_flight` given: its
        row is marked running already; a prepared record chunk a run never sent only costs a continued
        run one lookup)."""
        chunk = None if known_not_done else self.ledger.chunk(self.job_id, key)
        if chunk and chunk["state"] == "done":
            if phase:
                self.job.progress.add(phase, chunk["items"], skipped=True)
            return
        self.job._check_cancel()
        if in_flight is None:
            in_flight = self.ledger.start_chunk(self.job_id, key) in ("running", "failed")
        try:
            ids, digest = self._send_checking(key, send, in_flight)
        except Exception as exc:
            self.ledger.fail_chunk(self.job_id, key, exc)
            raise
        crash_point("chunk-sent")

        def finish():
            self.ledger.finish_chunk(self.job_id, key, items, sha256=digest, ids=ids)
            crash_point("chunk-done")
            if phase:
                self.job.progress.add(phase, items)
        if finish_later:
            self.job.bookkeeper.later(finish)
        else:
            finish()

    def _send_checking(self, key, send, in_flight):
        """send(in_flight); when a write's effect is unknown, the chunk is treated as in flight and sent
        again, so what the target already holds is looked up first (the same retry budget as requests)."""
        for tries in range(self.args.retry_max_count + 1):
            try:
                return send(in_flight)
            except EffectUnknown as exc:
                if tries == self.args.retry_max_count:
                    raise RetriesExhausted(f"{exc} ({tries + 1} times in a row)") from None
                self.log.warning("retry %d/%d of chunk %s: %s; checking the target before sending again",
                                 tries + 1, self.args.retry_max_count, key, exc)
                self.api.retries += 1
                self.api.pause(self.args.retry_sleep_between)
                in_flight = True
        raise AssertionError("unreachable")

    def _send_chunk(self, chunk, in_flight):
        """Send one chunk; a chunk that may have reached the target already is reduced to what is missing
        there first (DESIGN.md), and an 'already stored' answer after a retry is handled the same way."""
        kind, envelope, prepared, data = chunk.kind, chunk.envelope, chunk.prepared, chunk.data
        stored = []   # ids of what the target held already: kept with the chunk like those of what is sent
        if in_flight:
            (prepared, stored), data = self._missing_in_target(kind, envelope, prepared), None
        if not prepared:
            return stored, None
        try:
            response, digest = self._post_repairing(kind, envelope, prepared, data)
        except ApiError as exc:
            if exc.code not in ALREADY_STORED_CODES:
                raise
            prepared, more = self._missing_in_target(kind, envelope, prepared)
            stored += more
            response, digest = self._post_repairing(kind, envelope, prepared) if prepared else ([], None)
        return stored + self._ids_of(kind, envelope, prepared, response), digest

    def _post_repairing(self, kind, envelope, prepared, data=None):
        """Post a chunk; a refusal the migration can mend without losing an entry (an e-mail address
        another user holds already) is mended and the chunk sent again."""
        while True:
            try:
                return self._post(kind, envelope, prepared, data)
            except ApiError as exc:
                if not (kind == "user" and exc.code == "UserDuplicateEmail" and self.job.basetypes.drop_taken_email(prepared, exc)):
                    raise
                data = None   # mended: encoded anew

    def _post(self, kind, envelope, body, data=None):
        """(answer, sha256 of what was sent): the body is encoded once, for the request and the ledger."""
        if kind == "collection_objects":
            answers = [self.api.post(f"/collection/objects/{cid}", {"objects": objects}) for cid, objects in body]
            return answers, sha256_bytes(json_bytes(body))
        if kind == "plugin":
            return [self.job.basetypes.install_plugin(plugin) for plugin in body], sha256_bytes(json_bytes(body))
        if kind == "mapping":   # one mapping per PUT (api.md 6.5)
            return self.job.extras.put_mappings(body), sha256_bytes(json_bytes(body))
        method, path, params = self._post_target(kind, envelope)
        data = data or EncodedBody.of(json_bytes(body))
        # events have no key the target could refuse a second copy by: never resent blindly
        answer = self.api.call(method, path, params=params, json_body=data.data, idempotent=kind != "event")
        return answer, data.sha256

    def _post_target(self, kind, envelope):
        """(method, path, query) of the request that stores a chunk of `kind`."""
        skip_constraints = {"skip_constraints": "true"} if self.args.skip_constraints else {}
        if kind in ("tags", "group", "message"):
            return "POST", f"/{kind}", {}
        if kind in ("pool", "objecttype"):   # a watermark saved with them re-renders what they hold (OAS)
            return "POST", f"/{kind}", {"confirm": "resync"}
        if kind == "right_preset":
            return "POST", f"/right/{envelope['context']}/presets", {}
        if kind in ("transition", "publish"):
            return "POST", {"transition": "/transitions", "publish": "/publish"}[kind], {}
        if kind == "user":
            return "POST", "/user", skip_constraints
        if kind == "collection":
            return "PUT", "/collection/list", {}
        if kind == "event":
            return "POST", "/event/list", {"skip_constraints": "true"}
        return "POST", f"/db/{envelope['objecttype']}", dict(skip_constraints, skip_events="true",
                                                             skip_reverse_nested="true", format="short")

    def _ids_of(self, kind, envelope, sent, response):
        """Source -> target facts to keep with the chunk: target ids of records and of basetype entries
        (for collection object lists and events)."""
        ids = []
        if kind == "db":
            for obj in response or []:
                if obj.get("_system_object_id") is not None:
                    ot = envelope["objecttype"]
                    ids.append(("object", obj["_system_object_id"], f"{ot}/{obj[ot]['_id']}"))
        elif kind in BASETYPE_EVENT_KINDS:
            for entry in response or []:
                ids.append((kind, entry[kind].get("reference"), entry[kind]["_id"]))
        elif kind == "mapping":
            ids += [("mapping", sid, target) for sid, target in response or [] if sid is not None and target]
        return ids

    def _missing_in_target(self, kind, envelope, prepared):
        """(entries still to send, ids of those the target holds) of a chunk that may have been sent."""
        if kind == "db":
            return self.job.records.missing_records(envelope["objecttype"], prepared)
        if kind in ("group", "user", "pool", "message", "collection"):
            existing = self.job.target_ids.refresh(kind)   # kept in the ledger by the refresh itself
            return [e for e in prepared if e[kind].get("reference") not in existing], []
        if kind == "event":
            return self.job.events.missing_events(prepared), []
        if kind == "objecttype":
            return self.job.basetypes.prepare_objecttype(prepared, envelope), []   # settings merge: resend, fresh versions
        if kind == "tags":
            return self.job.basetypes.prepare_tags(prepared, envelope), []   # the set is replaced, with fresh tag versions
        if kind == "right_preset":
            return self.job.extras.presets_not_held(envelope["context"], prepared), []
        if kind == "publish":
            return self.job.extras.publish_not_held(prepared), []
        return prepared, []   # collection object lists replace: sending again is harmless


class BasetypeWriter(JobPart):
    """Basetype entries as the target takes them: tags as their next versions, plugins installed (zip ones
    from their bytes), objecttype settings onto the target's objecttypes, users without the e-mail another
    user holds, collection object lists by the target's collection ids."""

    def __init__(self, job):
        super().__init__(job)
        self._email_holders = {}   # lowercased e-mail -> the first user in the backup's order that has it

    def prepare_tags(self, entries, envelope):
        """Tags keep their ids, and a tag the target holds already (a resent chunk, a target that was not
        purged) is saved as its next version (POST /tags checks tag versions)."""
        stored = {}
        for group in self.api.get("/tags") or []:
            for entry in group.get("_tags") or []:
                tag = entry.get("tag", entry)
                stored[tag.get("_id")] = tag.get("_version") or 1
        out = []
        for group in entries:
            tags = [dict(t, tag=dict(t["tag"], _version=stored.get(t["tag"].get("_id"), 0) + 1))
                    for t in group.get("_tags") or []]
            out.append(dict(group, _tags=tags))
        return out

    def prepare_plugin(self, entries, envelope):
        """url and disk plugins are installed again, zip plugins from their zip file (uploaded first, never
        left on the source: fylr installs only a file it holds); plugins the target found in its plugin
        folder are its own."""
        out = []
        for plugin in entries:
            if plugin.get("auto_added"):
                continue
            if plugin.get("type") == "zip":
                body = self._zip_plugin_body(plugin)
                if body:
                    out.append(body)
                continue
            if plugin.get("type") not in ("url", "disk"):
                self.job.not_restored(f"plugin {plugin.get('name')}", f"type {plugin.get('type')}: install it by hand")
                continue
            out.append({k: plugin[k] for k in ("name", "type", "url", "path", "enabled", "update_policy")
                        if plugin.get(k) is not None})
        return out

    def _zip_plugin_body(self, plugin):
        """The PUT body of a zip plugin, its zip uploaded first; for one the target has installed already a
        body without zip_file (its zip is not sent again; install_plugin only enables it); None for one
        whose zip cannot arrive (said by name)."""
        mark = (plugin.get("zip_file") or {}).get(LOOSE_FILE)
        if mark is None:
            self.job.not_restored(f"plugin {plugin.get('name')}", "the backup holds no zip file of it: install it by hand")
            return None
        if self._installed_plugin(plugin.get("name")) is not None:   # enabled as in the source at install_plugin
            return {k: plugin[k] for k in ("name", "type", "enabled") if plugin.get(k) is not None}
        mark["keep_bytes"] = True
        self.job.files.put_in_loose_files(plugin)
        if not (plugin.get("zip_file") or {}).get("_id"):
            return None   # said by put_in_loose_files
        # the name is read-only (taken from the zip); kept here for the log only
        return {k: plugin[k] for k in ("name", "type", "zip_file", "enabled", "update_policy") if plugin.get(k) is not None}

    def install_plugin(self, plugin):
        """PUT creates a plugin disabled (OAS PluginManageApi): one the source had enabled is enabled by an
        update of the stored plugin. A plugin installed already (by a run killed between the PUT and that
        update, or by hand) is enabled the same way, so a continued run ends as an uninterrupted one."""
        stored = None
        installed_zip = plugin.get("type") == "zip" and "zip_file" not in plugin   # see _zip_plugin_body
        if not installed_zip:
            body = {k: v for k, v in plugin.items() if not (k == "name" and plugin.get("type") == "zip")}
            try:
                stored = self.api.put("/plugin/manage", body)
            except ApiError as exc:
                if exc.code != "PluginDuplicateName":
                    raise
            crash_point("plugin-installed")
        if stored is None:
            self.log.info("plugin %s is installed on the target already", plugin.get("name"))
            stored = self._installed_plugin(plugin.get("name"))
        if plugin.get("enabled") and isinstance(stored, dict) and stored.get("id") and not stored.get("enabled"):
            stored = self.api.post(f"/plugin/manage/{stored['id']}", dict(stored, enabled=True))
        return stored

    def _installed_plugin(self, name):
        """The target's plugin of this name, or None."""
        plugins = (self.api.get("/plugin/manage") or {}).get("plugins") or []
        return next((p for p in plugins if p.get("name") == name), None)

    def prepare_objecttype(self, entries, envelope):
        """Objecttype settings go to the target's objecttype of the same name, as its next version; the XML
        mappings they name by id get the ids the restore gave them, files (a watermark) are uploaded first."""
        current = {o["objecttype"]["name"]: o["objecttype"] for o in self.api.get("/objecttype")}
        out = []
        for entry in entries:
            name = entry["objecttype"]["name"]
            if name not in current:
                self.job.not_restored(f"objecttype {name}", "not in the target's datamodel: its settings are skipped")
                continue
            body = {k: v for k, v in entry.items() if k not in ("_compiled_tags",)}
            settings = self._with_target_mapping_ids(dict(entry["objecttype"]), f"objecttype {name}")
            body["objecttype"] = dict(settings, _id=current[name]["_id"], _version=current[name]["_version"] + 1)
            out.append(self.job.files.put_in_loose_files(body))
        return out

    def _with_target_mapping_ids(self, settings, where):
        """`mapping_*` ids name XML mappings of the source: the target's ids of the restored ones; a mapping
        the restore does not know is left out (with its recipe configs), by name."""
        restored = self.ledger.ids(self.job_id, "mapping")
        for key, value in list(settings.items()):
            if not key.startswith("mapping_") or not isinstance(value, int) or isinstance(value, bool):
                continue
            if str(value) in restored:
                settings[key] = int(restored[str(value)])
            else:
                settings.pop(key)
                settings.pop(f"{key}_recipe_configs", None)
                self.job.not_restored(f"{where} {key}", f"XML mapping {value} is not in the backup")
        return settings

    def prepare_pool(self, entries, envelope):
        return [self.job.files.put_in_loose_files(entry) for entry in entries]

    def prepare_user(self, entries, envelope):
        """Password hashes only when asked for; an e-mail address a user earlier in the backup has is left
        out (fylr keeps one user per address). Chunks are prepared in the backup's order, so the first user
        keeps it even when --max-parallel sends a later chunk first; holders from an earlier run or the
        target's own users are found by drop_taken_email."""
        out = []
        for entry in entries:
            entry = dict(entry)
            if not self.args.include_password or entry["user"].get("type") in PASSWORDLESS_USER_TYPES:
                entry.pop("_password_hash", None)
            email = str(entry["user"].get("email") or "").lower()
            name = entry["user"].get("login") or entry["user"].get("reference")
            if email and self._email_holders.setdefault(email, name) != name:
                self.log.warning("user %s restored without its e-mail %s: an earlier user holds it", name, email)
                entry["user"] = {k: v for k, v in entry["user"].items() if k != "email"}
                self.job.count("emails_dropped")
            out.append(entry)
        return out

    def drop_taken_email(self, entries, exc):
        """fylr keeps one user per e-mail address (409 UserDuplicateEmail), easydb 5 did not: the later
        users keep their login and lose the address, by name in the log."""
        email = str(((exc.body or {}).get("parameters") or {}).get("email") or "").lower()
        hit = [e for e in entries if email and str(e["user"].get("email") or "").lower() == email]
        for entry in hit:
            self.log.warning("user %s restored without its e-mail %s: user %s holds it on the target",
                             entry["user"].get("login") or entry["user"].get("reference"), email,
                             ((exc.body or {}).get("parameters") or {}).get("name"))
            entry["user"] = {k: v for k, v in entry["user"].items() if k != "email"}
            self.job.count("emails_dropped")
        return bool(hit)

    def prepare_collection_objects(self, entries, envelope):
        out = []
        for entry in entries:
            ref = entry["collection"]["lookup:_id"]["reference"]
            target = self.job.target_ids.target_id("collection", ref)
            if target is None and ref.startswith("user:ref:") and not entry["objects"]:
                continue
            if target is None and ref.startswith("user:ref:"):
                self.log.warning("the home collection %s is not in the target (its user was not restored): its "
                                 "%d objects are left out", ref, len(entry["objects"]))
                self.job.count("skipped_collection_objects", len(entry["objects"]))
                continue
            if target is None:
                raise FylrmigError(f"collection {ref!r} is not in the target: restore its collection payload first")
            out.append((target, entry["objects"]))
        return out


class RecordWriter(JobPart):
    """Records as the target takes them (api.md 6.6): only documented keys, links and files resolved; what a
    resent chunk stored already is found by system object id; soft-deleted records go to the trash once
    their last version is in."""

    def trash_deleted_records(self, source, names):
        """Records the source had in its trash go to the target's trash once their last version is posted
        (DELETE /db/<objecttype>, the documented way; a record's deleted state is not a writable key)."""
        ot = source.split("/")[1]
        versions = {}
        info = self.job.manifest.get("payload_info") or {}
        for name in names:
            for entry in load_payload(self.job.folder, name, info.get(name, {}))["objects"]:
                sysid = entry.get("_system_object_id")
                versions[sysid] = max(versions.get(sysid, 0), entry[ot].get("_version", 1))
        restored = self.ledger.ids(self.job_id, "object")
        todo = sorted((s, v) for s, v in versions.items() if str(s) in restored)
        for index, batch in enumerate(batched(todo, self.args.chunk_size)):
            self.job.sender.chunk_of(f"delete/{ot}/{index:05d}", len(batch),
                           lambda in_flight, b=batch: self._trash(ot, b, restored, in_flight), phase=None)

    def _trash(self, ot, batch, restored, in_flight):
        """A record the target holds in its trash already (a chunk in flight, or a No Purge restore into a
        target that holds the backup) is not found by DELETE: those are left out and the rest sent again."""
        if in_flight:
            batch = [(s, v) for s, v in batch if not self._is_trashed(ot, s)]
        try:
            self._send_trash(ot, batch, restored)
        except ApiError as exc:
            if exc.code != "LookupNotFound" or in_flight:
                raise
            self._send_trash(ot, [(s, v) for s, v in batch if not self._is_trashed(ot, s)], restored)
        return [], None

    def _send_trash(self, ot, batch, restored):
        body = [[int(restored[str(s)].partition("/")[2]), v, None] for s, v in batch]
        if body:
            self.api.call("DELETE", f"/db/{ot}", json_body=json_bytes(body), idempotent=False)

    def _is_trashed(self, ot, sysid):
        found = self.api.get(f"/db/{ot}/_all_fields/system_object_id/{sysid}", format="short")
        return any(o.get("_latest_version_deleted_at") for o in found or [])

    def limit(self, name, kind, envelope, entries):
        """--max-count: at most that many live records per objecttype (all versions of the kept ones); a
        sample leaves the soft-deleted ones out."""
        if kind != "db" or not self.args.max_count:
            return entries
        if "__deleted" in name:
            return []
        kept = self.job.kept_per_type.setdefault(envelope["objecttype"], set())
        out = []
        for entry in entries:
            sysid = entry["_system_object_id"]
            if sysid in kept or len(kept) < self.args.max_count:
                kept.add(sysid)
                out.append(entry)
        return out

    def missing_records(self, ot, prepared):
        """The entries whose version the target does not hold yet; the ids of the records it holds are
        noted for the chunk. One search finds what is indexed; a record the search does not show at the
        version wanted (the index lags behind a save moments ago) is read from the database."""
        sysid_of = {id(e): e.get("_system_object_id") or e[ot].get("lookup:_id", {}).get("_system_object_id")
                    for e in prepared}
        stored = self._indexed_versions(ot, list(sysid_of.values()))
        out = []
        for entry in prepared:
            sysid = sysid_of[id(entry)]
            if stored.get(sysid, (0, None))[0] < entry[ot]["_version"]:
                found = self.api.get(f"/db/{ot}/_all_fields/system_object_id/{sysid}", format="short") or []
                stored[sysid] = max(((o[ot]["_version"], o[ot]["_id"]) for o in found), default=(0, None))
            if stored[sysid][0] < entry[ot]["_version"]:
                out.append(entry)
        self.log.info("%d of %d records of this chunk were stored already on the target", len(prepared) - len(out),
                      len(prepared))
        return out, [("object", sysid, f"{ot}/{target}") for sysid, (_, target) in stored.items() if target]

    def _indexed_versions(self, ot, sysids):
        """{system object id: latest version} of the records a search of the target finds."""
        body = {"objecttypes": [ot], "offset": 0, "limit": len(sysids), "format": "short", "include_deleted": True,
                "search": [{"type": "in", "fields": ["_system_object_id"], "in": sysids}]}
        hits = (self.api.post("/search", body) or {}).get("objects") or []
        return {h["_system_object_id"]: (h[ot].get("_version", 0), h[ot].get("_id")) for h in hits if ot in h}

    def prepare_db(self, entries, envelope):
        ot = envelope["objecttype"]
        file_fields = []
        out = [record_for_target(entry, ot, self.args.include_deleted_linked, file_fields) for entry in entries]
        if self.args.file_api or file_fields:
            self.job.files.files_of(out)
        return out


class InstanceExtras(JobPart):
    """XML mappings, right presets, global transitions and publish records (api.md 6.5, 6.10): their ids
    become the target's, and what the target holds already is not created twice (none of them has a
    reference a second POST could be refused by)."""

    def prepare_mapping(self, entries, envelope):
        """(source id, body): the objecttype a mapping serves by its target id (ids differ; its name is in
        the backup)."""
        ot_ids = {o["objecttype"]["name"]: o["objecttype"]["_id"] for o in self.api.get("/objecttype")}
        out = []
        for entry in entries:
            body = {k: v for k, v in entry.items() if not k.startswith("_fylrmig_") and k != "id"}
            name = entry.get("_fylrmig_objecttype")
            if name is not None and name not in ot_ids:
                self.job.not_restored(f"XML mapping {mapping_label(entry)}", f"objecttype {name} is not in the target")
                continue
            if name is not None:
                body["idTable"] = ot_ids[name]
            out.append((entry.get("_fylrmig_source_id"), body))
        return out

    def put_mappings(self, mappings):
        """[(source id, the target's id)] of a chunk of (source id, mapping): one the target holds already
        (same profile, objecttype and name: a resent chunk, a target not purged) is not created twice; PUT
        draws a new id. What the target holds is read once per chunk."""
        held, out = self._target_mapping_ids(), []
        for source_id, mapping in mappings:
            key = mapping_key(mapping)
            if key not in held:
                answer = self.api.call("PUT", "/xmlmapping/mapping", json_body=json_bytes(mapping),
                                       idempotent=False) or {}
                held[key] = answer.get("id")
            out.append((source_id, held[key]))
        return out

    def _target_mapping_ids(self):
        ids = [m.get("id") for p in self.api.get("/xmlmapping/list") or [] for m in p.get("mappings") or []]
        return {mapping_key(self.api.get(f"/xmlmapping/mapping/{i}") or {}): i for i in ids if i is not None}

    def prepare_right_preset(self, entries, envelope):
        out = []
        for entry in entries:
            preset = dict(entry["right_preset"])
            label = f"right preset {loca_label(preset.get('displayname'))} ({envelope['context']})"
            out.append(dict(entry, right_preset=self.target_id_lists(preset, label)))
        return self.presets_not_held(envelope["context"], out)

    def presets_not_held(self, context, presets):
        """Presets have no reference: one the target holds already is known by its display name."""
        held = {preset_key(p.get("right_preset") or {}) for p in self.api.get(f"/right/{context}/presets") or []}
        return [p for p in presets if preset_key(p["right_preset"]) not in held]

    def prepare_transition(self, entries, envelope):
        """Global transitions name users and groups by the target's ids (the OAS shows `_id` only there)."""
        out = []
        for number, entry in enumerate(entries, 1):
            label = f"transition {number} ({entry.get('type')})"
            entry = self.target_id_lists(dict(entry), label)
            who = [self._target_who(w, label) for w in entry.get("who") or []]
            out.append(dict(entry, who=[w for w in who if w]) if "who" in entry else entry)
        return out

    def _target_who(self, who, where):
        for kind in ("user", "group"):
            ref = ((who.get(kind) or {}).get("lookup:_id") or {}).get("reference") if isinstance(who, dict) else None
            if ref is not None:
                target = self.job.target_ids.target_id(kind, ref)
                if target is None:
                    self.job.not_restored(f"{where}: {kind} {ref}", f"the {kind} is not in the target")
                    return None
                return {"_basetype": kind, kind: {"_id": target}}
        return who

    def target_id_lists(self, value, where):
        """`lookup:pool_ids` / `lookup:objecttype_ids` of the backup -> the target's `pool_ids` /
        `objecttype_ids`; an entry the target does not hold is left out, by name."""
        objecttypes = None
        for node in iter_dicts(value):
            for key in [k for k in node if k.startswith("lookup:") and k[len("lookup:"):] in ID_LIST_KINDS]:
                field = key[len("lookup:"):]
                kind, ids = ID_LIST_KINDS[field], []
                if kind == "objecttype" and objecttypes is None:
                    objecttypes = {o["objecttype"]["name"]: o["objecttype"]["_id"] for o in self.api.get("/objecttype")}
                for name in node.pop(key):
                    target = objecttypes.get(name) if kind == "objecttype" else self.job.target_ids.target_id(kind, name)
                    if target is None:
                        self.job.not_restored(f"{where}: {kind} {name}", f"the {kind} is not in the target")
                    else:
                        ids.append(target)
                node[field] = ids
        return value

    def prepare_publish(self, entries, envelope):
        """Publish records of restored objects whose collector the target's base config knows."""
        collectors = self._target_collectors()
        restored = self.ledger.ids(self.job_id, "object")
        out = []
        for entry in entries:
            publish = entry["publish"]
            label = f"publish record of object {publish.get('system_object_id')} ({publish.get('collector')})"
            if str(publish.get("system_object_id")) not in restored:
                self.job.not_restored(label, "the object is not in the target")
            elif publish.get("collector") not in collectors:
                self.job.not_restored(label, "the target's base config has no such collector (publish.collectors)")
            else:
                out.append({"_basetype": "publish", "publish": publish})
        return self.publish_not_held(out)

    def _target_collectors(self):
        config = ((self.api.get("/config") or {}).get("system") or {}).get("config") or {}
        return {c.get("internalname") for c in (config.get("publish") or {}).get("collectors") or []
                if isinstance(c, dict)}

    def publish_not_held(self, entries):
        held = {publish_key(p.get("publish") or {}) for p in self.api.get("/publish") or []}
        return [e for e in entries if publish_key(e["publish"]) not in held]


class EventMapper(JobPart):
    """Events rewritten for the target (parameters.md 6): easydb 5 types mapped, ids replaced by what the
    restore gave the objects, users, files and basetype entries they name; types fylr refuses left out."""

    def prepare_event(self, entries, envelope):
        out = []
        for entry in entries:
            event = self._map_event(entry)
            if event is not None:
                out.append(event)
        return out

    def _map_event(self, entry):
        """easydb 5 types -> fylr types (parameters.md 6.1); types fylr does not know are skipped and
        counted; object ids are rewritten to the restored records."""
        event = dict(entry["event"])
        etype = event.get("type", "")
        if self.job.source_flavour == "easydb5":
            if etype not in E5_EVENT_TYPES:
                return self._skip_event(etype)
            event = map_e5_event(event)
            etype = event["type"]
        if not fylr_knows_event(etype) or (self.job.include_events and etype not in self.job.include_events):
            return self._skip_event(etype)
        refs = entry.get("_fylrmig_refs") or {}
        self._map_object_id(event, refs)
        event["info"] = self._event_info(event["type"], event.get("info"), refs)
        out = {"_basetype": "event", "event": event}
        if isinstance(entry.get("user"), dict):
            if self._target_user_exists(entry["user"]):
                out["user"] = entry["user"]
            else:   # a lookup of a user the target lacks would refuse the whole chunk
                self.job.count("events_without_user")
        return out

    def _target_user_exists(self, wrapper):
        reference = ((wrapper.get("user") or {}).get("lookup:_id") or {}).get("reference")
        return reference is None or self.job.target_ids.target_id("user", reference) is not None

    def _map_object_id(self, event, refs):
        """The top-level object_id names the target's entry: a restored record (by system object id), a
        basetype entry (by the reference the backup noted) or a file (by its source file id)."""
        sysid = event.get("system_object_id") or sysid_of_global_id(event.get("global_object_id"))
        event.pop("global_object_id", None)
        kind = event.get("basetype")
        if kind in BASETYPE_EVENT_KINDS and event.get("object_id") is not None:
            event["object_id"] = self.job.target_ids.target_id(kind, refs.get("object_id"))
        elif kind == "file" and event.get("object_id") is not None:
            event["object_id"] = self._target_file_id(event["object_id"])
        elif sysid:
            event["system_object_id"] = sysid
            target = self._object_id(sysid)   # "<objecttype>/<target _id>"
            event["object_id"] = int(target.partition("/")[2]) if target else None
            if target:
                event["objecttype"] = event.get("objecttype") or target.partition("/")[0]

    def _event_info(self, etype, info, refs):
        """Known ids inside `info` point to the restored files and users, as parameters.md 6.1 lists them:
        a file download names its exporting user (and its export, which is not migrated: null); a download
        confirmation names its files. Everything else in `info` stays as it was."""
        if not isinstance(info, dict):
            return info
        info = dict(info)
        if etype == "FILE_DOWNLOAD":
            if isinstance(info.get("export"), dict):
                info["export"] = dict(info["export"], _id=None)
            if "export_user_id" in info:
                info["export_user_id"] = self.job.target_ids.target_id("user", refs.get("export_user_id"))
        if etype == "ASSET_DOWNLOAD_CONFIRMATION_MESSAGE" and isinstance(info.get("assets"), list):
            info["assets"] = [dict(a, id=self._target_file_id(a.get("id"))) if isinstance(a, dict) else a
                              for a in info["assets"]]
        return info

    def _target_file_id(self, source_id):
        host = (self.job.manifest.get("source_instance") or {}).get("host") or ""
        row = self.ledger.file_row(self.job_id, f"{host}:eas:{source_id}:original", "original")
        return int(row["target_id"]) if row and row["target_id"] else None

    def _skip_event(self, etype):
        self.job.count("skipped_events", key=etype)
        return None

    def _object_id(self, sysid):
        if not self.job.object_ids:
            self.job.object_ids = self.ledger.ids(self.job_id, "object")
        return self.job.object_ids.get(str(sysid))

    def missing_events(self, prepared):
        stamps = sorted(e["event"].get("timestamp") or "" for e in prepared)
        body = self.api.get("/event/list", limit=1000, offset=0, date_from=stamps[0], date_to=stamps[-1])
        objects = body.get("objects", []) if isinstance(body, dict) else body
        seen = {(o["event"].get("type"), o["event"].get("timestamp"), o["event"].get("system_object_id"))
                for o in objects}
        return [e for e in prepared if (e["event"].get("type"), e["event"].get("timestamp"),
                                        e["event"].get("system_object_id")) not in seen]


class TargetIds(JobPart):
    """reference -> target id of the target's basetype entries: from the ledger, else read from the target
    once per run (entries stored by a run that died before its ledger row, present before the restore, or
    made by the target itself, like home collections). No lock is held while the target is asked."""

    def __init__(self, job):
        super().__init__(job)
        self.known, self.refreshed, self.guard = {}, set(), threading.Lock()   # kind -> {reference: id}

    def target_id(self, kind, reference):
        if reference is None:
            return None
        known = self.of_kind(kind)
        if reference not in known:
            with self.job.locks(f"refresh/{kind}"):   # one refresh per kind; the others wait for its answer
                if kind not in self.refreshed:
                    self.refresh(kind)
                    self.refreshed.add(kind)
            known = self.of_kind(kind)
        value = known.get(reference)
        return int(value) if value is not None else None

    def of_kind(self, kind):
        with self.guard:
            if kind not in self.known:
                self.known[kind] = self.ledger.ids(self.job_id, kind)
            return self.known[kind]

    def forget(self, kind):
        """Read again from the ledger next time (a chunk just added ids of this kind)."""
        with self.guard:
            self.known.pop(kind, None)

    def refresh(self, kind):
        """reference -> target id of every entry of a basetype in the target (kept in the ledger). Pages
        advance by what came back, as the server may clip `limit`."""
        path = {"collection": "/collection/list"}.get(kind, f"/{kind}")
        found, offset = {}, 0
        while True:
            page = self.api.get(path, limit=1000, offset=offset)
            found.update({e[kind].get("reference"): str(e[kind]["_id"]) for e in page if e[kind].get("reference")})
            if not page:
                break
            offset += len(page)
        self.ledger.put_ids(self.job_id, kind, found)
        with self.guard:
            self.known[kind] = dict(self.known.get(kind) or {}, **found)
            return self.known[kind]


class FileUploader(JobPart):
    """Files on their way into the target (api.md 6.8): uploaded once per reference across the job (put, rput,
    bulk, renditions with --upload-versions), waited for until the target holds them, failed ones sent again
    or named; also the files that are not record fields, marked by the backup (LooseFileFinder)."""

    def __init__(self, job):
        super().__init__(job)
        self.downloader = None

    def files_of(self, records):
        """Upload the files of a chunk (before the records that use them), wait until the target holds them,
        and link them by target id; with --file-api '' the records are restored without files."""
        holders = list(iter_payload_file_holders(records))
        if not self.args.file_api:
            for container, key in holders:
                container.pop(key, None)
            return
        unique = {}
        for container, key in holders:
            for entry in container[key]:
                unique.setdefault(entry["reference"], entry)
        targets = self._upload_settled(unique)
        for container, key in holders:
            linked = [{"_id": int(targets[e["reference"]]), "preferred": e.get("preferred", False),
                       "name": e.get("name"), "frontend_prefs": e.get("frontend_prefs") or {}}
                      for e in container[key] if targets.get(e["reference"])]
            container[key] = linked

    def _upload_settled(self, unique):
        """{reference: target id} of files the target holds (fetched, not only accepted), failed ones sent
        again up to --retry-max-count times."""
        targets = self._upload_files(unique)
        for tries in range(self.args.retry_max_count + 1):
            failed = self._settle_files(unique, targets)
            if not failed or tries == self.args.retry_max_count:
                break
            self.api.retries += 1
            self.log.warning("retry %d/%d of %d files the target could not fetch, e.g. %s", tries + 1,
                             self.args.retry_max_count, len(failed), file_label(unique[failed[0]]))
            self.api.pause(self.args.retry_sleep_between)
            targets.update(self._upload_files({ref: unique[ref] for ref in failed}))
        return self._handle_failed_files(unique, targets, failed)

    def _upload_files(self, unique):
        """{reference: target id} of the chunk's files handed over to the target (None: left out)."""
        if self.args.file_api.startswith("rput_bulk"):
            return self._upload_bulk(list(unique.values()))
        workers = self.args.max_parallel_upload_files or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return dict(zip(unique, pool.map(self._upload_file_safely, unique.values())))

    def _upload_file_safely(self, entry):
        try:
            return self._upload_file(entry)
        except (ApiError, FylrmigError, OSError) as exc:
            reason = f"{exc}{self.signature_hint(entry, exc)}"
            if not self.args.upload_ignore_files_with_errors:
                raise FylrmigError(f"{file_label(entry)}: {reason}") from None
            self.job.count("file_errors")
            self.ledger.set_file(self.job_id, entry["reference"], "original", "failed", error=reason[:2000])
            self.log.warning("%s left out of its record: %s", file_label(entry), reason)
            return None

    def _upload_file(self, entry):
        """One file (original + renditions with --upload-versions), once per reference across the job. The
        target answers an upload before it holds the bytes: the file is 'running' until _settle_files saw
        it done or failed."""
        ref = entry["reference"]
        with self.job.locks(ref):
            row = self.ledger.file_row(self.job_id, ref, "original")
            if row and row["state"] in ("done", "running"):
                return row["target_id"]
            if row and row["state"] == "failed" and row["target_id"] and self._retry_renditions(entry, row):
                return row["target_id"]
            if row and row["state"] == "failed" and row["target_id"]:
                self._free_reference(row["target_id"], ref)
            target = self._upload_original(entry)
            if self.args.upload_versions or self._manual_renditions(entry):
                self._upload_renditions(entry, target)
            crash_point("file-uploaded")
            self.ledger.set_file(self.job_id, ref, "original", "running", target_id=str(target), error=None)
            return str(target)

    def _retry_renditions(self, entry, row):
        """A file whose original arrived but some of its renditions did not: only those are sent again."""
        info = (self.api.get("/eas", ids=json.dumps([int(row["target_id"])]), format="standard") or {}).get(
            str(row["target_id"])) or {}
        failed = {n for n, v in (info.get("versions") or {}).items() if isinstance(v, dict) and v.get("status") == "failed"}
        if info.get("status") not in ("done", "sync") or not failed:
            return False
        self._upload_renditions(entry, int(row["target_id"]), only=failed)
        self.ledger.set_file(self.job_id, entry["reference"], "original", "running", target_id=row["target_id"],
                             error=None)
        return True

    def _free_reference(self, target_id, ref):
        """A file whose fetch failed keeps its reference on the target, and an upload with that reference
        would be answered with the failed file again: rename it (POST /eas/{fileId}) before retrying."""
        self.api.post(f"/eas/{target_id}", {"reference": f"{ref}:failed:{target_id}"})

    def _settle_files(self, unique, targets):
        """Wait until the target has fetched every file of the chunk (rput answers before it fetches,
        api.md 6.8), bounded by --timeout-min; returns the references of the files that failed."""
        waiting = {ref: targets[ref] for ref in unique if targets.get(ref) and
                   (self.ledger.file_row(self.job_id, ref, "original") or {}).get("state") == "running"}
        failed = []
        deadline, pause = now() + 60 * self.args.timeout_min, 0.05
        while waiting:
            states = self._file_states(waiting.values())
            for ref, target in list(waiting.items()):
                state = states.get(str(target))
                if state in ("done", "sync", "failed"):
                    del waiting[ref]
                    crash_point("file-settled")
                    self.ledger.set_file(self.job_id, ref, "original", "failed" if state == "failed" else "done",
                                         target_id=str(target), error="the target could not fetch it"
                                         if state == "failed" else None)
                    if state == "failed":
                        failed.append(ref)
                    else:
                        self.job.count("files")
            if waiting:
                self._report_files(len(waiting))
                if now() > deadline:
                    raise FylrmigError(f"{len(waiting)} files are still not stored on the target after "
                                       f"{self.args.timeout_min} minutes (--timeout-min), e.g. "
                                       f"{file_label(unique[next(iter(waiting))])}")
                self.job._check_cancel()
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
        return failed

    def _report_files(self, pending):
        """'files: 1,820 done, 12 failed, 60 pending' on a terminal, and every 30 s in the log."""
        counts = self.ledger.file_counts(self.job_id)
        done, failed = counts.get("done", {}).get("files", 0), counts.get("failed", {}).get("files", 0)
        self.job.progress.note(f"files: {done:,} done, {failed:,} failed, {pending:,} pending")

    def _file_states(self, target_ids):
        """{target file id: status} (pending, processing, sync, done, failed) of the files asked for."""
        states = {}
        for batch in batched(sorted(set(map(int, target_ids))), 100):
            answer = self.api.get("/eas", ids=json.dumps(batch), format="standard") or {}
            items = answer.values() if isinstance(answer, dict) else answer
            for info in items:
                states[str(info.get("_id"))] = file_status(info)
        return states

    def _handle_failed_files(self, unique, targets, failed):
        """Failed files stop the job, or with --upload-ignore-files-with-errors are left out of their
        records, each by name; the usable targets are returned."""
        if not failed:
            return targets
        hint = self.signature_hint(unique[failed[0]])
        names = ", ".join(file_label(unique[ref]) for ref in failed[:5]) + (" ..." if len(failed) > 5 else "")
        if not self.args.upload_ignore_files_with_errors:
            raise FylrmigError(f"{plural(len(failed), 'file')} could not be fetched by the target: {names}{hint}")
        for ref in failed:
            self.job.count("file_errors")
            self.log.warning("%s left out of its record: the target could not fetch it%s",
                             file_label(unique[ref]), hint)
        return {ref: target for ref, target in targets.items() if ref not in failed}

    def signature_hint(self, entry, exc=None):
        """Why a fylr source's file URL fails later than at backup time: its x-fylr-signature expired."""
        url = (self.source_version(entry)[1] or {}).get("url") or ""
        signed = "x-fylr-signature=" in url and not self.args.file_api_access_token
        if signed and exc is not None and getattr(exc, "status", None) in (401, 403):
            return ("; the source's file URL signatures (x-fylr-signature) have expired: give "
                    "--file-api-access-token with an access token of the source, or make a fresh backup")
        if signed and exc is None:   # the target does not say why its fetch failed
            return ("; if the source's file URL signatures (x-fylr-signature) have expired, give "
                    "--file-api-access-token with an access token of the source, or make a fresh backup")
        return ""

    def source_version(self, entry):
        """The rendition used as the target's original (--file-version), falling back to the original."""
        versions = entry.get("versions") or {}
        wanted = self.args.file_version or "original"
        if entry.get("leave"):
            wanted = "original"   # a source's remote original is the only thing worth referencing
        if wanted not in versions:
            if wanted != "original":
                self.log.warning("file %s has no version %r, uploading its original", entry["reference"], wanted)
            wanted = "original"
        info = dict(versions.get(wanted) or {})
        info.setdefault("url", entry.get("eas:url"))
        return wanted, info

    def _leave(self, entry):
        if entry.get("keep_bytes"):   # a plugin zip: fylr installs only a file it holds (api.md 6.4)
            return False
        return bool(entry.get("leave")) or self.args.file_api.endswith("leave")

    def url(self, url):
        """--file-api-access-token replaces the signature of the source's own file URLs only: a remote
        (leave) file's upstream URL must never carry the source's token to another host."""
        token = self.args.file_api_access_token
        source = (self.job.manifest.get("source_instance") or {}).get("url") or ""
        if url and token and self.job.source_flavour == "fylr" and is_source_file_url(url, source):
            return with_access_token(url, token)
        return url

    def _filename(self, entry, version, info):
        name = entry.get("eas:filename") or entry.get("original_filename") or "file"
        if version != "original" and info.get("extension"):
            name = name.rsplit(".", 1)[0] + "." + info["extension"]
        return name

    def _manual_renditions(self, entry):
        """An original that does not produce versions has hand-made renditions: they are always uploaded
        and the original stays non-producing (releases 6.34.0)."""
        return entry.get("produce_versions") is False

    def _upload_original(self, entry):
        version, info = self.source_version(entry)
        produce = not (self.args.upload_versions or self._manual_renditions(entry))
        filename = self._filename(entry, version, info)
        path = self.packed_path(entry)
        ref = entry["reference"]
        try:
            if self._leave(entry):
                return self._rput(self.url(info["url"]), filename, ref, leave=True, produce=produce)
            if path:
                return self._put_file(path, filename, ref, produce=produce)
            if self.args.file_api == "put":
                return self._put_from_source(self.url(info["url"]), filename, ref, produce)
            return self._rput(self.url(info["url"]), filename, ref, leave=False, produce=produce)
        except ApiError as exc:
            existing = duplicate_file_id(exc)
            if existing is None:
                raise
            self.job.count("duplicate_refs")
            return existing

    def _upload_renditions(self, entry, target, only=None):
        """The source's renditions as manual renditions of `target` (`only`: these target names)."""
        cls = entry.get("class") or ""
        for name, info in (entry.get("versions") or {}).items():
            if name == "original":
                continue
            new = self.job.renames.get((cls, name), name)
            if not new or (only is not None and new not in only):
                continue   # an empty new name drops the rendition (parameters.md 8.1)
            # named after its original on the target too: a retried original gets renditions of its own
            ref = f"{entry['reference'].rsplit(':', 1)[0]}:{name}:of:{target}"
            path = info.get("path") and self.job.folder.member(info["path"])
            filename = self._filename(entry, name, info)
            try:
                if path and os.path.isfile(path):
                    self._put_file(path, filename, ref, produce=False, version_name=new, id_parent=target)
                else:
                    self._rput(self.url(info.get("url")), filename, ref, leave=self._leave(entry), produce=False,
                               version_name=new, id_parent=target)
            except ApiError as exc:
                if duplicate_file_id(exc) is None:
                    raise

    def _put_file(self, path, filename, ref, produce, version_name=None, id_parent=None):
        params = {"references": json.dumps([ref]), "filenames": json.dumps([filename]),
                  "produce_versions": json.dumps([produce])}
        if version_name:
            params.update(version_names=json.dumps([version_name]), id_parents=json.dumps([id_parent]))
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as fh:
            body = self.api.call("POST", "/eas/put", params=params, files={"files[]": (filename, fh)})
        return body[0]["_id"]

    def _put_from_source(self, url, filename, ref, produce):
        """put: this process downloads from the source and uploads (form label "through browser")."""
        tmp_dir = self.job.folder.join(".restore-tmp")
        os.makedirs(tmp_dir, exist_ok=True)
        if not inside(self.job.folder.path, tmp_dir):
            raise FylrmigError(f"{tmp_dir} leads out of the backup folder: refused")
        tmp = os.path.join(tmp_dir, sha256_bytes(ref.encode())[:32])
        self.source_downloader().download_plain(url, tmp)
        try:
            return self._put_file(tmp, filename, ref, produce)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def source_downloader(self):
        """One client for the source's file URLs (--file-api put and the preflight's probe), made once."""
        with self.job.locks("source-downloader"):
            if self.downloader is None:
                source = (self.job.manifest.get("source_instance") or {}).get("url") or "http://source.invalid"
                self.downloader = Api(source, "", "", insecure=self.args.insecure, role="the source",
                                      retry_max_count=self.args.retry_max_count,
                                      retry_sleep_between=self.args.retry_sleep_between, logger=self.log,
                                      cancelled=self.job.cancel_event.is_set)
            return self.downloader

    def _rput(self, url, filename, ref, leave, produce, version_name=None, id_parent=None):
        if not url:
            raise FylrmigError(f"file {ref} has no URL to fetch")
        params = {"url": url, "filename": filename, "reference": ref, "skip_head_request": "true",
                  "produce_versions": "true" if produce else "false"}
        if leave:
            params["leave"] = "true"
        if version_name:
            params.update(version_name=version_name, id_parent=id_parent)
        return self.api.call("POST", "/eas/rput", params=params)[0]["_id"]

    def _upload_bulk(self, entries):
        """rput_bulk: one request for the files of a chunk (no per-file error stripping in this mode);
        files packed into the backup go up from disk one by one."""
        todo, targets = [], {}
        for entry in entries:
            row = self.ledger.file_row(self.job_id, entry["reference"], "original")
            if row and row["state"] in ("done", "running"):
                targets[entry["reference"]] = row["target_id"]
            elif self.packed_path(entry):
                targets[entry["reference"]] = self._upload_file_safely(entry)
            else:
                if row and row["state"] == "failed" and row["target_id"]:
                    self._free_reference(row["target_id"], entry["reference"])
                todo.append(entry)
        if todo:
            answer = self.api.call("POST", "/eas/rput/bulk", params={"skip_duplicate_reference": "true"},
                                   json_body=[self._bulk_item(entry) for entry in todo])
            for entry, stored in zip(todo, answer):
                target = stored.get("_id")
                if self.args.upload_versions or self._manual_renditions(entry):
                    self._upload_renditions(entry, target)
                targets[entry["reference"]] = str(target)
                self.ledger.set_file(self.job_id, entry["reference"], "original", "running", target_id=str(target),
                                     error=None)
        return targets

    def _bulk_item(self, entry):
        version, info = self.source_version(entry)
        return {"url": self.url(info["url"]), "filename": self._filename(entry, version, info),
                "reference": entry["reference"], "leave": self._leave(entry), "skip_head_request": True,
                "produce_versions": not (self.args.upload_versions or self._manual_renditions(entry))}

    def packed_path(self, entry):
        """The packed file of the rendition uploaded as the original (--include-files), if the backup has it."""
        info = self.source_version(entry)[1]
        path = info.get("path") and self.job.folder.member(info["path"])
        return path if path and os.path.isfile(path) and not self._leave(entry) else None

    def put_in_loose_files(self, value):
        """Upload the files the backup marked in `value` and put the target's file ids where they stood;
        one that cannot be restored (no --file-api, the target could not fetch it) becomes null, by name."""
        marks = list(iter_loose_files(value))
        if not marks:
            return value
        unique = {}
        for container, key in marks:
            unique.setdefault(container[key][LOOSE_FILE]["reference"], container[key][LOOSE_FILE])
        targets = self._upload_settled(unique) if self.args.file_api else {}
        for container, key in marks:
            mark = container[key]
            entry, target = mark[LOOSE_FILE], targets.get(mark[LOOSE_FILE]["reference"])
            if target:
                container[key] = {**{k: v for k, v in mark.items() if k != LOOSE_FILE}, "_id": int(target)}
            else:
                container[key] = None
                self.job.not_restored(f"{entry.get('used_by')}: {file_label(entry)}",
                                   "--file-api is empty" if not self.args.file_api else "the target could not fetch it")
        return value


def same_tables(current, schema):
    """True when a committed schema has the tables and columns of `schema` (by name)."""
    def shape(value):
        return sorted((t.get("name"), sorted(c.get("name") for c in t.get("columns") or []))
                      for t in (value or {}).get("tables") or [])
    return bool(shape(schema)) and shape(current) == shape(schema)


def convert_e5_config(config):
    """easydb 5 base config -> fylr shape; only the documented keys map, the rest is not migrated."""
    system = config.get("system") or {}
    out = {}
    for section, source_path, target_path in E5_CONFIG_MAP:
        value = (config.get(section) or {})
        for part in source_path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            node = out
            for part in target_path[:-1]:
                node = node.setdefault(part, {})
            node[target_path[-1]] = value
    policy = (system.get("login.password_policy") or {}).get("policy")
    if isinstance(policy, list):
        out.setdefault("password", {})["check"] = [{"regexp": p.get("expression")} for p in policy
                                                   if isinstance(p, dict)]
    return {"system": {"config": out}}


def event_basetype(event, flavour):
    """The basetype an event is about once migrated: easydb 5 leaves it out where fylr sets it."""
    if flavour == "easydb5" and event.get("type") in E5_EVENT_TYPES:
        return map_e5_event(event).get("basetype")
    return event.get("basetype")


def map_e5_event(event):
    """parameters.md 6.1: type renamed, basetype set (ids inside info: RestoreJob._event_info)."""
    etype = event["type"]
    event = dict(event, type=E5_EVENT_TYPES[etype])
    if etype in ("ASSET_DOWNLOAD", "ASSET_EXPORT_DOWNLOAD"):
        event["basetype"] = "file"
    elif etype in ("USER_CREATED", "USER_LOGIN", "USER_LOGOUT"):
        event["basetype"] = "user"
    elif etype == "ASSET_DOWNLOAD_CONFIRMATION_MESSAGE":
        event["basetype"] = "message"
    for key in ("ipv4_address", "session_self", "_session"):
        event.pop(key, None)
    return event


def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def file_label(entry):
    """A payload file entry named for a person: source file id, name and URL without its secret parts."""
    source_id = str(entry.get("reference") or "").split(":eas:")[-1].split(":")[0]
    url = ((entry.get("versions") or {}).get("original") or {}).get("url") or entry.get("eas:url") or ""
    return f"file {source_id} ({entry.get('original_filename') or entry.get('eas:filename') or '?'}, " \
           f"{mask_url_credentials(url) or 'no URL'})"


def file_status(info):
    """A file's state with its renditions: failed when one failed, pending while one is under way."""
    status = info.get("status") or "pending"
    versions = info.get("versions") if isinstance(info.get("versions"), dict) else {}
    states = {v.get("status") for v in versions.values() if isinstance(v, dict)}
    if "failed" in states:
        return "failed"
    if states & {"pending", "processing"} and status in ("done", "sync"):
        return "pending"
    return status


def duplicate_file_id(exc):
    """The target id of an EasDuplicateReference error: from its parameters, else from the message
    "Duplicate file reference provided: <ref> with file id <n>" (api.md 6.8)."""
    if not isinstance(exc, ApiError) or not exc.code.startswith("EasDuplicateReference"):
        return None
    params = (exc.body or {}).get("parameters") or {}
    for key in ("file_id", "id", "_id"):
        if str(params.get(key, "")).isdigit():
            return int(params[key])
    match = re.search(r"with file id (\d+)", json.dumps(exc.body))
    return int(match.group(1)) if match else None


def record_for_target(entry, ot, include_deleted_linked=False, file_fields=None):
    """A payload record as POST /db takes it: documented keys only (api.md 6.6), a later version addressing
    its record by system object id, links to soft-deleted or purged records dropped unless asked for.
    The names of file fields met on the way are added to `file_fields` (a list), when given."""
    entry = {k: v for k, v in entry.items() if k in RECORD_WRITE_KEYS or k == ot}
    body = entry[ot]
    if body.get("_version", 1) > 1:
        sysid = entry.pop("_system_object_id")
        entry.pop("_uuid", None)
        body["lookup:_id"] = {"_system_object_id": sysid}
    fields_for_target(body, include_deleted_linked, file_fields)
    return entry


def fields_for_target(obj, include_deleted_linked, file_fields):
    """Links and nested rows rewritten in place: a payload's entries are read from disk for one chunk
    alone, and most values (text, numbers, dates, links without markers) stay as they are."""
    for key, value in obj.items():   # values replaced, no key added or removed: safe while iterating
        kind = value.__class__
        if kind is dict:
            if "_objecttype" in value:
                obj[key] = link_for_target(value, include_deleted_linked)
        elif kind is list and value and value[0].__class__ is dict:
            first = value[0]
            if "eas:url" in first or "reference" in first and "versions" in first:
                if file_fields is not None:
                    file_fields.append(key)
            else:
                for row in value:
                    fields_for_target(row, include_deleted_linked, file_fields)


def link_for_target(link, include_deleted_linked):
    if "_latest_version_deleted_at" not in link and "_purged_or_deferred" not in link:
        return link
    if not include_deleted_linked and (link.get("_latest_version_deleted_at") or link.get("_purged_or_deferred")):
        return None
    return {k: v for k, v in link.items() if k not in ("_latest_version_deleted_at", "_purged_or_deferred")}


def iter_payload_file_holders(records):
    """(container, key) of every file field in payload records (top level and nested rows)."""
    for record in records:
        stack = [record.get(record.get("_objecttype")) or {}]
        while stack:
            obj = stack.pop()
            for key, value in list(obj.items()):
                if isinstance(value, list) and value and isinstance(value[0], dict):
                    if "eas:url" in value[0] or "reference" in value[0] and "versions" in value[0]:
                        yield obj, key
                    else:
                        stack.extend(v for v in value if isinstance(v, dict))


def iter_payload_files_of(records):
    for container, key in iter_payload_file_holders(records):
        yield from container[key]


############################################################################## Check (source vs target)
# `fylrmig check`: a read-only, side by side proof of a migration (rclone check, pgcopydb compare). Both
# instances are read in pages; of every entry only a key is kept, built from what survives a migration
# (references, logins, system object ids and uuids, file names, event types and times), never from ids.
# What a restore never creates is left out on both sides: system users, groups, pools and the system:root
# collection (every instance has its own). Soft-deleted records are not counted on either side (the lists
# hide them). Exit 0 only when nothing of the source is missing; extra entries on the target are listed but
# never fail the check on their own: a target that holds more than the source is normal (No Purge).

CHECK_SIDES = ("source", "target")
SHOWN_ENTRIES = 20            # missing / extra entries named per line; the counts are always complete


def check_api(args, side, logger=None):
    """The Api of one side, logged in; every failure names the side ("target: login as 'root' ... failed")."""
    try:
        api = Api(getattr(args, side), getattr(args, f"{side}_login"), getattr(args, f"{side}_password"),
                  client_id=getattr(args, f"{side}_client_id"), client_secret=getattr(args, f"{side}_client_secret"),
                  insecure=args.insecure, retry_max_count=args.retry_max_count,
                  retry_sleep_between=args.retry_sleep_between, log_network=args.log_network, logger=logger,
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
    check_args(args, "check")
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


############################################################################## Jobs from the page (daemon threads, cancel, continue)

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOG_TIME = "%Y-%m-%d %H:%M:%S UTC"   # one way of writing times everywhere: the page, the list, the logs


@contextlib.contextmanager
def job_log(path, verbose=False, logger=None):
    """Send one job's log to `path` (or standard output when empty) while the job runs. Web jobs get a
    logger of their own, so two jobs running side by side never write into each other's log."""
    logger = logger or log
    if path:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            stream = open_append_nofollow(path)   # a log that is a symlink is refused, never appended to
        except OSError as exc:
            raise FylrmigError(f"cannot write the log {path}: {exc.strerror or exc}") from None
    handler = logging.StreamHandler(stream if path else sys.stdout)
    formatter = logging.Formatter(LOG_FORMAT, LOG_TIME)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    handler.addFilter(SecretFilter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        handler.close()
        if path:
            stream.close()


class SecretFilter(logging.Filter):
    """Last line of defence: whatever a message holds, URL credentials and token values are masked."""

    def filter(self, record):
        record.msg = mask_url_credentials(record.getMessage())
        record.args = ()
        return True


def args_for(kind, values=None):
    """An argparse-like namespace for a job: every parameter's default, overridden by `values` (dest names)."""
    args = argparse.Namespace(**{p.dest: p.default for p in params_for(kind)})
    for key, value in (values or {}).items():
        setattr(args, key, value)
    return args


def command_line(kind, args):
    """The equivalent command line of a job, secrets masked: what the page's jobs write into their log."""
    parts = ["fylrmig", kind]
    for p in params_for(kind):
        value = getattr(args, p.dest)
        if value == p.default:
            continue
        if p.kind == "bool":
            parts.append(p.flag if value else f"{p.flag}=false")
        else:
            shown = MASK if p.secret and value else value
            parts.append(f"{p.flag}={shown!s}" if shown == "" or str(shown).startswith("-") else f"{p.flag} {shown}")
    return " ".join(parts)


# Parameters the page sets in the background (parameters.md 5.1 and 5.2, fylrmig choices).
WEB_FIXED = {
    "backup": {"compression": 9, "max_count": 0},
    "restore": {"skip_constraints": True, "max_parallel_upload_files": 4, "upload_ignore_files_with_errors": True,
                "timeout_min": 15},
}


class JobRunner:
    """Backups and restores started from the page: each runs in a daemon thread on the same engine, ledger
    and backup folders as the command line, and goes on when the browser is closed."""

    def __init__(self, data_dir):
        self.data_dir = os.path.abspath(data_dir)
        self.backups_dir = os.path.join(self.data_dir, "backups")
        os.makedirs(self.backups_dir, exist_ok=True)
        self.ledger = Ledger(os.path.join(self.data_dir, "jobs.sqlite"))
        self.ledger.mark_orphans_interrupted()
        self._threads = {}
        self._lock = threading.Lock()
        self.checks = CheckRunner(self)

    def folder(self, name):
        return BackupFolder(os.path.join(self.backups_dir, check_backup_name(name)))

    def job_args(self, kind, name, values):
        """Form values (dest names, already typed) + the fixed parameters of the page."""
        folder = self.folder(name)
        values = dict(WEB_FIXED[kind], **values)   # a Continue carries the previous run's values
        values["data"] = self.data_dir
        values["log"] = folder.join(f"{kind}.log")
        if kind == "backup":
            values["dir"] = folder.path
        else:
            values["manifest"] = folder.manifest_path
        return args_for(kind, values)

    def start(self, kind, name, values, inline=False):
        """Start a job; returns its thread (None when run inline, as tests do for determinism)."""
        args = self.job_args(kind, name, values)
        key = (name, kind)
        with self._lock:
            if self.running(name, kind):
                raise FylrmigError(f"a {kind} of {name!r} is already running")
            cancel = threading.Event()
            thread = threading.Thread(target=self._run, args=(kind, args, cancel), daemon=True,
                                      name=f"fylrmig-{kind}-{name}")
            self._threads[key] = (thread, cancel)
        with contextlib.suppress(OSError):   # the status page the form redirects to exists at once (the
            os.makedirs(os.path.dirname(args.log), exist_ok=True)   # job's log opens there; it reports errors)
        if inline:
            self._run(kind, args, cancel)
            return None
        thread.start()
        return thread

    def _run(self, kind, args, cancel):
        logger = logging.getLogger(f"fylrmig.jobs.{kind}.{os.path.basename(os.path.dirname(args.log))}")
        logger.propagate = False
        try:
            with job_log(args.log, args.verbose, logger):
                logger.info("fylrmig %s: %s", __version__, command_line(kind, args))
                try:
                    run_job(kind, args, self.ledger, cancel, logger)
                except Cancelled:
                    logger.info("%s cancelled from the page: it stopped after its current chunk; Continue "
                                "finishes it", kind)
                except FylrmigError as exc:
                    logger.error("%s failed: %s", kind, exc)
                except Exception as exc:   # a bug must not kill the server; the job shows failed with the reason
                    logger.exception("%s failed unexpectedly: %s", kind, exc)
                    self._mark_failed(kind, args, f"internal error: {type(exc).__name__}: {exc}")
        except FylrmigError as exc:   # its log could not be opened (a symlink, a full disk): nothing ran
            self._mark_failed(kind, args, f"could not start: {exc}", create=True)

    def _mark_failed(self, kind, args, error, create=False):
        folder = args.dir if kind == "backup" else os.path.dirname(os.path.abspath(args.manifest))
        job = self.ledger.latest_job(folder, kind)
        if create and not (job and job["state"] == "running"):
            job = {"id": self.ledger.create_job(os.path.basename(folder), kind, folder, public_params(args, kind), {}),
                   "state": "running"}
        if job and job["state"] == "running":
            self.ledger.update_job(job["id"], state="failed", last_error=error, finished_at=now())

    def running(self, name, kind):
        entry = self._threads.get((name, kind))
        return bool(entry and entry[0].is_alive())

    def cancel(self, name, kind):
        """Ask a running job to stop between chunks; it ends `cancelled` with its chunks intact."""
        entry = self._threads.get((name, kind))
        if entry and entry[0].is_alive():
            entry[1].set()
            return True
        job = self.ledger.latest_job(self.folder(name).path, kind)
        if job and job["state"] == "running" and folder_in_use(job["dir"]):   # run by another process (CLI)
            self.ledger.update_job(job["id"], cancel_requested=1)
            return True
        return False


CHECK_STATE_FILE, CHECK_REPORT_FILE, CHECK_TEXT_FILE = "check.state.json", "check.json", "check.txt"


class CheckRunner:
    """`fylrmig check` of a restored backup, started from its status page: it runs in a daemon thread, reads
    both instances and keeps its report next to the backup (check.json, check.txt). Its passwords live in
    that thread only: the state file, the log and the report never hold them. A check writes nothing to
    either instance, so one cut short is simply run again."""

    def __init__(self, runner):
        self.runner, self._threads, self._lock = runner, {}, threading.Lock()

    def start(self, name, values, inline=False):
        folder = self.runner.folder(name)
        args = args_for("check", dict(values, manifest=folder.manifest_path, log=folder.join("check.log")))
        with self._lock:
            if self.running(name):
                raise FylrmigError(f"a check of {name!r} is already running")
            self._write_state(folder, "running")
            thread = threading.Thread(target=self._run, args=(folder, args), daemon=True, name=f"fylrmig-check-{name}")
            self._threads[name] = thread
        if inline:
            self._run(folder, args)
            return None
        thread.start()
        return thread

    def running(self, name):
        thread = self._threads.get(name)
        return bool(thread and thread.is_alive())

    def _run(self, folder, args):
        logger = logging.getLogger(f"fylrmig.jobs.check.{os.path.basename(folder.path)}")
        logger.propagate = False
        try:
            with job_log(args.log, False, logger):
                logger.info("fylrmig %s: %s", __version__, command_line("check", args))
                source, target = check_api(args, "source", logger), check_api(args, "target", logger)
                report = check_instances(source, target, load_check_manifest(args.manifest), args.deep, None, logger,
                                         args.chunk_size)
            write_json_atomic(folder.join(CHECK_REPORT_FILE), report)
            write_atomic(folder.join(CHECK_TEXT_FILE), (format_report(report) + "\n").encode("utf-8"))
            self._write_state(folder, "done", None if report["ok"] else report["verdict"])
        except FylrmigError as exc:
            self._write_state(folder, "failed", str(exc))
        except Exception as exc:   # a bug must not kill the server; the page shows the reason
            self._write_state(folder, "failed", f"internal error: {type(exc).__name__}: {exc}")

    def _write_state(self, folder, state, error=None):
        old = read_json_quietly(folder.join(CHECK_STATE_FILE))
        started = now() if state == "running" else old.get("started_at")
        write_json_atomic(folder.join(CHECK_STATE_FILE), {"state": state, "error": error, "started_at": started,
                                                          "finished_at": None if state == "running" else now()})

    def view(self, name, folder):
        """The check's state for the page ('interrupted': the server stopped while it ran), its report text."""
        state = read_json_quietly(folder.join(CHECK_STATE_FILE))
        if not state:
            return None
        shown = state.get("state", "")
        if shown == "running" and not self.running(name):
            shown = "interrupted"
        try:
            report = read_nofollow(folder.join(CHECK_TEXT_FILE)).decode("utf-8", errors="replace")
        except OSError:
            report = ""
        return {"State": shown, "Error": state.get("error") or "", "Report": report,
                "Started": short_time(iso(state.get("started_at"))), "Finished": short_time(iso(state.get("finished_at")))}


def read_json_quietly(path):
    try:
        value = json.loads(read_nofollow(path))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def keep_large_blocks_mapped():
    """glibc serves a block above its mmap threshold from a mapping of its own, given back when freed, but
    raises that threshold to every such block freed (up to 32 MB): after the first page answer (600 KB)
    the answers came from the heap, whose free gaps between longer-lived objects are not given back, so
    the peak grew with the pages read (a backup of 10,000 -> 100,000 records: 40 -> 47-48 MB, +18-20 %;
    with the threshold fixed at glibc's default 128 KB: 40 -> 46 MB, +14-15 %, no slower). Other C
    libraries have no mallopt: nothing to do there."""
    import ctypes
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(-3, 128 * 1024)   # M_MMAP_THRESHOLD: fixed, no longer adjusted


@contextlib.contextmanager
def quiet_garbage_collector():
    """For a job that is the whole process (the command line): pages, payloads and answers are trees of
    dicts without cycles, allocated by the hundred thousand, which the cyclic GC only rescanned (a 20,000
    record backup: 1,251 collections, 0.3 s of 4.4 s; 22 and 3 ms with these thresholds, the same peak
    memory). What lives long (modules) is frozen. Not under `serve`: one job must not set a web server's
    GC, and the settings are put back afterwards for a caller that goes on (tests)."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(20000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def run_job(kind, args, ledger, cancel=None, logger=None, interactive=False):
    """Run one backup or restore to its end; returns the job object."""
    job_class = BackupJob if kind == "backup" else RestoreJob
    job = job_class(args, ledger, cancel_event=cancel, interactive=interactive, logger=logger)
    job.run()
    return job


############################################################################## Web UI (/inspect/migration/)

WEB_ROOT = "/inspect/migration/"
WEB_CHUNK_CHOICES = (10, 25, 50, 100, 500, 1000, 5000, 10000)
LOG_TAIL_BYTES = 64 * 1024            # the page reads at most this much of a log, however long the log is
CSRF_COOKIE, TOKEN_COOKIE = "fylrmig_csrf", "fylrmig_token"
E5_DEFAULT_RENAMES = "video.1920p:1080p"   # prefill of the rename table for a fresh easydb 5 backup
VERSION_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
WEB_ACTIVE_STATES = ("starting", "queued", "running")
# Ledger parameters a Continue from the page must not take over: the runner sets them, or they are the mode.
WEB_RUNNER_OWNED = frozenset({"log", "dir", "manifest", "data", "verify", "purge", "continue"})
WEB_NOTES = {"cancel": "Cancel requested: the job stops after its current chunk.",
             "deleted": "The backup was deleted.",
             "nothing": "Nothing to cancel: no job of this backup is running.",
             "started": "Job started in the background; it goes on when you close the browser.",
             "check": "The check runs in the background; its report appears below when it is done."}
WEB_PARAMS = {p.dest: p for p in COMMON_PARAMS + BACKUP_PARAMS + RESTORE_PARAMS}


@dataclasses.dataclass(frozen=True)
class FormField:
    """One control of the backup or restore form; `name` is the parameter's dest name where there is one."""
    name: str
    label: str
    control: str               # text, password, select, checkbox, versions (text + datalist), renames (table)
    help: str = ""
    choices: tuple = ()        # ((value, label), ...)
    default: str = ""
    placeholder: str = ""
    oauth: bool = False        # shown only while the OAuth2 box is ticked

    @property
    def secret(self):
        """Secrets are never sent back to a browser, not even the value the user just typed."""
        return self.control == "password"


def web_chunk_choices():
    return tuple((str(n), str(n)) for n in WEB_CHUNK_CHOICES)


WEB_OAUTH_FIELDS = (
    FormField("oauth2", "OAuth2", "checkbox", "only if the instance uses OAuth2; easydb 5 does not"),
    FormField("client_id", "OAuth2 Client Id", "text", WEB_PARAMS["client_id"].help, placeholder="fylr-web-frontend",
              oauth=True),
    FormField("client_secret", "OAuth2 Client Secret", "password", "empty for public clients", oauth=True),
    FormField("insecure", "Allow Insecure Connection", "checkbox", "skip TLS certificate verification"),
)

BACKUP_FORM = (
    FormField("name", "Name of backup", "text", "folder under backups/: letters, digits, '.', '_' and '-'",
              placeholder="example"),
    FormField("server", "URL of server", "text", "the source instance, without /api/v1",
              placeholder="https://easydb.example.com"),
    FormField("login", "Login", "text", "root, or a user allowed to read everything"),
    FormField("password", "Password", "password"),
    FormField("chunk_size", "Backup chunk size", "select", "objects per request; easydb 5 sources: at most 1000",
              web_chunk_choices(), default="500"),
    FormField("all_versions", "Include object history", "checkbox",
              "all versions of every record: the full changelog after the restore", default="on"),
    FormField("include_deleted", "Include soft-deleted objects", "checkbox", WEB_PARAMS["include_deleted"].help),
    FormField("include_events", "Include events", "checkbox", "all event types (some are never backed up)",
              default="on"),
    FormField("include_files", "Include Files", "select", "pack file bytes into the backup's files/ folder",
              (("", "URLs only (do not pack)"), ("original", "Originals"), ("with-versions", "Originals + versions"))),
    *WEB_OAUTH_FIELDS,
    FormField("mode", "Purge or Continue", "select", "Purge deletes an existing backup of this name and starts over",
              (("purge", "Purge"), ("continue", "Continue")), default="purge"),
)

RESTORE_FORM = (
    FormField("backup", "Backup", "select", "the backup to restore"),
    FormField("server", "URL of server", "text", "the target fylr, without /api/v1", placeholder="https://fylr.example.com"),
    FormField("login", "Login", "text", "must be root when purging"),
    FormField("password", "Password", "password", "purge sets the target's root password to this one"),
    FormField("file_api", "File Mode", "select", "how files get into the target; put: fylrmig fetches and uploads "
              "them (fylr's page: through the browser)",
              (("", "(no files)"), ("put", "Copy files from source (through browser) - put"),
               ("rput", "Copy files from source (via server) - rput"),
               ("rput_leave", "Use files from source - rput_leave"))),
    FormField("file_version", "File Version", "versions", WEB_PARAMS["file_version"].help, default="original"),
    FormField("upload_versions", "Copy file preview versions", "checkbox",
              "copy (put, rput) or link (rput_leave) the source's versions instead of producing them"),
    FormField("rename_versions", "Rename Versions", "renames",
              "empty target version = drop it; rows without class or source version are ignored"),
    FormField("file_api_access_token", "Access Token for file URLs", "password",
              "only for fylr sources; leave empty for easydb 5 or to keep the signatures"),
    FormField("chunk_size", "Chunk size", "select", "objects per request", web_chunk_choices(), default="1000"),
    FormField("include_password", "Include Password", "checkbox", "restore fails if the backup holds no hashes"),
    FormField("include_events", "Include events", "checkbox", "only event types fylr knows", default="on"),
    FormField("include_deleted_linked", "Include links to soft-deleted objects", "checkbox",
              WEB_PARAMS["include_deleted_linked"].help),
    *WEB_OAUTH_FIELDS,
    FormField("mode", "Purge or Continue", "select", "No Purge: the target was set up by hand (datamodel, base "
              "config); records it holds already are skipped, and its log says how many it found",
              (("purge", "Purge"), ("nopurge", "No Purge"), ("continue", "Continue")), default="purge"),
)


# -- what the pages show: read from the backup folders and the ledger, never from a running job

def short_time(iso_text):
    """'2026-11-25T21:52:34Z' -> '2026-11-25 21:52:34 UTC' for the tables."""
    return iso_text.replace("T", " ").replace("Z", " UTC") if iso_text else ""


def human_size(n):
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def backup_names(runner):
    """Every backup folder under backups/ whose name is safe and which does not lead out of it."""
    names = []
    for entry in sorted(os.scandir(runner.backups_dir), key=lambda e: e.name):
        if entry.is_dir() and is_backup_name(entry.name) and inside(runner.backups_dir, entry.path):
            names.append(entry.name)
    return names


def is_backup_name(name):
    try:
        check_backup_name(name)
    except FylrmigError:
        return False
    return True


def web_folder(runner, name):
    """The folder of an existing backup, or 404: the name is checked and may not lead out of backups/."""
    if not is_backup_name(name):
        bottle.abort(404, "no such backup")
    folder = runner.folder(name)
    if not os.path.isdir(folder.path) or not inside(runner.backups_dir, folder.path):
        bottle.abort(404, f"no backup {name!r}")
    return folder


def load_manifest_quietly(folder):
    """The manifest, or {} while a backup has not written one (or wrote a broken one)."""
    try:
        return folder.load_manifest() if os.path.isfile(folder.manifest_path) else {}
    except FylrmigError:
        return {}


def job_params(job):
    try:
        return json.loads(job["params"]) if job else {}
    except ValueError:
        return {}


def job_view(runner, name, folder, kind):
    """State and progress of the newest job of one kind, or None; a job started here whose ledger row is not
    running yet shows as 'starting'."""
    job = runner.ledger.latest_job(folder.path, kind)
    here = runner.running(name, kind)
    if not job and not here:
        return None
    state = shown_state(job, here)
    view = {"Kind": kind, "State": state, "Phase": "", "Phases": [], "Started": "", "Finished": "",
            "Runtime": "", "Error": "", "Chunks": {}, "Files": {}, "Server": "", "CanContinue": False}
    if job and state != "starting":
        view.update(job_progress(runner, job, state))
    view["CanContinue"] = bool(job) and state in ("failed", "cancelled", "interrupted")
    return view


class _ZipSink(io.RawIOBase):
    """A write-only stream the ZIP writer fills and zip_stream empties chunk by chunk."""

    def __init__(self):
        super().__init__()
        self.buffer, self.written = bytearray(), 0

    def writable(self):
        return True

    def write(self, data):
        self.buffer += data
        self.written += len(data)
        return len(data)

    def tell(self):
        return self.written

    def take(self):
        data, self.buffer = bytes(self.buffer), bytearray()
        return data


def zip_stream(root, name):
    """Yield a ZIP of a backup folder while reading it (the lock, temporary files and the spool stay out;
    symbolic links are skipped, never followed)."""
    sink = _ZipSink()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != ".spool" and not os.path.islink(os.path.join(folder, d)))
            for file_name in sorted(files):
                path = os.path.join(folder, file_name)
                if file_name == LOCK_FILE or file_name.startswith(".tmp-") or os.path.islink(path):
                    continue
                arcname = os.path.join(name, os.path.relpath(path, root))
                info = zipfile.ZipInfo.from_file(path, arcname)
                info.compress_type = zipfile.ZIP_DEFLATED if file_name.endswith((".json", ".log")) \
                    else zipfile.ZIP_STORED   # gzip payloads and packed files are compressed already
                with archive.open(info, "w", force_zip64=True) as out, \
                        os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        out.write(block)
                        yield sink.take()
                yield sink.take()
    yield sink.take()


def files_text(counts, kind):
    """'1,820 done, 12 failed, 60 pending' from the ledger's file rows ('running' = handed over, not seen
    stored yet)."""
    if not counts:
        return ""
    parts = [("done", "done"), ("failed", "failed"), ("running", "pending" if kind == "restore" else "in flight")]
    return ", ".join(f"{counts[state]['files']:,} {word}" for state, word in parts if state in counts)


def not_restored_text(items, shown=20):
    """'2: plugin x (type disk: install it by hand); …' — what the restore could not bring over, by name."""
    if not items:
        return ""
    listed = "; ".join(f"{what} ({why})" for what, why in sorted(items.items())[:shown])
    return f"{len(items)}: {listed}" + ("; …" if len(items) > shown else "")


def shown_state(job, here):
    """The state a person should see: a job started here is 'starting' until it runs; a 'running' row whose
    folder nobody holds was interrupted (its process is gone), whatever the ledger still says."""
    state = (job or {}).get("state", "starting")
    if here:
        return state if state == "running" else "starting"
    if state in ("running", "queued") and not folder_in_use(job["dir"]):
        return "interrupted"
    return state


def job_progress(runner, job, state):
    try:
        counters = json.loads(job["counters"] or "{}")
    except ValueError:
        counters = {}
    params = job_params(job)
    running = state == "running"
    runtime = (job["runtime"] or 0) + (now() - counters.get("run_started", now()) if running else 0)
    phases = phase_rows(counters.get("phases", {}), counters.get("phase", ""), running)
    return {"Phase": counters.get("phase", ""), "Step": counters.get("step", "") if running else "",
            "Phases": phases, "Overall": overall_progress(phases, running),
            "Started": short_time(iso(job["started_at"])), "Finished": short_time(iso(job["finished_at"])),
            "Runtime": format_seconds(runtime),
            "Error": job["last_error"] or (INTERRUPTED if state == "interrupted" else ""),
            "Chunks": runner.ledger.chunk_counts(job["id"]), "Files": runner.ledger.file_counts(job["id"]),
            "FilesText": files_text(runner.ledger.file_counts(job["id"]), job["kind"]),
            "NotRestoredText": not_restored_text(runner.ledger.ids(job["id"], "not_restored")),
            "Server": mask_url_credentials(str(params.get("server", "")))}


def phase_rows(phases, current, running):
    """Done / total per phase in the order the job has them, with this run's rate and an ETA."""
    rows = []
    for name, p in phases.items():
        done, total = p.get("done", 0), p.get("total", 0)
        rate = phase_rate(p, now())
        active = running and name == current
        eta = format_seconds((total - done) / rate) if active and rate > 0 and total > done else ""
        rows.append({"Name": name, "Done": done, "Total": total, "Skipped": p.get("skipped", 0),
                     "Rate": round(rate, 1), "ETA": eta, "Active": active})
    return rows


def overall_progress(rows, running):
    """All phases with a known size together: done, total, percent and an ETA from this run's pace."""
    total = sum(r["Total"] for r in rows if r["Total"])
    done = sum(min(r["Done"], r["Total"]) for r in rows if r["Total"])
    rates = [r["Rate"] for r in rows if r["Rate"]]
    pace = sum(rates) / len(rates) if rates else 0
    eta = format_seconds((total - done) / pace) if running and pace > 0 and total > done else ""
    return {"Done": done, "Total": total, "Percent": round(100.0 * done / total, 1) if total else 0, "ETA": eta}


def newest_job(runner, folder):
    jobs = [j for j in (runner.ledger.latest_job(folder.path, k) for k in ("backup", "restore")) if j]
    return max(jobs, key=lambda j: j["id"]) if jobs else None


def current_state(runner, name, folder):
    """(kind, state) of the newest job; a job started here without a running ledger row yet is 'starting'."""
    for kind in ("backup", "restore"):
        if runner.running(name, kind):
            job = runner.ledger.latest_job(folder.path, kind)
            return kind, "running" if job and job["state"] == "running" else "starting"
    last = newest_job(runner, folder)
    return (last["kind"], shown_state(last, False)) if last else ("", "")


def backup_item(runner, name, manifest=None):
    """One entry of the list: parameters.md 5.5's shape, plus what the overview table shows."""
    folder = runner.folder(name)
    manifest = load_manifest_quietly(folder) if manifest is None else manifest
    source = manifest.get("source_instance") or {}
    backup_job = runner.ledger.latest_job(folder.path, "backup")
    kind, state = current_state(runner, name, folder)
    info = manifest.get("payload_info") or {}
    files = runner.ledger.file_counts(backup_job["id"]).get("done", {}) if backup_job else {}
    counts = manifest.get("counts") or {}
    return {
        "Name": name, "Dir": folder.path,
        "Flavour": source.get("flavour", ""),
        "SourceURL": source.get("url") or job_params(backup_job).get("server", ""),
        "Created": (manifest.get("runs") or [{}])[0].get("started_at") or iso((backup_job or {}).get("started_at")),
        "Finished": iso((backup_job or {}).get("finished_at")),
        "Status": state, "LastAction": kind,
        "Payloads": len(manifest.get("payloads") or []),
        "HasFiles": os.path.isdir(folder.join("files")) and inside(folder.path, folder.join("files")),
        "Records": sum((counts.get("objecttypes") or {}).values()),
        "Size": sum(p.get("bytes", 0) for p in info.values()) + files.get("bytes", 0),
        "DiskUsed": sum(p.get("bytes", 0) for p in info.values()) + files.get("bytes", 0) + top_level_bytes(folder),
        "Runtime": format_seconds((newest_job(runner, folder) or {}).get("runtime") or 0),
        "HasManifest": bool(manifest),
    }


def top_level_bytes(folder):
    """Bytes of the files directly in a backup folder that are not payloads (manifest, logs, documents);
    payloads and packed files are counted from the manifest and the ledger, never by walking files/."""
    total = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder.path):
            if entry.is_file(follow_symlinks=False) and "__" not in entry.name:
                total += entry.stat(follow_symlinks=False).st_size
    return total


def disk_facts(runner):
    usage = shutil.disk_usage(runner.data_dir)
    return {"Folder": runner.data_dir, "Free": usage.free, "Total": usage.total}


def listed(runner, name):
    """A folder belongs in the list when it holds a manifest, a log, or has a job in the ledger."""
    folder = runner.folder(name)
    return (os.path.isfile(folder.manifest_path) or any(os.path.isfile(folder.join(f"{k}.log"))
                                                        for k in ("backup", "restore"))
            or runner.ledger.latest_job(folder.path, "backup") is not None
            or runner.ledger.latest_job(folder.path, "restore") is not None)


def backup_items(runner):
    return [backup_item(runner, n) for n in backup_names(runner) if listed(runner, n)]


def log_tail(path, limit=LOG_TAIL_BYTES):
    """The end of a log file: at most `limit` bytes, starting at a line boundary."""
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as fh:   # a symlinked log: not read
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            data = fh.read(limit)
    except OSError:
        return ""
    if size > limit and b"\n" in data:
        data = data.split(b"\n", 1)[1]
    return mask_url_credentials(data.decode("utf-8", errors="replace"))


def payload_rows(manifest):
    info = manifest.get("payload_info") or {}
    return [{"Name": n, "Type": info.get(n, {}).get("import_type", ""), "Count": info.get(n, {}).get("count", ""),
             "Size": info.get(n, {}).get("bytes", 0)} for n in manifest.get("payloads") or []]


def live_status(runner, name, folder):
    """What the status page polls: the backup's facts, job states, progress, log tails, payloads."""
    jobs = {k: job_view(runner, name, folder, k) for k in ("backup", "restore")}
    logs = {k: log_tail(folder.join(f"{k}.log")) for k in ("backup", "restore")}
    manifest = load_manifest_quietly(folder)
    check = runner.checks.view(name, folder)
    return {"Item": backup_item(runner, name, manifest), "Jobs": jobs, "Logs": logs,
            "Payloads": payload_rows(manifest), "Check": check,
            "Active": any(j and j["State"] in WEB_ACTIVE_STATES for j in jobs.values())
            or bool(check and check["State"] == "running")}


# -- files/ browser

def files_path(folder, sub):
    """The path of `files/<sub>` inside a backup, or 404 for anything that could lead elsewhere."""
    parts = [p for p in sub.split("/") if p != ""]
    for part in parts:
        if part in (".", "..") or "\\" in part or "\x00" in part:
            bottle.abort(404, "no such file")
    root = folder.join("files")
    path = os.path.join(root, *parts)
    if not os.path.lexists(path) or not inside(root, path) or not inside(folder.path, path):
        bottle.abort(404, "no such file")   # files/ itself may be a link out of the backup: never followed
    return path, "/".join(parts)


def list_dir(root, path):
    """Entries of a folder, folders first; links that lead out of `root` are left out."""
    out = []
    for entry in os.scandir(path):
        if not inside(root, entry.path):
            continue
        st = entry.stat()
        out.append({"Name": entry.name, "Size": 0 if entry.is_dir() else st.st_size, "IsDir": entry.is_dir(),
                    "ModTime": iso(st.st_mtime)})
    return sorted(out, key=lambda e: (not e["IsDir"], natural_key(e["Name"])))


def natural_key(name):
    """'2' before '10': digits compare as numbers (the files/ tree is named by file ids)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


# -- forms: posted text -> typed job values, or errors next to the fields

def form_text(forms, field):
    return (forms.get(field.name) or "").strip() if field.control != "password" else forms.get(field.name) or ""


def shown_values(fields, forms):
    """What goes back into the form after an error: what was posted, secrets excepted."""
    return {f.name: "" if f.secret else form_text(forms, f) for f in fields}


def web_bool(text):
    """A checkbox or yes/no value, read by the command line's one boolean parser."""
    try:
        return parse_bool(text or "")
    except argparse.ArgumentTypeError:
        raise FylrmigError(f"expected on or off, got {text!r}") from None


def web_choice(field, text):
    if text not in [c[0] for c in field.choices]:
        raise FylrmigError(f"choose one of the offered values, not {text!r}")
    return text


def web_server_url(text):
    if not text:
        raise FylrmigError("required")
    if "@" in urllib.parse.urlsplit(text).netloc:
        raise FylrmigError("put login and password into their own fields, not into the URL")
    try:
        return split_server_url(text)
    except FylrmigError as exc:
        raise FylrmigError(str(exc).replace("--server", "the URL")) from None


def web_required(text):
    if not text:
        raise FylrmigError("required")
    return text


def web_file_version(text):
    if not VERSION_NAME.match(text):
        raise FylrmigError("a version name such as original or preview")
    return text


def parse_form(fields, forms, checks):
    """Typed values by field name, and an error message per field that failed its check."""
    values, errors = {}, {}
    for field in fields:
        text = form_text(forms, field)
        check = checks.get(field.name) or {"checkbox": web_bool, "select": lambda t, f=field: web_choice(f, t)}.get(
            field.control, lambda t: t)
        try:
            values[field.name] = check(text)
        except FylrmigError as exc:
            errors[field.name] = str(exc)
    return values, errors


def common_job_values(values):
    """Form values -> the job parameters shared by backup and restore (dest names, typed)."""
    oauth = values.get("oauth2")
    return {"server": values.get("server"), "login": values.get("login"), "password": values.get("password"),
            "chunk_size": int(values.get("chunk_size") or 100), "insecure": values.get("insecure", False),
            "include_events": "" if values.get("include_events") else "-",
            "client_id": values.get("client_id", "") if oauth else "",
            "client_secret": values.get("client_secret", "") if oauth else ""}


# The Check form of a restored backup: (field, label, checker); passwords are never prefilled or kept.
CHECK_FORM_LABELS = {"source": "Source URL", "source_login": "Source login", "source_password": "Source password",
                     "target": "Target URL", "target_login": "Target login", "target_password": "Target password"}


def check_job_values(forms):
    """(check values, errors) of a posted Check form."""
    checks = {"source": web_server_url, "target": web_server_url}
    values, errors = {}, {}
    for field in CHECK_FORM_LABELS:
        try:
            values[field] = checks.get(field, web_required)((forms.get(field) or "").strip())
        except FylrmigError as exc:
            errors[field] = str(exc)
    values["deep"] = forms.get("deep") == "yes"
    return values, errors


def check_form_defaults(runner, folder):
    """The Check form's prefill: the source as the backup read it, the target as the restore wrote it."""
    backup = job_params(runner.ledger.latest_job(folder.path, "backup"))
    restore = job_params(runner.ledger.latest_job(folder.path, "restore"))
    source = (load_manifest_quietly(folder).get("source_instance") or {}).get("url") or backup.get("server", "")
    return {"source": source, "source_login": backup.get("login", ""), "target": restore.get("server", ""),
            "target_login": restore.get("login", "")}


def check_not_running(runner, name, errors, field):
    if any(runner.running(name, k) for k in ("backup", "restore")) or folder_in_use(runner.folder(name).path):
        errors[field] = f"a backup or restore of {name!r} is running: wait until it ends or cancel it"


def backup_job_values(runner, forms):
    """(name, job values, errors) of a posted backup form."""
    checks = {"name": check_backup_name, "server": web_server_url, "login": web_required,
              "password": web_required}
    values, errors = parse_form(BACKUP_FORM, forms, checks)
    if "name" not in errors:
        check_not_running(runner, values["name"], errors, "name")
    job = dict(common_job_values(values), all_versions=values.get("all_versions"),
               include_deleted=values.get("include_deleted"), include_files=values.get("include_files", ""),
               purge=values.get("mode") == "purge")
    job["continue"] = values.get("mode") == "continue"
    return values.get("name"), job, errors


def restore_job_values(runner, forms):
    """(name, job values, errors) of a posted restore form; a purge must carry its confirmation."""
    checks = {"backup": lambda t: restorable_backup(runner, t), "server": web_server_url, "login": web_required,
              "password": web_required, "file_version": web_file_version}
    values, errors = parse_form(RESTORE_FORM, forms, checks)
    try:
        values["rename_versions"] = rename_rows_text(forms.getall("rv_class"), forms.getall("rv_source"),
                                                     forms.getall("rv_target"))
    except FylrmigError as exc:
        errors["rename_versions"] = str(exc)
    name = values.get("backup")
    if name:
        check_not_running(runner, name, errors, "backup")
        if values.get("include_password") and not load_manifest_quietly(runner.folder(name)).get("has_passwords"):
            errors["include_password"] = "this backup holds no password hashes"
    if int(values.get("chunk_size") or 0) > 1000:
        errors["chunk_size"] = "a restore sends at most 1000 objects per request (fylr's limit)"
    if name and not errors.get("backup"):
        complete, state = backup_completeness(load_manifest_quietly(runner.folder(name)))
        values["allow_incomplete"] = not complete
        if not complete and "yes" not in forms.getall("confirm_incomplete"):
            errors["backup"] = f"{state[0].upper()}{state[1:]}. Tick the box to restore it anyway."
            errors["confirm_incomplete"] = "ask"
    mode = values.get("mode")
    if mode == "purge" and "yes" not in forms.getall("confirm_purge") and not errors.get("server"):
        errors["mode"] = f'This will destroy all data on "{values.get("server")}"! Tick the box to confirm.'
    job = dict(common_job_values(values), file_api=values.get("file_api", ""),
               file_version=values.get("file_version", "original"), upload_versions=values.get("upload_versions"),
               rename_versions=values.get("rename_versions", ""),
               file_api_access_token=values.get("file_api_access_token", ""),
               include_password=values.get("include_password"),
               include_deleted_linked=values.get("include_deleted_linked"), purge=mode == "purge",
               allow_incomplete=values.get("allow_incomplete", False))
    job["continue"] = mode == "continue"
    if mode == "nopurge":
        job.update(base_config="-", datamodel="-")
    return name, job, errors


def restorable_backup(runner, name):
    check_backup_name(name)
    folder = runner.folder(name)
    if not os.path.isfile(folder.manifest_path) or not inside(runner.backups_dir, folder.path):
        raise FylrmigError(f"backup {name!r} has no manifest.json yet")
    return name


# -- rename-versions table (parameters.md 8.1)

def rename_rows_text(classes, sources, targets):
    """The page's table rows -> the rename text; rows without class or source version are ignored."""
    rows = [(c.strip(), v.strip(), n.strip()) for c, v, n in zip(classes, sources, targets) if c.strip() and v.strip()]
    return format_rename_versions(rename_version_rows(rows))


def rename_rows(text):
    """The rename text -> the table's rows, plus the empty row the table always ends with; a text that does
    not parse (an old ledger row) prefills nothing."""
    try:
        renames = parse_rename_versions(text)
    except FylrmigError:
        renames = {}
    return [(cls, version, new) for (cls, version), new in renames.items()] + [("", "", "")]


def posted_rename_rows(forms):
    rows = [r for r in zip(forms.getall("rv_class"), forms.getall("rv_source"), forms.getall("rv_target"))
            if any(x.strip() for x in r)]
    return rows + [("", "", "")]


def previous_renames(runner, name, manifest):
    """The rename list of this backup's previous restore, else the easydb 5 default for a fresh backup."""
    job = runner.ledger.latest_job(runner.folder(name).path, "restore")
    if job:
        return job_params(job).get("rename_versions", "")
    return E5_DEFAULT_RENAMES if (manifest.get("source_instance") or {}).get("flavour") == "easydb5" else ""


def renames_reason(runner, name, renames):
    """Why the rename table is filled in as it is (shown under it)."""
    if not renames:
        return ""
    if runner.ledger.latest_job(runner.folder(name).path, "restore"):
        return "Filled in from the previous restore of this backup."
    return ("Filled in for an easydb 5 backup: easydb 5 names the 1080p video rendition 1920p, fylr names it "
            "1080p (fylr's migration default). Clear the row to keep the name.")


def restore_choices(runner, items):
    """(name, label, rename rows to prefill (JSON), complete?, why those renames) of every backup with a
    manifest, newest first; the label says whether the backup is whole."""
    out = []
    for item in sorted(items, key=lambda i: i["Created"] or "", reverse=True):
        if item["HasManifest"]:
            manifest = load_manifest_quietly(runner.folder(item["Name"]))
            complete, state = backup_completeness(manifest)
            label = f"{item['Name']} ({item['Flavour'] or '?'}, {short_time(item['Created'])}" + \
                (")" if complete else f"; {state.replace('this backup is ', '')})")
            renames = previous_renames(runner, item["Name"], manifest)
            rows = json.dumps([list(row) for row in rename_rows(renames)[:-1]])
            out.append((item["Name"], label, rows, complete, renames_reason(runner, item["Name"], renames)))
    return out


def default_restore_choice(choices):
    """The newest whole backup; an incomplete one is never preselected."""
    return next((c[0] for c in choices if c[3]), "")


# -- Continue: the previous job's parameters, passwords asked again

def continue_secrets(params):
    """The secret fields a Continue asks for: the password, and the others the previous run had set."""
    names = ["password"]
    names += [k for k in ("client_secret", "file_api_access_token") if params.get(k) == MASK]
    return names


def continue_job_values(kind, params, forms):
    values = {k: v for k, v in params.items() if k not in WEB_RUNNER_OWNED and v != MASK}
    errors = {}
    for name in continue_secrets(params):
        values[name] = forms.get(name) or ""
        if not values[name]:
            errors[name] = "required"
    values.update(purge=False)
    values["continue"] = True
    if kind == "restore":
        values.update(base_config="", datamodel="")   # neither may be given with --continue
    return values, errors


def continue_shown_params(params):
    """The previous parameters as the continue page lists them: by their command line flag, booleans as
    yes/no, only those that say something (secrets are asked for, not shown)."""
    shown = []
    for key, value in sorted(params.items()):
        param = WEB_PARAMS.get(key)
        if key in WEB_RUNNER_OWNED or value in ("", None, MASK, False) or (param and param.secret):
            continue
        shown.append((param.flag if param else key, "yes" if value is True else value))
    return shown


# -- requests: access token, CSRF, JSON, rendering

def wants_json():
    return (bottle.request.query.get("accept") == "application/json"
            or "application/json" in bottle.request.get_header("Accept", ""))


def render(template_name, **kw):
    kw.setdefault("csrf", bottle.request.environ.get("fylrmig.csrf", ""))
    kw.setdefault("version", __version__)
    kw.setdefault("root", WEB_ROOT)
    kw.setdefault("short_time", short_time)
    kw.setdefault("human_size", human_size)
    kw.setdefault("quote", urllib.parse.quote)
    kw.setdefault("active_states", WEB_ACTIVE_STATES)
    kw.setdefault("json_text", json.dumps)
    kw.setdefault("fixed_text", {kind: fixed_parameters_text(kind) for kind in WEB_FIXED})
    return page_template(template_name).render(**kw)


def fixed_parameters_text(kind):
    """What the page sets in the background for a job of `kind`, said from WEB_FIXED itself."""
    words = {"compression": lambda v: f"compression {v}", "max_count": lambda v: "no record limit" if not v else
             f"at most {v} records per objecttype", "skip_constraints": lambda v: "skip constraints" if v else "",
             "max_parallel_upload_files": lambda v: f"{v} parallel file uploads",
             "upload_ignore_files_with_errors": lambda v: "files with errors are left out" if v else "",
             "timeout_min": lambda v: f"{v} min timeout"}
    parts = [words[k](v) for k, v in WEB_FIXED[kind].items()]
    return ", ".join(p for p in parts if p) + f", log in backups/<name>/{kind}.log"


_TEMPLATES = {}


def page_template(name):
    """A page template read through resource_text (so it works inside the single-file build too); its
    rebase() and include() find their templates the same way."""
    if name not in _TEMPLATES:
        class ResourceTemplate(bottle.SimpleTemplate):
            def __init__(self, source=None, name=None, **settings):
                settings.pop("lookup", None)
                source = resource_text(f"views/{name}.tpl") if source is None else source
                super().__init__(source=source, name=name, **settings)
        _TEMPLATES[name] = ResourceTemplate(name=name)
    return _TEMPLATES[name]


def as_json(value):
    bottle.response.content_type = "application/json; charset=utf-8"
    return json.dumps(value, ensure_ascii=False, indent=1)


def same_secret(given, expected):
    return bool(given) and secrets.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def require_access_token(access_token):
    """With an access token set, a request carries it as ?token= (which sets a cookie and redirects to
    the URL without it), as cookie, or as 'Authorization: Bearer'; anything else gets 401."""
    request = bottle.request
    given = request.query.get("token")
    if given is not None:
        if not same_secret(given, access_token):
            bottle.abort(401, "wrong access token")
        bottle.response.set_cookie(TOKEN_COOKIE, given, path="/", httponly=True, samesite="lax")
        query = [(k, v) for k, v in request.query.allitems() if k != "token"]
        bottle.redirect(request.path + ("?" + urllib.parse.urlencode(query) if query else ""), 303)
    bearer = request.get_header("Authorization", "")
    given = bearer[7:] if bearer.startswith("Bearer ") else request.get_cookie(TOKEN_COOKIE)
    if not same_secret(given or "", access_token):
        bottle.abort(401, "this page needs its access token: open it with ?token=<access token>")


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def require_loopback_host():
    """Without an access token the page is for this machine only: a request naming another host (a
    DNS-rebinding page in the user's browser) is refused, so no other site can read or drive it."""
    host = bottle.request.get_header("Host", "")
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]", 1)[0]
    if name.lower() not in LOOPBACK_HOSTS:
        bottle.abort(403, "this page answers only to localhost; start it with --access-token to share it")


def ensure_csrf(secret):
    """Double-submit cookie whose token the server signed (HMAC with the data folder's secret): a pair
    that a page on another localhost port made up itself is refused, as is every POST whose Origin or
    Referer names another site."""
    request = bottle.request
    token = request.get_cookie(CSRF_COOKIE) or ""
    if not valid_csrf_token(secret, token):
        token = new_csrf_token(secret)
        bottle.response.set_cookie(CSRF_COOKIE, token, path="/", httponly=True, samesite="strict")
        if request.method == "POST":
            bottle.abort(403, "missing or invalid CSRF cookie: reload the page and submit again")
    request.environ["fylrmig.csrf"] = token
    if request.method == "POST":
        check_same_origin()
        if not same_secret(request.forms.get("csrf") or "", token):
            bottle.abort(403, "wrong or missing CSRF token: reload the page and submit again")


def new_csrf_token(secret):
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{csrf_signature(secret, nonce)}"


def valid_csrf_token(secret, token):
    nonce, _, signature = token.partition(".")
    return bool(nonce and signature) and same_secret(signature, csrf_signature(secret, nonce))


def csrf_signature(secret, nonce):
    return hmac.new(secret, nonce.encode("utf-8"), hashlib.sha256).hexdigest()


def check_same_origin():
    """A POST that says where it comes from must come from this page's own origin."""
    request = bottle.request
    claimed = request.get_header("Origin") or request.get_header("Referer")
    own = origin_of(f"{request.urlparts.scheme}://{request.get_header('Host', '')}")
    if claimed is not None and origin_of(claimed) != own:
        bottle.abort(403, "this form was posted from another site: refused")


def origin_of(url):
    """(scheme, host, port) of a URL, the port filled in where it is the scheme's default."""
    parts = urllib.parse.urlsplit(url.strip())
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def csrf_secret(data_dir):
    """The key that signs CSRF tokens, kept in the data folder (0600) so forms survive a restart."""
    path = os.path.join(data_dir, ".csrf-secret")
    try:
        return read_nofollow(path)
    except FileNotFoundError:
        os.makedirs(data_dir, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
        return read_nofollow(path)


def security_headers():
    headers = bottle.response
    headers.set_header("X-Content-Type-Options", "nosniff")
    headers.set_header("X-Frame-Options", "DENY")
    headers.set_header("Referrer-Policy", "same-origin")   # no-referrer would make Chromium post "Origin: null"
    headers.set_header("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                       "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")


def status_url(name, note=""):
    return WEB_ROOT + urllib.parse.quote(name) + (f"?note={note}" if note else "")


# -- pages

class MigrationPages:
    """The routes of /inspect/migration/: every handler reads the ledger and the folders and returns at once;
    jobs run in the JobRunner's daemon threads."""

    def __init__(self, runner, inline=False):
        self.runner, self.inline = runner, inline

    def overview(self, backup=None, restore=None):
        items = backup_items(self.runner)
        if wants_json():
            return as_json({"Backups": [{k: v for k, v in i.items() if k not in ("HasManifest",)} for i in items]})
        backup = backup or {"values": {f.name: f.default for f in BACKUP_FORM}, "errors": {}}
        choices = restore_choices(self.runner, items)
        if restore is None:
            chosen = bottle.request.query.get("restore") or default_restore_choice(choices)
            values = {f.name: f.default for f in RESTORE_FORM}
            values["backup"] = chosen
            prefill = json.loads(next((c[2] for c in choices if c[0] == chosen), "[]"))
            restore = {"values": values, "errors": {}, "renames": [tuple(r) for r in prefill] + [("", "", "")]}
        return render("overview", backups=items, backup_form=BACKUP_FORM, restore_form=RESTORE_FORM,
                      backup=backup, restore=restore, restore_choices=choices, disk=disk_facts(self.runner),
                      note=WEB_NOTES.get(bottle.request.query.get("note", ""), ""))

    def start(self):
        forms = bottle.request.forms.decode()
        action = forms.get("action")
        if action not in ("backup", "restore"):
            bottle.abort(400, "unknown action")
        parse = backup_job_values if action == "backup" else restore_job_values
        name, values, errors = parse(self.runner, forms)
        if errors:
            bottle.response.status = 400
            form = {"values": shown_values(BACKUP_FORM if action == "backup" else RESTORE_FORM, forms),
                    "errors": errors, "renames": posted_rename_rows(forms)}
            return self.overview(**{action: form})
        return self.launch(action, name, values)

    def launch(self, kind, name, values):
        try:
            self.runner.start(kind, name, values, inline=self.inline)
        except FylrmigError as exc:
            bottle.abort(409, str(exc))
        bottle.redirect(status_url(name, "started"), 303)

    def status(self, name):
        folder = web_folder(self.runner, name)
        live = live_status(self.runner, name, folder)
        item = live["Item"]
        files = list_dir(folder.path, folder.join("files")) if item["HasFiles"] else []
        if wants_json():
            backup = {k: v for k, v in item.items() if k != "HasManifest"}
            backup.update(Manifest=load_manifest_quietly(folder), Progress=live["Jobs"])
            return as_json({"Backup": backup, "Files": files, "SubPath": "files" if item["HasFiles"] else ""})
        return render("status", item=item, live=live, files=files, check_form=check_form_defaults(self.runner, folder),
                      check_labels=CHECK_FORM_LABELS, note=WEB_NOTES.get(bottle.request.query.get("note", ""), ""))

    def live(self, name):
        return as_json(live_status(self.runner, name, web_folder(self.runner, name)))

    def files(self, name, sub=""):
        folder = web_folder(self.runner, name)
        path, sub = files_path(folder, sub)
        if os.path.isfile(path):
            # always a download: a packed .html or .svg must never run as a page of this origin
            return bottle.static_file(os.path.relpath(path, folder.join("files")), root=folder.join("files"),
                                      download=os.path.basename(path), mimetype="application/octet-stream")
        entries = list_dir(folder.path, path)
        if wants_json():
            item = backup_item(self.runner, name)
            item.pop("HasManifest")
            return as_json({"Backup": item, "Files": entries, "SubPath": "/".join(["files", sub]).rstrip("/")})
        return render("files", name=name, sub=sub, entries=entries)

    def log(self, name, kind):
        folder = web_folder(self.runner, name)
        try:
            data = read_nofollow(folder.join(f"{kind}.log"))   # a log that is a symlink is never served
        except OSError:
            bottle.abort(404, "no such log")
        bottle.response.content_type = "text/plain; charset=utf-8"
        return mask_url_credentials(data.decode("utf-8", errors="replace"))

    def delete(self, name):
        """Delete a backup folder, after the browser confirmed it, never while a job uses it."""
        folder = web_folder(self.runner, name)
        if bottle.request.forms.get("confirm_delete") != "yes":
            bottle.abort(400, "deleting a backup needs its confirmation")
        if any(self.runner.running(name, k) for k in ("backup", "restore")):
            bottle.abort(409, f"a job of {name!r} is running: cancel it or wait until it ends")
        try:
            lock = FolderLock(folder.path).acquire("delete")   # no job may start meanwhile
        except FolderInUse as exc:
            bottle.abort(409, str(exc))
        try:
            shutil.rmtree(folder.path)   # never follows a symlink: a link is removed, not what it points at
        finally:
            lock.release()
        bottle.redirect(WEB_ROOT + "?note=deleted", 303)

    def download(self, name):
        """The whole backup as one ZIP, streamed as it is read: no copy on disk, links never followed."""
        folder = web_folder(self.runner, name)
        bottle.response.content_type = "application/zip"
        bottle.response.set_header("Content-Disposition", f'attachment; filename="{name}.zip"')
        return zip_stream(folder.path, name)

    def cancel(self, name):
        web_folder(self.runner, name)
        kind = bottle.request.forms.get("kind")
        if kind not in ("backup", "restore"):
            bottle.abort(400, "unknown kind")
        note = "cancel" if self.runner.cancel(name, kind) else "nothing"
        bottle.redirect(status_url(name, note), 303)

    def previous_job(self, name, kind):
        folder = web_folder(self.runner, name)
        if kind not in ("backup", "restore"):
            bottle.abort(400, "unknown kind")
        job = self.runner.ledger.latest_job(folder.path, kind)
        if not job:
            bottle.abort(404, f"no {kind} of {name!r} to continue")
        return job

    def continue_form(self, name, errors=None):
        kind = bottle.request.query.get("kind") or bottle.request.forms.get("kind") or "backup"
        params = job_params(self.previous_job(name, kind))
        return render("continue", name=name, kind=kind, params=continue_shown_params(params),
                      secret_fields=continue_secrets(params), errors=errors or {}, labels=continue_labels())

    def continue_job(self, name):
        forms = bottle.request.forms.decode()
        kind = forms.get("kind")
        params = job_params(self.previous_job(name, kind))
        values, errors = continue_job_values(kind, params, forms)
        check_not_running(self.runner, name, errors, "password")
        if errors:
            bottle.response.status = 400
            return self.continue_form(name, errors)
        return self.launch(kind, name, values)

    def check(self, name):
        """Start `fylrmig check` of a restored backup; the passwords are asked here every time, used by the
        check's thread and never written anywhere."""
        web_folder(self.runner, name)
        forms = bottle.request.forms.decode()
        values, errors = check_job_values(forms)
        check_not_running(self.runner, name, errors, "target_password")
        if errors:
            bottle.abort(400, "; ".join(f"{CHECK_FORM_LABELS[k]}: {v}" for k, v in errors.items()))
        try:
            self.runner.checks.start(name, values, inline=self.inline)
        except FylrmigError as exc:
            bottle.abort(409, str(exc))
        bottle.redirect(status_url(name, "check") + "#check", 303)

    def error(self, err):
        if wants_json():
            return as_json({"Error": err.body, "Status": err.status_code})
        return render("error", status=err.status_line, message=err.body)


def continue_labels():
    return {f.name: f.label for f in RESTORE_FORM if f.secret}


def make_web_app(data_dir, access_token="", runner=None, inline=False):
    """The /inspect/migration/ page as a bottle app (waitress serves it: `fylrmig serve`). Jobs started here
    run in daemon threads of `runner` (inline=True runs them before the answer, for tests)."""
    pages = MigrationPages(runner or JobRunner(data_dir), inline)
    secret = csrf_secret(pages.runner.data_dir)
    app = bottle.Bottle()

    @app.hook("before_request")
    def guard():
        if access_token:
            require_access_token(access_token)
        else:
            require_loopback_host()
        ensure_csrf(secret)

    app.add_hook("after_request", security_headers)
    for code in (400, 401, 403, 404, 405, 409, 500):
        app.error(code)(pages.error)
    app.get("/", callback=lambda: bottle.redirect(WEB_ROOT))
    app.get("/inspect/migration", callback=lambda: bottle.redirect(WEB_ROOT))
    app.get(WEB_ROOT, callback=pages.overview)
    app.post(WEB_ROOT, callback=pages.start)
    app.post("/inspect/migration", callback=pages.start)
    app.get(WEB_ROOT + "<name>", callback=pages.status)
    app.get(WEB_ROOT + "<name>/", callback=pages.status)
    app.get(WEB_ROOT + "<name>/live", callback=pages.live)
    app.get(WEB_ROOT + "<name>/<kind:re:backup|restore>.log", callback=pages.log)
    app.get(WEB_ROOT + "<name>/files", callback=pages.files)
    app.get(WEB_ROOT + "<name>/files/", callback=pages.files)
    app.get(WEB_ROOT + "<name>/files/<sub:path>", callback=pages.files)
    app.post(WEB_ROOT + "<name>/cancel", callback=pages.cancel)
    app.post(WEB_ROOT + "<name>/delete", callback=pages.delete)
    app.get(WEB_ROOT + "<name>/download", callback=pages.download)
    app.get(WEB_ROOT + "<name>/continue", callback=pages.continue_form)
    app.post(WEB_ROOT + "<name>/continue", callback=pages.continue_job)
    app.post(WEB_ROOT + "<name>/check", callback=pages.check)
    return app


############################################################################## Command line and main()

def add_params(parser, params):
    for p in params:
        flags = [p.flag, *p.aliases] + ([p.short] if p.short else [])
        kwargs = {"dest": p.dest, "default": p.default, "help": p.help + (" (required)" if p.required else "")}
        if p.kind == "bool":
            kwargs.update(nargs="?", const=True, type=parse_bool, metavar="BOOL")
        elif p.kind == "int":
            kwargs.update(type=int, metavar="N")
        elif p.kind == "choice":
            kwargs.update(choices=p.choices, metavar="{" + ",".join(repr(c) if not c else c for c in p.choices) + "}")
        else:
            kwargs.update(metavar="TEXT")
        parser.add_argument(*flags, **kwargs)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose error messages never repeat a secret of the command line (a misspelt --pasword
    would otherwise be echoed with its value)."""
    secret_argv = ()

    def error(self, message):
        for original, masked in zip(self.secret_argv, masked_argv(list(self.secret_argv))):
            if original != masked:
                message = message.replace(original, masked)
        super().error(message)


def build_parser():
    parser = ArgumentParser(prog="fylrmig", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n")[1])
    parser.add_argument("--version", action="version", version=f"fylrmig {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{backup,restore,check,serve,bundle}")
    for kind, text in (("backup", "Backup ez5 or FYLR via API"), ("restore", "Restore API backup into FYLR")):
        add_params(sub.add_parser(kind, help=text, description=text), params_for(kind))
    # no abbreviations: --source-pass would be read as --source-password without being masked as one
    add_params(sub.add_parser("check", allow_abbrev=False, help="compare a migrated fylr target with its source",
                              description="Compare a migrated fylr target with its source, read-only, line by "
                                          "line; exit 0 only when nothing of the source is missing."), CHECK_PARAMS)
    bundle = sub.add_parser("bundle", help="write fylrmig as one file to copy (python3 fylrmig.pyz ...)",
                            description="Write one executable file holding fylrmig and the packages it needs.")
    bundle.add_argument("path", metavar="PATH", help="where to write it, e.g. fylrmig.pyz")
    add_params(sub.add_parser("serve", help="serve the /inspect/migration/ web page",
                              description="Serve the /inspect/migration/ web page (waitress)."), SERVE_PARAMS)
    return parser


def check_args(args, kind):
    """Range and presence checks argparse cannot express (--verify needs only the folder)."""
    for p in params_for(kind):
        value = getattr(args, p.dest)
        if p.kind == "int" and ((p.lo is not None and value < p.lo) or (p.hi is not None and value > p.hi)):
            raise FylrmigError(f"{p.flag} {value} is out of range ({p.lo}..{p.hi if p.hi is not None else ''})")
    for server, login, password in LOGINS[kind]:
        embedded = url_credentials(getattr(args, server))
        if embedded:   # the URL's login and password stand in for --login / --password, never stored with it
            setattr(args, login, getattr(args, login) or embedded[0])
            setattr(args, password, getattr(args, password) or embedded[1])
            setattr(args, server, split_server_url(getattr(args, server)))
    secret_from_environment(args, kind, getpass.getpass if sys.stdin.isatty() else None)
    needed = [p for p in params_for(kind) if p.required]
    if getattr(args, "verify", False):
        needed = [p for p in needed if p.flag in ("--dir", "--manifest")]
    missing = [p.flag for p in needed if not getattr(args, p.dest)]
    if missing:
        raise FylrmigError("missing " + ", ".join(missing))


def cmd_backup(args, argv):
    return run_command("backup", args, argv, BackupFolder(args.dir))


def cmd_restore(args, argv):
    return run_command("restore", args, argv, BackupFolder(os.path.dirname(os.path.abspath(args.manifest))))


def run_command(kind, args, argv, folder):
    """A backup or restore in the foreground: the masked command line first in the log, then the job
    (or only the check of the backup folder with --verify)."""
    check_args(args, kind)
    ledger = Ledger(os.path.join(args.data, "jobs.sqlite"))
    with job_log(args.log, args.verbose):
        log.info("fylrmig %s: %s", __version__, " ".join(masked_argv(["fylrmig", *argv])))
        if args.verify:
            return report_verify(folder, ledger)
        try:
            with quiet_garbage_collector():
                run_job(kind, args, ledger, interactive=sys.stderr.isatty() and not args.quiet)
        except FylrmigError as exc:
            log.error("%s failed: %s", kind, exc)
            raise
    return 0


def report_verify(folder, ledger):
    problems = verify_backup(folder, ledger)
    for line in problems:
        log.error("verify: %s", line)
        print(f"fylrmig: verify: {line}", file=sys.stderr)
    if problems:
        raise FylrmigError(f"verify found {len(problems)} problem(s) in {folder.path}")
    log.info("verify: %d payloads ok", len(folder.load_manifest()["payloads"]))
    print(f"verify: all {len(folder.load_manifest()['payloads'])} payloads ok")
    return 0


def cmd_serve(args, argv):
    import waitress
    secret_from_environment(args, "serve")
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.access_token:
        raise FylrmigError(f"binding {args.host} exposes the page to the network: give --access-token")
    if args.access_token and len(args.access_token) < 16:
        raise FylrmigError("--access-token must be at least 16 characters long (it guards the page)")
    app = make_web_app(args.data, args.access_token)
    print(f"fylrmig {__version__}: http://{args.host}:{args.port}/inspect/migration/ (data folder "
          f"{os.path.abspath(args.data)})", flush=True)
    waitress.serve(app, host=args.host, port=args.port, threads=8, _quiet=True)
    return 0


# The pure-Python packages fylrmig runs on, which the single file carries (requests and what it needs).
BUNDLED_PACKAGES = ("bottle", "waitress", "requests", "urllib3", "idna", "certifi", "charset_normalizer")


def cmd_bundle(args, argv):
    """One executable file (a zipapp) holding fylrmig, its views and ledger schema, and the packages it
    needs: `python3 fylrmig.pyz serve|backup|restore` then runs where only Python is installed."""
    import zipapp
    target = os.path.abspath(args.path)
    loader = globals().get("__loader__")
    if type(loader).__name__ == "zipimporter":   # run from a single file already: that file is the bundle
        shutil.copyfile(loader.archive, target)
    else:
        with tempfile.TemporaryDirectory(prefix="fylrmig-bundle-") as stage:
            stage_bundle(stage)
            zipapp.create_archive(stage, target, interpreter="/usr/bin/env python3", compressed=True)
    os.chmod(target, 0o755)
    print(f"{target}: copy it anywhere with Python 3.9 or newer and run 'python3 {os.path.basename(target)} serve'")
    return 0


def stage_bundle(stage):
    """fylrmig.py, jobs.sqlite.sql, views/ and the bundled packages (their .py and data files; compiled
    extensions are left out: each of these packages falls back to pure Python) in `stage`."""
    texts = {"fylrmig.py": resource_text("fylrmig.py"), "jobs.sqlite.sql": resource_text("jobs.sqlite.sql"),
             "__main__.py": "import sys\nimport fylrmig\nsys.exit(fylrmig.main())\n"}
    for name in ("layout", "overview", "status", "files", "continue", "error", "_field", "_filelist"):
        texts[f"views/{name}.tpl"] = resource_text(f"views/{name}.tpl")
    for relpath, text in texts.items():
        os.makedirs(os.path.dirname(os.path.join(stage, relpath)), exist_ok=True)
        with open(os.path.join(stage, relpath), "w", encoding="utf-8") as fh:
            fh.write(text)
    for package in BUNDLED_PACKAGES:
        try:
            module = importlib.import_module(package)
        except ImportError:
            raise FylrmigError(f"the package {package} is not installed here: pip install fylrmig first") from None
        if not module.__file__.endswith("__init__.py"):
            shutil.copy(module.__file__, stage)
            continue
        shutil.copytree(os.path.dirname(module.__file__), os.path.join(stage, package),
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "*.pyc", "tests"))


COMMANDS = {"backup": cmd_backup, "restore": cmd_restore, "check": cmd_check, "serve": cmd_serve,
            "bundle": cmd_bundle}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    ArgumentParser.secret_argv = tuple(argv)
    args = build_parser().parse_args(argv)
    keep_large_blocks_mapped()
    try:
        if bottle is None and args.command != "bundle":
            raise ImportError(name="bottle")
        return COMMANDS[args.command](args, argv)
    except FylrmigError as exc:
        print(f"fylrmig: error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:   # fylrmig.py copied without the packages it runs on
        print(f"fylrmig: error: the Python package {exc.name or 'bottle'} is missing: pip install bottle requests "
              f"waitress, or {SINGLE_FILE_HINT}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fylrmig: interrupted; run again with --continue to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
