"""fylr file uploads of the instance simulator (api.md 6.8): eas/put (synchronous), eas/rput and
eas/rput/bulk (asynchronous), file lookups in records.

eas/rput(/bulk) answers AT ONCE with the file in status "pending" (id and reference exist, no bytes); a
background thread started after the answer waits sim.rput_delay seconds, fetches the URL OUTSIDE
sim.lock (the URL may point at this very simulator) and then makes the file "done" (bytes + produced
renditions) or "failed" (upstream 4xx/5xx - e.g. an x-fylr-signature that expired before the fetch -,
unreachable host, connection error).  What is checked synchronously: the parameters, the URL syntax
(EasInvalidURL), the HEAD request unless skip_head_request (EasRputError; leave=true needs a
Content-Length > 0: EasRputErrorContentLength) and duplicate references (EasDuplicateReference).
SILENT: leave=true without produce_versions needs no bytes at all: such a file is "done" at once.
Loopback hosts are allowed although fylr blocks them by default (fylr.eas.rput.blockedHosts):
simulated sources live on 127.0.0.1.
"""
import hashlib
import json
import mimetypes
import os
import re
import threading
import time
import uuid
from urllib.parse import unquote, urlparse

import bottle
import requests

from . import datagen
from .auth import require_user
from .writeutil import (body, ensure_state, fail, flag, json_answer, lookup_key, now_iso, query, rollback,
                        truthy, user_id)

CLASS_BY_EXTENSION = {"png": "image", "jpg": "image", "jpeg": "image", "gif": "image", "tif": "image",
                      "tiff": "image", "webp": "image", "mp4": "video", "mov": "video", "mp3": "audio",
                      "wav": "audio", "pdf": "office", "doc": "office", "docx": "office", "txt": "unknown"}


def _renditions_for(extension):
    """Rendition names a fylr "produces" for an extension: the simulator's (datagen) configuration."""
    for ext, _cls, _mime, renditions in datagen._FILE_KINDS.values():
        if ext == extension:
            return renditions
    return ("preview",) if CLASS_BY_EXTENSION.get(extension) in ("image", "video", "office") else ()


def _produced(data, extension):
    """Renditions via datagen.produce_version so a target's produced renditions equal the source's."""
    return {v: datagen.produce_version(data, v) for v in _renditions_for(extension)}


def _split_name(filename):
    base = os.path.basename(filename or "")
    extension = base.rsplit(".", 1)[1].lower() if "." in base else ""
    return base, extension

# ------------------------------------------------------------------------------------ lookups, refs


def file_by_lookup(sim, lookup):
    """File id of a record's file entry `lookup:_id` (api.md 6.7: files accept only `reference`)."""
    _key, reference = lookup_key(sim, "file", lookup)
    hits = [i for i, f in sim.files.items() if reference is not None and f.get("reference") == reference]
    if not hits:
        fail(sim, 400, "LookupNotFound", "File reference %r not found." % reference, key="reference", value=reference)
    return hits[0]


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
    # Only the message is documented (api.md 6.8): clients read the id from it, no parameters.file_id.
    fail(sim, 400, "EasDuplicateReference",
         "Duplicate file reference provided: %s with file id %d" % (reference, file_id))


def file_json(sim, f, duplicate_of=None):
    """The upload answer ("long" file format, trimmed): versions only once the file is done."""
    status = f.get("status", "done")
    versions = {}
    if status in ("sync", "done"):
        versions = {name: {"status": "done", "hash": hashlib.sha256(data).hexdigest(), "filesize": len(data),
                           "extension": "png" if name != "original" else f["extension"]}
                    for name, data in f["versions"].items()}
        if f.get("leave"):
            versions.setdefault("original", {"status": "done", "url": f.get("remote_url")})
    out = {"_id": f["_id"], "original_filename": f["original_filename"], "extension": f["extension"],
           "class": f["class"], "reference": f.get("reference"), "produce_versions": f["produce_versions"],
           "is_original": True, "status": status, "leave": bool(f.get("leave")), "versions": versions,
           "hash": versions.get("original", {}).get("hash")}
    if duplicate_of is not None:
        out["_duplicates"] = [{"_id": duplicate_of, "reference": f.get("reference")}]
    return out

# ---------------------------------------------------------------------------------------- storing


