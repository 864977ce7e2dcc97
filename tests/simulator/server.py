"""Serve a simulated instance over real HTTP (waitress in a daemon thread)."""
import collections
import http.client
import json
import logging
import threading
import time
import urllib.parse

import bottle
from webtest.http import StopableWSGIServer

from . import app as sim_app
from . import auth
from . import faults as sim_faults

COUNTS_PATH = "/__requests__"
# requests that read although they are not GETs: they leave a read cache as it is
_READING_POSTS = ("/api/v1/search", "/api/v1/session/authenticate", "/api/v1/session/deauthenticate",
                  "/api/oauth2/token")


class InFlight:
    """Requests being handled right now and the most at any one time (a client's --max-parallel, seen from
    the server; with the plan's latency every request overlaps the ones sent beside it)."""

    def __init__(self):
        self.now = self.most = 0
        self._lock = threading.Lock()

    def wrap(self, app):
        def gauged(environ, start_response):
            with self._lock:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                return app(environ, start_response)
            finally:
                with self._lock:
                    self.now -= 1
        return gauged


class SimServer:
    """A running simulator: .url (no /api/v1), .api_url, .sim, .faults (FaultPlan or None), .in_flight
    (InFlight), .shutdown()."""

    def __init__(self, sim, wsgi_server, faults, in_flight):
        self.sim, self.faults, self._server, self.in_flight = sim, faults, wsgi_server, in_flight
        self.url = "http://%s:%s" % (wsgi_server.adj.host, wsgi_server.adj.port)
        self.api_url = self.url + "/api/v1"

    @property
    def tcp_nodelay(self):
        """Whether accepted connections get TCP_NODELAY (waitress' default socket_options)."""
        import socket
        return (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) in [tuple(o) for o in self._server.adj.socket_options]

    def shutdown(self):
        self._server.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()


def serve(sim, faults=None, host="127.0.0.1", port=None, threads=8, count_requests=False, cache_reads=False):
    """Start serving `sim` (optionally behind a faults.FaultPlan); sets sim.base_url.

    count_requests: every request is counted by faults.request_kind, and GET /__requests__ answers the counts
    as JSON ({kind: n}; ?reset=1 starts again from zero) without reaching the instance (for the benchmark,
    which checks that its bare loops send what fylrmig sends).
    cache_reads: record reads (GET /api/v1/db/...) answered 200 are kept as sent and answered again from
    memory to the same user (any token of it) until the next write; the fault plan still applies to every
    request.  For benchmarks that must not measure the simulator's rendering (read-only sources only)."""
    application = sim_app.make_app(sim)
    if cache_reads:
        application = _caching(application, sim)
    if faults is not None:
        application = sim_faults.wrap(application, sim, faults)
        # injected drops are logged by waitress as errors; they are expected here
        logging.getLogger("waitress").setLevel(logging.CRITICAL)
    if count_requests:
        application = _counting(application)
    in_flight = InFlight()
    application = in_flight.wrap(application)
    options = {"host": host, "threads": threads, "expose_tracebacks": False}
    if port:
        options["port"] = port
    wsgi_server = StopableWSGIServer.create(application, **options)
    server = SimServer(sim, wsgi_server, faults, in_flight)
    sim.base_url = server.url
    _wait_until_answering(wsgi_server.adj.host, wsgi_server.adj.port)
    return server


def _counting(app):
    counts, lock = collections.Counter(), threading.Lock()

    def counted(environ, start_response):
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
        if path == COUNTS_PATH:
            with lock:
                body = json.dumps(dict(counts), sort_keys=True).encode()
                if "reset=1" in environ.get("QUERY_STRING", ""):
                    counts.clear()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        with lock:
            counts[sim_faults.request_kind(method, path)] += 1
        return app(environ, start_response)
    return counted


def _caching(app, sim):
    cache, lock = {}, threading.Lock()

    def cached(environ, start_response):
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
        if method != "GET":
            if method not in ("HEAD", "OPTIONS") and path not in _READING_POSTS:
                with lock:
                    cache.clear()
            return app(environ, start_response)
        if not path.startswith("/api/v1/db/"):
            return app(environ, start_response)
        user = auth.current_user(sim, bottle.BaseRequest(dict(environ)))
        if user is None:
            return app(environ, start_response)
        query = sorted((k, v) for k, v in urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""),
                                                                 keep_blank_values=True)
                       if k not in ("token", "access_token"))
        key = (path, tuple(query), user["user"]["_id"])
        with lock:
            hit = cache.get(key)
        if hit is None:
            hit = sim_faults._run_app(app, environ)
            if hit[0].startswith("200"):
                with lock:
                    cache[key] = hit
        status, headers, body = hit
        start_response(status, list(headers))
        return [body]
    return cached


def _wait_until_answering(host, port, timeout=10.0):
    """Poll the ping path of StopableWSGIServer (its own wait() sleeps 0.3 s first)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = http.client.HTTPConnection(host, int(port), timeout=2)
            connection.request("GET", "/__application__")
            connection.getresponse().read()
            connection.close()
            return
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
