"""Fault injection middleware: what a flaky proxy / network in front of an instance does (api.md §3.3).

    plan = FaultPlan(seed=3, error_rate=0.2, drop_rate=0.05, latency=0.01, expire_tokens_after=50)
    wsgi_app = wrap(make_app(sim), sim, plan)

Per request, decided in this order by one random.Random(seed) (deterministic for a given request order):
  * latency      - seconds slept before the request is handled (every request)
  * error_rate   - fraction answered 502/503/504 with an nginx-like HTML body; the app never sees the
                   request, unless errors_after_processing (a gateway timeout after the work was done)
  * drop_rate    - fraction whose response is cut: headers (with the full Content-Length) and half of
                   the body are sent, then the connection is aborted, so the client sees a truncated response
  * expire_tokens_after - after that many requests (counting only requests the plan applies to),
                   auth.expire_all_tokens(sim) runs once (refresh tokens stay valid)
Paths in exempt_paths (default: /api/v1/settings, so flavour detection stays reliable) get no faults;
only_prefixes, when set, limits faults to paths starting with one of them.  The counters record what
was injected so tests can assert on them.
"""
import random
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
    # counters of what was injected
    requests: int = 0
    errors: int = 0
    errors_by_status: dict = field(default_factory=dict)
    drops: int = 0
    delayed: int = 0
    token_expiries: int = 0

    def __post_init__(self):
        self._rnd = random.Random(self.seed)
        self._lock = threading.Lock()

    def applies_to(self, path):
        if path in self.exempt_paths:
            return False
        return not self.only_prefixes or any(path.startswith(p) for p in self.only_prefixes)

    def decide(self, sim):
        """(error status or None, drop?) for the next request; counts it and expires tokens when due."""
        with self._lock:
            self.requests += 1
            if self.expire_tokens_after and self.requests == self.expire_tokens_after + 1:
                auth.expire_all_tokens(sim)
                self.token_expiries += 1
            status = None
            if self.error_rate and self._rnd.random() < self.error_rate:
                status = self._rnd.choice(self.error_statuses)
                self.errors += 1
                self.errors_by_status[status] = self.errors_by_status.get(status, 0) + 1
            drop = status is None and bool(self.drop_rate) and self._rnd.random() < self.drop_rate
            self.drops += drop
            return status, drop

    def summary(self):
        return {"requests": self.requests, "errors": self.errors, "errors_by_status": dict(self.errors_by_status),
                "drops": self.drops, "delayed": self.delayed, "token_expiries": self.token_expiries}


def _proxy_error(status, start_response):
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
