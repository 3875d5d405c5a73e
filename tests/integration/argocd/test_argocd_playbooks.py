"""The Argo CD modules through ansible-playbook against the API stand-in."""

from __future__ import annotations

import json

from tests.standins.argocd_api import ArgoCDStandIn

APP = {"metadata": {"name": ""}, "spec": {"project": "default", "source": {
    "repoURL": "https://github.com/controle-digital/dictamesh.git", "path": "x", "targetRevision": "main"},
    "destination": {"server": "https://kubernetes.default.svc", "namespace": "demo"}}}


def seed_app(standin: ArgoCDStandIn, name: str) -> None:
    body = json.loads(json.dumps(APP))
    body["metadata"]["name"] = name
    with standin.store.cond:
        standin.api.create_app(body, {})


def test_bootstrap_converges_then_is_idempotent(standin, playbook):
    first = playbook("bootstrap.yml", {"argocd_url": standin.url})
    assert first.rc == 0, first
    assert first.changed == 4  # project, repository, application, sync
    assert first.task("Sync")["sync_status"] == "Synced"
    repo_task = first.task("Repository")
    assert "password" not in repo_task["repository"]
    assert "s3cret-token" not in first.proc.stdout
    with standin.store.cond:
        assert standin.store.repos["https://github.com/controle-digital/dictamesh.git"]["password"] == "s3cret-token"
        assert standin.store.projects["dictamesh"]["spec"]["syncWindows"][0]["duration"] == "24h"
    second = playbook("bootstrap.yml", {"argocd_url": standin.url})
    assert second.rc == 0, second
    assert second.changed == 0, second.stats()


def test_check_mode_changes_nothing(standin, playbook):
    result = playbook("bootstrap.yml", {"argocd_url": standin.url}, check=True, diff=True)
    assert result.rc == 0, result
    assert result.changed == 4
    assert result.task("Application")["diff"]["after"]["spec"]["project"] == "dictamesh"
    with standin.store.cond:
        assert sorted(standin.store.projects) == ["default"]
        assert standin.store.repos == {} and standin.store.apps == {}
    assert not [r for r in standin.store.requests if r["method"] != "GET" and r["path"] != "/api/v1/session"]


def test_error_paths(standin, playbook):
    seed_app(standin, "broken-dev")
    seed_app(standin, "frozen-dev")
    standin.configure(fail_sync={"broken-dev": {"phase": "Failed", "resource_message": "admission webhook denied"}},
                      sync_window_blocked=["frozen-dev"])
    result = playbook("errors.yml", {"argocd_url": standin.url, "argocd_token": standin.issue_token()})
    assert result.rc == 0, result
    assert result.failed == 0
    assert result.task("Check the messages")["msg"] == "All assertions passed"


def test_tls_and_base_path(playbook):
    with ArgoCDStandIn(tls=True, base_path="/argocd") as server:
        extra = {"argocd_url": server.server_url, "ca": str(server.cert_path)}
        result = playbook("tls.yml", extra)
        assert result.rc == 0, result
        assert result.task("Untrusted certificate")["failed"] is True
        assert "TLS" in result.task("Untrusted certificate")["msg"]
        assert result.task("Trusted through ca_path")["username"] == "admin"
        assert server.store.violations == []
