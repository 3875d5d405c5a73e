"""sync.yml and rollback.yml (called by FQCN, as a CI job would) against the Argo CD API stand-in."""

from __future__ import annotations

import json
from typing import Any, Dict, List

from tests.standins.argocd_api import ArgoCDStandIn

APP = {"metadata": {"name": ""}, "spec": {"project": "default", "source": {
    "repoURL": "https://github.com/controle-digital/dictamesh.git", "path": "x", "targetRevision": "main"},
    "destination": {"server": "https://kubernetes.default.svc", "namespace": "demo"}}}
SYNC = "dictamesh.k3s_gitops.sync"
ROLLBACK = "dictamesh.k3s_gitops.rollback"
PASSWORD = {"ARGOCD_PASSWORD": "admin-password"}


def seed_app(standin: ArgoCDStandIn, name: str, automated: bool = False) -> None:
    body = json.loads(json.dumps(APP))
    body["metadata"]["name"] = name
    if automated:
        body["spec"]["syncPolicy"] = {"automated": {"prune": True}}
    with standin.store.cond:
        standin.api.create_app(body, {})


def writes(standin: ArgoCDStandIn) -> List[Dict[str, Any]]:
    """Requests that could change something (the login POST excepted)."""
    with standin.store.cond:
        return [r for r in standin.store.requests if r["method"] != "GET" and r["path"] != "/api/v1/session"]


def history(standin: ArgoCDStandIn, name: str) -> List[Dict[str, Any]]:
    with standin.store.cond:
        return json.loads(json.dumps(standin.store.apps[name]["status"].get("history") or []))


def test_sync_two_apps_by_fqcn_with_password_from_env(standin, playbook):
    seed_app(standin, "dictamesh-dev")
    seed_app(standin, "customer-adapter-dev")
    run = playbook(SYNC, {"gitops_server_url": standin.url, "sync_apps": "dictamesh-dev, customer-adapter-dev",
                          "sync_prune": "true"}, env=PASSWORD)
    assert run.rc == 0, run
    results = [t for t in run.tasks() if t["_task"] == "Sync and wait"]
    assert [r["application"]["metadata"]["name"] for r in results] == ["dictamesh-dev", "customer-adapter-dev"]
    assert all(r["sync_status"] == "Synced" and r["health_status"] == "Healthy" for r in results)
    assert run.task("Show the result")["msg"][1].startswith("customer-adapter-dev: Synced Healthy at ")
    syncs = [r for r in writes(standin) if r["path"].endswith("/sync")]
    assert [s["path"] for s in syncs] == ["/api/v1/applications/dictamesh-dev/sync",
                                          "/api/v1/applications/customer-adapter-dev/sync"]
    with standin.store.cond:
        assert all(op["operationState"]["operation"]["sync"]["prune"] is True
                   for op in (a["status"] for a in standin.store.apps.values()))
    assert "admin-password" not in run.proc.stdout


def test_sync_failure_stops_at_the_failing_app(standin, playbook):
    seed_app(standin, "broken-dev")
    seed_app(standin, "later-dev")
    standin.configure(fail_sync={"broken-dev": {"phase": "Failed", "resource_message": "admission webhook denied"}})
    run = playbook(SYNC, {"gitops_server_url": standin.url, "sync_apps": ["broken-dev", "later-dev"],
                          "sync_timeout": 30}, env={"ARGOCD_AUTH_TOKEN": standin.issue_token()})
    assert run.rc != 0
    assert any("admission webhook denied" in m for m in run.failure_messages()), run
    assert not [r for r in writes(standin) if "later-dev" in r["path"]]


def test_sync_bad_inputs_are_refused_before_any_request(standin, playbook):
    cases = [
        ({"gitops_server_url": standin.url}, "sync_apps must name"),
        ({"gitops_server_url": standin.url, "sync_apps": "Bad_Name"}, "sync_apps must name"),
        ({"gitops_server_url": standin.url, "sync_apps": "a,a"}, "no duplicates"),
        ({"gitops_server_url": standin.url, "sync_apps": "a", "sync_prune": "maybe"}, "booleans"),
        ({"gitops_server_url": standin.url, "sync_apps": "a", "sync_timeout": "-5"}, "positive number"),
        ({"gitops_server_url": standin.url, "sync_apps": "a,b", "sync_revision": "v1"}, "exactly one application"),
        ({"sync_apps": "a"}, "set gitops_server_url"),
    ]
    for extra, message in cases:
        run = playbook(SYNC, extra, env=PASSWORD)
        assert run.rc != 0, extra
        assert any(message in m for m in run.failure_messages()), (extra, run)
    run = playbook(SYNC, {"gitops_server_url": standin.url, "sync_apps": "a"})  # no credential
    assert run.rc != 0 and any("a credential" in m for m in run.failure_messages()), run
    with standin.store.cond:
        assert standin.store.requests == []