def _new_file(sim, spec, caller_id, versions, status):
    name, extension = _split_name(spec.get("filename"))
    if not name:
        fail(sim, 400, "EasEmptyFilename", "The filename is empty.")
    fid = sim.next_id("file")
    sim.files = dict(sim.files)
    sim.files[fid] = {"_id": fid, "original_filename": name, "extension": extension,
                      "class": CLASS_BY_EXTENSION.get(extension, "unknown"),
                      "mime_type": spec.get("mime_type") or mimetypes.guess_type(name)[0] or "application/octet-stream",
                      "reference": spec.get("reference") or None, "leave": bool(spec.get("leave")),
                      "remote_url": spec.get("remote_url") if spec.get("leave") else None,
                      "produce_versions": bool(spec.get("produce_versions", True)), "versions": versions,
                      "status": status, "upload_user": caller_id, "date_uploaded": now_iso()}
    return sim.files[fid]


def _duplicate(sim, reference, skip_duplicate_reference):
    """(existing file json or None); raises EasDuplicateReference unless skip_duplicate_reference."""
    owner = _reference_owner(sim, reference)
    if owner is None:
        return None
    if not skip_duplicate_reference:
        _duplicate_reference_error(sim, reference, owner)
    return file_json(sim, sim.files[owner], duplicate_of=owner)


def _manual_parent(sim, spec):
    parent = sim.files.get(spec.get("id_parent"))
    if parent is None:
        fail(sim, 400, "EasNoParentID", "Parent file %r not found." % spec.get("id_parent"), id=spec.get("id_parent"))
    if parent["produce_versions"]:
        fail(sim, 400, "UploadError", "Manual renditions need an original with produce_versions=false.")
    return parent


def _register_rendition_reference(sim, reference, parent_id, version_name):
    if reference:
        sim.rendition_references = dict(sim.rendition_references, **{reference: [parent_id, version_name]})


def store_put(sim, spec, caller_id):
    """eas/put: the bytes are in the request, so the file is "done" when the answer is sent."""
    existing = _duplicate(sim, spec.get("reference") or None, False)
    if existing is not None:
        return existing
    if spec.get("version_name"):
        parent = _manual_parent(sim, spec)
        updated = dict(parent, versions=dict(parent["versions"], **{spec["version_name"]: spec["data"]}))
        sim.files = dict(sim.files)
        sim.files[parent["_id"]] = updated
        _register_rendition_reference(sim, spec.get("reference"), parent["_id"], spec["version_name"])
        return dict(file_json(sim, updated), version_name=spec["version_name"])
    _name, extension = _split_name(spec.get("filename"))
    data = spec["data"]
    versions = {"original": data}
    if spec.get("produce_versions", True):
        versions.update(_produced(data, extension))
    return file_json(sim, _new_file(sim, spec, caller_id, versions, "done"))


def register_rput(sim, spec, caller_id, skip_duplicate_reference):
    """Store the rput file "pending" (or the manual rendition as pending on its parent).

    Returns (answer json, fetch job or None)."""
    existing = _duplicate(sim, spec.get("reference") or None, skip_duplicate_reference)
    if existing is not None:
        return existing, None
    fetch_id = uuid.uuid4().hex
    job = {"url": spec["url"], "fetch_id": fetch_id}
    if spec.get("version_name"):
        parent = _manual_parent(sim, spec)
        pending = dict(parent.get("pending_versions") or {}, **{spec["version_name"]: fetch_id})
        failed = {k: v for k, v in (parent.get("failed_versions") or {}).items() if k != spec["version_name"]}
        sim.files = dict(sim.files)
        sim.files[parent["_id"]] = dict(parent, pending_versions=pending, failed_versions=failed)   # sent again
        _register_rendition_reference(sim, spec.get("reference"), parent["_id"], spec["version_name"])
        job.update(fid=parent["_id"], version_name=spec["version_name"], reference=spec.get("reference"))
        return dict(file_json(sim, sim.files[parent["_id"]]), version_name=spec["version_name"]), job
    if spec["leave"] and not spec["produce_versions"]:
        return file_json(sim, _new_file(sim, spec, caller_id, {}, "done")), None     # SILENT: nothing to fetch
    stored = _new_file(sim, spec, caller_id, {}, "pending")
    stored["fetch_id"] = fetch_id
    job.update(fid=stored["_id"], version_name=None)
    return file_json(sim, stored), job

# ---------------------------------------------------------------------------------- background fetch


class _FetchFailed(Exception):
    pass


def _download(url):
    try:
        response = requests.get(url, timeout=60)
    except requests.RequestException as exc:
        raise _FetchFailed(str(exc))
    if response.status_code != 200:
        raise _FetchFailed("HTTP %d" % response.status_code)
    return response.content


