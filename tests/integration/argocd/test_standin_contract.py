"""The stand-in's own contract: it must reject what the real Argo CD server rejects."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any, Dict, Optional, Tuple

import pytest

from tests.standins.argocd_api import ArgoCDStandIn
from tests.standins.argocd_api.server import cron_matches, window_active

APP = {"metadata": {"name": "demo"}, "spec": {"project": "default", "source": {
    "repoURL": "https://g/r.git", "path": "p", "targetRevision": "main"},
    "destination": {"server": "https://kubernetes.default.svc", "namespace": "demo"}}}


@pytest.fixture
def srv():
    with ArgoCDStandIn(base_path="/argocd", config={"pickup_delay": 0.3, "op_duration": 0.3}) as server:
        server.token = server.issue_token()
        yield server


def call(srv, method: str, path: str, body: Any = None, ctype: Optional[str] = "application/json",
         token: Optional[str] = "default", accept: str = "application/json", raw: bool = False) -> Tuple[int, Any]:
    req = urllib.request.Request(srv.url + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    if ctype:
        req.add_header("Content-Type", ctype)
    req.add_header("Accept", accept)
    tok = srv.token if token == "default" else token
    if tok:
        req.add_header("Authorization", "Bearer " + tok)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            data = resp.read()
            return resp.status, data if raw else json.loads(data or b"null")
    except urllib.error.HTTPError as exc:
        data = exc.read()
        try:
            return exc.code, json.loads(data)
        except ValueError:
            return exc.code, data.decode()


def create_demo(srv, **over: Any) -> Dict[str, Any]:
    body = json.loads(json.dumps(APP))
    body["spec"].update(over)
    status, out = call(srv, "POST", "/api/v1/applications", body)
    assert status == 200, out
    return out


@pytest.mark.parametrize("method, path", [("POST", "/api/v1/applications"), ("DELETE", "/api/v1/projects/x"),
                                          ("POST", "/api/v1/session")])
@pytest.mark.parametrize("ctype", [None, "application/json; charset=utf-8", "text/plain"])
def test_415_without_exact_content_type(srv, method, path, ctype):
    status, body = call(srv, method, path, {} if method == "POST" else None, ctype=ctype)
    assert (status, body) == (415, "Invalid content type")


def test_missing_objects_403_and_404(srv):
    assert call(srv, "GET", "/api/v1/applications/nope")[0] == 403
    status, body = call(srv, "GET", "/api/v1/applications/nope?project=default")
    assert status == 404 and body["code"] == 5 and set(body) == {"error", "code", "message"}
    assert call(srv, "GET", "/api/v1/repositories/https%3A%2F%2Fg%2Fnope.git")[0] == 403
    assert call(srv, "GET", "/api/v1/projects/nope")[0] == 404
    create_demo(srv)
    # getAppEnforceRBAC: an app in another project than the one given is 404, not 403
    status, body = call(srv, "GET", "/api/v1/applications/demo?project=other")
    assert (status, body["code"], body["message"]) == (404, 5, 'applications.argoproj.io "demo" not found')
    assert call(srv, "GET", "/api/v1/applications/demo?project=default")[0] == 200


def test_terminate_before_the_controller_picked_the_operation_up_is_400(srv):
    """Server.TerminateOperation needs Operation and Status.OperationState; SetAppOperation clears the
    latter when it records a sync, so until the controller starts it the answer is 400."""
    create_demo(srv)
    srv.configure(pickup_delay=0.5)
    status, app = call(srv, "POST", "/api/v1/applications/demo/sync",
                       {"name": "demo", "infos": [{"name": "k", "value": "v"}]})
    assert status == 200 and app["operation"]["info"] == [{"name": "k", "value": "v"}]
    assert "operationState" not in app["status"]
    status, body = call(srv, "DELETE", "/api/v1/applications/demo/operation")
    assert (status, body["message"]) == (400, "Unable to terminate operation. No operation is in progress")
    time.sleep(0.6)
    state = call(srv, "GET", "/api/v1/applications/demo")[1]["status"]["operationState"]
    assert state["phase"] == "Running" and state["operation"]["info"] == [{"name": "k", "value": "v"}]
    assert call(srv, "DELETE", "/api/v1/applications/demo/operation")[0] == 200


def test_date_header_skew_knob(srv):
    import email.utils
    srv.configure(date_skew=120)
    req = urllib.request.Request(srv.url + "/api/version")
    with urllib.request.urlopen(req, timeout=5) as resp:
        date = email.utils.parsedate_to_datetime(resp.headers["Date"]).timestamp()
    assert 115 < date - time.time() < 125


def test_unencoded_repo_url_does_not_route(srv):
    assert call(srv, "GET", "/api/v1/repositories/https://g/r.git")[0] == 404


def test_auth_required_and_version_open(srv):
    assert call(srv, "GET", "/api/version", token=None)[0] == 200
    status, body = call(srv, "GET", "/api/v1/applications", token="forged")
    assert status == 401 and body["code"] == 16


def test_base_path_is_enforced(srv):
    req = urllib.request.Request(srv.server_url + "/api/version")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 404


def test_items_null_for_empty_lists(srv):
    assert call(srv, "GET", "/api/v1/applications")[1]["items"] is None
    assert call(srv, "GET", "/api/v1/repositories")[1]["items"] is None


def test_create_equal_is_noop_different_needs_upsert(srv):
    first = create_demo(srv)
    again = create_demo(srv)
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    body = json.loads(json.dumps(APP))
    body["spec"]["source"]["targetRevision"] = "v2"
    status, err = call(srv, "POST", "/api/v1/applications", body)
    assert status == 400 and "upsert" in err["message"]
    assert call(srv, "POST", "/api/v1/applications?upsert=true", body)[0] == 200


def test_contract_rejects_unknown_fields_and_undeclared_query(srv):
    body = json.loads(json.dumps(APP))
    body["spec"]["syncPolicyy"] = {}
    status, err = call(srv, "POST", "/api/v1/applications", body)
    assert status == 400 and "syncPolicyy" in err["message"]
    assert call(srv, "POST", "/api/v1/applications?upsert=True", APP)[0] == 400
    assert call(srv, "GET", "/api/v1/applications?bogus=1")[0] == 400
    status, err = call(srv, "POST", "/api/v1/applications/demo/sync", {"name": "demo", "prune": "yes"})
    assert status == 400 and "prune" in err["message"]
    srv.store.violations.clear()


def test_project_rules(srv):
    project = {"metadata": {"name": "p1"}, "spec": {"sourceRepos": ["*"]}}
    status, created = call(srv, "POST", "/api/v1/projects", {"project": project})
    assert status == 200
    changed = {"metadata": {"name": "p1"}, "spec": {"sourceRepos": ["x"]}}
    assert call(srv, "POST", "/api/v1/projects", {"project": changed})[0] == 400
    assert call(srv, "POST", "/api/v1/projects", {"project": changed, "upsert": True})[0] == 200
    stale = {"metadata": {"name": "p1", "resourceVersion": created["metadata"]["resourceVersion"]},
             "spec": {"sourceRepos": ["y"]}}
    status, err = call(srv, "PUT", "/api/v1/projects/p1", {"project": stale})
    assert status == 409 and err["code"] == 10
    window = {"kind": "maybe", "schedule": "* * * * *", "duration": "1h"}
    bad_window = {"metadata": {"name": "p2"}, "spec": {"syncWindows": [window]}}
    assert call(srv, "POST", "/api/v1/projects", {"project": bad_window})[0] == 400
    create_demo(srv)
    assert call(srv, "DELETE", "/api/v1/projects/default")[0] == 400


def test_repository_credentials_never_read_back(srv):
    repo = {"repo": "https://g/r.git", "username": "u", "password": "secret"}
    status, echoed = call(srv, "POST", "/api/v1/repositories", repo)
    assert status == 200 and echoed["password"] == "secret"  # the real server echoes the request
    status, got = call(srv, "GET", "/api/v1/repositories/https%3A%2F%2Fg%2Fr.git")
    assert status == 200 and "password" not in got and got["username"] == "u"
    assert call(srv, "POST", "/api/v1/repositories", dict(repo, password="other"))[0] == 400
    call(srv, "POST", "/api/v1/repositories", {"repo": "https://g/other.git"})
    listed = call(srv, "GET", "/api/v1/repositories?repo=https://g/r.git")[1]["items"]
    assert len(listed) == 2 and all("password" not in r for r in listed)


def test_login_rate_limit(srv):
    for _attempt in range(5):
        assert call(srv, "POST", "/api/v1/session", {"username": "admin", "password": "bad"}, token=None)[0] == 401
    status, _body = call(srv, "POST", "/api/v1/session", {"username": "admin", "password": "admin-password"}, token=None)
    assert status == 401
    with srv.store.cond:
        srv.store.login_failures["admin"] = [t - 301 for t in srv.store.login_failures["admin"]]
    status, body = call(srv, "POST", "/api/v1/session", {"username": "admin", "password": "admin-password"}, token=None)
    assert status == 200 and body["token"]


def test_operation_lifecycle_in_progress_and_terminate(srv):
    create_demo(srv)
    assert call(srv, "DELETE", "/api/v1/applications/demo/operation")[0] == 400  # nothing running
    status, app = call(srv, "POST", "/api/v1/applications/demo/sync", {"name": "demo"})
    assert status == 200 and app["operation"]["sync"] == {}
    status, err = call(srv, "POST", "/api/v1/applications/demo/sync", {"name": "demo"})
    assert status == 400 and err["message"] == "another operation is already in progress"
    time.sleep(0.4)
    state = call(srv, "GET", "/api/v1/applications/demo")[1]["status"]["operationState"]
    assert state["phase"] == "Running" and "finishedAt" not in state
    assert call(srv, "DELETE", "/api/v1/applications/demo/operation")[0] == 200
    deadline = time.time() + 3
    while time.time() < deadline:
        app = call(srv, "GET", "/api/v1/applications/demo")[1]
        if app["status"]["operationState"].get("finishedAt"):
            break
        time.sleep(0.05)
    assert app["status"]["operationState"]["phase"] == "Failed" and "operation" not in app


def test_health_transitions_and_stream(srv):
    create_demo(srv)
    srv.configure(degrade=["demo"], health_delay=0.2)
    call(srv, "POST", "/api/v1/applications/demo/sync", {"name": "demo"})
    req = urllib.request.Request(srv.url + "/api/v1/stream/applications?name=demo",
                                 headers={"Authorization": "Bearer " + srv.token})
    seen = []
    with urllib.request.urlopen(req, timeout=5) as resp:
        for line in resp:
            event = json.loads(line)
            status = event["result"]["application"]["status"]
            seen.append(status["health"]["status"])
            if status["health"]["status"] == "Degraded":
                break
    assert seen[0] == "Missing" and "Progressing" in seen and seen[-1] == "Degraded"


def test_stream_sse_frames(srv):
    create_demo(srv)
    req = urllib.request.Request(srv.url + "/api/v1/stream/applications?name=demo",
                                 headers={"Authorization": "Bearer " + srv.token, "Accept": "text/event-stream"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        first = resp.readline().decode()
    assert first.startswith("data: ") and json.loads(first[6:])["result"]["type"] == "ADDED"


def test_sync_window_blocks(srv):
    create_demo(srv)
    project = {"metadata": {"name": "default", "resourceVersion": call(srv, "GET", "/api/v1/projects/default")[1]
                            ["metadata"]["resourceVersion"]},
               "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                        "syncWindows": [{"kind": "deny", "schedule": "* * * * *", "duration": "1h",
                                         "applications": ["dem*"]}]}}
    assert call(srv, "PUT", "/api/v1/projects/default", {"project": project})[0] == 200
    status, err = call(srv, "POST", "/api/v1/applications/demo/sync", {"name": "demo"})
    assert status == 403 and "sync window" in err["message"]


def test_cron_helpers():
    import datetime
    monday_10 = datetime.datetime(2024, 11, 25, 10, 30, tzinfo=datetime.timezone.utc)
    assert cron_matches("0 9-17 * * 1-5", monday_10.replace(minute=0))
    assert not cron_matches("0 9-17 * * 1-5", monday_10)
    assert window_active({"schedule": "0 9-17 * * 1-5", "duration": "1h"}, monday_10)
    assert not window_active({"schedule": "0 9 * * 0", "duration": "1h"}, monday_10)


def test_responses_were_valid(srv):
    create_demo(srv)
    call(srv, "GET", "/api/v1/applications")
    assert srv.store.violations == []
