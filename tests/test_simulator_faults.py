"""The fault plan (tests/simulator/faults.py) and fylr's status / read-only middleware (app.py),
through real HTTP."""
import json
import time

import requests

from tests.simulator.faults import FaultPlan
from tests.test_simulator_write import Client, error, wait_until

_TOKEN_FORM = {"grant_type": "password", "username": "root", "password": "admin", "client_id": "fylr-web-frontend"}


def test_error_statuses_may_include_423_answered_with_fylrs_database_lock_error(make_sim):
    plan = FaultPlan(error_rate=1.0, error_statuses=(423,), only_prefixes=("/api/v1/db/",))
    server = make_sim("fylr", faults=plan)
    client = Client(server)
    body = error(client.call("GET", "/db/orte/_all_fields/list"), 423, "DatabaseLockError")
    assert body["parameters"]["object"] == "" and plan.errors_by_status == {423: 1}


def test_purge_answers_503_everywhere_for_a_while_after_it_returned(make_sim):
    server = make_sim("fylr", purge_busy_seconds=0.5)
    client = Client(server)
    assert client.ok("POST", "/system/purgeall", set_password="pw") == {"status": "ok"}
    started = time.monotonic()
    for path in ("/settings", "/user", "/system/status"):                         # /settings included
        answer = requests.get(server.api_url + path)
        assert answer.status_code == 503 and answer.headers["x-fylr-status"] == "purge"
    assert requests.post(server.url + "/api/oauth2/token", data=dict(_TOKEN_FORM, password="pw")).status_code == 503
    wait_until(lambda: requests.get(server.api_url + "/settings").status_code == 200)
    assert time.monotonic() - started >= 0.3
    assert requests.get(server.api_url + "/settings").headers["x-fylr-status"] == "ready"
    Client(server, "root", "pw").ok("GET", "/user")


def test_read_only_switch_refuses_writes_with_read_only_mode_for_a_while(make_sim):
    plan = FaultPlan(read_only_after=1, read_only_seconds=0.6, exempt_paths=())
    server = make_sim("fylr", faults=plan)
    client = Client(server)                                     # request 1 (token); read-only from now on
    answer = client.call("POST", "/group", [{"group": {"_version": 1, "reference": "g"}}])
    error(answer, 400, "ReadOnlyMode")
    assert answer.headers["X-Fylr-Read-Only-Mode"] == "true" and plan.read_only_switches == 1
    error(client.call("DELETE", "/db/orte", [[1, 1, None]]), 400, "ReadOnlyMode")
    reading = client.call("GET", "/user")
    assert reading.status_code == 200 and reading.headers["X-Fylr-Read-Only-Mode"] == "true"
    settings = requests.get(server.api_url + "/settings").json()
    assert settings["capabilities"]["read_only"] is True
    assert client.call("POST", "/search", {"limit": 1}).status_code == 200      # a read, not a write
    assert client.call("POST", "/eas/rput/bulk", []).status_code == 200           # documented without the guard
    wait_until(lambda: client.call("POST", "/group", [{"group": {"_version": 1, "reference": "g"}}]).status_code == 200)
    assert "X-Fylr-Read-Only-Mode" not in client.call("GET", "/user").headers


def test_fail_first_fails_every_request_kind_once_then_lets_it_pass(make_sim):
    plan = FaultPlan(fail_first=1)
    server = make_sim("fylr", faults=plan)
    token = requests.post(server.url + "/api/oauth2/token", data=_TOKEN_FORM)
    assert token.status_code in (502, 503, 504)                                  # the token request too
    token = requests.post(server.url + "/api/oauth2/token", data=_TOKEN_FORM).json()["access_token"]
    headers = {"Authorization": "Bearer " + token}
    first = [requests.get(server.api_url + "/settings").status_code,
             requests.get(server.api_url + "/db/orte/_all_fields/1", headers=headers).status_code]
    assert all(s in (502, 503, 504) for s in first)
    assert requests.get(server.api_url + "/settings").status_code == 200
    # the same kind: ids and query strings do not make a new kind
    assert requests.get(server.api_url + "/db/orte/_all_fields/2", headers=headers,
                        params={"format": "short"}).status_code == 200
    assert requests.get(server.api_url + "/db/bilder/_all_fields/2", headers=headers).status_code in (502, 503, 504)
    assert set(plan.first_failures) == {"POST /api/oauth2/token", "GET /api/v1/settings",
                                        "GET /api/v1/db/orte/_all_fields/{}", "GET /api/v1/db/bilder/_all_fields/{}"}
    assert sum(plan.errors_by_status.values()) == 4


def test_fail_first_counts_and_cycles_the_given_statuses(make_sim):
    plan = FaultPlan(fail_first=3, fail_first_statuses=(503, 423))
    server = make_sim("fylr", faults=plan)
    statuses = [requests.get(server.api_url + "/settings").status_code for _ in range(4)]
    assert statuses == [503, 423, 503, 200]
    assert requests.get(server.api_url + "/settings").status_code == 200


def test_exempt_paths_may_be_empty(make_sim):
    plan = FaultPlan(error_rate=1.0, exempt_paths=())
    server = make_sim("fylr", faults=plan)
    assert requests.get(server.api_url + "/settings").status_code in (502, 503, 504)
    default = FaultPlan(error_rate=1.0)
    assert requests.get(make_sim("fylr", faults=default).api_url + "/settings").status_code == 200
    assert json.loads(json.dumps(default.errors_by_status)) == {}
