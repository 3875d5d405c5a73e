"""plugins/filter/k8s_state.py: the state of a Job, a workload or a condition from kubectl -o json."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dictamesh.k3s_gitops.plugins.filter import k8s_state

UID = "0b1c"


def job(conditions=None, **status):
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "helm-install-x", "uid": UID},
            "status": dict(status, conditions=conditions or [])}


def pod(restarts, exit_code=1, uid=UID, waiting="CrashLoopBackOff"):
    """A helm-install pod: `restarts` restarts so far, waiting (after a failure) or running."""
    container = {"name": "helm", "restartCount": restarts,
                 "state": {"waiting": {"reason": waiting}} if waiting else {"running": {}}}
    if restarts or waiting == "CrashLoopBackOff":
        container["lastState"] = {"terminated": {"exitCode": exit_code, "reason": "Error"}}
    return {"kind": "Pod", "metadata": {"name": "helm-install-x-abc", "labels": {"controller-uid": uid}},
            "status": {"containerStatuses": [container]}}


def listing(*items):
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)})


@pytest.mark.parametrize(("value", "state"), [
    ("", "absent"),
    (listing(), "absent"),
    (listing(job(active=1)), "running"),
    (listing(job(active=1), pod(0, waiting="ContainerCreating")), "running"),
    (listing(job(active=1), pod(0)), "running"),  # failed once, waiting to restart
    (listing(job(active=1), pod(1, waiting=None)), "running"),  # second run
    (listing(job(active=1), pod(1)), "failed"),  # second run failed
    (listing(job(active=1), {"kind": "Pod", "metadata": {"ownerReferences": [{"uid": UID}]}, "status": {
        "containerStatuses": [{"restartCount": 1, "state": {"terminated": {"exitCode": 1}}}]}}), "failed"),
    (listing(job(active=1), pod(9, uid="other-job")), "running"),  # a pod of the previous job
    (listing(job([{"type": "Complete", "status": "True"}], succeeded=1)), "complete"),
    (listing(job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}], failed=1)), "failed"),
    (job([{"type": "Complete", "status": "False"}], active=1), "running"),
])
def test_job_state(value, state):
    assert k8s_state.k8s_job_state(value, "helm-install-x")["state"] == state


def test_job_state_reason_and_threshold():
    result = k8s_state.k8s_job_state(listing(job(active=1), pod(0, exit_code=2)), "helm-install-x", max_failures=1)
    assert result == {"state": "failed", "uid": UID, "failures": 1, "created": "",
                      "reason": "its pod failed 1 times, last with exit code 2 (Error) (the job keeps retrying)"}
    result = k8s_state.k8s_job_state(listing(job(active=1), pod(1, waiting=None)), "helm-install-x", max_failures=3)
    assert result["reason"] == "running, 1 failed attempt(s) so far, last with exit code 1 (Error)"
    failed = job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "too many"}])
    assert k8s_state.k8s_job_state(failed, "helm-install-x")["reason"] == "BackoffLimitExceeded: too many"
    assert k8s_state.k8s_job_state(listing(job()), "helm-install-y")["state"] == "absent"


def api_pods(*pods):
    """kubernetes.core.k8s_info's registered result of a Pod listing (list items carry no kind)."""
    return {"resources": [{k: v for k, v in p.items() if k != "kind"} for p in pods], "failed": False}


