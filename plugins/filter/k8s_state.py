# -*- coding: utf-8 -*-
# Copyright: DictaMesh maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What state a Kubernetes Job or workload is in, read from `kubectl get ... -o json` output.

The roles poll `kubectl get -o json` and let these filters decide, instead of matching kubectl's
text or waiting with `kubectl wait` (which, on a named object that does not exist yet, fails at
once with NotFound, and on a Job that failed keeps waiting until its timeout).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import calendar
import math
import re

from ansible.errors import AnsibleFilterError
from ansible_collections.dictamesh.k3s_gitops.plugins.plugin_utils.kubectl_json import (
    kubectl_items as _items,
    load_kubectl_json as _load,
    read_error as _read_error,
)

try:
    from ansible.module_utils.six import string_types
except ImportError:  # pragma: no cover
    string_types = (str,)


def _conditions(obj):
    status = obj.get("status") if isinstance(obj, dict) else None
    conditions = (status or {}).get("conditions") or []
    return [c for c in conditions if isinstance(c, dict)]


def k8s_condition(value, condition_type, field="status"):
    """`field` (status, reason, message) of the condition `condition_type` of an object; '' when the
    object or the condition does not exist (yet). Status is 'True', 'False' or 'Unknown'."""
    obj = _load(value, "k8s_condition")
    for cond in _conditions(obj):
        if str(cond.get("type", "")).lower() == str(condition_type).lower():
            return str(cond.get(field, "") or "")
    return ""


def _condition_message(obj, condition_type):
    for cond in _conditions(obj):
        if cond.get("type") == condition_type:
            return ": ".join(str(cond[k]) for k in ("reason", "message") if cond.get(k))
    return ""


def _pod_of(pod, job):
    """Whether `pod` was created by `job` (its controller-uid label or owner reference)."""
    uid = (job.get("metadata") or {}).get("uid")
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    if uid and uid in (labels.get("batch.kubernetes.io/controller-uid"), labels.get("controller-uid")):
        return True
    return any(ref.get("uid") == uid for ref in meta.get("ownerReferences") or [] if uid)


def _failures(container):
    """Failed runs of a Job pod's container: restarts (restartPolicy OnFailure restarts only after
    a failure) plus the run that has just failed (terminated, or waiting in CrashLoopBackOff)."""
    failures = int(container.get("restartCount") or 0)
    state = container.get("state") or {}
    last = (container.get("lastState") or {}).get("terminated") or {}
    if (state.get("terminated") or {}).get("exitCode") or ("waiting" in state and last.get("exitCode")):
        failures += 1
    term = state.get("terminated") if (state.get("terminated") or {}).get("exitCode") else last
    exit_text = "exit code %s (%s)" % (term.get("exitCode"), term.get("reason") or "Error") if term.get("exitCode") else ""
    return failures, exit_text


def _succeeded(pod):
    return (pod.get("status") or {}).get("phase") == "Succeeded"