def start_fetches(sim, jobs):
    """Fetch after the answer, in a daemon thread (never under sim.lock while downloading)."""
    jobs = [j for j in jobs if j is not None]
    if jobs:
        threading.Thread(target=_fetch_all, args=(sim, jobs), daemon=True, name="rput-fetch").start()


def _fetch_all(sim, jobs):
    time.sleep(sim.rput_delay)
    for job in jobs:
        _set_processing(sim, job)
        try:
            data, problem = _download(job["url"]), None
        except _FetchFailed as exc:
            data, problem = None, str(exc)
        with sim.lock:
            if job["version_name"]:
                _finish_rendition(sim, dict(job, problem=problem), data)
            else:
                _finish_original(sim, job, data, problem)


def _current(sim, job):
    """The stored file the job belongs to, None when it was replaced meanwhile (e.g. by a purge)."""
    stored = sim.files.get(job["fid"])
    if stored is None:
        return None
    if job["version_name"]:
        return stored if (stored.get("pending_versions") or {}).get(job["version_name"]) == job["fetch_id"] else None
    return stored if stored.get("fetch_id") == job["fetch_id"] else None


def _set_processing(sim, job):
    with sim.lock:
        stored = _current(sim, job)
        if stored is not None and not job["version_name"]:
            sim.files = dict(sim.files)
            sim.files[job["fid"]] = dict(stored, status="processing")


def _finish_original(sim, job, data, problem):
    stored = _current(sim, job)
    if stored is None:
        return
    done = {k: v for k, v in stored.items() if k != "fetch_id"}
    if problem is not None:
        done.update(status="failed", versions={}, fetch_error=problem)
    else:
        versions = dict(stored["versions"])         # manual renditions uploaded meanwhile stay
        if not stored["leave"]:
            versions["original"] = data
        if stored["produce_versions"]:
            versions.update(_produced(data, stored["extension"]))
        done.update(status="done", versions=versions)
    sim.files = dict(sim.files)
    sim.files[job["fid"]] = done


def _finish_rendition(sim, job, data):
    parent = _current(sim, job)
    if parent is None:
        return
    pending = {k: v for k, v in parent["pending_versions"].items() if k != job["version_name"]}
    updated = dict(parent, pending_versions=pending)
    failed = {k: v for k, v in (parent.get("failed_versions") or {}).items() if k != job["version_name"]}
    if data is not None:
        updated["versions"] = dict(parent["versions"], **{job["version_name"]: data})
    else:                               # the rendition never came: shown as failed, its reference free again
        failed[job["version_name"]] = job.get("problem") or "fetch failed"
        if job.get("reference"):
            sim.rendition_references = {k: v for k, v in sim.rendition_references.items() if k != job["reference"]}
    updated["failed_versions"] = failed
    sim.files = dict(sim.files)
    sim.files[job["fid"]] = updated

# ------------------------------------------------------------------------------------------- routes


def _json_list_param(name):
    raw = query(name)
    if raw in (None, ""):
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return [raw]
    return value if isinstance(value, list) else [value]


def route_eas_put(sim):
    caller = require_user(sim, bottle.request)
    parts = [f for _name, f in bottle.request.files.allitems()]
    if not parts:
        fail(sim, 400, "UploadError", "No file part in the multipart body.")
    references, filenames = _json_list_param("references"), _json_list_param("filenames")
    produce, version_names = _json_list_param("produce_versions"), _json_list_param("version_names")
    id_parents = _json_list_param("id_parents")

    def nth(values, i, default=None):
        return values[i] if i < len(values) and values[i] not in (None, "") else default

    specs = []
    for i, part in enumerate(parts):
        specs.append({"filename": nth(filenames, i) or part.raw_filename, "data": part.file.read(),
                      "reference": nth(references, i), "produce_versions": truthy(nth(produce, i, True)),
                      "version_name": nth(version_names, i), "id_parent": nth(id_parents, i)})
    ensure_state(sim)
    with rollback(sim, "_seq", "files", "rendition_references"):
        return json_answer([store_put(sim, s, user_id(caller)) for s in specs])


def _head_check(sim, url, leave):
    """The synchronous HEAD (falling back to a bodiless GET) of rput: (filename from the answer)."""
    name = unquote(os.path.basename(urlparse(url).path))
    try:
        head = requests.head(url, timeout=30, allow_redirects=True)
        if head.status_code != 200:
            head = requests.get(url, timeout=30, stream=True)
            head.close()
    except requests.RequestException as exc:
        fail(sim, 400, "EasRputError", "Fetching %s failed." % url, url=url, msg=str(exc))
    if head.status_code != 200:
        fail(sim, 400, "EasRputError", "Upstream answered %d." % head.status_code, url=url,
             msg="HTTP %d" % head.status_code)
    length = head.headers.get("Content-Length") or ""
    if leave and (not length.isdigit() or int(length) <= 0):
        fail(sim, 400, "EasRputErrorContentLength", "leave=true needs a Content-Length > 0.", url=url,
             content_length=length)
    match = re.search(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)', head.headers.get("Content-Disposition", ""))
    return unquote(match.group(1)) if match else name


