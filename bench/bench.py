"""Benchmark fylrmig against the targets of issue 10; prints every target as met / not met, asserts nothing.

    python bench/bench.py            # every target: 10,000, 20,000 and 100,000 records (~11-13 min)
    python bench/bench.py --quick    # the 20,000 record targets only: no 100,000 record or memory rows (~7 min)
    python bench/bench.py --only backup,page      # a subset; restore and parallel need backup's folders

Setup (issue 10): --all-versions, --chunk-size 100, --max-parallel 1 unless said otherwise, no files in the
backups; datagen sizes medium_half (10,000 records), medium (20,000) and large (100,000).  Every simulator
(python -m tests.simulator) runs in a process of its own, fylrmig and every bare loop in a child process of
its own, so nothing measured shares a GIL with anything else.  The simulators keep connections alive and set
TCP_NODELAY (waitress' default; their READY banner says so and the bench checks it), sleep only the
configured --latency (--rput-delay 0, --purge-busy 0), and count requests by kind: each comparison prints
where fylrmig's requests differ from the bare loop's.

  backup    fylrmig backup vs a bare `requests` loop making the same reads (login, datamodel, config,
            basetypes, record pages with all_versions/format=full/files_real_url on fylr, collections and
            their object lists, events: non-record reads on both sides, the loop's record part printed
            apart), json.loads of every answer, keeping nothing; easydb 5 and fylr sources.
  restore   fylrmig restore of a records-only copy of the fylr backup into a target that already holds its
            datamodel and basetypes (restored by fylrmig from a basetypes-only copy before each run, not
            measured) vs a bare loop POSTing the same /db chunks as RestoreJob._prepare_db builds them,
            encoded before its clock starts; (a) no files, (b) --file-api rput --upload-versions
            --max-parallel-upload-files 4: the bare loop then rputs every original and rendition (4 threads)
            and polls GET /eas?ids=[...] every 10 ms until the target reports them done, chunk by chunk,
            before the chunk's POST, as fylrmig must.
  parallel  --max-parallel 4 vs 1 under 10 ms latency per request (simulator --latency 0.01), backup and
            restore (no files).  The backup source answers record pages from memory (--cache-reads, filled
            by a warm-up pass) so that its rendering (one process, one GIL) does not cap 4 connections.  Bare
            loops with 1 and 4 connections show the ceiling of the setup and what limits it; "CPU bound" is
            the best speed-up the -p4 run's CPU seconds allow (fylrmig's, the simulator's, both on the CPUs).
  memory    peak RSS (VmHWM) of the fylrmig process: backups of both sources and restores, 10,000 and
            100,000 records (one run each where no comparison runs anyway).
  page      `fylrmig serve` on the --data folder of a running CLI backup (20,000 records): response times
            of GET /inspect/migration/<name>/live and /inspect/migration/<name>, polled every 50 ms.

Clocks: fylrmig = its whole process, start to exit; a bare loop = login to last answer (its interpreter
start and body preparation are not counted).  Runs alternate (bare, fylrmig, bare, ...); the median of
--rounds runs is taken (of 2 runs, the faster).  "busy" = the simulator's CPU seconds / the run's seconds;
CPU = the client process' own CPU seconds (less sensitive to other load than wall times).
"""
import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)   # the bare loops reuse fylrmig's own functions, from this checkout
import fylrmig  # noqa: E402
CHUNK = 100
LATENCY = 0.01
SIZES = {"medium_half": 10000, "medium": 20000, "large": 100000}
LIST_PARAMS = {"format": "full", "all_versions": "true"}
POST_DB_PARAMS = {"skip_events": "true", "skip_reverse_nested": "true", "format": "short"}

# fylrmig in a child; VmHWM, not ru_maxrss (which survives exec and would be the parent's)
MEASURE = ("import os, sys, fylrmig\n"
           "code = fylrmig.main(sys.argv[1:])\n"
           "hwm = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
           "open(os.environ['BENCH_PEAK_FILE'], 'w').write(hwm)\n"
           "sys.exit(code)\n")


# ============================================================================ simulators in their own process

RUNNING = []      # simulators not stopped yet: main() stops them whatever happens