def k8s_job_state(value, name, max_failures=2, job=None):
    """State of the Job `name` given `kubectl get jobs,pods -l ... -o json` (a List of the Job and
    its Pods), the Job alone, or a registered read of either client. `job` is the Job as read
    earlier, for a read of its pods alone (kubernetes.core.k8s_info reads one kind per call; the
    API's list items carry no kind, so an item without one counts as a Pod); a Job named `name` in
    `value` takes precedence.

    Returns a dict: state ('absent', 'running', 'complete', 'failed', or 'unknown' when the read
    failed), reason, failures, uid and created (the Job's metadata.creationTimestamp, RFC 3339;
    '' when absent).
    A Job is complete when its Complete condition is True or one of its pods has Succeeded
    (helm-controller's job runs one pod to one completion; the job controller sets Complete right
    after, and an earlier read of the Job does not show it). It is failed when its Failed
    condition is True, or when its pods have failed `max_failures` times: helm-controller's jobs
    restart in place (restartPolicy OnFailure) with backoffLimit 1000, so a chart that cannot
    install would otherwise look 'running' for hours.
    """
    why = _read_error(value)
    if why:
        return {"state": "unknown", "reason": why, "failures": 0, "uid": "", "created": ""}
    items = _items(_load(value, "k8s_job_state"))
    jobs = [i for i in items if i.get("kind") == "Job" and (i.get("metadata") or {}).get("name") == name]
    if not jobs and isinstance(job, dict) and (job.get("metadata") or {}).get("name") == name:
        jobs = [job]
    if not jobs:
        return {"state": "absent", "reason": "job %s not found" % name, "failures": 0, "uid": "", "created": ""}
    job = jobs[0]
    uid = (job.get("metadata") or {}).get("uid") or ""
    created = str((job.get("metadata") or {}).get("creationTimestamp") or "")
    status = job.get("status") or {}
    pods = [i for i in items if i.get("kind", "Pod") == "Pod" and i is not job and _pod_of(i, job)]
    failures, last_exit = int(status.get("failed") or 0), ""
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            count, text = _failures(container)
            failures += count
            last_exit = text or last_exit
    if k8s_condition(job, "Complete") == "True" or any(_succeeded(pod) for pod in pods):
        return {"state": "complete", "reason": "Complete", "failures": failures, "uid": uid, "created": created}
    if k8s_condition(job, "Failed") == "True":
        return {"state": "failed", "reason": _condition_message(job, "Failed") or "Failed",
                "failures": failures, "uid": uid, "created": created}
    if failures >= int(max_failures) > 0:
        return {"state": "failed", "uid": uid, "failures": failures, "created": created,
                "reason": "its pod failed %d times, last with %s (the job keeps retrying)"
                          % (failures, last_exit or "an error")}
    reason = "running" if not failures else "running, %d failed attempt(s) so far, last with %s" % (
        failures, last_exit or "an error")
    return {"state": "running", "reason": reason, "failures": failures, "uid": uid, "created": created}


_RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")


def _epoch(stamp):
    """Whole seconds since the epoch of an RFC 3339 time (the API server's metav1.Time: seconds, 'Z')."""
    match = _RFC3339.match(stamp.strip())
    if not match:
        raise AnsibleFilterError("k8s_job_predates: creationTimestamp %r is not an RFC 3339 time" % (stamp,))
    seconds = calendar.timegm(tuple(int(match.group(i)) for i in range(1, 7)) + (0, 0, 0))
    zone = match.group(8)
    if zone not in ("Z", "z"):
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        seconds -= offset if zone[0] == "+" else -offset
    return seconds


def k8s_job_predates(job_state, mtime):
    """Whether the Job of `job_state` (a k8s_job_state result) was created before a file's
    modification time `mtime` (seconds since the epoch: a number or the text of `stat -c %Y`).

    True when the job exists and its creationTimestamp is in an earlier second than `mtime`: then
    that job was made for an older content of the file and a new one is still to come. A job
    created in the same second counts as newer (the API's timestamps have whole seconds; the file's
    new content is read, applied and its job created after the write, so a tie is that job). False
    when there is no job (absent, or not read) and when there is no file (`mtime` '', None, 'none'):
    nothing to compare. An existing job without a creationTimestamp counts as older.
    """
    if not isinstance(job_state, dict):
        raise AnsibleFilterError("k8s_job_predates: expected the result of k8s_job_state, got %s"
                                 % type(job_state).__name__)
    if job_state.get("state") not in ("running", "complete", "failed") or not job_state.get("uid"):
        return False
    if mtime is None or isinstance(mtime, bool) or str(mtime).strip().lower() in ("", "none"):
        return False
    try:
        modified = int(math.floor(float(str(mtime).strip())))
    except (ValueError, OverflowError):
        raise AnsibleFilterError("k8s_job_predates: mtime must be seconds since the epoch, got %r" % (mtime,))
    created = str(job_state.get("created") or "")
    return not created or _epoch(created) < modified


