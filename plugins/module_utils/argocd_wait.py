# -*- coding: utf-8 -*-
# Copyright (c) dictamesh.k3s_gitops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting on an Argo CD application: stream first, polling as the fallback.

The predicates here never take an earlier operation's state for the one this
module started (see ``OperationTracker``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import time
import uuid

from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_client import (
    ArgoCDConnectionError,
    ArgoCDError,
)

RUNNING_PHASES = frozenset(("Running", "Terminating"))
FAILED_PHASES = frozenset(("Failed", "Error"))
STREAM_READ_TIMEOUT = 30
# Name of the Info item (ApplicationSyncRequest.infos -> operation.info) that marks the operation
# a sync task started; the controller copies the operation, infos included, into operationState.
OPERATION_ID_INFO = "dictamesh.k3s_gitops/operation-id"
# How far the clock behind the API's Date header (API server, ingress) may run ahead of the
# application controller's, which stamps startedAt, when no marker identifies the operation.
CLOCK_SKEW_TOLERANCE = 300


class WaitTimeout(Exception):
    def __init__(self, message, last=None):
        super(WaitTimeout, self).__init__(message)
        self.last = last


class SyncFailed(Exception):
    def __init__(self, message, application=None):
        super(SyncFailed, self).__init__(message)
        self.application = application


def parse_time(value):
    """RFC 3339 (``2024-01-02T03:04:05Z``) -> aware datetime, or None."""
    if not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if "." in text:  # drop fractions: Argo CD times have second resolution
        head, dummy, tail = text.partition(".")
        offset = ""
        for sign in ("+", "-"):
            if sign in tail:
                offset = sign + tail.split(sign, 1)[1]
        text = head + offset
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def status_of(app):
    return (app or {}).get("status") or {}


def operation_state(app):
    return status_of(app).get("operationState") or {}


def operation_key(app):
    state = operation_state(app)
    if not state:
        return None
    return (state.get("startedAt"), state.get("finishedAt"), state.get("phase"))


def new_operation_marker():
    return uuid.uuid4().hex


def operation_marker(app):
    """The OPERATION_ID_INFO value of the operation state (or of the requested operation), or None."""
    state = operation_state(app)
    operation = state.get("operation") if state else None
    for info in (operation or {}).get("info") or []:
        if info.get("name") == OPERATION_ID_INFO:
            return info.get("value")
    return None


def same_sync(operation, expected):
    """True when two operations sync the same revision(s) and source(s)."""
    one, two = (operation or {}).get("sync") or {}, (expected or {}).get("sync") or {}
    return all((one.get(k) or None) == (two.get(k) or None) for k in ("revision", "revisions", "source", "sources"))


def operation_running(app):
    """True while an operation is requested or running on ``app``."""
    if (app or {}).get("operation"):
        return True
    state = operation_state(app)
    return state.get("phase") in RUNNING_PHASES and not state.get("finishedAt")


def resource_messages(app):
    """``Kind/namespace/name: status: message`` of each sync result with a message, failures first."""
    results = (operation_state(app).get("syncResult") or {}).get("resources") or []
    failed, other = [], []
    for res in results:
        if not res.get("message"):
            continue
        where = "/".join(x for x in (res.get("kind"), res.get("namespace"), res.get("name")) if x)
        line = "%s: %s: %s" % (where, res.get("status") or res.get("hookPhase") or "?", res["message"])
        bad = res.get("status") == "SyncFailed" or res.get("hookPhase") in ("Failed", "Error")
        (failed if bad else other).append(line)
    return failed + other


def degraded_messages(app):
    lines = []
    for res in status_of(app).get("resources") or []:
        health = res.get("health") or {}
        if health.get("status") == "Degraded":
            where = "/".join(x for x in (res.get("kind"), res.get("namespace"), res.get("name")) if x)
            lines.append("%s: %s" % (where, health.get("message") or "Degraded"))
    return lines


class OperationTracker:
    """Recognise the operation this module started, without trusting two clocks to agree.

    ``marker``: the value of the OPERATION_ID_INFO item the sync request carried; when given,
    an operation state is ours exactly when its operation carries it (no clock involved).

    Without a marker (a rollback request cannot carry infos): ``previous`` is the
    (startedAt, finishedAt, phase) of the operation state read just before the request, once no
    operation was running; ``expected`` the operation the server recorded (from its answer);
    ``floor`` the server's ``Date`` of that answer. A state is ours when its operation syncs the
    same revision and source as ``expected``, it differs from ``previous`` (or was seen
    running), and it did not start more than ``tolerance`` seconds before ``floor``: ``Date``
    comes from the API server or an ingress, ``startedAt`` from the application controller, and
    their clocks may disagree. A stale read served by the server's cache, or a watch's first
    event, shows the previous state and is ignored.
    """

    def __init__(self, previous, floor, marker=None, expected=None, tolerance=CLOCK_SKEW_TOLERANCE):
        self.previous = previous
        self.floor = floor.replace(microsecond=0) - datetime.timedelta(seconds=tolerance) if floor else None
        self.marker = marker
        self.expected = expected
        self.seen_running = False

    def is_ours(self, app):
        state = operation_state(app)
        if not state:
            return False
        if self.marker is not None:
            return operation_marker(app) == self.marker
        started = parse_time(state.get("startedAt"))
        if started is None:
            return False
        if self.floor is not None and started < self.floor:
            return False
        if self.expected is not None and not same_sync(state.get("operation"), self.expected):
            return False
        if operation_running(app):
            if operation_key(app) != self.previous:
                self.seen_running = True
            return self.seen_running
        return self.seen_running or operation_key(app) != self.previous

    def finished(self, app):
        """True once our operation has finished (any phase); raises nothing."""
        return self.is_ours(app) and not operation_running(app) and bool(operation_state(app).get("finishedAt"))


def check_phase(app):
    """Raise SyncFailed for a Failed/Error operation state."""
    state = operation_state(app)
    if state.get("phase") in FAILED_PHASES:
        lines = resource_messages(app)
        detail = ("; ".join(lines)) if lines else "no resource messages"
        raise SyncFailed(
            "sync operation ended with phase %s: %s. Resources: %s"
            % (state.get("phase"), state.get("message") or "", detail),
            application=app,
        )


def converged_predicate(wait_for, finished_at):
    """Predicate for sync/health after the operation finished at ``finished_at``.

    Only a comparison made after the operation finished (``status.reconciledAt``
    >= ``finishedAt``) counts: before that, sync and health keep old values. Equal
    times count, as in ``argocd app wait`` (argo-cd cmd/argocd/commands/app.go,
    waitOnApplicationStatus: still in progress only while reconciledAt is before finishedAt).
    """
    finished = parse_time(finished_at)

    def predicate(app):
        status = status_of(app)
        reconciled = parse_time(status.get("reconciledAt"))
        if finished is not None and (reconciled is None or reconciled < finished):
            return False
        health = (status.get("health") or {}).get("status")
        if "health" in wait_for and health == "Degraded":
            lines = degraded_messages(app)
            message = (status.get("health") or {}).get("message") or ""
            raise SyncFailed(
                "application health is Degraded %s%s" % (message, (": " + "; ".join(lines)) if lines else ""),
                application=app,
            )
        if "sync" in wait_for and (status.get("sync") or {}).get("status") != "Synced":
            return False
        if "health" in wait_for and health != "Healthy":
            return False
        return True

    return predicate


class ApplicationWaiter:
    """Wait for a predicate on one application, on the stream or by polling."""

    def __init__(self, client, name, project=None, app_namespace=None, use_stream=True,
                 poll_interval=2.0, clock=None, sleep=None):
        self.client = client
        self.name = name
        self.project = project
        self.app_namespace = app_namespace
        self.use_stream = use_stream
        self.poll_interval = poll_interval
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.method = "stream" if use_stream else "poll"
        self.fallback_reason = None
        self.last = None

    def wait(self, predicate, deadline, what):
        if self.use_stream:
            try:
                return self._wait_stream(predicate, deadline, what)
            except _StreamUnavailable as exc:
                self.use_stream = False
                self.method = "poll"
                self.fallback_reason = str(exc)
        return self._wait_poll(predicate, deadline, what)

    def _remaining(self, deadline, what):
        remaining = deadline - self.clock()
        if remaining <= 0:
            raise WaitTimeout("timed out waiting for %s" % what, last=self.last)
        return remaining

    def _check(self, app, predicate):
        self.last = app
        return predicate(app)

    def _wait_stream(self, predicate, deadline, what):
        while True:
            remaining = self._remaining(deadline, what)
            try:
                events = self.client.watch_application(
                    self.name, timeout=min(remaining, STREAM_READ_TIMEOUT), app_namespace=self.app_namespace,
                    projects=[self.project] if self.project else None,
                )
                for app in events:
                    if (app.get("metadata") or {}).get("name") != self.name:
                        continue
                    if self._check(app, predicate):
                        return app
                    self._remaining(deadline, what)
            except ArgoCDConnectionError:
                continue  # read timeout or dropped stream: reopen (its first event is the current state)
            except ArgoCDError as exc:
                if exc.status in (401, 403):
                    raise
                raise _StreamUnavailable("stream endpoint unusable: %s" % exc)

    def _wait_poll(self, predicate, deadline, what):
        while True:
            self._remaining(deadline, what)
            try:
                app = self.client.get_application(self.name, project=self.project, app_namespace=self.app_namespace)
            except ArgoCDConnectionError:
                app = None
            if app is not None and self._check(app, predicate):
                return app
            remaining = self._remaining(deadline, what)
            self.sleep(min(self.poll_interval, remaining))


class _StreamUnavailable(Exception):
    pass


IN_PROGRESS = "another operation is already in progress"


class OperationError(Exception):
    """A sync or rollback that cannot go on; carries the application as last seen."""

    def __init__(self, message, application=None):
        super(OperationError, self).__init__(message)
        self.application = application


class OperationRunner:
    """What argocd_sync and argocd_rollback share: read the application, deal with an
    operation already running, request the operation, wait for it and report the final state.
    ``clock``/``sleep`` are injectable for tests; subclasses set ``error`` to their exception
    class, ``kind`` to the operation's name in messages and ``refusal`` to explain a refusal."""

    error = OperationError
    kind = "operation"

    def __init__(self, params, client, check_mode=False, clock=None, sleep=None):
        self.params = params
        self.client = client
        self.check_mode = check_mode
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.deadline = self.clock() + params["timeout"]
        self.waiter = ApplicationWaiter(
            client, params["name"], project=params.get("project"), app_namespace=params.get("app_namespace"),
            use_stream=params["watch"], poll_interval=params["poll_interval"], clock=self.clock, sleep=self.sleep,
        )
        self.terminated = False

    def get(self):
        app = self.client.get_application(
            self.params["name"], project=self.params.get("project"), app_namespace=self.params.get("app_namespace")
        )
        if app is None:
            raise self.error("application %r not found (or not visible to this token)" % self.params["name"])
        return app

    def settle_running(self, app):
        """Deal with an operation in progress; return the app once none runs."""
        if not operation_running(app):
            return app
        policy = self.params["on_running_operation"]
        if policy == "fail":
            raise self.error("%s on %r (on_running_operation=fail)" % (IN_PROGRESS, self.params["name"]), app)
        if policy == "terminate" and not self.terminated:
            self.terminate(app)
        return self.waiter.wait(lambda a: not operation_running(a), self.deadline, "the running operation to end")

    def terminate(self, app):
        """Terminate the operation in progress; ``self.terminated`` only when the server accepted it.

        Argo CD answers 400 "No operation is in progress" both when the operation ended and when
        it is recorded but not started by the controller yet (Server.TerminateOperation needs an
        operationState): in the second case try again until the controller has picked it up.
        """
        while True:
            try:
                self.client.terminate_operation(self.params["name"], app_namespace=self.params.get("app_namespace"))
                self.terminated = True
                return
            except ArgoCDError as exc:
                if exc.status != 400:
                    raise
                message = exc.message
            app = self.get()
            if not operation_running(app):
                return  # it ended meanwhile: nothing to terminate (if it started meanwhile: try again)
            remaining = self.deadline - self.clock()
            if remaining <= 0:
                raise self.error("timed out waiting for the operation on %r to start so that it can be terminated "
                                 "(last answer: %s)" % (self.params["name"], message), app)
            self.sleep(min(self.params["poll_interval"], remaining))

    @classmethod
    def exit(cls, module):
        """Run the task of ``module`` (an ArgoCDModule) and exit with its result or a failure
        that carries the application as last seen."""
        runner = cls(module.params, module.client, check_mode=module.check_mode)
        try:
            result = runner.run()
        except OperationError as exc:
            module.fail_json(msg=str(exc), application=exc.application)
        except ArgoCDError as exc:
            module.fail_api(exc, "%s of %r" % (cls.kind, module.params["name"]))
        module.exit_json(**result)

    def refusal(self, exc):
        """The message for a refusal the module explains (sync window, automated sync), or None."""
        return None

    def request(self, app, post):
        """Send the operation with ``post()`` once no operation runs; return (app, key, answer).

        ``key`` is the operation_key read just before the request. Another operation may start
        between that read and the request (Argo CD: 400 "another operation is already in
        progress"): read again and retry until the deadline (at once fail with
        on_running_operation=fail).
        """
        while True:
            app = self.settle_running(app)
            previous = operation_key(app)
            try:
                return app, previous, post()
            except ArgoCDError as exc:
                if exc.status == 400 and IN_PROGRESS in (exc.message or "").lower():
                    app = self.get()
                    if not operation_running(app):  # stale cache: wait a moment
                        self.sleep(min(self.params["poll_interval"], max(self.deadline - self.clock(), 0)))
                    if self.clock() >= self.deadline:
                        raise self.error("timed out: %s" % exc.message, app)
                    if self.params["on_running_operation"] == "fail":
                        raise self.error("%s on %r: %s" % (IN_PROGRESS, self.params["name"], exc.message), app)
                    continue
                explained = self.refusal(exc)
                if explained:
                    raise self.error(explained, app)
                raise

    def follow(self, tracker, conditions, result):
        """Wait for the operation ``tracker`` recognises to finish (a Failed/Error phase fails), then
        for ``conditions`` (``sync``, ``health``) as compared after it finished, unless a dry run.

        Puts operation_state and resource_messages of the finished operation into ``result``;
        returns (the application when the operation finished, the application last seen).
        """
        name = self.params["name"]
        try:
            done = self.waiter.wait(tracker.finished, self.deadline, "the %s operation to finish" % self.kind)
            check_phase(done)
            result.update(operation_state=operation_state(done), resource_messages=resource_messages(done))
            app = done
            if conditions and not self.params["dry_run"]:
                predicate = converged_predicate(conditions, operation_state(done).get("finishedAt"))
                app = self.waiter.wait(predicate, self.deadline, " and ".join(conditions))
        except WaitTimeout as exc:
            raise self.error("%s on %r after %ss (last sync %s, health %s, operation %s)" % (
                exc, name, self.params["timeout"],
                (status_of(exc.last).get("sync") or {}).get("status"),
                (status_of(exc.last).get("health") or {}).get("status"),
                operation_state(exc.last).get("phase")), exc.last)
        except SyncFailed as exc:
            detail = str(exc).replace("sync operation", "operation")
            raise self.error("%s of %r failed: %s" % (self.kind, name, detail), exc.application)
        return done, app

    def finish(self, result, app):
        result.update(
            application=app,
            sync_status=(status_of(app).get("sync") or {}).get("status"),
            health_status=(status_of(app).get("health") or {}).get("status"),
            wait_method=self.waiter.method,
            terminated_operation=self.terminated,
        )
        if self.waiter.fallback_reason:
            result["stream_fallback_reason"] = self.waiter.fallback_reason
        return result
