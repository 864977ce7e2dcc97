"""Fault injection middleware: what a flaky proxy / network / busy server in front of an instance does
(api.md §3.3).

    plan = FaultPlan(seed=3, error_rate=0.2, drop_rate=0.05, latency=0.01, expire_tokens_after=50)
    wsgi_app = wrap(make_app(sim), sim, plan)

First, independent of every other option:
  * fail_first   - the first `fail_first` requests of EVERY distinct request kind (method + path with
                   numeric / id / hash segments normalised, query ignored; see request_kind) are answered
                   with a status from fail_first_statuses (cycled, default 502/503/504), then that kind
                   passes.  /api/v1/settings and /api/oauth2/token are included: this proves that a client
                   retries every kind of request it sends.
Then per request, decided in this order by one random.Random(seed) (deterministic for a given request order):
  * latency      - seconds slept before the request is handled (every request)
  * error_rate   - fraction answered with one of error_statuses (default 502/503/504 with an nginx-like HTML
                   body; 423 is answered with fylr's JSON error DatabaseLockError); the app never sees the
                   request, unless errors_after_processing (a gateway timeout after the work was done)
  * drop_rate    - fraction whose response is cut: headers (with the full Content-Length) and half of
                   the body are sent, then the connection is aborted, so the client sees a truncated response
  * expire_tokens_after - after that many requests (counting only requests the plan applies to),
                   auth.expire_all_tokens(sim) runs once (refresh tokens stay valid)
  * read_only_after - after that many requests the instance turns read-only for read_only_seconds
                   (sim.read_only_until: writes answer 400 ReadOnlyMode + X-Fylr-Read-Only-Mode: true)
Paths in exempt_paths (default: /api/v1/settings, so flavour detection stays reliable; exempt_paths=()
exempts nothing) get none of these; only_prefixes, when set, limits them to paths starting with one of
them.  The counters record what was injected so tests can assert on them.
"""
import functools
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field

from . import auth

_PROXY_BODIES = {
    502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out",
}


class InjectedDrop(ConnectionAbortedError):
    """Raised inside the response iterator to make the WSGI server abort the connection."""


@dataclass
class FaultPlan:
    seed: int = 1
    error_rate: float = 0.0
    latency: float = 0.0
    drop_rate: float = 0.0
    expire_tokens_after: int = None
    error_statuses: tuple = (502, 503, 504)
    errors_after_processing: bool = False
    exempt_paths: tuple = ("/api/v1/settings",)
    only_prefixes: tuple = ()
    fail_first: int = 0
    fail_first_statuses: tuple = (502, 503, 504)
    read_only_after: int = None
    read_only_seconds: float = 1.0
    # counters of what was injected
    requests: int = 0
    errors: int = 0
    errors_by_status: dict = field(default_factory=dict)
    drops: int = 0
    delayed: int = 0
    token_expiries: int = 0
    read_only_switches: int = 0
    first_failures: dict = field(default_factory=dict)     # request kind -> failures answered so far

    def __post_init__(self):
        self._rnd = random.Random(self.seed)
        self._lock = threading.Lock()

    def applies_to(self, path):
        if path in self.exempt_paths:
            return False
        return not self.only_prefixes or any(path.startswith(p) for p in self.only_prefixes)

    def first_failure(self, method, path):
        """Status for a request of a kind that has not failed fail_first times yet, else None."""
        if not self.fail_first:
            return None
        kind = request_kind(method, path)
        with self._lock:
            done = self.first_failures.get(kind, 0)
            if done >= self.fail_first:
                return None
            self.first_failures[kind] = done + 1
            status = self.fail_first_statuses[(sum(self.first_failures.values()) - 1) % len(self.fail_first_statuses)]
            self.errors_by_status[status] = self.errors_by_status.get(status, 0) + 1
            return status

    def decide(self, sim):
        """(error status or None, drop?) for the next request; counts it and runs the due switches."""
        with self._lock:
            self.requests += 1
            if self.expire_tokens_after and self.requests == self.expire_tokens_after + 1:
                auth.expire_all_tokens(sim)
                self.token_expiries += 1
            if self.read_only_after and self.requests == self.read_only_after + 1:
                with sim.lock:
                    sim.read_only_until = time.time() + self.read_only_seconds
                self.read_only_switches += 1
            status = None
            if self.error_rate and self._rnd.random() < self.error_rate:
                status = self._rnd.choice(self.error_statuses)
                self.errors += 1
                self.errors_by_status[status] = self.errors_by_status.get(status, 0) + 1
            drop = status is None and bool(self.drop_rate) and self._rnd.random() < self.drop_rate
            self.drops += drop
            return status, drop


_VARIABLE_SEGMENT = re.compile(r"^(\d+|[0-9a-fA-F]{16,}|[0-9a-fA-F-]{36}|\d+@.+|\d+\.[0-9a-f]+)$")


@functools.lru_cache(maxsize=4096)
def request_kind(method, path):
    """"GET /api/v1/db/bilder/_all_fields/{}": numbers, hashes, uuids, global object ids replaced by {}.
    (A function of its two strings only: remembered, not matched segment by segment for every request.)"""
    segments = ["{}" if _VARIABLE_SEGMENT.match(s) else s for s in path.split("/")]
    return "%s %s" % (method, "/".join(segments))


def _proxy_error(status, start_response):
    if status == 423:                           # fylr's own answer, not a proxy's (OAS DatabaseLockError)
        body = json.dumps({"code": "DatabaseLockError", "error": 'Unable to acquire a lock for resource "".',
                           "package": "ferrors", "parameters": {"object": "", "realm": "api", "statuscode": 423},
                           "realm": "api", "statuscode": 423}).encode()
        start_response("423 Locked", [("Content-Type", "application/json; charset=utf-8"),
                                      ("Content-Length", str(len(body)))])
        return [body]
    text = "%d %s" % (status, _PROXY_BODIES.get(status, "Error"))
    body = ("<html>\r\n<head><title>%s</title></head>\r\n<body>\r\n<center><h1>%s</h1></center>\r\n"
            "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n" % (text, text)).encode()
    start_response(text, [("Content-Type", "text/html"), ("Content-Length", str(len(body))),
                          ("Server", "nginx")])
    return [body]


def _run_app(app, environ):
    """Call the app and collect status, headers and the whole body."""
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, headers
        return lambda data: None
    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return captured["status"], captured["headers"], body


def _truncated(body):
    yield body[:len(body) // 2]
    raise InjectedDrop("fault injection: connection dropped mid-response")


def wrap(app, sim, plan):
    """WSGI middleware injecting the faults of `plan` in front of `app`."""
    def faulty(environ, start_response):
        path = environ.get("PATH_INFO", "")
        first = plan.first_failure(environ.get("REQUEST_METHOD", "GET"), path)
        if first is not None:
            return _proxy_error(first, start_response)
        if not plan.applies_to(path):
            return app(environ, start_response)
        if plan.latency:
            with plan._lock:
                plan.delayed += 1
            time.sleep(plan.latency)
        status, drop = plan.decide(sim)
        if status is not None:
            if plan.errors_after_processing:
                _run_app(app, environ)
            return _proxy_error(status, start_response)
        if not drop:
            return app(environ, start_response)
        code, headers, body = _run_app(app, environ)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(code, headers + [("Content-Length", str(max(len(body), 2)))])
        return _truncated(body if len(body) >= 2 else b"{}")
    return faulty
