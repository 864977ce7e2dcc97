"""Benchmark fylrmig backup and restore against the instance simulator; prints figures, asserts nothing.

    python bench/bench.py [--sizes small,large] [--flavour fylr|easydb5] [--parallel 1,4]

For each dataset size it measures, in the same run:
  backup   fylrmig backup --all-versions (no files): record versions per second, peak RSS of the process;
           raw limit: a bare `requests` loop fetching the very same /db list pages, sequentially.
  restore  fylrmig restore --purge --file-api '' into an empty fylr: record versions per second, peak RSS;
           raw limit: a bare `requests` loop POSTing the same record chunks into a second empty fylr
           (whose basetypes were restored by fylrmig first, so the lookups resolve).
The simulator runs in this process, fylrmig in a child process (so its peak memory is its own).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import fylrmig  # noqa: E402
from tests.simulator import datagen  # noqa: E402
from tests.simulator.server import serve  # noqa: E402

# VmHWM, not ru_maxrss: ru_maxrss survives exec and would report this (simulator-holding) process's peak.
MEASURE = ("import sys, fylrmig\n"
           "code = fylrmig.main(sys.argv[1:])\n"
           "hwm = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
           "print('PEAK_RSS_KB', hwm, file=sys.stderr)\n"
           "sys.exit(code)\n")


def run_fylrmig(*args):
    """(seconds, peak RSS in MB) of one fylrmig run in a child process."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", MEASURE, *map(str, args)], capture_output=True, text=True,
                            cwd=ROOT)
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"fylrmig {args[0]} failed: {result.stderr[-2000:]}")
    peak = next(int(l.split()[1]) for l in result.stderr.splitlines() if l.startswith("PEAK_RSS_KB"))
    return seconds, peak / 1024


def token_for(server):
    if server.sim.flavour == "easydb5":
        token = requests.get(server.api_url + "/session").json()["token"]
        requests.post(server.api_url + "/session/authenticate",
                      data={"token": token, "login": "root", "password": "admin"}).raise_for_status()
        return {"X-Easydb-Token": token}
    body = requests.post(server.url + "/api/oauth2/token", data={
        "grant_type": "password", "username": "root", "password": "admin", "client_id": "fylr-web-frontend"}).json()
    return {"Authorization": "Bearer " + body["access_token"]}


def raw_backup(server, chunk):
    """The same list pages fylrmig reads, fetched by a bare requests loop: (seconds, entries)."""
    headers, session, entries = token_for(server), requests.Session(), 0
    started = time.perf_counter()
    for ot in sorted(o["objecttype"]["name"] for o in session.get(server.api_url + "/objecttype",
                                                                    headers=headers).json()):
        count = session.post(server.api_url + "/search", json={"objecttypes": [ot], "limit": 0},
                             headers=headers).json()["count"]
        for offset in range(0, count, chunk):
            page = session.get(f"{server.api_url}/db/{ot}/_all_fields/list", headers=headers,
                               params={"limit": chunk, "offset": offset, "all_versions": "true",
                                       "format": "full"}).json()
            entries += len(page)
    return time.perf_counter() - started, entries


def basetypes_only_copy(folder, dest):
    """A copy of a backup whose manifest lists every payload but the records (payloads linked, not copied)."""
    os.makedirs(dest)
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    for name in os.listdir(folder):
        if name.endswith((".json", ".gz")) and name != "manifest.json":
            os.symlink(os.path.join(folder, name), os.path.join(dest, name))
    manifest["payloads"] = [n for n in manifest["payloads"] if "__db__" not in n and "__event__" not in n]
    json.dump(manifest, open(os.path.join(dest, "manifest.json"), "w"))
    return [n for n in json.load(open(os.path.join(folder, "manifest.json")))["payloads"] if "__db__" in n]


def raw_post_body(entry, ot):
    """What any client must send for a payload record: updates address their record, files are left out."""
    body = entry[ot]
    if body.get("_version", 1) > 1:
        body["lookup:_id"] = {"_system_object_id": entry.pop("_system_object_id")}
        entry.pop("_uuid", None)
    for key, value in list(body.items()):
        if isinstance(value, list) and value and isinstance(value[0], dict) and "eas:url" in value[0]:
            body.pop(key)
        elif isinstance(value, dict) and value.get("_latest_version_deleted_at"):
            body[key] = None
    return entry


