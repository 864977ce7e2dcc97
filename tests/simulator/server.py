"""Serve a simulated instance over real HTTP (waitress in a daemon thread)."""
import http.client
import logging
import time

from webtest.http import StopableWSGIServer

from . import app as sim_app
from . import faults as sim_faults


class SimServer:
    """A running simulator: .url (no /api/v1), .api_url, .sim, .faults (FaultPlan or None), .shutdown()."""

    def __init__(self, sim, wsgi_server, faults):
        self.sim, self.faults, self._server = sim, faults, wsgi_server
        self.url = "http://%s:%s" % (wsgi_server.adj.host, wsgi_server.adj.port)
        self.api_url = self.url + "/api/v1"

    def shutdown(self):
        self._server.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()


def serve(sim, faults=None, host="127.0.0.1", port=None, threads=8):
    """Start serving `sim` (optionally behind a faults.FaultPlan); sets sim.base_url."""
    application = sim_app.make_app(sim)
    if faults is not None:
        application = sim_faults.wrap(application, sim, faults)
        # injected drops are logged by waitress as errors; they are expected here
        logging.getLogger("waitress").setLevel(logging.CRITICAL)
    options = {"host": host, "threads": threads, "expose_tracebacks": False}
    if port:
        options["port"] = port
    wsgi_server = StopableWSGIServer.create(application, **options)
    server = SimServer(sim, wsgi_server, faults)
    sim.base_url = server.url
    _wait_until_answering(wsgi_server.adj.host, wsgi_server.adj.port)
    return server


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