class Sim:
    """python -m tests.simulator in a child process; .url, .api_url, .cpu(), .counts(), .stop()."""

    def __init__(self, work, flavour, size, latency=0.0, cache_reads=False, threads=8):
        self.flavour, self.size = flavour, size
        argv = [sys.executable, "-m", "tests.simulator", "--flavour", flavour, "--size", size, "--port", "0",
                "--threads", str(threads), "--rput-delay", "0", "--purge-busy", "0", "--count-requests"]
        if latency:
            argv += ["--latency", str(latency)]
        if cache_reads:
            argv.append("--cache-reads")
        self.log = open(os.path.join(work, f"sim-{flavour}-{size}-{os.getpid()}-{time.monotonic_ns()}.log"), "w")
        started = time.perf_counter()
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True)
        RUNNING.append(self)
        self.banner = []
        for line in self.proc.stdout:
            self.banner.append(line.rstrip())
            if line.startswith("READY "):
                self.url = line.split()[1]
                break
        else:
            raise SystemExit(f"simulator {flavour}/{size} did not start: {self.banner}")
        self.proc.stdout.close()
        self.started_in = time.perf_counter() - started
        self.api_url = self.url + "/api/v1"
        self.nodelay = any("TCP_NODELAY on" in line for line in self.banner)

    def cpu(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def counts(self, reset=False):
        import requests
        return requests.get(self.url + "/__requests__" + ("?reset=1" if reset else "")).json()

    def stop(self):
        if self in RUNNING:
            RUNNING.remove(self)
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ============================================================================ children: fylrmig and bare loops

class Run:
    """One measured child: seconds, its CPU seconds, peak MB, the simulators' CPU seconds, what it reported."""

    def __init__(self, seconds, cpu, peak_mb, sim_cpu, report=None):
        self.seconds, self.cpu, self.peak_mb, self.sim_cpu = seconds, cpu, peak_mb, sim_cpu
        self.report = report or {}

    @property
    def busy(self):
        """Share of the run each watched simulator spent on a CPU."""
        return [c / self.seconds for c in self.sim_cpu]


def run_child(work, argv, env=None):
    """(wall seconds, CPU seconds, exit code, stdout, stderr) of a child process (os.wait4 gives its rusage).
    Children cache bytecode as an installed Python does: a machine that sets PYTHONDONTWRITEBYTECODE (this
    one does) would otherwise have every fylrmig start compile its 7,000 lines (0.1 s)."""
    env = {k: v for k, v in (env or os.environ).items() if k != "PYTHONDONTWRITEBYTECODE"}
    out, err = os.path.join(work, "child.out"), os.path.join(work, "child.err")
    with open(out, "w") as stdout, open(err, "w") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_utime + usage.ru_stime, proc.returncode, open(out).read(), open(err).read()


def run_fylrmig(work, sims, *args):
    """fylrmig in a child process: wall time start to exit, CPU, VmHWM; `sims` are watched for their CPU."""
    peak_file = os.path.join(work, "peak.txt")
    before = [s.cpu() for s in sims]
    seconds, cpu, code, _, stderr = run_child(work, [sys.executable, "-c", MEASURE, *map(str, args)],
                                              env=dict(os.environ, BENCH_PEAK_FILE=peak_file))
    sim_cpu = [s.cpu() - b for s, b in zip(sims, before)]
    if code:
        raise SystemExit(f"fylrmig {args[0]} failed ({code}): {stderr[-3000:]}")
    return Run(seconds, cpu, int(open(peak_file).read()) / 1024, sim_cpu)


def run_bare(work, sims, kind, **params):
    """A bare loop (this file with --child) in a child process; its own clock: login to last answer."""
    before = [s.cpu() for s in sims]
    wall, _, code, stdout, stderr = run_child(work, [sys.executable, os.path.abspath(__file__), "--child", kind,
                                                     json.dumps(params)])
    if code:
        raise SystemExit(f"bare {kind} failed: {stderr[-3000:]}")
    report = json.loads(next(line for line in stdout.splitlines() if line.startswith("{")))
    # the simulators' CPU over the child's whole life (they idle while it prepares): the measured part's
    sim_cpu = [s.cpu() - b for s, b in zip(sims, before)]
    return Run(report["seconds"], report["cpu"], report["peak_kb"] / 1024, sim_cpu, dict(report, wall=wall))


def bare_session(api_url, flavour):
    import requests
    session = requests.Session()
    base = api_url[:-len("/api/v1")]
    if flavour == "easydb5":
        token = session.get(api_url + "/session").json()["token"]
        session.post(api_url + "/session/authenticate",
                     data={"token": token, "login": "root", "password": "admin"}).raise_for_status()
        session.headers["X-Easydb-Token"] = token
    else:
        body = session.post(base + "/api/oauth2/token", data={
            "grant_type": "password", "username": "root", "password": "admin",
            "client_id": "fylr-web-frontend"}).json()
        session.headers["Authorization"] = "Bearer " + body["access_token"]
    return session


def clone_session(session):
    """Another connection with the same token (no second login)."""
    import requests
    twin = requests.Session()
    twin.headers.update(session.headers)
    return twin


class Reader:
    """GET/POST with json.loads of every answer; counts requests; keeps nothing."""

    def __init__(self, api_url, flavour, session=None):
        self.api_url, self.flavour = api_url, flavour
        self.session = session or bare_session(api_url, flavour)
        self.requests = 0

    def get(self, path, **params):
        response = self.session.get(self.api_url + path, params=params)
        response.raise_for_status()
        self.requests += 1
        return json.loads(response.content)

    def post(self, path, body):
        response = self.session.post(self.api_url + path, json=body)
        response.raise_for_status()
        self.requests += 1
        return json.loads(response.content)

    def paged(self, path, size, **params):
        """Pages until a short one (what fylrmig does for sources without a total); yields the entries."""
        offset = 0
        while True:
            page = self.get(path, limit=size, offset=offset, **params)
            items = page.get("objects", []) if isinstance(page, dict) else page
            yield from items
            if len(items) < size:
                return
            offset += len(items)


def child_bare_backup(api_url, flavour, connections=1):
    """The reads of a fylrmig backup --all-versions --chunk-size 100, decoded and dropped; with several
    connections the record pages of an objecttype and the collections' object lists go out in parallel."""
    started, cpu_started = time.perf_counter(), time.process_time()
    reader = Reader(api_url, flavour)
    e5, size = flavour == "easydb5", min(CHUNK, 1000)
    fmt = {"format": "json"} if e5 else {}
    reader.get("/schema/user/CURRENT", **fmt)
    reader.get("/mask/CURRENT", **fmt)
    reader.get("/l10n/user/CURRENT")
    reader.get("/config")
    if not e5:
        reader.get("/plugin/manage")
    reader.get("/tags")
    for _ in reader.paged("/group", size):
        pass
    for _ in reader.paged("/user", size, include_password="true"):
        pass
    if e5:
        reader.get("/pool")
        reader.get("/message")
    else:
        for _ in reader.paged("/pool", size):
            pass
        for _ in reader.paged("/message", size):
            pass
    objecttypes = sorted(o["objecttype"]["name"] for o in reader.get("/objecttype"))
    records_started = time.perf_counter()
    params = dict(LIST_PARAMS, **({} if e5 else {"files_real_url": "true"}))
    pool = concurrent.futures.ThreadPoolExecutor(connections) if connections > 1 else None
    local, readers = threading.local(), [reader]

    def mine():
        if pool is None:
            return reader
        if not hasattr(local, "reader"):
            local.reader = Reader(api_url, flavour, clone_session(reader.session))
            readers.append(local.reader)
        return local.reader

    in_parallel = [0.0]

    def each(function, items):
        if pool is None:
            return list(map(function, items))
        began = time.perf_counter()
        out = list(pool.map(function, items))
        in_parallel[0] += time.perf_counter() - began
        return out

    def page(ot, offset, count):
        return len(mine().get(f"/db/{ot}/_all_fields/list", limit=min(CHUNK, count - offset), offset=offset,
                              **params))

    def collection_objects(cid):
        page_size, offset = 1000 if e5 else 100, 0
        while True:
            body = mine().get(f"/collection/objects/{cid}", offset=offset, limit=page_size)
            objects = body.get("objects", []) if isinstance(body, dict) else body
            offset += len(objects)
            if len(objects) < page_size or (isinstance(body, dict) and offset >= int(body.get("count") or 0)):
                return
    counts = {ot: reader.post("/search", {"objecttypes": [ot], "offset": 0, "limit": 1, "format": "short"})["count"]
              for ot in objecttypes}
    versions = sum(each(lambda item: page(*item), [(ot, offset, count) for ot, count in counts.items()
                                                   for offset in range(0, count, CHUNK)]))
    records_seconds = time.perf_counter() - records_started
    collections = [c["collection"]["_id"] for c in reader.paged("/collection/list", size)
                   if not is_system(c["collection"])]
    each(collection_objects, collections)
    for _ in reader.paged("/event/list", size, sort="_id.ASC", **({"format": "json_full"} if e5 else {})):
        pass
    if pool is not None:
        pool.shutdown()
    return {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu_started,
            "records_seconds": records_seconds, "versions": versions, "requests": sum(r.requests for r in readers),
            "one_by_one_seconds": time.perf_counter() - started - in_parallel[0] if pool else None}


def is_system(body):
    return bool(body.get("is_system_pool") or body.get("is_system_collection")
                or (body.get("reference") or "").startswith("system:"))


class Uploader:
    """The file half of a bare restore with --file-api rput --upload-versions: rput originals (not producing)
    and every rendition (version_name, id_parent), then poll GET /eas until done."""

    def __init__(self, api_url, parallel, session):
        self.api_url, self.parallel, self.first = api_url, parallel, session
        self.targets = {}            # reference -> target id, across chunks (uploaded once per job)
        self.local = threading.local()
        self.rputs = self.polls = 0
        self.lock = threading.Lock()

    def session(self):
        if not hasattr(self.local, "session"):
            self.local.session = clone_session(self.first)
        return self.local.session

    def rput(self, url, filename, reference, leave, version_name=None, id_parent=None):
        params = {"url": url, "filename": filename, "reference": reference, "skip_head_request": "true",
                  "produce_versions": "false"}
        if leave:
            params["leave"] = "true"
        if version_name:
            params.update(version_name=version_name, id_parent=id_parent)
        response = self.session().post(self.api_url + "/eas/rput", params=params)
        response.raise_for_status()
        with self.lock:
            self.rputs += 1
        return json.loads(response.content)[0]["_id"]

    def upload(self, entry):
        name = entry.get("eas:filename") or entry.get("original_filename") or "file"
        leave = bool(entry.get("leave"))
        original = dict((entry.get("versions") or {}).get("original") or {})
        target = self.rput(original.get("url") or entry.get("eas:url"), name, entry["reference"], leave)
        for version, info in (entry.get("versions") or {}).items():
            if version == "original":
                continue
            filename = name.rsplit(".", 1)[0] + "." + info["extension"] if info.get("extension") else name
            self.rput(info.get("url"), filename, f"{entry['reference'].rsplit(':', 1)[0]}:{version}:of:{target}",
                      leave, version_name=version, id_parent=target)
        return target

    def settle(self, session, ids):
        waiting = set(ids)
        while waiting:
            response = session.get(self.api_url + "/eas", params={"ids": json.dumps(sorted(waiting)),
                                                                   "format": "standard"})
            response.raise_for_status()
            self.polls += 1
            for info in json.loads(response.content).values():
                status = info.get("status") or "pending"
                states = {v.get("status") for v in (info.get("versions") or {}).values() if isinstance(v, dict)}
                if "failed" in states or status == "failed":
                    raise SystemExit(f"the target could not fetch file {info.get('_id')}")
                if status in ("done", "sync") and not states & {"pending", "processing"}:
                    waiting.discard(info["_id"])
            if waiting:
                time.sleep(0.01)

    def link(self, session, records):
        holders = list(fylrmig.iter_payload_file_holders(records))
        unique = {}
        for container, key in holders:
            for entry in container[key]:
                if entry["reference"] not in self.targets:
                    unique.setdefault(entry["reference"], entry)
        with concurrent.futures.ThreadPoolExecutor(self.parallel) as pool:
            new = dict(zip(unique, pool.map(self.upload, unique.values())))
        self.settle(session, new.values())
        self.targets.update(new)
        for container, key in holders:
            container[key] = [{"_id": int(self.targets[e["reference"]]), "preferred": e.get("preferred", False),
                               "name": e.get("name"), "frontend_prefs": e.get("frontend_prefs") or {}}
                              for e in container[key]]


def child_bare_restore(api_url, folder, files=False, upload_parallel=4, connections=1):
    """POST /db chunks of a records-only backup copy, bodies prepared before the clock starts."""
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    groups, versions = [], 0
    for name in manifest["payloads"]:
        envelope = json.load(open(os.path.join(folder, name)))
        ot = envelope["objecttype"]
        entries = [fylrmig.record_for_target(e, ot) for e in envelope["objects"]]
        versions += len(entries)
        if not groups or groups[-1][0] != fylrmig.payload_group(name):
            groups.append((fylrmig.payload_group(name), []))
        for i in range(0, len(entries), CHUNK):
            chunk = entries[i:i + CHUNK]
            holders = list(fylrmig.iter_payload_file_holders(chunk))
            if holders and not files:
                for container, key in holders:
                    container.pop(key, None)
                holders = []
            groups[-1][1].append((ot, chunk if holders else json.dumps(chunk).encode()))
    local, sessions = threading.local(), []
    started, cpu_started = time.perf_counter(), time.process_time()
    first = bare_session(api_url, "fylr")
    uploader = Uploader(api_url, upload_parallel, first) if files else None

    def session():
        if not hasattr(local, "session"):
            local.session = first if not sessions else clone_session(first)
            sessions.append(local.session)
        return local.session

    def send(item):
        ot, body = item
        mine = session()
        if not isinstance(body, bytes):
            uploader.link(mine, body)
            body = json.dumps(body).encode()
        response = mine.post(f"{api_url}/db/{ot}", data=body, params=POST_DB_PARAMS,
                             headers={"Content-Type": "application/json"})
        response.raise_for_status()
        return len(json.loads(response.content))
    stored, one_by_one = 0, 0.0
    pool = concurrent.futures.ThreadPoolExecutor(connections) if connections > 1 else None
    for group, chunks in groups:
        began = time.perf_counter()
        if pool is None or "__history_" in group:
            stored += sum(send(c) for c in chunks)
            one_by_one += time.perf_counter() - began
        else:
            stored += sum(pool.map(send, chunks))
    if pool:
        pool.shutdown()
    return {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu_started,
            "versions": versions, "stored": stored, "one_by_one_seconds": one_by_one if pool else None,
            "posts": sum(len(c) for _, c in groups), "rputs": uploader.rputs if uploader else 0,
            "polls": uploader.polls if uploader else 0}


def child_main(kind, params):
    result = {"bare-backup": child_bare_backup, "bare-restore": child_bare_restore}[kind](**params)
    result["peak_kb"] = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
    print(json.dumps(result))


# ============================================================================ backup folders

def split_backup(folder, dest, keep):
    """A copy of a backup (payloads hard-linked) whose manifest lists only the payloads keep(name) accepts."""
    os.makedirs(dest)
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    for name in os.listdir(folder):
        if name.endswith((".json", ".gz")) and name != "manifest.json":
            os.link(os.path.join(folder, name), os.path.join(dest, name))
    manifest["payloads"] = [n for n in manifest["payloads"] if keep(n)]
    json.dump(manifest, open(os.path.join(dest, "manifest.json"), "w"))
    return os.path.join(dest, "manifest.json")


def restore_inputs(work, folder, tag):
    """(basetypes-only manifest, records-only manifest, record versions) of a fylrmig backup folder."""
    basetypes = split_backup(folder, os.path.join(work, f"{tag}-basetypes"),
                             lambda n: not re.search(r"__(db|event|collection_objects)__", n))
    records = split_backup(folder, os.path.join(work, f"{tag}-records"), lambda n: "__db__" in n)
    manifest = json.load(open(records))
    versions = sum(manifest["payload_info"][n]["count"] for n in manifest["payloads"])
    return basetypes, records, versions


# ============================================================================ the bench

class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="fylrmig-bench-")
        self.results = {}         # target key -> dict
        self.peaks = {}           # (step, flavour, size) -> MB
        self.seq = 0
        self.fylr_medium = None   # the fylr 20,000 record source: restores with files fetch from it

    def say(self, text=""):
        print(text, flush=True)

    def new(self, prefix):
        self.seq += 1
        return os.path.join(self.work, f"{prefix}-{self.seq:03d}")

    def start_sim(self, flavour, size, **options):
        sim = Sim(self.work, flavour, size, **options)
        if not sim.nodelay:
            self.say(f"  WARNING: simulator {flavour}/{size} does not set TCP_NODELAY")
        return sim

    # -- backup

    def fylrmig_backup(self, sim, parallel=1, keep=False):
        folder, data = self.new("backup"), self.new("data")
        run = run_fylrmig(self.work, [sim], "backup", "--server", sim.api_url, "--login", "root", "--password",
                          "admin", "--dir", folder, "--data", data, "--all-versions", "--chunk-size", CHUNK,
                          "--max-parallel", parallel, "--retry-sleep-between", 0, "--log", folder + ".log")
        run.folder = folder
        manifest = json.load(open(os.path.join(folder, "manifest.json")))
        run.versions = sum((manifest.get("counts") or {}).get("objecttypes", {}).values())
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
        return run

    def bare_backup(self, sim, connections=1):
        return run_bare(self.work, [sim], "bare-backup", api_url=sim.api_url, flavour=sim.flavour,
                        connections=connections)

    def backup_pair(self, sim, rounds, keep_folder=False):
        """Alternating bare loop and fylrmig backup runs against one source; returns the kept backup folder."""
        bare, mine, counts = [], [], {}
        if rounds > 1:
            self.bare_backup(sim)                                   # warm-up, not counted
        for round_no in range(rounds):
            sim.counts(reset=True)
            bare.append(self.bare_backup(sim))
            counts["bare"] = sim.counts(reset=True)
            mine.append(self.fylrmig_backup(sim, keep=keep_folder and round_no == rounds - 1))
            counts["fylrmig"] = sim.counts(reset=True)
        versions = bare[0].report["versions"]
        if any(m.versions != versions for m in mine):
            self.say(f"  WARNING: fylrmig backed up {mine[-1].versions} record versions, the bare loop read {versions}")
        b, m = median_run(bare), median_run(mine)
        ratio = b.seconds / m.seconds
        self.say(f"backup {sim.flavour}, {SIZES[sim.size]:,} records = {versions:,} record versions, "
                 f"{estimate(rounds)}:")
        self.say(f"  bare loop  {versions / b.seconds:7,.0f} versions/s {b.seconds:6.1f} s  CPU {b.cpu:5.1f} s  "
                 f"source busy {b.busy[0]:4.0%}  (records part {b.report['records_seconds']:.1f} s)")
        self.say(f"  fylrmig    {versions / m.seconds:7,.0f} versions/s {m.seconds:6.1f} s  CPU {m.cpu:5.1f} s  "
                 f"source busy {m.busy[0]:4.0%}  peak RSS {m.peak_mb:.0f} MB")
        self.say(f"  ratio {ratio:.2f} (target ≥ 0.85); runs: fylrmig {seconds_list(mine)}, bare {seconds_list(bare)}")
        self.say("  requests: " + compare_counts(counts["bare"], counts["fylrmig"]))
        self.results[("backup", sim.flavour, sim.size)] = {"ratio": ratio, "bare": versions / b.seconds,
                                                           "fylrmig": versions / m.seconds}
        self.peaks[("backup", sim.flavour, sim.size)] = m.peak_mb
        return mine[-1].folder if keep_folder else None

    def backup_memory(self, sim, keep_folder=False):
        """One fylrmig backup for its peak RSS (and a folder to restore)."""
        run = self.fylrmig_backup(sim, keep=keep_folder)
        self.say(f"backup {sim.flavour}, {SIZES[sim.size]:,} records = {run.versions:,} record versions, one run "
                 f"for memory: fylrmig {run.seconds:.1f} s, peak RSS {run.peak_mb:.0f} MB")
        self.peaks[("backup", sim.flavour, sim.size)] = run.peak_mb
        return run.folder if keep_folder else None

    # -- restore

    def prepare_target(self, target, basetypes):
        """Purge the target and restore datamodel, base config and basetypes into it (not measured)."""
        data = self.new("prep-data")
        run_fylrmig(self.work, [], "restore", "--manifest", basetypes, "--server", target.api_url, "--login", "root",
                    "--password", "admin", "--data", data, "--purge", "--skip-reindex", "--include-events=-",
                    "--chunk-size", CHUNK, "--retry-sleep-between", 0, "--log", data + ".log")
        shutil.rmtree(data, ignore_errors=True)
        target.counts(reset=True)

    def fylrmig_restore(self, target, source, records, files=False, parallel=1):
        data = self.new("data")
        extra = ["--file-api", "rput", "--upload-versions", "--max-parallel-upload-files", 4] if files else []
        run = run_fylrmig(self.work, [target] + ([source] if source else []), "restore", "--manifest", records,
                          "--server", target.api_url, "--login", "root", "--password", "admin", "--data", data,
                          "--datamodel", "-", "--base-config", "-", "--skip-reindex", "--chunk-size", CHUNK,
                          "--max-parallel", parallel, "--retry-sleep-between", 0, "--log", data + ".log", *extra)
        shutil.rmtree(data, ignore_errors=True)
        return run

    def bare_restore(self, target, source, records, files=False, connections=1):
        run = run_bare(self.work, [target] + ([source] if source else []), "bare-restore", api_url=target.api_url,
                       folder=os.path.dirname(records), files=files, connections=connections)
        if run.report["stored"] != run.report["versions"]:
            self.say(f"  WARNING: the target answered {run.report['stored']} records to the bare loop's "
                     f"{run.report['versions']}")
        return run

    def restore_pair(self, label, key, target, source, inputs, rounds, files=False):
        basetypes, records, versions = inputs
        bare, mine, counts = [], [], {}
        for _ in range(rounds):
            self.prepare_target(target, basetypes)
            bare.append(self.bare_restore(target, source, records, files))
            counts["bare"] = target.counts(reset=True)
            self.prepare_target(target, basetypes)
            mine.append(self.fylrmig_restore(target, source, records, files))
            counts["fylrmig"] = target.counts(reset=True)
        b, m = median_run(bare), median_run(mine)
        ratio = b.seconds / m.seconds
        posts = b.report["posts"]
        self.say(f"restore {label}: {versions:,} record versions, {estimate(rounds)}:")
        files_text = f", {b.report['rputs']} rputs, {b.report['polls']} polls of GET /eas" if files else ""
        self.say(f"  bare loop  {versions / b.seconds:7,.0f} versions/s {b.seconds:6.1f} s  CPU {b.cpu:5.1f} s  "
                 f"target busy {b.busy[0]:4.0%}  ({posts} POST /db{files_text}; the target's CPU per POST /db "
                 f"{b.sim_cpu[0] / posts * 1000:.0f} ms)")
        self.say(f"  fylrmig    {versions / m.seconds:7,.0f} versions/s {m.seconds:6.1f} s  CPU {m.cpu:5.1f} s  "
                 f"target busy {m.busy[0]:4.0%}  peak RSS {m.peak_mb:.0f} MB")
        self.say(f"  ratio {ratio:.2f} (target ≥ 0.85); runs: fylrmig {seconds_list(mine)}, bare {seconds_list(bare)}")
        self.say("  requests: " + compare_counts(counts["bare"], counts["fylrmig"]))
        self.results[key] = {"ratio": ratio, "bare": versions / b.seconds, "fylrmig": versions / m.seconds,
                             "busy": b.busy[0]}
        return m

    def restore_memory(self, size, target, inputs):
        basetypes, records, versions = inputs
        self.prepare_target(target, basetypes)
        run = self.fylrmig_restore(target, None, records)
        self.say(f"restore {SIZES[size]:,} records = {versions:,} record versions, no files, one run for memory: "
                 f"fylrmig {run.seconds:.1f} s, peak RSS {run.peak_mb:.0f} MB (target busy {run.busy[0]:.0%})")
        self.peaks[("restore", "fylr", size)] = run.peak_mb

    # -- sections

    def section_backup(self, sizes):
        self.say("\n== backup --all-versions --chunk-size 100 --max-parallel 1, no added latency")
        kept = {}
        for flavour in ("easydb5", "fylr"):
            if "medium_half" in sizes:
                sim = self.start_sim(flavour, "medium_half")
                kept[(flavour, "medium_half")] = self.backup_memory(sim, keep_folder=flavour == "fylr")
                sim.stop()
            sim = self.start_sim(flavour, "medium")
            kept[(flavour, "medium")] = self.backup_pair(sim, self.args.rounds, keep_folder=flavour == "fylr")
            if flavour == "fylr":
                self.fylr_medium = sim        # stays up: restores with files fetch from it, the page reads it
            else:
                sim.stop()
            if "large" in sizes:
                sim = self.start_sim(flavour, "large")
                kept[(flavour, "large")] = self.backup_pair(sim, 1, keep_folder=flavour == "fylr")
                sim.stop()
        return kept

    def section_restore(self, kept, sizes):
        self.say("\n== restore --chunk-size 100 --max-parallel 1, no added latency, of the fylr backup's records into "
                 "a fylr target holding its datamodel and basetypes")
        target = self.start_sim("fylr", "empty")
        try:
            inputs = restore_inputs(self.work, kept[("fylr", "medium")], "medium")
            rounds = self.args.restore_rounds
            m = self.restore_pair("20,000 records, no files", ("restore", "nofiles"), target, None, inputs, rounds)
            self.peaks[("restore", "fylr", "medium")] = m.peak_mb
            self.restore_pair("20,000 records, --file-api rput --upload-versions --max-parallel-upload-files 4",
                              ("restore", "files"), target, self.fylr_medium, inputs, rounds, files=True)
            for size in ("medium_half", "large"):
                if size in sizes:
                    self.restore_memory(size, target, restore_inputs(self.work, kept[("fylr", size)], size))
        finally:
            target.stop()

    def section_parallel(self, kept):
        self.say(f"\n== --max-parallel 4 vs 1, {LATENCY * 1000:.0f} ms added latency per request, 20,000 records, fylr")
        self.say("   (the source answers record pages from memory, filled by a warm-up pass: its rendering, one GIL, "
                 "must not cap 4 connections; the bare loops with 4 connections show the ceiling of this setup)")
        source = self.start_sim("fylr", "medium", latency=LATENCY, cache_reads=True)
        try:
            self.bare_backup(source)                                 # fills the cache
            self.parallel_pair("backup", source, self.args.rounds, lambda n: self.bare_backup(source, n),
                               lambda n: self.fylrmig_backup(source, parallel=n), lambda run: run.versions)
        finally:
            source.stop()
        target = self.start_sim("fylr", "empty", latency=LATENCY)
        try:
            basetypes, records, versions = restore_inputs(self.work, kept[("fylr", "medium")], "parallel")

            def bare(n):
                self.prepare_target(target, basetypes)
                return self.bare_restore(target, None, records, connections=n)

            def mine(n):
                self.prepare_target(target, basetypes)
                return self.fylrmig_restore(target, None, records, parallel=n)
            self.parallel_pair("restore", target, self.args.restore_rounds, bare, mine, lambda run: versions)
        finally:
            target.stop()

    def parallel_pair(self, step, sim, rounds, bare, mine, versions_of):
        runs, bares = {1: [], 4: []}, {1: [], 4: []}
        for _ in range(rounds):
            for n in (1, 4):
                bares[n].append(bare(n))
                runs[n].append(mine(n))
        versions = versions_of(runs[1][0])
        one, four = median_run(runs[1]), median_run(runs[4])
        b1, b4 = median_run(bares[1]), median_run(bares[4])
        speedup, ceiling = one.seconds / four.seconds, b1.seconds / b4.seconds
        who = "source" if step == "backup" else "target"
        self.say(f"{step} {versions:,} record versions, {estimate(rounds)}:")
        self.say(f"  fylrmig -p1 {versions / one.seconds:7,.0f} versions/s {one.seconds:6.1f} s  CPU {one.cpu:5.1f} s  "
                 f"{who} busy {one.busy[0]:4.0%}")
        self.say(f"  fylrmig -p4 {versions / four.seconds:7,.0f} versions/s {four.seconds:6.1f} s  CPU {four.cpu:5.1f} s  "
                 f"{who} busy {four.busy[0]:4.0%}   speed-up {speedup:.2f} (target ≥ 3)")
        self.say(f"  bare loop, 1 connection {b1.seconds:5.1f} s ({who} busy {b1.busy[0]:.0%}), 4 connections "
                 f"{b4.seconds:5.1f} s ({who} busy {b4.busy[0]:.0%}, the loop's own CPU {b4.cpu / b4.seconds:.0%}): "
                 f"speed-up {ceiling:.2f}")
        if ceiling < 3:
            own, sim_share = b4.cpu / b4.seconds, b4.busy[0]
            serial = b4.report["one_by_one_seconds"]
            what = ("basetypes, counts, collection list, events" if step == "backup" else
                    "history replays of an older fylrmig's backup, batch by batch")
            if max(own, sim_share) >= 0.8:
                limit = ("its own CPU (one GIL: json.loads of every answer)" if own >= sim_share else
                         f"the {who} simulator (one process, writes under one lock; {sim_share:.0%} of a CPU)")
            else:
                limit = (f"its own CPU ({own:.0%} of a CPU) and the {who}'s ({sim_share:.0%}) together use "
                         f"{(own + sim_share) / (os.cpu_count() or 1):.0%} of this machine's {os.cpu_count()} CPUs")
            self.say(f"  note: even the bare loop stays below 3 × here. Limit: {limit}; {serial:.1f} s of its "
                     f"{b4.seconds:.1f} s with 4 connections went to requests that go one by one ({what}).")
        bound = self.cpu_bound(step, one, four)
        self.results[("parallel", step)] = {"speedup": speedup, "ceiling": ceiling, "p1": versions / one.seconds,
                                            "p4": versions / four.seconds, "cpu_bound": bound}

    def cpu_bound(self, step, one, four):
        """The best speed-up the CPU seconds of the -p4 run allow on this machine: fylrmig is one process (one
        GIL: its CPU seconds pass one after the other), the simulator another, and both share the CPUs.
        Latency overlaps; CPU does not, and no scheduling packs it perfectly."""
        who = "source" if step == "backup" else "target"
        cores = os.cpu_count() or 1
        own, sim = four.cpu, four.sim_cpu[0]
        floor = max(own, sim, (own + sim) / cores)
        bound = one.seconds / floor
        self.say(f"  CPU floor of -p4 here: fylrmig {own:.1f} s (one process), the {who} {sim:.1f} s, together "
                 f"{(own + sim) / cores:.1f} s on each of {cores} CPUs: no -p4 run can take less than {floor:.1f} s, "
                 f"so at most {bound:.2f} × its -p1 {one.seconds:.1f} s")
        return bound

    def section_page(self):
        self.say("\n== status page (fylrmig serve) while a CLI backup of 20,000 records runs on its --data folder")
        import requests
        source = self.fylr_medium or self.start_sim("fylr", "medium")
        data, name = self.new("page-data"), "benchjob"
        os.makedirs(os.path.join(data, "backups"))
        port = free_port()
        page = subprocess.Popen([sys.executable, "-m", "fylrmig", "serve", "--data", data, "--port", str(port)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}/inspect/migration/"
        times = {"live": [], "status": []}
        try:
            wait_for(lambda: requests.get(base, timeout=2).status_code == 200, 30)
            job = subprocess.Popen([sys.executable, "-m", "fylrmig", "backup", "--server", source.api_url, "--login",
                                    "root", "--password", "admin", "--dir", os.path.join(data, "backups", name),
                                    "--data", data, "--all-versions", "--chunk-size", str(CHUNK),
                                    "--retry-sleep-between", "0", "--log", os.path.join(data, "job.log")],
                                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            session = requests.Session()
            while job.poll() is None:
                for kind, url in (("live", base + name + "/live"), ("status", base + name)):
                    started = time.perf_counter()
                    response = session.get(url, timeout=30)
                    elapsed = time.perf_counter() - started
                    if response.status_code == 200 and job.poll() is None:
                        times[kind].append(elapsed)
                    time.sleep(0.05)
            if job.returncode:
                self.say(f"  WARNING: the backup behind the page failed ({job.returncode})")
        finally:
            page.terminate()
            page.wait()
            if source is not self.fylr_medium:
                source.stop()
        for kind, path in (("live", f"/inspect/migration/{name}/live"), ("status", f"/inspect/migration/{name}")):
            values = sorted(times[kind])
            if not values:
                self.say(f"  GET {path}: no answer while the job ran")
                continue
            median = statistics.median(values)
            p90 = values[int(0.9 * (len(values) - 1))]
            self.say(f"  GET {path:34} {len(values):4} answers while the job ran: median {median * 1000:5.1f} ms, "
                     f"90th percentile {p90 * 1000:5.1f} ms, max {values[-1] * 1000:5.1f} ms")
            self.results[("page", kind)] = {"median": median, "p90": p90, "n": len(values)}

    # -- the table

    def table(self):
        rows = []

        def ratio_row(target, key):
            r = self.results.get(key)
            rows.append((target, "not measured", "-") if r is None else
                        (target, f"{r['ratio']:.2f} ({r['fylrmig']:,.0f} vs {r['bare']:,.0f} versions/s)",
                         met(r["ratio"] >= 0.85)))
        for flavour, label in (("easydb5", "easydb 5"), ("fylr", "fylr")):
            for size in ("medium", "large"):
                ratio_row(f"backup ≥ 0.85 × bare loop, {label}, {SIZES[size]:,} records", ("backup", flavour, size))
        ratio_row("restore ≥ 0.85 × bare loop, no files, 20,000 records", ("restore", "nofiles"))
        ratio_row("restore ≥ 0.85 × bare loop, rput + upload-versions, 20,000 records", ("restore", "files"))
        for step in ("backup", "restore"):
            r = self.results.get(("parallel", step))
            target = f"{step} --max-parallel 4 ≥ 3 × 1 worker, 10 ms latency"
            rows.append((target, "not measured", "-") if r is None else
                        (target, f"{r['speedup']:.2f} × ({r['p4']:,.0f} vs {r['p1']:,.0f} versions/s; bare loop "
                                 f"{r['ceiling']:.2f} ×; CPU bound {r['cpu_bound']:.2f} ×)", met(r["speedup"] >= 3)))
        for step, flavours in (("backup", ("easydb5", "fylr")), ("restore", ("fylr",))):
            big = [(f, self.peaks[(step, f, "large")]) for f in flavours if (step, f, "large") in self.peaks]
            target = f"{step} peak RSS ≤ 150 MB, 100,000 records"
            rows.append((target, "not measured", "-") if not big else
                        (target, ", ".join(f"{f} {mb:.0f} MB" for f, mb in big), met(max(mb for _, mb in big) <= 150)))
            growths = [(f, self.peaks[(step, f, "medium_half")], self.peaks[(step, f, "large")]) for f in flavours
                       if (step, f, "large") in self.peaks and (step, f, "medium_half") in self.peaks]
            target = f"{step} peak RSS growth < 20 %, 10,000 → 100,000 records"
            rows.append((target, "not measured", "-") if not growths else
                        (target, ", ".join(f"{f} {a:.0f} → {b:.0f} MB ({b / a - 1:+.0%})" for f, a, b in growths),
                         met(max(b / a - 1 for _, a, b in growths) < 0.20)))
        for kind, path in (("live", "/inspect/migration/<name>/live"), ("status", "/inspect/migration/<name>")):
            r = self.results.get(("page", kind))
            target = f"page {path} median < 50 ms while a job runs"
            rows.append((target, "not measured", "-") if r is None else
                        (target, f"{r['median'] * 1000:.1f} ms (90th percentile {r['p90'] * 1000:.0f} ms, "
                                 f"{r['n']} answers)", met(r["median"] < 0.05)))
        self.say("\n| target (issue 10) | measured | met? |\n|---|---|---|")
        for row in rows:
            self.say("| %s | %s | %s |" % row)
        return rows


def met(ok):
    return "met" if ok else "**not met**"


def median_run(runs):
    """The run of median duration (its peak, busy share and report travel with it); of two, the faster."""
    ordered = sorted(runs, key=lambda r: r.seconds)
    return ordered[(len(ordered) - 1) // 2]


def estimate(rounds):
    return ("one run each" if rounds == 1 else "the faster of 2 alternating runs each" if rounds == 2
            else f"median of {rounds} alternating runs each")


def seconds_list(runs):
    return " ".join(f"{r.seconds:.1f}" for r in runs) + " s"


def load_average():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def compare_counts(bare, mine):
    """'fylrmig 403, bare loop 395; fylrmig more: GET /api/v1/objecttype 3 vs 1, ...'"""
    skip = ("POST /api/oauth2/token", "GET /api/v1/session", "POST /api/v1/session/authenticate",
            "GET /api/v1/settings", "GET /api/v1/user/session")
    diff = []
    for kind in sorted(set(bare) | set(mine)):
        if kind not in skip and bare.get(kind, 0) != mine.get(kind, 0):
            diff.append(f"{kind} {mine.get(kind, 0)} vs {bare.get(kind, 0)}")
    text = f"fylrmig {sum(mine.values())}, bare loop {sum(bare.values())}"
    return text + ("; differing (fylrmig vs bare, login and session calls left out): " + ", ".join(diff) if diff
                   else "; same requests apart from login and session calls")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting")
        time.sleep(0.1)


def machine_facts():
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    return (f"{os.cpu_count()} CPUs ({model or platform.machine()}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}; fylrmig {fylrmig.__version__} at {commit}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child_main(sys.argv[2], json.loads(sys.argv[3]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="only the 20,000 record targets")
    parser.add_argument("--only", default="backup,restore,parallel,page",
                        help="sections to run (restore and parallel need backup)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating runs of each side for the 20,000 record backups and the parallel backups")
    parser.add_argument("--restore-rounds", type=int, default=2,
                        help="alternating runs of each side for the restores (each needs a target prepared anew)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    sections = set(args.only.split(","))
    if sections & {"restore", "parallel"} and "backup" not in sections:
        parser.error("restore and parallel restore the backups of the backup section: add backup to --only")
    sizes = ["medium"] if args.quick else ["medium_half", "medium", "large"]
    bench = Bench(args)
    started = time.perf_counter()
    bench.say(f"fylrmig benchmark (issue 10), {datetime.datetime.now():%Y-%m-%d %H:%M}: {machine_facts()}")
    startup = min(run_child(bench.work, [sys.executable, "-c", "import fylrmig"])[0] for _ in range(3))
    bench.say(f"fylrmig's interpreter start and import (python -c 'import fylrmig'): {startup:.2f} s, part of every "
              "fylrmig time below")
    load = load_average()
    bench.say(f"load average at start: {load}; work folder {bench.work}")
    if float(load.split()[0]) > 0.5:
        bench.say("NOTE: this machine is not idle: other processes compete for its CPUs and make every figure noisier "
                  "(CPU seconds are printed as well; they suffer less).")
    try:
        kept = bench.section_backup(sizes) if "backup" in sections else {}
        if "restore" in sections and kept:
            bench.section_restore(kept, sizes)
        if "parallel" in sections and kept:
            bench.section_parallel(kept)
        if "page" in sections:
            bench.section_page()
    finally:
        for sim in list(RUNNING):
            sim.stop()
        if not args.keep:
            shutil.rmtree(bench.work, ignore_errors=True)
    bench.table()
    bench.say(f"\nMachine: {machine_facts()}; load average at start {load}, at end {load_average()}; bench wall "
              f"time {(time.perf_counter() - started) / 60:.1f} min{' (--quick)' if args.quick else ''}.")


if __name__ == "__main__":
    main()
