"""Shared test helpers: running fylrmig, reading a backup folder, what a simulated instance holds."""
import glob
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys

import fylrmig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEVER_BACKED_UP = {"OBJECT_INDEX", "SESSION_INVALID", "FRONTEND_ERROR", "COLLECTION_OWNER_RIGHTS_ERROR"}


def run_main(capsys, *argv):
    """fylrmig's main() in this process: (exit code, stdout, stderr)."""
    code = fylrmig.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def run_cli(*argv, timeout=300):
    """fylrmig as a separate process, the way a sysadmin runs it."""
    return subprocess.run([sys.executable, "-m", "fylrmig", *map(str, argv)], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def backup_argv(server, folder, data, *extra):
    return ["backup", "--server", server.api_url, "--login", "root", "--password", "admin", "--dir", folder,
            "--data", data, "--retry-sleep-between", "0", *extra]


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as fh:
        return json.loads(fh.read().decode("utf-8"))


def manifest(folder):
    return load(os.path.join(folder, "manifest.json"))


def payloads(folder):
    """[(name, envelope)] in manifest order."""
    return [(name, load(os.path.join(folder, name))) for name in manifest(folder)["payloads"]]


def entries(folder, import_type):
    key = fylrmig.IMPORT_TYPE_ARRAYS[import_type]
    return [e for _, env in payloads(folder) if env["import_type"] == import_type for e in env[key]]


def records_by_sysid(folder):
    """{system object id: [payload entries in payload order]}."""
    out = {}
    for entry in entries(folder, "db"):
        out.setdefault(entry["_system_object_id"], []).append(entry)
    return out


def normalized_payloads(folder):
    """Payload contents with the time-dependent parts (file URL signatures) blanked, for equality checks."""
    text = json.dumps(payloads(folder), sort_keys=True, ensure_ascii=False)
    return re.sub(r"x-fylr-signature=[^&\"]+", "x-fylr-signature=X", text)


def tree_digest(folder, sub="files"):
    """{relative path: sha256} of every file under folder/sub."""
    out = {}
    for path in glob.glob(os.path.join(folder, sub, "**", "*"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def expected_records(sim, all_versions=False, include_deleted=False):
    """{sysid: (objecttype, [stored versions a backup must hold])}."""
    out = {}
    for ot, records in sim.records.items():
        for record in records.values():
            if record.get("deleted_at") and not include_deleted:
                continue
            versions = record["versions"] if all_versions else record["versions"][-1:]
            out[record["_system_object_id"]] = (ot, versions)
    return out


def reference(entry, kind):
    body = entry[kind]
    return body.get("reference") or f"{kind}:{body['_id']}"


def plain(value):
    """A stored field value is 'plain' when the backup must carry it unchanged."""
    return not (isinstance(value, dict) and "_system_object_id" in value) and not (
        isinstance(value, list) and value and isinstance(value[0], dict))


def kill_at_random_points(argv, first_mode, seed, low, high, rounds=4):
    """Run fylrmig `rounds` times (first with `first_mode`, then with --continue), each killed with
    SIGKILL after a random delay in [low, high] s; returns how many runs were really killed."""
    import random
    import signal
    import time
    rnd, kills = random.Random(seed), 0
    for attempt in range(rounds):
        mode = first_mode if attempt == 0 else ["--continue"]
        proc = subprocess.Popen([sys.executable, "-m", "fylrmig", *map(str, argv), *mode], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(low, high))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    return kills


def run_cli_env(env, *argv, timeout=300):
    """run_cli with extra environment variables (a value of None removes one), e.g.
    {"FYLRMIG_CRASH_AT": "chunk-sent:3"} to SIGKILL the process at an exact point."""
    full = {k: v for k, v in os.environ.items() if k not in env}
    full.update({k: v for k, v in env.items() if v is not None})
    return subprocess.run([sys.executable, "-m", "fylrmig", *map(str, argv)], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, env=full)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
