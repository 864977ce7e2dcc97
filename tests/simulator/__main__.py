"""Serve one simulated instance until Ctrl-C.

    python -m tests.simulator --flavour fylr --size tiny --seed 1 --port 8081 --login root --password admin
"""
import argparse
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
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--login", default="root")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--error-rate", type=float, default=0.0, help="fraction of requests answered 502/503/504")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="fraction of responses cut mid-body")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--fail-first", type=int, default=0,
                        help="answer the first N requests of every request kind 502/503/504")
    return parser.parse_args(argv)


def main(argv=None):
    args = _arguments(argv)
    sim = datagen.generate(args.flavour, seed=args.seed, size=args.size, login=args.login, password=args.password)
    plan = None
    if args.error_rate or args.drop_rate or args.latency or args.fail_first:
        plan = FaultPlan(seed=args.seed, error_rate=args.error_rate, drop_rate=args.drop_rate, latency=args.latency,
                         fail_first=args.fail_first)
    server = serve(sim, faults=plan, host=args.host, port=args.port)
    print("%s simulator (%s, seed %d, %d records) at %s" % (args.flavour, args.size, args.seed, len(sim.sysids),
                                                           server.url))
    print("API: %s   login: %s   password: %s" % (server.api_url, args.login, args.password))
    if args.flavour == "easydb5":
        print("normal user: jdoe / secret")
    else:
        print("token: POST %s/api/oauth2/token (client_id fylr-web-frontend)   normal user: jdoe / secret" % server.url)
    print("Ctrl-C stops it.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