def _int(value):
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _deployment(obj, name, spec, status):
    if _int(obj["metadata"].get("generation")) > _int(status.get("observedGeneration")):
        return "progressing", "waiting for deployment spec update to be observed"
    for cond in _conditions(obj):
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return "failed", 'deployment "%s" exceeded its progress deadline' % name
    replicas = spec.get("replicas")
    updated, available = _int(status.get("updatedReplicas")), _int(status.get("availableReplicas"))
    if replicas is not None and updated < _int(replicas):
        return "progressing", "%d out of %d new replicas have been updated" % (updated, _int(replicas))
    if _int(status.get("replicas")) > updated:
        return "progressing", "%d old replicas are pending termination" % (_int(status.get("replicas")) - updated)
    if available < updated:
        return "progressing", "%d of %d updated replicas are available" % (available, updated)
    return "ready", 'deployment "%s" successfully rolled out' % name


def _daemonset(obj, name, spec, status):
    if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") != "RollingUpdate":
        return "failed", "rollout status is only available for the RollingUpdate strategy type"
    if _int(obj["metadata"].get("generation")) > _int(status.get("observedGeneration")):
        return "progressing", "waiting for daemon set spec update to be observed"
    desired = _int(status.get("desiredNumberScheduled"))
    updated, available = _int(status.get("updatedNumberScheduled")), _int(status.get("numberAvailable"))
    if updated < desired:
        return "progressing", "%d out of %d new pods have been updated" % (updated, desired)
    if available < desired:
        return "progressing", "%d of %d updated pods are available" % (available, desired)
    return "ready", 'daemon set "%s" successfully rolled out' % name


def _statefulset(obj, name, spec, status):
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return "failed", "rollout status is only available for the RollingUpdate strategy type"
    observed = _int(status.get("observedGeneration"))
    if observed == 0 or _int(obj["metadata"].get("generation")) > observed:
        return "progressing", "waiting for statefulset spec update to be observed"
    replicas = spec.get("replicas")
    ready = _int(status.get("readyReplicas"))
    if replicas is not None and ready < _int(replicas):
        return "progressing", "waiting for %d pods to be ready" % (_int(replicas) - ready)
    rolling = strategy.get("rollingUpdate")
    if rolling is not None:
        partition = rolling.get("partition")
        updated = _int(status.get("updatedReplicas"))
        if replicas is not None and partition is not None and updated < _int(replicas) - _int(partition):
            return "progressing", "%d out of %d new pods have been updated" % (updated, _int(replicas) - _int(partition))
        return "ready", "partitioned roll out complete: %d new pods have been updated" % updated
    if status.get("updateRevision") != status.get("currentRevision"):
        return "progressing", "waiting for statefulset rolling update to complete %d pods at revision %s" % (
            _int(status.get("updatedReplicas")), status.get("updateRevision"))
    return "ready", 'statefulset "%s" rolling update complete' % name


WORKLOADS = {"Deployment": _deployment, "DaemonSet": _daemonset, "StatefulSet": _statefulset}


def k8s_workload_state(value):
    """Rollout state of a Deployment, DaemonSet or StatefulSet from `kubectl get -o json`, with
    kubectl rollout status's rules (observedGeneration, updated, available/ready replicas).

    Returns a dict: state ('absent', 'progressing', 'ready', 'failed') and message.
    """
    obj = _load(value, "k8s_workload_state")
    if obj is None:
        return {"state": "absent", "message": "not found"}
    kind = obj.get("kind")
    if kind not in WORKLOADS:
        raise AnsibleFilterError("k8s_workload_state: no rollout state for kind %r (Deployment, DaemonSet or "
                                 "StatefulSet)" % (kind,))
    obj = dict(obj, metadata=obj.get("metadata") or {})
    state, message = WORKLOADS[kind](obj, obj["metadata"].get("name", ""), obj.get("spec") or {},
                                     obj.get("status") or {})
    return {"state": state, "message": message}


