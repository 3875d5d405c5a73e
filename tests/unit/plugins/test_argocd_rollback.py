"""argocd_rollback with a patched client: exact request, entry selection, idempotence, auto-sync, waiting."""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Optional
from unittest import mock

from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_client import ArgoCDError
from ansible_collections.dictamesh.k3s_gitops.plugins.modules import argocd_rollback

from .helpers import run_main

DATE = datetime.datetime(2024, 11, 27, 10, 0, 5, tzinfo=datetime.timezone.utc)
SRC = {"repoURL": "https://g/r.git", "path": "p", "targetRevision": "main"}
HISTORY = [
    {"id": 0, "revision": "aaa", "source": SRC, "deployedAt": "2024-11-27T08:00:00Z"},
    {"id": 1, "revision": "bbb", "source": SRC, "deployedAt": "2024-11-27T08:30:00Z"},
    {"id": 2, "revision": "ccc", "source": SRC, "deployedAt": "2024-11-27T09:00:01Z"},
]


def app_state(phase: str, started: str, finished: Optional[str], history: List[Dict[str, Any]],
              health: str = "Healthy", reconciled: Optional[str] = None, operation: bool = False,
              automated: Any = None, revision: str = "ccc") -> Dict[str, Any]:
    status = {"sync": {"status": "Synced", "revision": "ccc"}, "health": {"status": health},
              "reconciledAt": reconciled or finished or started, "history": history,
              "operationState": {"phase": phase, "startedAt": started, "finishedAt": finished,
                                 "operation": {"sync": {"revision": revision, "source": SRC}},
                                 "syncResult": {"revision": revision, "resources": [
                                     {"kind": "Deployment", "name": "a", "status": "Synced",
                                      "message": "deployment.apps/a configured"}]}}}
    app: Dict[str, Any] = {"metadata": {"name": "a"}, "spec": {"source": SRC}, "status": status}
    if automated is not None:
        app["spec"]["syncPolicy"] = {"automated": automated}
    if operation:
        app["operation"] = {"sync": {"revision": "aaa", "source": SRC}}
    return app


BEFORE = app_state("Succeeded", "2024-11-27T09:00:00Z", "2024-11-27T09:00:01Z", HISTORY)
AFTER_HISTORY = HISTORY + [{"id": 3, "revision": "aaa", "source": SRC, "deployedAt": "2024-11-27T10:00:06Z"}]
RUNNING = app_state("Running", "2024-11-27T10:00:05Z", None, HISTORY, operation=True, revision="aaa")
DONE = app_state("Succeeded", "2024-11-27T10:00:05Z", "2024-11-27T10:00:06Z", AFTER_HISTORY,
                 health="Progressing", reconciled="2024-11-27T10:00:06Z", revision="aaa")
HEALTHY = app_state("Succeeded", "2024-11-27T10:00:05Z", "2024-11-27T10:00:06Z", AFTER_HISTORY,
                    reconciled="2024-11-27T10:00:08Z", revision="aaa")


def client_for(stream_events: List[List[Dict[str, Any]]], get_states: Optional[List[Dict[str, Any]]] = None) -> Any:
    client = mock.Mock()
    client.get_application.side_effect = list(get_states or [BEFORE])
    client.last_response_date = DATE
    client.watch_application.side_effect = [iter(e) for e in stream_events]
    client.rollback_application.return_value = RUNNING
    return client


def test_request_path_and_body_are_exact():
    client = client_for([[BEFORE, RUNNING, DONE], [DONE, HEALTHY]])
    result = run_main(argocd_rollback, {"name": "a", "id": 0, "prune": True, "project": "dictamesh"}, client)
    assert result["failed"] is False, result
    client.rollback_application.assert_called_once_with(
        "a", {"name": "a", "id": 0, "prune": True, "dryRun": False, "project": "dictamesh"})
    client.request.assert_not_called()  # the module builds no request of its own
    assert result["changed"] is True
    assert result["revision"] == "aaa" and result["history_entry"]["id"] == 0
    assert result["operation_state"]["startedAt"] == "2024-11-27T10:00:05Z"
    assert result["health_status"] == "Healthy"