def raw_restore(target, folder, db_payloads, chunk):
    headers, session, sent = token_for(target), requests.Session(), 0
    bodies = []
    for name in db_payloads:
        envelope = fylrmig.read_json(os.path.join(folder, name))
        ot = envelope["objecttype"]
        entries = [raw_post_body(e, ot) for e in envelope["objects"]]
        bodies += [(ot, entries[i:i + chunk]) for i in range(0, len(entries), chunk)]
    started = time.perf_counter()
    for ot, body in bodies:
        response = session.post(f"{target.api_url}/db/{ot}", json=body, headers=headers,
                                params={"skip_events": "true", "skip_reverse_nested": "true", "format": "short"})
        response.raise_for_status()
        sent += len(body)
    return time.perf_counter() - started, sent


def bench_size(size, flavour, parallels, work):
    started = time.perf_counter()
    source_sim = datagen.generate(flavour, seed=1, size=size)
    generated = time.perf_counter() - started
    records = sum(len(r) for r in source_sim.records.values())
    versions = sum(len(x["versions"]) for r in source_sim.records.values() for x in r.values()
                   if not x.get("deleted_at"))
    source = serve(source_sim, threads=8)
    print(f"\n== {size} ({flavour}): {records} records, {versions} live record versions, "
          f"generated in {generated:.1f} s")
    chunk = 1000
    seconds, entries = raw_backup(source, chunk)
    print(f"backup   raw requests loop (1 connection)      {entries / seconds:9.0f} versions/s  {seconds:7.1f} s")
    folder = None
    for parallel in parallels:
        folder = os.path.join(work, f"{size}-p{parallel}")
        seconds, peak = run_fylrmig("backup", "--server", source.api_url, "--login", "root", "--password", "admin",
                                    "--dir", folder, "--data", os.path.join(work, "data"), "--all-versions",
                                    "--chunk-size", chunk, "--max-parallel", parallel, "--retry-sleep-between", 0)
        print(f"backup   fylrmig --max-parallel {parallel:<2}               {versions / seconds:9.0f} versions/s  "
              f"{seconds:7.1f} s  peak RSS {peak:6.0f} MB")
    source.shutdown()
    del source_sim

    target = serve(datagen.generate("fylr", size="empty"), threads=8)
    seconds, peak = run_fylrmig("restore", "--manifest", os.path.join(folder, "manifest.json"), "--server",
                                target.api_url, "--login", "root", "--password", "admin", "--data",
                                os.path.join(work, "data"), "--purge", "--chunk-size", chunk, "--skip-reindex",
                                "--include-events=-", "--retry-sleep-between", 0)
    restored = sum(len(x["versions"]) for r in target.sim.records.values() for x in r.values())
    target.shutdown()
    raw_target = serve(datagen.generate("fylr", size="empty"), threads=8)
    db_payloads = basetypes_only_copy(folder, os.path.join(work, f"{size}-basetypes"))
    run_fylrmig("restore", "--manifest", os.path.join(work, f"{size}-basetypes", "manifest.json"), "--server",
                raw_target.api_url, "--login", "root", "--password", "admin", "--data", os.path.join(work, "data"),
                "--purge", "--skip-reindex", "--retry-sleep-between", 0)
    raw_seconds, sent = raw_restore(raw_target, folder, db_payloads, chunk)
    raw_target.shutdown()
    print(f"restore  raw requests loop (same record POSTs)  {sent / raw_seconds:9.0f} versions/s  {raw_seconds:7.1f} s")
    print(f"restore  fylrmig (all payloads, no files)       {restored / seconds:9.0f} versions/s  "
          f"{seconds:7.1f} s  peak RSS {peak:6.0f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="small,large")
    parser.add_argument("--flavour", default="fylr", choices=("fylr", "easydb5"))
    parser.add_argument("--parallel", default="1,4")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="fylrmig-bench-")
    print(f"fylrmig {fylrmig.__version__} benchmark, {os.cpu_count()} CPUs, work folder {work}")
    try:
        for size in args.sizes.split(","):
            bench_size(size, args.flavour, [int(p) for p in args.parallel.split(",")], work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
