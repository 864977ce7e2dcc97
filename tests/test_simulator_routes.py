"""Every route the fylr simulator serves must exist in fylr's OpenAPI spec (same method).

Covers the read routes (app.py) and the write routes (writes.install) alike.  Routes outside the spec
are allowed only from ALLOWED_EXTRA below, each with the reason."""
import json
import pathlib
import re

from tests.simulator import datagen
from tests.simulator.app import make_app

SPEC = pathlib.Path(__file__).parent / "data" / "fylr_openapi_routes.json"

ALLOWED_EXTRA = {
    # simulated upstream host of leave-on-remote files (stands in for another server, not fylr)
    ("GET", "/remote/{}/{}"),
    # documented record addressing forms (api.md §4.5, E5 api/db) that the OAS route list lacks
    ("GET", "/api/v1/db/{}/{}/system_object_id/{}"),
    ("GET", "/api/v1/db/{}/{}/global_object_id/{}"),
}

_SERVERS = (("/api/v1", "/api/v1"), ("/api/oauth2/", "/api"))


def _segments(path):
    """Path split into segments; any parameter becomes "{}" ("{}+" for a multi-segment one)."""
    out = []
    for segment in path.strip("/").split("/"):
        if segment.startswith("<") and segment.endswith(":path>") or re.fullmatch(r"\{\w[\w-]*\+\}", segment):
            out.append("{}+")
        elif re.fullmatch(r"<[^>]+>|\{[^}]+\}", segment):
            out.append("{}")
        else:
            out.append(segment)
    return out


def _spec_routes():
    routes = json.loads(SPEC.read_text())["routes"]
    return [(r["method"], _segments(("" if r["server"] == "/" else r["server"]) + r["path"])) for r in routes]


def _matches(route_segments, spec_segments):
    """A static route segment may fill a spec parameter ({version} <- HEAD); a route parameter needs one."""
    if spec_segments and spec_segments[-1] == "{}+":
        head = spec_segments[:-1]
        return len(route_segments) > len(head) and _matches(route_segments[:len(head)], head)
    if len(route_segments) != len(spec_segments):
        return False
    return all(r == s or s == "{}" for r, s in zip(route_segments, spec_segments))


def _served_routes():
    app = make_app(datagen.generate("fylr", size="tiny"))
    return sorted({(route.method, route.rule) for route in app.routes})


def test_fylr_routes_exist_in_openapi_spec():
    spec = _spec_routes()
    unknown = []
    for method, rule in _served_routes():
        segments = _segments(rule)
        normalised = (method, "/" + "/".join(s.rstrip("+") for s in segments))
        if normalised in ALLOWED_EXTRA:
            continue
        if not any(m == method and _matches(segments, s) for m, s in spec):
            unknown.append("%s %s" % (method, rule))
    assert not unknown, "routes not in fylr's OpenAPI spec: %s" % unknown


def test_route_list_covers_read_and_auth_routes():
    served = {(m, r) for m, r in _served_routes()}
    for needed in [("POST", "/api/oauth2/token"), ("GET", "/api/v1/user/session"), ("POST", "/api/v1/search"),
                   ("GET", "/api/v1/eas/download/<file_id:int>/<digest>/<version>")]:
        assert needed in served
    assert not any("/session/authenticate" in r or "partitions-inline" in r for _, r in served)


def test_matcher_rejects_invented_routes():
    spec = _spec_routes()
    assert not any(m == "GET" and _matches(_segments("/api/v1/session"), s) for m, s in spec)
    assert any(m == "GET" and _matches(_segments("/api/v1/schema/user/HEAD"), s) for m, s in spec)
    assert any(m == "GET" and _matches(_segments("/api/v1/eas/download/<a>/<b>/<c>/x/y"), s) for m, s in spec)