def k8s_rollout_problem(result):
    """'' when a registered `kubectl get <workload> -o json` loop result shows the workload rolled
    out, else '<namespace>/<kind>/<name>: <why>'."""
    if not isinstance(result, dict):
        raise AnsibleFilterError("k8s_rollout_problem: expected a registered loop result, got %s"
                                 % type(result).__name__)
    item = result.get("item") or {}
    label = "%s/%s/%s" % (item.get("namespace", "?"), item.get("kind", "?"), item.get("name", "?"))
    if result.get("rc") != 0:
        return "%s: %s" % (label, str(result.get("stderr") or result.get("msg") or "kubectl failed").strip())
    state = k8s_workload_state(result.get("stdout"))
    if state["state"] == "ready":
        return ""
    return "%s: %s" % (label, state["message"] if state["state"] != "absent" else "does not exist")


KINDS = {"deployment": "Deployment", "daemonset": "DaemonSet", "statefulset": "StatefulSet"}


def _rollout_states(listing, wanted, what):
    """(label, state) of each wanted {namespace, kind, name} in one namespace's workload listing."""
    items = _items(_load(listing, what))
    out = []
    for want in wanted or []:
        kind = KINDS.get(str(want.get("kind", "")).lower())
        if kind is None:
            raise AnsibleFilterError("%s: kind %r is not deployment, daemonset or statefulset" % (what, want.get("kind")))
        label = "%s/%s/%s" % (want.get("namespace", "?"), want.get("kind"), want.get("name", "?"))
        found = [i for i in items if i.get("kind") == kind and (i.get("metadata") or {}).get("name") == want.get("name")
                 and (i.get("metadata") or {}).get("namespace", want.get("namespace")) == want.get("namespace")]
        out.append((label, k8s_workload_state(found[0]) if found else {"state": "absent", "message": "does not exist"}))
    return out


def k8s_rollouts_state(value, wanted):
    """Rollout state of several workloads of one namespace from one listing
    (`kubectl -n <ns> get deployments,daemonsets,statefulsets -o json`): 'failed' when one failed,
    'ready' when all rolled out, else 'progressing' (a missing one is waited for)."""
    states = [state["state"] for _label, state in _rollout_states(value, wanted, "k8s_rollouts_state")]
    if "failed" in states:
        return {"state": "failed"}
    return {"state": "ready" if all(s == "ready" for s in states) else "progressing"}


def k8s_rollouts_problems(result, wanted):
    """Problems ('<namespace>/<kind>/<name>: <why>') of the wanted workloads read by one registered
    loop result of either client: `kubectl -n <ns> get deployments,daemonsets,statefulsets -o json`
    (loop item: the namespace) or kubernetes.core.k8s_info of one workload (loop item: that
    workload of `wanted`); [] when all rolled out."""
    if not isinstance(result, dict):
        raise AnsibleFilterError("k8s_rollouts_problems: expected a registered loop result, got %s"
                                 % type(result).__name__)
    item = result.get("item")
    mine = [item] if isinstance(item, dict) else [w for w in wanted or [] if w.get("namespace") == item]
    why = _read_error(result)
    if why:
        return ["%s/%s/%s: %s" % (w.get("namespace"), w.get("kind"), w.get("name"), why) for w in mine]
    return ["%s: %s" % (label, state["message"])
            for label, state in _rollout_states(result, mine, "k8s_rollouts_problems")
            if state["state"] != "ready"]


def k8s_conditions_problems(value, names, condition_type="Ready"):
    """Problems ('<name>: <why>', in the order of `names`) of the named objects in one listing of
    their kind (the registered result of kubernetes.core.k8s_info, or of `kubectl get <kind> -o json`):
    not found (its manifest not applied yet), or the condition not True with its message; [] when all
    are. A failed read gives every name its error."""
    if isinstance(names, string_types) or not isinstance(names, (list, tuple)):
        raise AnsibleFilterError("k8s_conditions_problems: expected a list of names, got %s" % type(names).__name__)
    why = _read_error(value)
    if why is not None:
        return ["%s: %s" % (name, why) for name in names]
    found = dict((str((obj.get("metadata") or {}).get("name")), obj)
                 for obj in _items(_load(value, "k8s_conditions_problems")))
    problems = []
    for name in names:
        obj = found.get(str(name))
        if obj is None:
            problems.append("%s: not found (its manifest was not applied)" % name)
            continue
        status = k8s_condition(obj, condition_type)
        if status != "True":
            message = k8s_condition(obj, condition_type, "message")
            problems.append(("%s: %s=%s %s" % (name, condition_type, status or "unknown", message)).strip())
    return problems