def test_stale_first_event_is_not_taken_for_the_rollback():
    # the stream's first event is the previous (finished) operation: it must not end the wait
    stale_health = dict(DONE, status=dict(DONE["status"], health={"status": "Healthy"},
                                          reconciledAt="2024-11-27T10:00:04Z"))
    client = client_for([[BEFORE, DONE], [stale_health, HEALTHY]])
    result = run_main(argocd_rollback, {"name": "a", "id": 0}, client)
    assert result["failed"] is False, result
    assert result["application"]["status"]["reconciledAt"] == "2024-11-27T10:00:08Z"
    assert client.watch_application.call_count == 2


def test_select_by_revision_takes_newest_entry_at_that_revision():
    history = HISTORY + [{"id": 3, "revision": "bbb", "source": SRC}, {"id": 4, "revision": "ccc", "source": SRC}]
    app = app_state("Succeeded", "t", "t", history)
    assert argocd_rollback.select_entry(app, revision="bbb")["id"] == 3
    assert argocd_rollback.select_entry(app, entry_id=1)["revision"] == "bbb"


def test_string_ids_from_int64_json_are_accepted():
    history = [dict(h, id=str(h["id"])) for h in HISTORY]
    app = app_state("Succeeded", "t", "t", history)
    assert argocd_rollback.select_entry(app, entry_id=1)["revision"] == "bbb"
    assert argocd_rollback.build_rollback_request({"name": "a", "prune": False, "dry_run": False}, "1")["id"] == 1


def test_unknown_id_fails_listing_known_ids_and_posts_nothing():
    client = client_for([])
    result = run_main(argocd_rollback, {"name": "a", "id": 9}, client)
    assert result["failed"] and "no history entry with id 9" in result["msg"] and "0, 1, 2" in result["msg"]
    client.rollback_application.assert_not_called()


def test_unknown_revision_fails():
    result = run_main(argocd_rollback, {"name": "a", "revision": "zzz"}, client_for([]))
    assert result["failed"] and "no history entry at revision 'zzz'" in result["msg"]


def test_already_at_that_revision_changes_nothing():
    client = client_for([], get_states=[HEALTHY])
    result = run_main(argocd_rollback, {"name": "a", "id": 0}, client)
    assert result["failed"] is False and result["changed"] is False
    client.rollback_application.assert_not_called()


def test_auto_sync_enabled_fails_early():
    auto = app_state("Succeeded", "2024-11-27T09:00:00Z", "2024-11-27T09:00:01Z", HISTORY,
                     automated={"prune": True})
    client = client_for([], get_states=[auto])
    result = run_main(argocd_rollback, {"name": "a", "id": 0}, client)
    assert result["failed"] and "auto-sync is enabled" in result["msg"]
    client.rollback_application.assert_not_called()


def test_auto_sync_explicitly_disabled_is_not_auto():
    off = app_state("Succeeded", "t", "t", HISTORY, automated={"enabled": False})
    assert argocd_rollback.auto_sync_enabled(off) is False
    assert argocd_rollback.auto_sync_enabled(app_state("Succeeded", "t", "t", HISTORY, automated={})) is True


def test_auto_sync_refusal_from_server_is_explained():
    client = client_for([])
    client.rollback_application.side_effect = ArgoCDError(
        "rollback cannot be initiated when auto-sync is enabled", status=400, code=9)
    result = run_main(argocd_rollback, {"name": "a", "id": 0}, client)
    assert result["failed"] and "disable automated sync first" in result["msg"]


def test_check_mode_predicts_without_posting():
    client = client_for([], get_states=[BEFORE])
    result = run_main(argocd_rollback, {"name": "a", "id": 1}, client, check=True)
    assert result["changed"] is True and result["revision"] == "bbb"
    client.rollback_application.assert_not_called()


def test_failed_operation_fails_with_resource_messages():
    failed = app_state("Failed", "2024-11-27T10:00:05Z", "2024-11-27T10:00:06Z", HISTORY, revision="aaa")
    resource = failed["status"]["operationState"]["syncResult"]["resources"][0]
    resource.update(status="SyncFailed", message="webhook denied")
    client = client_for([[failed]])
    result = run_main(argocd_rollback, {"name": "a", "id": 0}, client)
    assert result["failed"] and "rollback of 'a' failed" in result["msg"] and "webhook denied" in result["msg"]