def rput_spec(sim, entry):
    """One rput entry (query of /eas/rput or element of /eas/rput/bulk) -> upload spec, checked
    synchronously (runs OUTSIDE sim.lock: the HEAD request may go to this very simulator)."""
    url = entry.get("url")
    leave = truthy(entry.get("leave", False))
    produce = truthy(entry.get("produce_versions", True))
    skip_head = truthy(entry.get("skip_head_request", False))
    if not isinstance(url, str) or not urlparse(url).scheme.startswith("http") or not urlparse(url).netloc:
        fail(sim, 400, "EasInvalidURL", "Invalid URL %r." % (url,), url=url)
    if skip_head and not entry.get("filename"):
        fail(sim, 400, "SkipHeadRequestError", "skip_head_request needs a filename.")
    if entry.get("generate_metadata") is not None and not truthy(entry["generate_metadata"]) \
            and not (leave and not produce):
        fail(sim, 400, "ServerGeneric", "generate_metadata=false needs leave=true and produce_versions=false.")
    name = None if skip_head else _head_check(sim, url, leave)
    metadata = (entry.get("metadata") or {}).get("_technical_metadata") or {}
    id_parent = entry.get("id_parent")
    return {"filename": entry.get("filename") or name, "url": url, "reference": entry.get("reference"),
            "produce_versions": produce, "leave": leave, "remote_url": url,
            "version_name": entry.get("version_name") or None, "mime_type": metadata.get("mime_type"),
            "id_parent": int(id_parent) if str(id_parent or "").isdigit() else id_parent}


def _answer_rputs(sim, caller, specs):
    ensure_state(sim)
    skip = flag("skip_duplicate_reference")
    with rollback(sim, "_seq", "files", "rendition_references"):
        answers = [register_rput(sim, s, user_id(caller), skip) for s in specs]
    start_fetches(sim, [job for _answer, job in answers])
    return json_answer([answer for answer, _job in answers])


def route_eas_rput(sim):
    caller = require_user(sim, bottle.request)
    entry = {k: query(k) for k in bottle.request.query.keys()}
    metadata = body(sim) if bottle.request.content_length else None
    if metadata is not None:
        entry["metadata"] = metadata
    return _answer_rputs(sim, caller, [rput_spec(sim, entry)])


def route_eas_rput_bulk(sim):
    caller = require_user(sim, bottle.request)
    entries = body(sim, want=list)
    return _answer_rputs(sim, caller, [rput_spec(sim, e if isinstance(e, dict) else {}) for e in entries])


def route_eas_file_post(sim, file_id):
    """OAS POST /eas/{fileId}: change an original's filename and/or reference (at least one of filename,
    reference, custom_produce_config, else 400 ServerGeneric). Only its uploader or root may (SILENT: the
    object-right path of rightcheck.ProduceFile is not modelled). A reference another file holds ->
    EasDuplicateReference (SILENT: references are unique, as on upload)."""
    caller = require_user(sim, bottle.request)
    change = body(sim, want=dict)
    keys = set(change) & {"filename", "reference", "custom_produce_config"}
    if not keys or set(change) - {"filename", "reference", "custom_produce_config"}:
        fail(sim, 400, "ServerGeneric", "Set filename, reference or custom_produce_config (and nothing else).")
    with sim.lock:
        stored = sim.files.get(file_id)
        if stored is None:
            fail(sim, 404, "FileNotFound", "File %d not found." % file_id, id=file_id)
        uploader = stored.get("upload_user")
        if uploader != caller["user"]["_id"] and caller["user"].get("reference") != "system:root":
            fail(sim, 403, "RightRequired", "Only the uploader may change the file.", right="produce")
        updated = dict(stored)
        if "reference" in change:
            owner = _reference_owner(sim, change["reference"])
            if owner not in (None, file_id):
                _duplicate_reference_error(sim, change["reference"], owner)
            updated["reference"] = change["reference"] or None
        if change.get("filename"):
            updated["original_filename"] = os.path.basename(change["filename"])
        sim.files = {**sim.files, file_id: updated}
        return json_answer(file_json(sim, updated))
