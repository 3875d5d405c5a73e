"""The Argo CD API stand-in's rollback endpoint (POST /api/v1/applications/{name}/rollback), over HTTP.

Upstream behaviour (Argo CD 3.6 Server.Rollback): refused while automated sync is enabled, the id must
name an existing history entry, and the operation is recorded as a sync (apply strategy) to that entry's
revision and source, which the fake controller then runs like any sync.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.standins.argocd_api import ArgoCDStandIn  # noqa: E402

FAST = {"pickup_delay": 0.02, "op_duration": 0.05, "reconcile_delay": 0.02, "health_delay": 0.05}
SOURCE = {"repoURL": "https://g/r.git", "path": "p", "targetRevision": "main"}
SHA_A, SHA_B = "a" * 40, "b" * 40


def new_app(name: str = "demo", sync_policy: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    spec: Dict[str, Any] = {"project": "default", "source": dict(SOURCE),
                            "destination": {"server": "https://kubernetes.default.svc", "namespace": "demo"}}
    if sync_policy is not None:
        spec["syncPolicy"] = sync_policy
    return {"metadata": {"name": name}, "spec": spec}


@pytest.fixture
def srv() -> Iterator[ArgoCDStandIn]:
    with ArgoCDStandIn(config=dict(FAST)) as server:
        server.token = server.issue_token()  # type: ignore[attr-defined]
        yield server
    assert server.store.violations == [], server.store.violations


def call(srv: ArgoCDStandIn, method: str, path: str, body: Any = None) -> Tuple[int, Dict[str, Any]]:
    req = urllib.request.Request(srv.url + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", "Bearer " + srv.token)  # type: ignore[attr-defined]
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def seed(srv: ArgoCDStandIn, app: Dict[str, Any], history: Optional[List[Dict[str, Any]]] = None) -> None:
    with srv.store.cond:
        srv.api.create_app(app, {})
        if history is not None:
            srv.store.apps[app["metadata"]["name"]]["status"]["history"] = history


def two_entries() -> List[Dict[str, Any]]:
    return [{"id": 0, "revision": SHA_A, "source": dict(SOURCE, targetRevision="v1"),
             "deployedAt": "2026-01-01T00:00:00Z"},
            {"id": 1, "revision": SHA_B, "source": dict(SOURCE, targetRevision="v2"),
             "deployedAt": "2026-01-02T00:00:00Z"}]


def wait_finished(srv: ArgoCDStandIn, name: str, timeout: float = 5.0) -> Dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with srv.store.cond:
            app = json.loads(json.dumps(srv.store.apps[name]))
        state = (app.get("status") or {}).get("operationState") or {}
        if not app.get("operation") and state.get("finishedAt"):
            return app
        time.sleep(0.02)
    raise AssertionError("operation on %s did not finish" % name)


def rollback_posts(srv: ArgoCDStandIn) -> int:
    with srv.store.cond:
        return len([r for r in srv.store.requests if r["path"].endswith("/rollback")])


def test_rollback_after_real_syncs_redeploys_the_old_revision(srv):
    seed(srv, new_app())
    revisions = []
    for rev in ("v1", "v2"):
        status = call(srv, "POST", "/api/v1/applications/demo/sync", {"name": "demo", "revision": rev})[0]
        assert status == 200
        revisions.append(wait_finished(srv, "demo")["status"]["history"][-1]["revision"])
    assert len(set(revisions)) == 2
    status, body = call(srv, "POST", "/api/v1/applications/demo/rollback", {"name": "demo", "id": 0})
    assert status == 200, body
    sync_op = body["operation"]["sync"]
    assert sync_op["revision"] == revisions[0]
    assert sync_op["syncStrategy"] == {"apply": {}}
    assert body["operation"]["initiatedBy"] == {"username": "admin"}
    app = wait_finished(srv, "demo")
    assert app["status"]["operationState"]["phase"] == "Succeeded"
    assert app["status"]["operationState"]["syncResult"]["revision"] == revisions[0]
    history = app["status"]["history"]
    assert [h["id"] for h in history] == [0, 1, 2]
    assert history[-1]["revision"] == revisions[0]


def test_operation_carries_entry_source_prune_and_spec_sync_options(srv):
    policy = {"syncOptions": ["CreateNamespace=true", "ServerSideApply=true"]}
    seed(srv, new_app(sync_policy=policy), two_entries())
    status, body = call(srv, "POST", "/api/v1/applications/demo/rollback",
                        {"name": "demo", "id": 0, "prune": True})
    assert status == 200, body
    sync_op = body["operation"]["sync"]
    assert sync_op["revision"] == SHA_A
    assert sync_op["source"]["targetRevision"] == "v1"
    assert sync_op["prune"] is True and "dryRun" not in sync_op
    assert sync_op["syncOptions"] == policy["syncOptions"]
    app = wait_finished(srv, "demo")
    assert app["status"]["history"][-1]["revision"] == SHA_A  # a commit SHA resolves to itself


def test_dry_run_rollback_adds_no_history(srv):
    seed(srv, new_app(), two_entries())
    status, body = call(srv, "POST", "/api/v1/applications/demo/rollback", {"name": "demo", "id": 0, "dryRun": True})
    assert status == 200 and body["operation"]["sync"]["dryRun"] is True
    app = wait_finished(srv, "demo")
    assert app["status"]["operationState"]["phase"] == "Succeeded"
    assert len(app["status"]["history"]) == 2


@pytest.mark.parametrize("automated", [{"prune": True}, {}, {"enabled": True}])
def test_refused_while_automated_sync_is_enabled(srv, automated):
    seed(srv, new_app(sync_policy={"automated": automated}), two_entries())
    status, body = call(srv, "POST", "/api/v1/applications/demo/rollback", {"name": "demo", "id": 0})
    assert (status, body["code"]) == (400, 9)
    assert body["message"] == "rollback cannot be initiated when auto-sync is enabled"
    with srv.store.cond:
        assert "operation" not in srv.store.apps["demo"]


def test_automated_explicitly_disabled_allows_rollback(srv):
    seed(srv, new_app(sync_policy={"automated": {"enabled": False}}), two_entries())
    status, body = call(srv, "POST", "/api/v1/applications/demo/rollback", {"name": "demo", "id": 1})
    assert status == 200, body
    assert body["operation"]["sync"]["revision"] == SHA_B


@pytest.mark.parametrize("wanted", [2, 7])
def test_unknown_history_id_is_invalid_argument(srv, wanted):
    seed(srv, new_app(), two_entries())
    status, body = call(srv, "POST", "/api/v1/applications/demo/rollback", {"name": "demo", "id": wanted})
    assert (status, body["code"]) == (400, 3)
    assert body["message"] == "application demo does not have deployment with id %d" % wanted


def test_no_history_at_all_refuses_id_zero(srv):
    seed(srv, new_app())
    status, body = call(srv, "POST", "/api/v1/applications/demo/rollback", {"name": "demo", "id": 0})
    assert (status, body["code"]) == (400, 3)


def test_entry_without_source_is_refused(srv):
    seed(srv, new_app(), [{"id": 0, "revision": SHA_A, "deployedAt": "2026-01-01T00:00:00Z"}])
    status, body = call(srv, "POST", "/api/v1/applications/demo/rollback", {"name": "demo", "id": 0})
    assert (status, body["code"]) == (400, 9)
    assert "v0.11 or lower" in body["message"]


def test_refused_while_another_operation_is_in_progress(srv):
    seed(srv, new_app(), two_entries())
    srv.configure(pickup_delay=5.0)
    status = call(srv, "POST", "/api/v1/applications/demo/rollback", {"name": "demo", "id": 0})[0]
    assert status == 200
    status, body = call(srv, "POST", "/api/v1/applications/demo/rollback", {"name": "demo", "id": 1})
    assert (status, body["code"]) == (400, 9)
    assert body["message"] == "another operation is already in progress"
    with srv.store.cond:
        assert srv.store.apps["demo"]["operation"]["sync"]["revision"] == SHA_A


def test_refused_while_deleting(srv):
    app = new_app()
    app["metadata"]["finalizers"] = ["resources-finalizer.argocd.argoproj.io"]
    seed(srv, app, two_entries())
    srv.configure(delete_delay=5.0)
    assert call(srv, "DELETE", "/api/v1/applications/demo")[0] == 200
    status, body = call(srv, "POST", "/api/v1/applications/demo/rollback", {"name": "demo", "id": 0})
    assert (status, body["code"]) == (400, 9)
    assert body["message"] == "application is deleting"


def test_missing_application_follows_the_403_404_rules(srv):
    status, body = call(srv, "POST", "/api/v1/applications/nope/rollback", {"name": "nope", "id": 0})
    assert (status, body["code"]) == (403, 7)
    status, body = call(srv, "POST", "/api/v1/applications/nope/rollback",
                        {"name": "nope", "id": 0, "project": "default"})
    assert (status, body["code"]) == (404, 5)


def test_other_project_is_not_found(srv):
    """getAppEnforceRBAC (argo-cd server/application/application.go, v3.4.4 and 3.6.0): an app in another
    project than the one given answers 404, as if it did not exist in that project."""
    seed(srv, new_app(), two_entries())
    status, body = call(srv, "POST", "/api/v1/applications/demo/rollback",
                        {"name": "demo", "id": 0, "project": "other"})
    assert (status, body["code"]) == (404, 5)


def test_name_mismatch_and_auth_and_content_type(srv):
    seed(srv, new_app(), two_entries())
    status, body = call(srv, "POST", "/api/v1/applications/demo/rollback", {"name": "other", "id": 0})
    assert (status, body["code"]) == (400, 3)
    req = urllib.request.Request(srv.url + "/api/v1/applications/demo/rollback", method="POST",
                                 data=b'{"id": 0}', headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 401
    req = urllib.request.Request(srv.url + "/api/v1/applications/demo/rollback", method="POST",
                                 data=b'{"id": 0}', headers={"Content-Type": "application/json; charset=utf-8",
                                                             "Authorization": "Bearer " + srv.token})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 415
    assert rollback_posts(srv) == 3
    with srv.store.cond:
        assert "operation" not in srv.store.apps["demo"]


def test_unknown_body_field_is_a_contract_violation():
    with ArgoCDStandIn(config=dict(FAST)) as server:
        token = server.issue_token()
        seed(server, new_app(), two_entries())
        req = urllib.request.Request(server.url + "/api/v1/applications/demo/rollback", method="POST",
                                     data=json.dumps({"name": "demo", "id": 0, "revision": "x"}).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=5)
        assert info.value.code == 400
        assert any("rollback" in v for v in server.store.violations), server.store.violations