def test_degraded_after_rollback_fails():
    degraded = app_state("Succeeded", "2024-11-27T10:00:05Z", "2024-11-27T10:00:06Z", AFTER_HISTORY,
                         health="Degraded", reconciled="2024-11-27T10:00:09Z", revision="aaa")
    client = client_for([[DONE], [degraded]])
    result = run_main(argocd_rollback, {"name": "a", "id": 0}, client)
    assert result["failed"] and "Degraded" in result["msg"]


def test_running_operation_fail_policy_posts_nothing():
    running = app_state("Running", "2024-11-27T09:59:00Z", None, HISTORY, operation=True)
    client = client_for([], get_states=[running])
    result = run_main(argocd_rollback, {"name": "a", "id": 0, "on_running_operation": "fail"}, client)
    assert result["failed"] and "already in progress" in result["msg"]
    client.rollback_application.assert_not_called()


def test_wait_for_empty_only_requests():
    client = client_for([])
    result = run_main(argocd_rollback, {"name": "a", "id": 0, "wait_for": []}, client)
    assert result["failed"] is False and result["changed"] is True
    client.watch_application.assert_not_called()


def test_dry_run_is_never_changed_and_skips_health():
    client = client_for([[DONE]])
    result = run_main(argocd_rollback, {"name": "a", "id": 0, "dry_run": True}, client)
    assert result["failed"] is False and result["changed"] is False
    assert client.rollback_application.call_args[0][1]["dryRun"] is True


def test_id_and_revision_are_exclusive_and_one_is_required():
    assert "mutually exclusive" in run_main(argocd_rollback, {"name": "a", "id": 0, "revision": "x"},
                                            client_for([]))["msg"]
    assert "one of the following is required" in run_main(argocd_rollback, {"name": "a"}, client_for([]))["msg"]


def test_missing_application():
    result = run_main(argocd_rollback, {"name": "a", "id": 0}, client_for([], get_states=[None]))
    assert result["failed"] and "not found" in result["msg"]


def test_in_progress_race_reads_again_and_sends_the_same_request():
    # an operation started between the read and the POST (400 "another operation is already in
    # progress"): the loop shared with argocd_sync reads the application again and retries
    in_progress = ArgoCDError("another operation is already in progress", status=400, code=9)
    client = client_for([[BEFORE, RUNNING, DONE], [DONE, HEALTHY]], get_states=[BEFORE, BEFORE])
    client.rollback_application.side_effect = [in_progress, RUNNING]
    result = run_main(argocd_rollback, {"name": "a", "id": 0, "poll_interval": 0.01}, client)
    assert result["failed"] is False, result
    body = {"name": "a", "id": 0, "prune": False, "dryRun": False}
    assert client.rollback_application.call_args_list == [mock.call("a", body), mock.call("a", body)]
    assert client.get_application.call_count == 2
    assert result["changed"] is True and result["health_status"] == "Healthy"


def test_in_progress_race_with_fail_policy_fails_after_one_request():
    in_progress = ArgoCDError("another operation is already in progress", status=400, code=9)
    client = client_for([], get_states=[BEFORE, BEFORE])
    client.rollback_application.side_effect = [in_progress]
    result = run_main(argocd_rollback, {"name": "a", "id": 0, "on_running_operation": "fail",
                                        "poll_interval": 0.01}, client)
    assert result["failed"] and "already in progress on 'a'" in result["msg"]
    assert client.rollback_application.call_count == 1


def test_wait_timeout_names_the_rollback_and_last_state():
    client = client_for([], get_states=[BEFORE] * 50)  # polling sees only the previous operation
    result = run_main(argocd_rollback, {"name": "a", "id": 0, "timeout": 1, "watch": False,
                                        "poll_interval": 0.2}, client)
    assert result["failed"] and "timed out waiting for the rollback operation to finish on 'a'" in result["msg"]
