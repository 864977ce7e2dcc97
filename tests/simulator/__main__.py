"""Serve one simulated instance until Ctrl-C (or SIGTERM).

    python -m tests.simulator --flavour fylr --size tiny --seed 1 --port 8081 --login root --password admin

The last line printed is "READY <url>" once the instance answers (bench/bench.py waits for it).  For a
benchmark: --threads (waitress worker threads), --rput-delay 0 and --purge-busy 0 (no waits but the
configured --latency), --count-requests (GET /__requests__ answers the request counts by kind),
--cache-reads (repeated record reads answered from memory: the simulator's rendering is not measured).
"""
import argparse
import gc
import signal
import sys
import threading

from . import datagen
from .faults import FaultPlan
from .server import serve


def _arguments(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.simulator", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--flavour", choices=("easydb5", "fylr"), default="fylr")
    parser.add_argument("--size", choices=datagen.SIZES, default="tiny")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 = any free port (see the READY line)")
    parser.add_argument("--login", default="root")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--error-rate", type=float, default=0.0, help="fraction of requests answered 502/503/504")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="fraction of responses cut mid-body")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--fail-first", type=int, default=0,
                        help="answer the first N requests of every request kind 502/503/504")
    parser.add_argument("--threads", type=int, default=8, help="waitress worker threads")
    parser.add_argument("--rput-delay", type=float, default=None,
                        help="seconds before an rput's background fetch starts (default: the instance's 0.05)")
    parser.add_argument("--purge-busy", type=float, default=None,
                        help="seconds the instance answers 503 after a purge (default: the instance's 0.3)")
    parser.add_argument("--count-requests", action="store_true",
                        help="count requests by kind; GET /__requests__[?reset=1] answers the counts")
    parser.add_argument("--cache-reads", action="store_true",
                        help="answer repeated record reads (GET /api/v1/db/...) from memory until the next write")
    return parser.parse_args(argv)


def main(argv=None):
    args = _arguments(argv)
    sim = datagen.generate(args.flavour, seed=args.seed, size=args.size, login=args.login, password=args.password)
    # The generated instance is long-lived and writes add records by the thousand: the cyclic GC need not scan
    # them again and again (a fifth of a POST /db's CPU with the defaults).
    gc.freeze()
    gc.set_threshold(50000, 50, 1000)
    if args.rput_delay is not None:
        sim.rput_delay = args.rput_delay
    if args.purge_busy is not None:
        sim.purge_busy_seconds = args.purge_busy
    plan = None
    if args.error_rate or args.drop_rate or args.latency or args.fail_first:
        plan = FaultPlan(seed=args.seed, error_rate=args.error_rate, drop_rate=args.drop_rate, latency=args.latency,
                         fail_first=args.fail_first)
    server = serve(sim, faults=plan, host=args.host, port=args.port or None, threads=args.threads,
                   count_requests=args.count_requests, cache_reads=args.cache_reads)
    print("%s simulator (%s, seed %d, %d records) at %s" % (args.flavour, args.size, args.seed, len(sim.sysids),
                                                           server.url))
    print("API: %s   login: %s   password: %s" % (server.api_url, args.login, args.password))
    if args.flavour == "easydb5":
        print("normal user: jdoe / secret")
    else:
        print("token: POST %s/api/oauth2/token (client_id fylr-web-frontend)   normal user: jdoe / secret" % server.url)
    print("waitress: %d threads, TCP_NODELAY %s, latency %g s%s" % (
        args.threads, "on" if server.tcp_nodelay else "off", args.latency, ", record reads cached" if args.cache_reads
        else ""))
    print("Ctrl-C stops it.")
    print("READY %s" % server.url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    main()
