"""Crash-point sweep: kill fylrmig at every n-th pass of its crash points, continue, compare.

    python -m tests.crash_sweep restore --flavour easydb5 --max-parallel 4 --points chunk-sent,file-uploaded
    python -m tests.crash_sweep backup --flavour fylr --points page-done,emitted --every 2

Each run is killed (FYLRMIG_CRASH_AT=<point>:<n>, SIGKILL at the n-th pass) and then continued; the
result must equal the uninterrupted run's: a restore's target (canonical dump by reference, and the
number of files in its EAS: nothing uploaded twice), a backup's payloads, packed files and counts. A
point is swept until a run finishes before reaching it. Slower than the suite (minutes per point), so not
part of it: the tests keep one exact case per bug it found (a plugin left disabled, a shared e-mail
address given by the order chunks arrived in)."""
import argparse
import pathlib
import shutil
import sys
import tempfile

from tests.conftest import generated_instance
from tests.helpers import (backup_argv, by_reference, manifest, normalized_payloads, restore_argv, run_cli,
                           run_cli_env, tree_digest, without_system_entities)
from tests.simulator.dump import canonical_dump
from tests.simulator.server import serve

POINTS = {"restore": "chunk-prepared,chunk-sent,chunk-done,file-uploaded,file-settled,plugin-installed",
          "backup": "page-spooled,page-done,emitted,payload-written,file-packed,manifest-written"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("job", choices=["restore", "backup"])
    parser.add_argument("--flavour", default="fylr", choices=["fylr", "easydb5"], help="the source")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--points", help="crash points, comma-separated (default: all of the job)")
    parser.add_argument("--every", type=int, default=3, help="n = 1, 1 + every, ... until a run finishes")
    parser.add_argument("--max-parallel", default="2")
    parser.add_argument("--chunk-size", default="5")
    parser.add_argument("--file-api", default="rput")
    args = parser.parse_args(argv)
    work = pathlib.Path(tempfile.mkdtemp(prefix="crash-sweep-"))
    source = serve(generated_instance(args.flavour, 1, args.size))
    try:
        sweep = RestoreSweep(args, work, source) if args.job == "restore" else BackupSweep(args, work, source)
        failures = sum(sweep.point(point) for point in (args.points or POINTS[args.job]).split(","))
    finally:
        source.shutdown()
    if not failures:
        shutil.rmtree(work, ignore_errors=True)
        print("every continued run gave the uninterrupted result")
        return 0
    print(f"{failures} continued runs differ or failed; their folders are in {work}")
    return 1


class Sweep:
    def __init__(self, args, work, source):
        self.args, self.work, self.source, self.runs = args, work, source, 0
        argv, state = self.run_whole()
        self.want = self.outcome(argv, state)
        self.done(state)

    def point(self, point):
        """Kill at point:1, point:1+every, ... and continue each; the number of runs that differ or fail."""
        failures, n = 0, 1
        while True:
            self.runs += 1
            argv, first, state = self.fresh()
            killed = run_cli_env({"FYLRMIG_CRASH_AT": f"{point}:{n}"}, *argv, *first)
            if killed.returncode != -9:
                print(f"{point}:{n} not reached: every pass of {point} checked", flush=True)
                self.done(state)
                return failures
            continued = run_cli(*argv, "--continue")
            if continued.returncode:
                problems = ["--continue failed: " + continued.stderr.strip()[-300:]]
            else:
                problems = differences(self.want, self.outcome(argv, state))
            failures += bool(problems)
            print(f"{point}:{n} " + ("; ".join(problems) if problems else "same"), flush=True)
            self.done(state)
            n += self.args.every

    def run_whole(self):
        argv, first, state = self.fresh()
        result = run_cli(*argv, *first)
        if result.returncode:
            raise SystemExit(f"the uninterrupted {self.args.job} failed: {result.stderr[-500:]}")
        return argv, state

    def done(self, state):
        pass


class RestoreSweep(Sweep):
    def __init__(self, args, work, source):
        self.folder = work / "backup"
        result = run_cli(*backup_argv(source, self.folder, work / "backup-data", "--all-versions",
                                      "--include-deleted"))
        if result.returncode:
            raise SystemExit(f"the backup failed: {result.stderr[-500:]}")
        super().__init__(args, work, source)

    def fresh(self):
        target = serve(generated_instance("fylr", 1, "empty"))
        argv = restore_argv(self.folder, target, self.work / f"data{self.runs}", "--file-api", self.args.file_api,
                            "--chunk-size", self.args.chunk_size, "--include-password", "--max-parallel",
                            self.args.max_parallel)
        return argv, ["--purge"], target

    def outcome(self, argv, target):
        dump = without_system_entities(by_reference(canonical_dump(target.sim), target.sim))
        dump["files in the target's EAS"] = len(target.sim.files)
        return dump

    def done(self, target):
        target.shutdown()


class BackupSweep(Sweep):
    def fresh(self):
        folder, data = self.work / f"backup{self.runs}", self.work / f"data{self.runs}"
        argv = backup_argv(self.source, folder, data, "--all-versions", "--include-deleted", "--chunk-size",
                           self.args.chunk_size, "--max-parallel", self.args.max_parallel, "--include-files",
                           "original")
        return argv, [], folder

    def outcome(self, argv, folder):
        return {"payloads": normalized_payloads(folder), "files": tree_digest(folder),
                "counts": manifest(folder)["counts"]}


def differences(want, got):
    """'section: n differ, e.g. ...' for each part of the outcome that is not the same."""
    out = []
    for section in sorted(set(want) | set(got)):
        a, b = want.get(section), got.get(section)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            keys = sorted(map(str, (k for k in set(a) | set(b) if a.get(k) != b.get(k))))
            out.append(f"{section}: {len(keys)} differ, e.g. {keys[:3]}")
        else:
            out.append(f"{section} differs" + (f" ({a} vs {b})" if isinstance(a, int) else ""))
    return out


if __name__ == "__main__":
    sys.exit(main())
