"""Operation tracking: a stale operationState must never count as this sync's result."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils import argocd_wait as w

FLOOR = datetime.datetime(2024, 11, 27, 10, 0, 5, tzinfo=datetime.timezone.utc)


def app(phase=None, started=None, finished=None, operation=False, sync="Synced", health="Healthy", reconciled=None):
    status = {"sync": {"status": sync}, "health": {"status": health}}
    if phase:
        status["operationState"] = {"phase": phase, "startedAt": started, "finishedAt": finished}
    if reconciled:
        status["reconciledAt"] = reconciled
    out = {"metadata": {"name": "a"}, "status": status}
    if operation:
        out["operation"] = {"sync": {}}
    return out


OLD = app("Succeeded", "2024-11-27T09:00:00Z", "2024-11-27T09:00:10Z")


def tracker():
    return w.OperationTracker(w.operation_key(OLD), FLOOR)


def test_previous_operation_state_is_not_ours():
    assert not tracker().finished(OLD)


def test_recorded_but_not_started_is_not_finished():
    pending = app("Succeeded", "2024-11-27T09:00:00Z", "2024-11-27T09:00:10Z", operation=True)
    assert not tracker().finished(pending)


def test_new_operation_finished():
    t = tracker()
    assert not t.finished(app("Running", "2024-11-27T10:00:05Z", None, operation=True))
    assert t.finished(app("Succeeded", "2024-11-27T10:00:05Z", "2024-11-27T10:00:06Z"))


def test_state_started_long_before_the_request_is_stale_even_if_different():
    too_old = FLOOR - datetime.timedelta(seconds=w.CLOCK_SKEW_TOLERANCE + 1)
    other = app("Succeeded", too_old.strftime("%Y-%m-%dT%H:%M:%SZ"), "2024-11-27T10:00:05Z")
    assert not tracker().finished(other)


@pytest.mark.parametrize("behind", [1, 2, 60, w.CLOCK_SKEW_TOLERANCE])
def test_controller_clock_behind_the_date_header_within_tolerance(behind):
    """Date (API server or ingress) ahead of the controller that stamps startedAt: still ours."""
    started = FLOOR - datetime.timedelta(seconds=behind)
    text = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert tracker().finished(app("Succeeded", text, text))


def marked(phase, started, finished, marker, operation=False):
    out = app(phase, started, finished, operation=operation)
    out["status"]["operationState"]["operation"] = {"sync": {}, "info": [
        {"name": "other", "value": "x"}, {"name": w.OPERATION_ID_INFO, "value": marker}]}
    return out


def test_marker_identifies_the_operation_whatever_the_clocks():
    t = w.OperationTracker(w.operation_key(OLD), FLOOR, marker="m1")
    assert not t.finished(OLD)
    assert not t.finished(marked("Succeeded", "2024-11-27T10:00:06Z", "2024-11-27T10:00:07Z", "m0"))
    assert not t.finished(marked("Running", "2024-11-27T09:00:00Z", None, "m1", operation=True))
    # an hour "before" the Date header and still ours: only the marker counts
    assert t.finished(marked("Succeeded", "2024-11-27T09:00:00Z", "2024-11-27T09:00:01Z", "m1"))


def test_expected_operation_must_sync_the_same_revision():
    expected = {"sync": {"revision": "aaa", "source": {"repoURL": "r"}}}
    t = w.OperationTracker(w.operation_key(OLD), FLOOR, expected=expected)
    other = app("Succeeded", "2024-11-27T10:00:05Z", "2024-11-27T10:00:06Z")
    other["status"]["operationState"]["operation"] = {"sync": {"revision": "bbb", "source": {"repoURL": "r"}}}
    assert not t.finished(other)
    other["status"]["operationState"]["operation"] = dict(expected, initiatedBy={"username": "admin"})
    assert t.finished(other)


def test_same_second_identical_state_counts_only_after_seen_running():
    prev = app("Succeeded", "2024-11-27T10:00:05Z", "2024-11-27T10:00:05Z")
    t = w.OperationTracker(w.operation_key(prev), FLOOR)
    assert not t.finished(prev)
    assert not t.finished(app("Running", "2024-11-27T10:00:05Z", None, operation=True))
    assert t.finished(prev)


def test_without_floor_previous_key_still_guards():
    t = w.OperationTracker(w.operation_key(OLD), None)
    assert not t.finished(OLD)
    assert t.finished(app("Failed", "2024-11-27T09:30:00Z", "2024-11-27T09:30:02Z"))


def test_check_phase_reports_resource_messages_failures_first():
    failed = app("Failed", "2024-11-27T10:00:05Z", "2024-11-27T10:00:06Z")
    failed["status"]["operationState"]["message"] = "one or more objects failed to apply"
    failed["status"]["operationState"]["syncResult"] = {"resources": [
        {"kind": "Service", "name": "s", "namespace": "n", "status": "Synced", "message": "service/s unchanged"},
        {"kind": "Deployment", "name": "d", "namespace": "n", "status": "SyncFailed", "message": "denied by webhook"},
    ]}
    with pytest.raises(w.SyncFailed) as info:
        w.check_phase(failed)
    text = str(info.value)
    assert "phase Failed" in text
    assert text.index("Deployment/n/d: SyncFailed: denied by webhook") < text.index("Service/n/s")


def test_converged_ignores_comparison_older_than_the_operation():
    pred = w.converged_predicate(["sync", "health"], "2024-11-27T10:00:06Z")
    assert not pred(app(reconciled="2024-11-27T10:00:01Z"))  # old Synced/Healthy
    assert not pred(app(reconciled="2024-11-27T10:00:07Z", health="Progressing"))
    assert pred(app(reconciled="2024-11-27T10:00:07Z"))


def test_degraded_fails_fast_only_when_fresh_and_health_wanted():
    pred = w.converged_predicate(["health"], "2024-11-27T10:00:06Z")
    assert not pred(app(reconciled="2024-11-27T10:00:00Z", health="Degraded"))
    with pytest.raises(w.SyncFailed, match="Degraded"):
        pred(app(reconciled="2024-11-27T10:00:07Z", health="Degraded"))
    only_sync = w.converged_predicate(["sync"], "2024-11-27T10:00:06Z")
    assert only_sync(app(reconciled="2024-11-27T10:00:07Z", health="Degraded"))


def test_parse_time_variants():
    assert w.parse_time("2024-11-27T10:00:05Z") == FLOOR
    assert w.parse_time("2024-11-27T10:00:05.123456Z") == FLOOR
    assert w.parse_time("2024-11-27T11:00:05+01:00") == FLOOR
    assert w.parse_time("") is None and w.parse_time("garbage") is None


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


class PollClient:
    def __init__(self, states):
        self.states = list(states)
        self.calls = 0

    def get_application(self, name, project=None, app_namespace=None):
        self.calls += 1
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


def test_poll_waiter_times_out_with_last_state():
    clock = FakeClock()
    client = PollClient([OLD])
    waiter = w.ApplicationWaiter(client, "a", use_stream=False, poll_interval=2, clock=clock, sleep=clock.sleep)
    with pytest.raises(w.WaitTimeout) as info:
        waiter.wait(lambda a: False, 10, "x")
    assert info.value.last == OLD
    assert client.calls == 5


class StreamClient(PollClient):
    def __init__(self, states, stream_error=None):
        super().__init__(states)
        self.stream_error = stream_error
        self.opened = 0

    def watch_application(self, name, timeout, app_namespace=None, projects=None):
        self.opened += 1
        if self.stream_error:
            raise self.stream_error
        return iter(self.states)


def test_stream_waiter_returns_first_matching_event():
    client = StreamClient([OLD, app("Succeeded", "2024-11-27T10:00:05Z", "2024-11-27T10:00:06Z")])
    waiter = w.ApplicationWaiter(client, "a")
    got = waiter.wait(tracker().finished, 1e12, "x")
    assert got["status"]["operationState"]["startedAt"] == "2024-11-27T10:00:05Z"
    assert waiter.method == "stream" and client.calls == 0


def test_stream_404_falls_back_to_polling():
    from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_client import ArgoCDError
    done = app("Succeeded", "2024-11-27T10:00:05Z", "2024-11-27T10:00:06Z")
    client = StreamClient([done], stream_error=ArgoCDError("nf", status=404))
    waiter = w.ApplicationWaiter(client, "a")
    assert waiter.wait(tracker().finished, 1e12, "x") == done
    assert waiter.method == "poll" and "404" in waiter.fallback_reason