def succeeded_pod(uid=UID):
    return {"kind": "Pod", "metadata": {"name": "helm-install-x-abc", "labels": {"controller-uid": uid}},
            "status": {"phase": "Succeeded", "containerStatuses": [
                {"name": "helm", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}


def test_job_state_from_its_pods_and_the_job_read_before():
    # The controller's job wait reads the pods alone (one kind per k8s_info call) and judges them
    # with the Job found earlier, whose own status is then out of date.
    running = job(active=1)
    assert k8s_state.k8s_job_state(api_pods(), "helm-install-x", job=running)["state"] == "running"
    assert k8s_state.k8s_job_state(api_pods(pod(1)), "helm-install-x", job=running)["state"] == "failed"
    done = k8s_state.k8s_job_state(api_pods(succeeded_pod()), "helm-install-x", job=running)
    assert done == {"state": "complete", "reason": "Complete", "failures": 0, "uid": UID, "created": ""}
    # a pod of another (the previous) job does not count
    assert k8s_state.k8s_job_state(api_pods(succeeded_pod("old")), "helm-install-x", job=running)["state"] == "running"
    # without the job (none found yet), or with another job's name: absent
    assert k8s_state.k8s_job_state(api_pods(succeeded_pod()), "helm-install-x", job=None)["state"] == "absent"
    assert k8s_state.k8s_job_state(api_pods(), "helm-install-y", job=running)["state"] == "absent"
    # a Job in the listing itself (k3s kubectl's jobs,pods) takes precedence over the earlier one
    fresh = job([{"type": "Complete", "status": "True"}], succeeded=1)
    assert k8s_state.k8s_job_state(listing(fresh), "helm-install-x", job=running)["state"] == "complete"


def test_job_state_of_a_read_that_failed_is_unknown_with_its_error():
    for read, why in [({"rc": 1, "stdout": "", "stderr": "The connection to the server was refused\n"},
                       "The connection to the server was refused"),
                      ({"failed": False, "msg": "Failed to get client due to HTTPSConnectionPool"},
                       "Failed to get client due to HTTPSConnectionPool")]:
        assert k8s_state.k8s_job_state(read, "helm-install-x", job=job(active=1)) == {
            "state": "unknown", "reason": why, "failures": 0, "uid": "", "created": ""}


def stamped(created, conditions=(), **status):
    """A job whose metadata.creationTimestamp is `created`."""
    obj = job(list(conditions), **status)
    obj["metadata"]["creationTimestamp"] = created
    return obj


COMPLETE = [{"type": "Complete", "status": "True"}]
# 2024-05-01T10:00:00Z
T0 = 1714557600


def test_job_state_carries_the_creation_timestamp():
    result = k8s_state.k8s_job_state(listing(stamped("2024-05-01T10:00:00Z", COMPLETE, succeeded=1)), "helm-install-x")
    assert result == {"state": "complete", "reason": "Complete", "failures": 0, "uid": UID,
                      "created": "2024-05-01T10:00:00Z"}
    assert k8s_state.k8s_job_state(listing(stamped("2024-05-01T10:00:00Z", active=1)), "helm-install-x")["created"] == (
        "2024-05-01T10:00:00Z")
    assert k8s_state.k8s_job_state("", "helm-install-x")["created"] == ""


@pytest.mark.parametrize(("created", "mtime", "predates"), [
    ("2024-05-01T10:00:00Z", T0 + 20, True),  # the manifest was written after the job: a new job is to come
    ("2024-05-01T10:00:00Z", str(T0 + 1), True),  # stat -c %Y's text
    ("2024-05-01T10:00:00Z", T0 + 1.0, True),
    ("2024-05-01T10:00:00Z", T0 - 15, False),  # the job came after the write (the deploy controller's scan)
    ("2024-05-01T10:00:00Z", T0, False),  # same second: at or after the write
    ("2024-05-01T10:00:00Z", T0 + 0.9, False),  # an mtime with a fraction: the same second
    ("2024-05-01T10:00:00Z", "%d\n" % T0, False),
    ("2024-05-01T12:00:00+02:00", T0 + 1, True),  # an offset (the API writes Z)
    ("2024-05-01T10:00:00.750Z", T0 + 1, True),
    ("2024-05-01T10:00:01Z", T0 + 1, False),
    ("", T0, True),  # an existing job without a creationTimestamp: cannot be shown newer
])
def test_job_predates(created, mtime, predates):
    state = k8s_state.k8s_job_state(listing(stamped(created, COMPLETE, succeeded=1)), "helm-install-x")
    assert k8s_state.k8s_job_predates(state, mtime) is predates


@pytest.mark.parametrize("state", [
    {"state": "absent", "reason": "job helm-install-x not found", "failures": 0, "uid": "", "created": ""},
    {"state": "unknown", "reason": "connection refused", "failures": 0, "uid": ""},  # the role's unread job
])
def test_job_predates_without_a_job(state):
    assert k8s_state.k8s_job_predates(state, T0 + 100) is False


@pytest.mark.parametrize("mtime", ["", "none", None, " none\n"])
def test_job_predates_without_a_manifest(mtime):
    # Nothing on disk before the write: the write that follows is a change, waited for as one.
    state = k8s_state.k8s_job_state(listing(stamped("2024-05-01T10:00:00Z", COMPLETE)), "helm-install-x")
    assert k8s_state.k8s_job_predates(state, mtime) is False


def test_job_predates_bad_input():
    state = k8s_state.k8s_job_state(listing(stamped("2024-05-01T10:00:00Z", COMPLETE)), "helm-install-x")
    with pytest.raises(AnsibleFilterError, match="mtime must be seconds since the epoch, got 'yesterday'"):
        k8s_state.k8s_job_predates(state, "yesterday")
    with pytest.raises(AnsibleFilterError, match="seconds since the epoch"):
        k8s_state.k8s_job_predates(state, "inf")
    with pytest.raises(AnsibleFilterError, match="expected the result of k8s_job_state, got str"):
        k8s_state.k8s_job_predates("{}", T0)
    bad = dict(state, created="May 1st")
    with pytest.raises(AnsibleFilterError, match="creationTimestamp 'May 1st' is not an RFC 3339 time"):
        k8s_state.k8s_job_predates(bad, T0)


def deployment(generation=1, observed=1, replicas=1, updated=1, available=1, total=None, conditions=None):
    return {"kind": "Deployment", "metadata": {"name": "d", "generation": generation}, "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "replicas": updated if total is None else total,
                       "updatedReplicas": updated, "availableReplicas": available, "conditions": conditions or []}}


@pytest.mark.parametrize(("obj", "state", "message"), [
    (deployment(), "ready", 'deployment "d" successfully rolled out'),
    (deployment(generation=2), "progressing", "waiting for deployment spec update to be observed"),
    (deployment(updated=0, available=0), "progressing", "0 out of 1 new replicas have been updated"),
    (deployment(total=2), "progressing", "1 old replicas are pending termination"),
    (deployment(available=0), "progressing", "0 of 1 updated replicas are available"),
    (deployment(available=0, conditions=[{"type": "Progressing", "status": "False",
                                          "reason": "ProgressDeadlineExceeded"}]),
     "failed", 'deployment "d" exceeded its progress deadline'),
])
def test_deployment(obj, state, message):
    assert k8s_state.k8s_workload_state(json.dumps(obj)) == {"state": state, "message": message}


def daemonset(desired=2, updated=2, available=2, strategy="RollingUpdate"):
    return {"kind": "DaemonSet", "metadata": {"name": "ds", "generation": 3},
            "spec": {"updateStrategy": {"type": strategy}},
            "status": {"observedGeneration": 3, "desiredNumberScheduled": desired, "updatedNumberScheduled": updated,
                       "numberAvailable": available}}


def statefulset(ready=1, observed=1, updated=1, partition=0):
    return {"kind": "StatefulSet", "metadata": {"name": "s", "generation": 1},
            "spec": {"replicas": 1, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}},
            "status": {"observedGeneration": observed, "readyReplicas": ready, "updatedReplicas": updated}}


@pytest.mark.parametrize(("obj", "state"), [
    (daemonset(), "ready"), (daemonset(updated=1), "progressing"), (daemonset(available=1), "progressing"),
    (daemonset(strategy="OnDelete"), "failed"),
    (statefulset(), "ready"), (statefulset(ready=0), "progressing"), (statefulset(observed=0), "progressing"),
    (statefulset(updated=0), "progressing"),
])
def test_daemonset_statefulset(obj, state):
    assert k8s_state.k8s_workload_state(obj)["state"] == state


def test_workload_absent_and_bad_input():
    assert k8s_state.k8s_workload_state("")["state"] == "absent"
    with pytest.raises(AnsibleFilterError, match="no rollout state for kind 'Job'"):
        k8s_state.k8s_workload_state({"kind": "Job"})
    with pytest.raises(AnsibleFilterError, match="not the JSON"):
        k8s_state.k8s_workload_state("Error from server")


def test_condition():
    issuer = {"kind": "ClusterIssuer", "status": {"conditions": [{"type": "Ready", "status": "False",
                                                                  "message": "no account"}]}}
    assert k8s_state.k8s_condition(json.dumps(issuer), "Ready") == "False"
    assert k8s_state.k8s_condition(json.dumps(issuer), "Ready", "message") == "no account"
    assert k8s_state.k8s_condition(json.dumps(issuer), "Ready", "reason") == ""
    assert k8s_state.k8s_condition(issuer, "ready") == "False"
    assert k8s_state.k8s_condition({"kind": "ClusterIssuer"}, "Ready") == ""
    assert k8s_state.k8s_condition("", "Ready") == ""


def test_rollout_problem():
    item = {"namespace": "ns", "kind": "deployment", "name": "d"}
    assert k8s_state.k8s_rollout_problem({"item": item, "rc": 0, "stdout": json.dumps(deployment())}) == ""
    assert k8s_state.k8s_rollout_problem({"item": item, "rc": 0, "stdout": json.dumps(deployment(available=0))}) == (
        "ns/deployment/d: 0 of 1 updated replicas are available")
    assert k8s_state.k8s_rollout_problem({"item": item, "rc": 0, "stdout": ""}) == "ns/deployment/d: does not exist"
    assert k8s_state.k8s_rollout_problem({"item": item, "rc": 1, "stdout": "", "stderr": "refused\n"}) == (
        "ns/deployment/d: refused")
    with pytest.raises(AnsibleFilterError):
        k8s_state.k8s_rollout_problem("x")


def _issuer(name, status=None, message=""):
    obj = {"kind": "ClusterIssuer", "metadata": {"name": name}, "status": {}}
    if status:
        obj["status"]["conditions"] = [{"type": "Ready", "status": status, "message": message}]
    return obj


def test_conditions_problems_from_either_client():
    listing = {"kind": "List", "items": [_issuer("ca", "True"), _issuer("le", "False", "ACME unreachable"),
                                         _issuer("new")]}
    names = ["le", "ca", "new", "absent"]
    expected = ["le: Ready=False ACME unreachable", "new: Ready=unknown", "absent: not found (its manifest was not applied)"]
    command = {"rc": 0, "stdout": json.dumps(listing), "changed": False}
    k8s_info = {"resources": listing["items"], "api_found": True, "changed": False, "failed": False}
    assert k8s_state.k8s_conditions_problems(command, names) == expected
    assert k8s_state.k8s_conditions_problems(k8s_info, names) == expected
    assert k8s_state.k8s_conditions_problems(k8s_info, ["ca"]) == []
    assert k8s_state.k8s_conditions_problems({"resources": [], "failed": False}, ["ca"]) == [
        "ca: not found (its manifest was not applied)"]
    # `until` retries ran out: Ansible marks the last answer failed; the answer still says why
    assert k8s_state.k8s_conditions_problems(dict(k8s_info, failed=True, attempts=3), names) == expected
    assert k8s_state.k8s_conditions_problems(dict(command, failed=True, attempts=3), names) == expected


def test_conditions_problems_of_a_failed_read_name_every_object():
    assert k8s_state.k8s_conditions_problems({"rc": 1, "stdout": "", "stderr": "Unable to connect\n"}, ["a", "b"]) == [
        "a: Unable to connect", "b: Unable to connect"]
    assert k8s_state.k8s_conditions_problems({"failed": True, "msg": "Failed to get client"}, ["a"]) == [
        "a: Failed to get client"]
    with pytest.raises(AnsibleFilterError, match="expected a list of names"):
        k8s_state.k8s_conditions_problems({"resources": []}, "ca")


def test_objects_of_either_client_and_nothing_found():
    secret = {"kind": "Secret", "metadata": {"name": "argocd-initial-admin-secret"}}
    assert k8s_state.k8s_objects({"resources": [secret], "failed": False}) == [secret]
    assert k8s_state.k8s_objects({"rc": 0, "stdout": json.dumps(secret)}) == [secret]
    assert k8s_state.k8s_objects({"rc": 0, "stdout": ""}) == []  # --ignore-not-found
    assert k8s_state.k8s_objects({"resources": [], "failed": False}) == []
    assert k8s_state.k8s_objects({"skipped": True, "changed": False}) == []
    assert k8s_state.k8s_objects({}) == []  # a read that did not run (`default({})`)


def test_storage_classes_and_their_defaults():
    def sc(name, annotations=None):
        return {"kind": "StorageClass", "metadata": {"name": name, "annotations": annotations or {}}}
    listing = [sc("local-path", {"storageclass.kubernetes.io/is-default-class": "false"}),
               sc("longhorn", {"storageclass.kubernetes.io/is-default-class": "true"}),
               sc("old", {"storageclass.beta.kubernetes.io/is-default-class": "true"}),
               sc("longhorn-retain")]
    expected = {"names": ["local-path", "longhorn", "longhorn-retain", "old"], "defaults": ["longhorn", "old"]}
    assert k8s_state.k8s_storage_classes({"resources": listing, "failed": False}) == expected
    assert k8s_state.k8s_storage_classes({"rc": 0, "stdout": json.dumps({"kind": "List", "items": listing})}) == expected
    assert k8s_state.k8s_storage_classes({"resources": []}) == {"names": [], "defaults": []}
    problems = k8s_state.k8s_storage_class_problems
    command = {"rc": 0, "stdout": json.dumps({"kind": "List", "items": listing})}
    assert problems(command, ["longhorn", "longhorn-retain"], ["old", "longhorn"]) == []
    assert problems(command, ["longhorn", "longhorn-retain", "fast"], ["longhorn"]) == [
        "missing: fast", "default: longhorn, old instead of longhorn"]
    assert problems({"resources": []}, ["longhorn"], ["longhorn"]) == ["missing: longhorn", "default: none instead of longhorn"]
    assert problems({"rc": 1, "stdout": "", "stderr": "connection refused\n"}, [], []) == ["connection refused"]
    with pytest.raises(AnsibleFilterError, match="defaults must be a list"):
        problems(command, ["longhorn"], "longhorn")


def test_filters_registered():
    assert set(k8s_state.FilterModule().filters()) == {"k8s_condition", "k8s_job_state", "k8s_job_predates",
                                                       "k8s_workload_state",
                                                       "k8s_rollout_problem", "k8s_conditions_problems",
                                                       "k8s_nodes", "k8s_nodes_lagging", "k8s_rollouts_state",
                                                       "k8s_rollouts_problems", "k8s_drain_outcome",
                                                       "k8s_drain_pending", "k8s_storage_classes", "k8s_objects",
                                                       "k8s_storage_class_problems"}
