"""Issue 18: the modules against behaviours of real Argo CD deployments, through the real client
against the API stand-in (its rules are cited in tests/standins/FIDELITY.md).

- the API's Date header ahead of the application controller's clock (ingress or API server skew);
- GET ?project=<other> answers 404 for an application in another project;
- DELETE .../operation answers 400 before the controller picked the operation up.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import pytest

COLLECTIONS = Path(__file__).resolve().parents[3] / ".collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_client import ArgoCDClient  # noqa: E402
from ansible_collections.dictamesh.k3s_gitops.plugins.modules import argocd_application  # noqa: E402
from ansible_collections.dictamesh.k3s_gitops.plugins.modules.argocd_rollback import RollbackRunner  # noqa: E402
from ansible_collections.dictamesh.k3s_gitops.plugins.modules.argocd_sync import SyncError, SyncRunner  # noqa: E402

APP = {"metadata": {"name": "demo"}, "spec": {"project": "default", "source": {
    "repoURL": "https://github.com/controle-digital/dictamesh.git", "path": "x", "targetRevision": "main"},
    "destination": {"server": "https://kubernetes.default.svc", "namespace": "demo"}}}
OPERATION = dict(name="demo", project=None, app_namespace=None, watch=True, poll_interval=0.1,
                 on_running_operation="wait", timeout=8)


def client(standin):
    return ArgoCDClient(standin.url, auth_token=standin.issue_token())


def seed(standin, name="demo", project="default"):
    body = copy.deepcopy(APP)
    body["metadata"]["name"] = name
    body["spec"]["project"] = project
    with standin.store.cond:
        standin.api.create_app(body, {})


def sync_params(**extra):
    params = dict(OPERATION, revision=None, prune=False, dry_run=False, resources=None, strategy=None,
                  force=False, sync_options=None, retry=None, wait_for=["operation", "sync", "health"])
    params.update(extra)
    return params


@pytest.mark.parametrize("watch", [True, False], ids=["stream", "poll"])
def test_sync_finishes_with_the_date_header_2s_ahead(standin, watch):
    seed(standin)
    standin.configure(date_skew=2.0)
    started = time.monotonic()
    result = SyncRunner(sync_params(watch=watch), client(standin)).run()
    assert result["sync_status"] == "Synced" and result["health_status"] == "Healthy"
    assert result["operation_state"]["phase"] == "Succeeded"
    assert time.monotonic() - started < 5


def test_six_syncs_with_the_date_header_half_a_second_ahead(standin):
    seed(standin)
    standin.configure(date_skew=0.5)
    phases = [SyncRunner(sync_params(timeout=5), client(standin)).run()["operation_state"]["phase"]
              for attempt in range(6)]
    assert phases == ["Succeeded"] * 6


def test_sync_marks_its_operation_and_ignores_another_one(standin):
    """The operation is recognised by the marker it carries, never by another operation's state."""
    seed(standin)
    SyncRunner(sync_params(), client(standin)).run()
    with standin.store.cond:
        info = standin.store.apps["demo"]["status"]["operationState"]["operation"]["info"]
    assert [i["name"] for i in info] == ["dictamesh.k3s_gitops/operation-id"] and len(info[0]["value"]) >= 16


def test_rollback_finishes_with_the_date_header_2s_ahead(standin):
    seed(standin)
    for revision in ("r1", "r2"):
        SyncRunner(sync_params(revision=revision), client(standin)).run()
    standin.configure(date_skew=2.0)
    params = dict(OPERATION, id=0, revision=None, prune=False, dry_run=False, wait_for=["operation", "health"])
    result = RollbackRunner(params, client(standin)).run()
    assert result["changed"] is True and result["operation_state"]["phase"] == "Succeeded"


def test_terminate_before_pickup_is_not_reported_as_terminated(standin):
    """An operation recorded but not started yet cannot be terminated (400): the module retries until
    it is picked up and terminates it then, and reports terminated_operation only when that worked."""
    seed(standin)
    # a 10 s operation: on a loaded machine the module still meets it running (it failed there
    # with 3 s, the operation ending before the retried terminate)
    standin.configure(pickup_delay=0.6, op_duration=10.0)
    api = client(standin)
    api.sync_application("demo", {"name": "demo"})
    result = SyncRunner(sync_params(on_running_operation="terminate", timeout=30), api).run()
    with standin.store.cond:
        terminated = [e for e in standin.store.timeline if e["event"] == "operation_terminated"]
    assert result["terminated_operation"] is True and len(terminated) == 1
    assert result["operation_state"]["phase"] == "Succeeded"


def test_terminate_after_the_operation_ended_reports_no_termination(standin):
    seed(standin)
    standin.configure(op_duration=0.6)  # Running from 0.05 s to 0.65 s after the request
    api = client(standin)
    api.sync_application("demo", {"name": "demo"})
    time.sleep(1.0)
    standin.configure(cache_lag=0.65)  # reads show it running although it ended (terminate reads fresh: 400)
    result = SyncRunner(sync_params(on_running_operation="terminate"), api).run()
    assert result["terminated_operation"] is False


def app_params(**extra):
    params = dict(name="demo", project=None, app_namespace=None, state="present", spec=copy.deepcopy(APP["spec"]),
                  labels=None, annotations=None, finalizers=None, upsert=True, validate=True, cascade=True,
                  propagation_policy=None, wait=False, wait_timeout=5)
    params.update(extra)
    return params


def add_project(standin, name):
    with standin.store.cond:
        standin.api.create_project({"project": {"metadata": {"name": name}, "spec": {
            "sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}]}}})


def test_application_moves_to_another_project(standin):
    seed(standin, project="default")
    add_project(standin, "dictamesh")
    spec = copy.deepcopy(APP["spec"])
    spec["project"] = "dictamesh"
    result = argocd_application.run(client(standin), app_params(project="dictamesh", spec=spec))
    assert result["changed"] is True
    with standin.store.cond:
        assert standin.store.apps["demo"]["spec"]["project"] == "dictamesh"
    again = argocd_application.run(client(standin), app_params(project="dictamesh", spec=spec))
    assert again["changed"] is False


def test_application_in_another_project_without_upsert_names_the_project(standin):
    seed(standin, project="default")
    add_project(standin, "dictamesh")
    spec = copy.deepcopy(APP["spec"])
    spec["project"] = "dictamesh"
    with pytest.raises(argocd_application.ApplicationError, match="project 'default'"):
        argocd_application.run(client(standin), app_params(project="dictamesh", spec=spec, upsert=False))


def test_absent_with_another_project_refuses_and_keeps_the_application(standin):
    """Argo CD answers 404 for ?project=<other>: the module must not report the application absent."""
    seed(standin, project="default")
    add_project(standin, "dictamesh")
    with pytest.raises(argocd_application.ApplicationError, match="project 'default'"):
        argocd_application.run(client(standin), app_params(project="dictamesh", state="absent", spec=None))
    with standin.store.cond:
        assert "demo" in standin.store.apps


def test_sync_of_a_missing_application_still_fails_clearly(standin):
    with pytest.raises(SyncError, match="not found"):
        SyncRunner(sync_params(), client(standin)).run()