def test_sync_check_mode_posts_nothing(standin, playbook):
    seed_app(standin, "dictamesh-dev")
    run = playbook(SYNC, {"gitops_server_url": standin.url, "sync_apps": "dictamesh-dev"}, env=PASSWORD, check=True)
    assert run.rc == 0, run
    assert run.task("Sync and wait")["changed"] is True
    assert writes(standin) == []


def deploy_three_revisions(standin: ArgoCDStandIn, playbook: Any, name: str) -> None:
    for revision in ("v1", "v2", "v3"):
        run = playbook(SYNC, {"gitops_server_url": standin.url, "sync_apps": name, "sync_revision": revision},
                       env=PASSWORD)
        assert run.rc == 0, run


def test_rollback_by_id_then_again_changes_nothing(standin, playbook):
    seed_app(standin, "dictamesh-dev")
    deploy_three_revisions(standin, playbook, "dictamesh-dev")
    before = history(standin, "dictamesh-dev")
    assert [h["id"] for h in before] == [0, 1, 2]
    run = playbook(ROLLBACK, {"gitops_server_url": standin.url, "rollback_app": "dictamesh-dev", "rollback_id": 0},
                   env=PASSWORD)
    assert run.rc == 0, run
    result = run.task("Roll back and wait")
    assert result["changed"] is True and result["health_status"] == "Healthy"
    assert result["operation_state"]["phase"] == "Succeeded"
    after = history(standin, "dictamesh-dev")
    assert len(after) == 4 and after[-1]["revision"] == before[0]["revision"]
    posts = [r for r in writes(standin) if r["path"].endswith("/rollback")]
    assert len(posts) == 1
    again = playbook(ROLLBACK, {"gitops_server_url": standin.url, "rollback_app": "dictamesh-dev",
                                "rollback_id": "0"}, env=PASSWORD)
    assert again.rc == 0, again
    assert again.stats()["changed"] == 0
    assert len([r for r in writes(standin) if r["path"].endswith("/rollback")]) == 1


def test_rollback_by_revision(standin, playbook):
    seed_app(standin, "dictamesh-dev")
    deploy_three_revisions(standin, playbook, "dictamesh-dev")
    target = history(standin, "dictamesh-dev")[1]
    run = playbook(ROLLBACK, {"gitops_server_url": standin.url, "rollback_app": "dictamesh-dev",
                              "rollback_revision": target["revision"]}, env=PASSWORD)
    assert run.rc == 0, run
    assert run.task("Roll back and wait")["history_entry"]["id"] == 1
    assert history(standin, "dictamesh-dev")[-1]["revision"] == target["revision"]


def test_rollback_without_entry_lists_history_and_posts_nothing(standin, playbook):
    seed_app(standin, "dictamesh-dev")
    deploy_three_revisions(standin, playbook, "dictamesh-dev")
    count = len(writes(standin))
    run = playbook(ROLLBACK, {"gitops_server_url": standin.url, "rollback_app": "dictamesh-dev"}, env=PASSWORD)
    assert run.rc != 0
    message = run.task("Stop with the history when no entry was chosen")["msg"]
    assert "rollback_id" in message and all(h["revision"] in message for h in history(standin, "dictamesh-dev"))
    assert len(writes(standin)) == count


def test_rollback_refusals(standin, playbook):
    seed_app(standin, "auto-dev", automated=True)
    with standin.store.cond:
        standin.store.apps["auto-dev"]["status"]["history"] = [
            {"id": 0, "revision": "abc", "source": APP["spec"]["source"], "deployedAt": "2026-01-01T00:00:00Z"}]
    run = playbook(ROLLBACK, {"gitops_server_url": standin.url, "rollback_app": "auto-dev", "rollback_id": 0},
                   env=PASSWORD)
    assert run.rc != 0 and any("auto-sync is enabled" in m for m in run.failure_messages()), run
    run = playbook(ROLLBACK, {"gitops_server_url": standin.url, "rollback_app": "auto-dev", "rollback_id": 7},
                   env=PASSWORD)
    assert run.rc != 0 and any("no history entry with id 7" in m for m in run.failure_messages()), run
    for extra, message in [
        ({"rollback_app": "auto-dev", "rollback_id": 1, "rollback_revision": "x"}, "not both"),
        ({"rollback_app": "auto-dev", "rollback_id": "first"}, "a number"),
        ({"rollback_app": "Auto Dev", "rollback_id": 1}, "must name one"),
    ]:
        run = playbook(ROLLBACK, dict(extra, gitops_server_url=standin.url), env=PASSWORD)
        assert run.rc != 0 and any(message in m for m in run.failure_messages()), (extra, run)
    assert [r for r in writes(standin) if r["path"].endswith("/rollback")] == []
