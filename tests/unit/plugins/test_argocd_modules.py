"""Module logic with a patched client: exact calls, check mode, diff, idempotence, errors."""

from __future__ import annotations

import datetime
from unittest import mock

import pytest

from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_client import ArgoCDError
from ansible_collections.dictamesh.k3s_gitops.plugins.modules import (
    argocd_application,
    argocd_application_info,
    argocd_login,
    argocd_project,
    argocd_repository,
    argocd_sync,
)

from .helpers import run_main

SPEC = {"source": {"repoURL": "https://g/r.git", "path": "p", "targetRevision": "main"},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": "dev"}}


def server_app(**spec_over):
    spec = dict(dict(SPEC, project="dictamesh"), **spec_over)
    spec["source"] = dict(spec["source"], directory={"recurse": False})  # a server default
    return {"metadata": {"name": "app", "namespace": "argocd", "resourceVersion": "42", "uid": "u"},
            "spec": spec, "status": {"sync": {"status": "Synced"}}}


# ---------------------------------------------------------------- application
def test_application_created_with_exact_body():
    client = mock.Mock()
    client.get_application.return_value = None
    client.create_application.return_value = server_app()
    result = run_main(argocd_application, {"name": "app", "project": "dictamesh", "spec": SPEC,
                                           "finalizers": ["resources-finalizer.argocd.argoproj.io"]}, client)
    assert result["changed"] is True
    client.create_application.assert_called_once_with(
        {"metadata": {"name": "app", "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
         "spec": dict(SPEC, project="dictamesh")}, upsert=False, validate=True)
    # ?project= answers 404 for a missing app and for one in another project: looked up without it too
    assert client.get_application.call_args_list == [mock.call("app", project="dictamesh", app_namespace=None),
                                                     mock.call("app", app_namespace=None)]


def test_application_server_defaults_do_not_cause_change():
    client = mock.Mock()
    client.get_application.return_value = server_app()
    result = run_main(argocd_application, {"name": "app", "project": "dictamesh", "spec": SPEC}, client)
    assert result["changed"] is False
    client.update_application.assert_not_called()
    client.create_application.assert_not_called()


def test_application_update_merges_and_diffs_only_changed_fields():
    client = mock.Mock()
    client.get_application.return_value = server_app()
    client.update_application.return_value = server_app()
    spec = {"source": dict(SPEC["source"], targetRevision="v2")}
    result = run_main(argocd_application, {"name": "app", "project": "dictamesh", "spec": spec}, client, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"]["spec"]["source"]["targetRevision"] == "main"
    assert result["diff"]["after"]["spec"]["source"]["targetRevision"] == "v2"
    sent = client.update_application.call_args[0][0]
    assert sent["metadata"] == {"name": "app", "namespace": "argocd", "resourceVersion": "42"}
    assert sent["spec"]["source"] == {"repoURL": "https://g/r.git", "path": "p", "targetRevision": "v2",
                                      "directory": {"recurse": False}}
    assert "status" not in sent


def test_application_check_mode_changes_nothing():
    client = mock.Mock()
    client.get_application.return_value = server_app()
    result = run_main(argocd_application, {"name": "app", "project": "dictamesh",
                                           "spec": {"destination": {"namespace": "other"}}}, client, check=True)
    assert result["changed"] is True
    client.update_application.assert_not_called()


def test_application_differs_without_upsert_fails():
    client = mock.Mock()
    client.get_application.return_value = server_app()
    result = run_main(argocd_application, {"name": "app", "project": "dictamesh", "upsert": False,
                                           "spec": {"destination": {"namespace": "other"}}}, client)
    assert result["failed"] and "upsert is false" in result["msg"]


def test_application_absent_cascade_flag_passed():
    client = mock.Mock()
    client.get_application.return_value = server_app()
    result = run_main(argocd_application, {"name": "app", "state": "absent", "cascade": False}, client)
    assert result["changed"] is True
    client.delete_application.assert_called_once_with("app", cascade=False, propagation_policy=None,
                                                      app_namespace=None)


def test_application_absent_when_missing_is_unchanged():
    client = mock.Mock()
    client.get_application.return_value = None
    assert run_main(argocd_application, {"name": "app", "state": "absent"}, client)["changed"] is False
    client.delete_application.assert_not_called()


def test_application_in_other_project_is_found_without_project():
    client = mock.Mock()
    client.get_application.side_effect = [ArgoCDError("permission denied", status=403, code=7), server_app()]
    client.update_application.return_value = server_app()
    run_main(argocd_application, {"name": "app", "project": "newproj", "spec": SPEC}, client)
    assert client.get_application.call_args_list[1] == mock.call("app", app_namespace=None)
    assert client.update_application.call_args[1]["project"] == "dictamesh"


def test_application_info_missing_is_empty_and_list_uses_filters():
    client = mock.Mock()
    client.get_application.return_value = None
    assert run_main(argocd_application_info, {"name": "x"}, client, check=True)["applications"] == []
    client.list_applications.return_value = [server_app()]
    result = run_main(argocd_application_info, {"selector": "env=dev", "projects": ["p"]}, client)
    assert len(result["applications"]) == 1
    client.list_applications.assert_called_once_with(projects=["p"], selector="env=dev", repo=None, app_namespace=None)


# ---------------------------------------------------------------- repository
STORED_REPO = {"repo": "https://g/r.git", "type": "git", "username": "git",
               "connectionState": {"status": "Successful"}}


def test_repository_create_sends_credentials_but_never_returns_them():
    client = mock.Mock()
    client.get_repository.return_value = None
    client.create_repository.return_value = {"repo": "https://g/r.git", "username": "git", "password": "pw"}
    result = run_main(argocd_repository, {"repo": "https://g/r.git", "username": "git", "password": "pw"}, client,
                      diff=True)
    client.create_repository.assert_called_once_with(
        {"repo": "https://g/r.git", "type": "git", "username": "git", "password": "pw"}, upsert=False)
    assert result["changed"] and result["credentials_sent"]
    assert "password" not in result["repository"] and "pw" not in str(result["diff"])


def test_repository_on_create_credentials_unchanged_repo_is_idempotent():
    client = mock.Mock()
    client.get_repository.return_value = dict(STORED_REPO)
    result = run_main(argocd_repository, {"repo": "https://g/r.git", "username": "git", "password": "new"}, client)
    assert result["changed"] is False and result["credentials_sent"] is False
    client.create_repository.assert_not_called()


def test_repository_always_rotates_credentials_and_reports_change():
    client = mock.Mock()
    client.get_repository.return_value = dict(STORED_REPO)
    client.create_repository.return_value = dict(STORED_REPO, password="new")
    result = run_main(argocd_repository, {"repo": "https://g/r.git", "username": "git", "password": "new",
                                          "update_credentials": "always"}, client)
    assert result["changed"] is True
    client.create_repository.assert_called_once_with(
        {"repo": "https://g/r.git", "type": "git", "username": "git", "password": "new"}, upsert=True)
    assert "password" not in result["repository"]


def test_repository_readable_field_change_carries_credentials():
    client = mock.Mock()
    client.get_repository.return_value = dict(STORED_REPO)
    client.create_repository.return_value = dict(STORED_REPO)
    result = run_main(argocd_repository, {"repo": "https://g/r.git", "username": "bot", "password": "pw"}, client,
                      diff=True)
    assert result["diff"]["before"]["username"] == "git" and result["diff"]["after"]["username"] == "bot"
    assert client.create_repository.call_args[0][0]["password"] == "pw"


def test_repository_absent_and_check_mode():
    client = mock.Mock()
    client.get_repository.return_value = dict(STORED_REPO)
    assert run_main(argocd_repository, {"repo": "https://g/r.git", "state": "absent"}, client, check=True)["changed"]
    client.delete_repository.assert_not_called()
    run_main(argocd_repository, {"repo": "https://g/r.git", "state": "absent"}, client)
    client.delete_repository.assert_called_once_with("https://g/r.git", app_project=None)


# ---------------------------------------------------------------- project
CURRENT_PROJECT = {"metadata": {"name": "p", "namespace": "argocd", "resourceVersion": "9", "uid": "x"},
                   "spec": {"sourceRepos": ["https://g/r.git"], "description": "d",
                            "syncWindows": [{"kind": "allow", "schedule": "* * * * *", "duration": "1h",
                                             "applications": ["*"]}]}}


def test_project_create_with_project_and_upsert_false():
    client = mock.Mock()
    client.get_project.return_value = None
    client.create_project.return_value = CURRENT_PROJECT
    run_main(argocd_project, {"name": "p", "source_repos": ["https://g/r.git"],
                              "namespace_resource_blacklist": [{"kind": "ResourceQuota"}],
                              "sync_windows": [{"kind": "allow", "schedule": "* * * * *", "duration": "1h",
                                                "manual_sync": True}]}, client)
    client.create_project.assert_called_once_with({"metadata": {"name": "p"}, "spec": {
        "sourceRepos": ["https://g/r.git"], "namespaceResourceBlacklist": [{"group": "", "kind": "ResourceQuota"}],
        "syncWindows": [{"kind": "allow", "schedule": "* * * * *", "duration": "1h", "manualSync": True}]}},
        upsert=False)


def test_project_unchanged_when_false_values_are_omitted_by_server():
    client = mock.Mock()
    client.get_project.return_value = CURRENT_PROJECT
    result = run_main(argocd_project, {"name": "p", "description": "d", "sync_windows": [
        {"kind": "allow", "schedule": "* * * * *", "duration": "1h", "applications": ["*"], "manual_sync": False}]},
        client)
    assert result["changed"] is False
    client.update_project.assert_not_called()


def test_project_update_puts_current_resource_version():
    client = mock.Mock()
    client.get_project.return_value = CURRENT_PROJECT
    client.update_project.return_value = CURRENT_PROJECT
    result = run_main(argocd_project, {"name": "p", "description": "new"}, client, diff=True)
    assert result["diff"] == {"before": {"description": "d"}, "after": {"description": "new"}}
    sent = client.update_project.call_args[0][0]
    assert sent["metadata"] == {"name": "p", "namespace": "argocd", "resourceVersion": "9"}
    assert sent["spec"]["description"] == "new" and sent["spec"]["sourceRepos"] == ["https://g/r.git"]


def test_project_stale_resource_version_is_reported():
    client = mock.Mock()
    client.get_project.return_value = CURRENT_PROJECT
    client.update_project.side_effect = ArgoCDError("modified", status=409, code=10)
    result = run_main(argocd_project, {"name": "p", "description": "new"}, client)
    assert result["failed"] and "stale" in result["msg"]


# ---------------------------------------------------------------- login
def test_login_wrong_password_message_and_single_attempt():
    client = mock.Mock()
    client.version.return_value = {"Version": "v3.6.0"}
    client.login.side_effect = ArgoCDError("Invalid username or password", status=401, code=16)
    result = run_main(argocd_login, {"username": "admin", "password": "bad", "auth_token": None}, client)
    assert result["failed"] and "Not retried" in result["msg"]
    assert client.login.call_count == 1
    assert "bad" not in str(result)


def test_login_wrong_base_path():
    client = mock.Mock()
    client.url.return_value = "https://x/wrong/api/version"
    client.version.side_effect = ArgoCDError("404 page not found", status=404)
    result = run_main(argocd_login, {"auth_token": "t"}, client)
    assert result["failed"] and "base_path" in result["msg"]


def test_login_returns_token_and_verifies_it():
    client = mock.Mock()
    client.version.return_value = {"Version": "v3.6.0"}
    client.login.return_value = "session-token"
    client.userinfo.return_value = {"loggedIn": True, "username": "admin"}
    result = run_main(argocd_login, {"username": "admin", "password": "pw", "auth_token": None}, client, check=True)
    assert result["token"] == "session-token" and result["changed"] is False
    assert client.auth_token == "session-token"


def test_login_invalid_token():
    client = mock.Mock()
    client.version.return_value = {"Version": "v3.6.0"}
    client.userinfo.side_effect = ArgoCDError("invalid session", status=401, code=16)
    assert "not valid" in run_main(argocd_login, {"auth_token": "bad"}, client)["msg"]


# ---------------------------------------------------------------- sync
DATE = datetime.datetime(2024, 11, 27, 10, 0, 5, tzinfo=datetime.timezone.utc)


MARK = "0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def fixed_marker():
    with mock.patch.object(argocd_sync, "new_operation_marker", return_value=MARK):
        yield


def synced_app(phase, started, finished, operation=False, sync="Synced", health="Healthy", reconciled=None,
               messages=("deployment.apps/a unchanged",), revision="abc", ours=None):
    """An application state; ``ours`` (default: started at 10:00 or later) carries this task's marker."""
    ours = started >= "2024-11-27T10:00" if ours is None else ours
    info = [{"name": "dictamesh.k3s_gitops/operation-id", "value": MARK if ours else "another-task"}]
    status = {"sync": {"status": sync, "revision": revision}, "health": {"status": health},
              "reconciledAt": reconciled or finished or started,
              "operationState": {"phase": phase, "startedAt": started, "finishedAt": finished,
                                 "operation": {"sync": {}, "info": info},
                                 "syncResult": {"revision": revision,
                                                "resources": [{"kind": "Deployment", "name": "a", "message": m,
                                                               "status": "Synced"} for m in messages]}}}
    app = {"metadata": {"name": "a"}, "status": status}
    if operation:
        app["operation"] = {"sync": {}}
    return app


OLD = synced_app("Succeeded", "2024-11-27T09:00:00Z", "2024-11-27T09:00:01Z")
NEW_DONE = synced_app("Succeeded", "2024-11-27T10:00:05Z", "2024-11-27T10:00:06Z", reconciled="2024-11-27T10:00:07Z",
                      messages=("deployment.apps/a configured",))


def sync_client(stream_events, get_states=None):
    client = mock.Mock()
    client.get_application.side_effect = list(get_states or [OLD])
    client.last_response_date = DATE
    client.watch_application.side_effect = [iter(e) for e in stream_events]
    return client


def test_sync_request_body_is_exact():
    body = argocd_sync.build_sync_request(dict(
        name="a", project="p", app_namespace=None, revision="v1", prune=True, dry_run=False,
        resources=[{"group": "apps", "kind": "Deployment", "name": "d", "namespace": None}],
        strategy="apply", force=True, sync_options=["ServerSideApply=true"],
        retry={"limit": 3, "backoff_duration": "5s", "backoff_factor": 2, "backoff_max_duration": None,
               "refresh": None}))
    assert body == {"name": "a", "project": "p", "revision": "v1", "prune": True, "dryRun": False,
                    "resources": [{"group": "apps", "kind": "Deployment", "name": "d"}],
                    "strategy": {"apply": {"force": True}}, "syncOptions": {"items": ["ServerSideApply=true"]},
                    "retryStrategy": {"limit": 3, "backoff": {"duration": "5s", "factor": 2}}}


def test_sync_ignores_stale_first_event_and_old_comparison():
    running = synced_app("Running", "2024-11-27T10:00:05Z", None, operation=True)
    stale_health = dict(NEW_DONE, status=dict(NEW_DONE["status"], reconciledAt="2024-11-27T10:00:04Z"))
    client = sync_client([[OLD, running, NEW_DONE], [stale_health, NEW_DONE]])
    result = run_main(argocd_sync, {"name": "a"}, client)
    assert result["failed"] is False, result
    assert result["changed"] is True and result["sync_status"] == "Synced"
    assert result["operation_state"]["startedAt"] == "2024-11-27T10:00:05Z"
    assert result["wait_method"] == "stream"
    client.sync_application.assert_called_once()


def test_sync_unchanged_resources_report_no_change():
    done = synced_app("Succeeded", "2024-11-27T10:00:05Z", "2024-11-27T10:00:06Z", reconciled="2024-11-27T10:00:06Z")
    client = sync_client([[done], [done]])
    assert run_main(argocd_sync, {"name": "a"}, client)["changed"] is False


def test_sync_failed_operation_fails_with_resource_messages():
    failed = synced_app("Failed", "2024-11-27T10:00:05Z", "2024-11-27T10:00:06Z", messages=("webhook denied",))
    failed["status"]["operationState"]["syncResult"]["resources"][0]["status"] = "SyncFailed"
    client = sync_client([[failed]])
    result = run_main(argocd_sync, {"name": "a"}, client)
    assert result["failed"] and "phase Failed" in result["msg"] and "webhook denied" in result["msg"]


def test_sync_window_403_is_reported():
    client = sync_client([])
    client.sync_application.side_effect = ArgoCDError("cannot sync: blocked by sync window", status=403, code=7)
    result = run_main(argocd_sync, {"name": "a"}, client)
    assert result["failed"] and "blocked by a sync window" in result["msg"]


def test_sync_running_operation_fail_policy():
    running = synced_app("Running", "2024-11-27T09:59:00Z", None, operation=True)
    client = sync_client([], get_states=[running])
    result = run_main(argocd_sync, {"name": "a", "on_running_operation": "fail"}, client)
    assert result["failed"] and "already in progress" in result["msg"]
    client.sync_application.assert_not_called()


def test_sync_running_operation_terminate_policy():
    running = synced_app("Running", "2024-11-27T09:59:00Z", None, operation=True)
    ended = synced_app("Failed", "2024-11-27T09:59:00Z", "2024-11-27T10:00:01Z")
    client = sync_client([[running, ended], [NEW_DONE], [NEW_DONE]], get_states=[running])
    result = run_main(argocd_sync, {"name": "a", "on_running_operation": "terminate"}, client)
    assert result["failed"] is False, result
    client.terminate_operation.assert_called_once_with("a", app_namespace=None)
    assert result["terminated_operation"] is True


def test_sync_in_progress_race_waits_then_retries():
    running = synced_app("Running", "2024-11-27T09:59:00Z", None, operation=True)
    client = sync_client([[OLD], [NEW_DONE], [NEW_DONE]], get_states=[OLD, running])
    client.sync_application.side_effect = [ArgoCDError("another operation is already in progress", status=400, code=9),
                                           NEW_DONE]
    result = run_main(argocd_sync, {"name": "a"}, client)
    assert result["failed"] is False, result
    assert client.sync_application.call_count == 2


def test_sync_check_mode_predicts_without_posting():
    client = sync_client([], get_states=[dict(OLD, status=dict(OLD["status"], sync={"status": "OutOfSync"}))] * 2)
    result = run_main(argocd_sync, {"name": "a"}, client, check=True)
    assert result["changed"] is True
    client.sync_application.assert_not_called()


def test_sync_missing_application():
    client = sync_client([], get_states=[None])
    assert "not found" in run_main(argocd_sync, {"name": "a"}, client)["msg"]


def test_sync_dry_run_never_changed():
    client = sync_client([[NEW_DONE]])
    result = run_main(argocd_sync, {"name": "a", "dry_run": True}, client)
    assert result["changed"] is False
    assert client.sync_application.call_args[0][1]["dryRun"] is True


RECORDED = {"metadata": {"name": "a"}, "operation": {"sync": {}}, "status": {"sync": {"status": "Synced"}}}
RUNNING = synced_app("Running", "2024-11-27T09:59:00Z", None, operation=True)


@pytest.mark.parametrize("states", [
    [RECORDED, RECORDED, RUNNING],  # still recorded when read after the 400
    [RECORDED, RUNNING, RUNNING],   # picked up between the 400 and the read: running, try again
], ids=["recorded", "picked-up-meanwhile"])
def test_sync_terminate_before_pickup_retries_until_it_is_accepted(states):
    """Argo CD answers 400 "No operation is in progress" until the controller picked the operation up."""
    ended = synced_app("Failed", "2024-11-27T09:59:00Z", "2024-11-27T10:00:01Z")
    client = sync_client([[ended], [NEW_DONE], [NEW_DONE]], get_states=states)
    no_op = ArgoCDError("Unable to terminate operation. No operation is in progress", status=400, code=3)
    client.terminate_operation.side_effect = [no_op, None]
    result = run_main(argocd_sync, {"name": "a", "on_running_operation": "terminate", "poll_interval": 0.01}, client)
    assert result["failed"] is False, result
    assert client.terminate_operation.call_count == 2 and result["terminated_operation"] is True


def test_sync_terminate_of_an_operation_that_ended_reports_no_termination():
    running = synced_app("Running", "2024-11-27T09:59:00Z", None, operation=True)
    ended = synced_app("Succeeded", "2024-11-27T09:59:00Z", "2024-11-27T10:00:01Z")
    client = sync_client([[ended], [NEW_DONE], [NEW_DONE]], get_states=[running, ended])
    client.terminate_operation.side_effect = ArgoCDError("Unable to terminate operation. No operation is in progress",
                                                         status=400, code=3)
    result = run_main(argocd_sync, {"name": "a", "on_running_operation": "terminate"}, client)
    assert result["failed"] is False, result
    assert client.terminate_operation.call_count == 1 and result["terminated_operation"] is False