# kubernetes/kubernetes pkg/apis/storage/util/helpers.go (IsDefaultAnnotation): a class is a default
# when either annotation is "true".
_DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                              "storageclass.beta.kubernetes.io/is-default-class")


def k8s_storage_classes(value):
    """{'names': [...], 'defaults': [...]} (sorted) of a StorageClass listing (the registered result of
    kubernetes.core.k8s_info or of `kubectl get storageclass -o json`); 'defaults' are the classes
    annotated as the default."""
    names, defaults = [], []
    for obj in _items(_load(value, "k8s_storage_classes")):
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        names.append(name)
        annotations = meta.get("annotations") or {}
        if any(str(annotations.get(key, "")) == "true" for key in _DEFAULT_CLASS_ANNOTATIONS):
            defaults.append(name)
    return {"names": sorted(names), "defaults": sorted(defaults)}


def k8s_storage_class_problems(value, names, defaults):
    """What keeps a StorageClass listing (as for k8s_storage_classes) from holding every class of
    `names` with exactly the classes of `defaults` as the default: ['missing: <names>',
    'default: <found> instead of <wanted>'], [] when it does. A failed read is its error."""
    for arg, label in ((names, "names"), (defaults, "defaults")):
        if isinstance(arg, string_types) or not isinstance(arg, (list, tuple)):
            raise AnsibleFilterError("k8s_storage_class_problems: %s must be a list, got %s" % (label, type(arg).__name__))
    why = _read_error(value)
    if why is not None:
        return [why]
    classes = k8s_storage_classes(value)
    problems = []
    missing = [str(name) for name in names if str(name) not in classes["names"]]
    if missing:
        problems.append("missing: %s" % ", ".join(missing))
    wanted = sorted(str(name) for name in defaults)
    if classes["defaults"] != wanted:
        problems.append("default: %s instead of %s" % (", ".join(classes["defaults"]) or "none", ", ".join(wanted) or "none"))
    return problems


def _node(obj):
    status = obj.get("status") or {}
    ready = [c.get("status") for c in _conditions(obj) if c.get("type") == "Ready"]
    return {"name": str((obj.get("metadata") or {}).get("name") or ""),
            "ready": ready == ["True"],
            "version": str((status.get("nodeInfo") or {}).get("kubeletVersion") or ""),
            "unschedulable": bool((obj.get("spec") or {}).get("unschedulable"))}


def k8s_objects(value):
    """The objects of a read by either client (kubernetes.core.k8s_info's registered result, or a
    `kubectl get ... --ignore-not-found -o json` command's): [] when it found nothing."""
    return _items(_load(value, "k8s_objects"))


def k8s_nodes(value):
    """The Nodes of `kubectl get nodes -o json` (or of `get node <name> --ignore-not-found -o json`,
    '' when not found) as a list of {name, ready, version, unschedulable}.

    ready is True only when the Node has exactly one Ready condition and its status is 'True'
    (the node lifecycle controller sets it to 'Unknown' when the kubelet stops reporting);
    version is the kubelet's (status.nodeInfo.kubeletVersion, K3S's release name)."""
    listing = _load(value, "k8s_nodes")
    nodes = [i for i in _items(listing) if i.get("kind", "Node") == "Node"]
    return [_node(n) for n in nodes]


def k8s_nodes_lagging(value, expected, version=""):
    """The names in `expected` (in their order) whose Node, in `kubectl get nodes -o json`, is
    missing, not Ready, or (when `version` is given) at another kubelet version; [] when all are."""
    if isinstance(expected, string_types) or not isinstance(expected, (list, tuple)):
        raise AnsibleFilterError("k8s_nodes_lagging: expected a list of node names, got %s"
                                 % type(expected).__name__)
    nodes = dict((n["name"], n) for n in k8s_nodes(value))
    good = [name for name, node in nodes.items()
            if node["ready"] and (not version or node["version"] == str(version))]
    return [str(name) for name in expected if str(name) not in good]


def _controller(obj):
    refs = [r for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if isinstance(r, dict)]
    return next((r for r in refs if r.get("controller")), {})


def k8s_drain_pending(value, node=""):
    """The pods ('<namespace>/<name>', sorted) that a drain of `node` has still to remove, from the pods
    on that node (`kubectl get pods -A --field-selector spec.nodeName=<node> -o json` or the
    kubernetes.core.k8s_info result): every pod but the DaemonSet-managed and the mirror (static) ones,
    which kubectl drain leaves in place (kubernetes/kubectl pkg/drain/filters.go). A pod that is still
    terminating counts: kubectl drain waits until the evicted pods are gone."""
    pods = [i for i in _items(_load(value, "k8s_drain_pending")) if i.get("kind", "Pod") == "Pod"]
    pending = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if node and (pod.get("spec") or {}).get("nodeName") != node:
            continue
        if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
            continue
        if _controller(pod).get("kind") == "DaemonSet":
            continue
        pending.append("%s/%s" % (meta.get("namespace", ""), meta.get("name", "")))
    return sorted(pending)


# kubectl drain retries an eviction the API refuses with 429 TooManyRequests (a PodDisruptionBudget
# that allows no disruption now, or one its controller has not observed yet; kubernetes/kubernetes
# pkg/registry/core/pod/storage/eviction.go); kubernetes.core.k8s_drain fails at the first one with
# the Status message instead.
_RETRYABLE = ("violate the pod's disruption budget", "is still being processed by the server",
              "too many requests")


def k8s_drain_outcome(result):
    """What to do after one kubernetes.core.k8s_drain (state drain) attempt, from its registered
    result: {'state': 'done' | 'retry' | 'failed', 'message': ...}. 'retry' for an eviction refused
    with 429 (a disruption budget), as kubectl drain retries it; 'failed' for anything else (pods
    that need force, an unknown node, an API error), which a retry would not change."""
    if not isinstance(result, dict):
        raise AnsibleFilterError("k8s_drain_outcome: expected the registered result of kubernetes.core.k8s_drain, "
                                 "got %s" % type(result).__name__)
    message = str(result.get("msg") or result.get("result") or "").strip()
    if result.get("skipped"):
        return {"state": "failed", "message": "the drain was skipped"}
    if not result.get("failed"):
        return {"state": "done", "message": message}
    if any(text in message.lower() for text in _RETRYABLE):
        return {"state": "retry", "message": message}
    return {"state": "failed", "message": message or "kubernetes.core.k8s_drain failed"}


class FilterModule:
    """Kubernetes object state filters."""

    def filters(self):
        return {
            "k8s_condition": k8s_condition,
            "k8s_conditions_problems": k8s_conditions_problems,
            "k8s_drain_outcome": k8s_drain_outcome,
            "k8s_drain_pending": k8s_drain_pending,
            "k8s_job_predates": k8s_job_predates,
            "k8s_job_state": k8s_job_state,
            "k8s_nodes": k8s_nodes,
            "k8s_objects": k8s_objects,
            "k8s_nodes_lagging": k8s_nodes_lagging,
            "k8s_rollout_problem": k8s_rollout_problem,
            "k8s_rollouts_problems": k8s_rollouts_problems,
            "k8s_rollouts_state": k8s_rollouts_state,
            "k8s_storage_class_problems": k8s_storage_class_problems,
            "k8s_storage_classes": k8s_storage_classes,
            "k8s_workload_state": k8s_workload_state,
        }
