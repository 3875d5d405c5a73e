"""plugins/filter/k8s_state.py: the drain rules (k8s_drain_pending, k8s_drain_outcome) and the answers of
both clients (a `kubectl -o json` command result, a kubernetes.core.k8s_info result) read alike."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dictamesh.k3s_gitops.plugins.filter import k8s_state


def pod(name, node="n1", owner=None, controller=True, mirror=False, ns="default", deleting=False):
    meta = {"name": name, "namespace": ns}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner, "name": "o", "uid": "u",
                                    "controller": controller}]
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"nodeName": node}}


def node(name, ready="True", version="v1.34.9+k3s1", unschedulable=None):
    obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {},
           "status": {"conditions": [{"type": "Ready", "status": ready}], "nodeInfo": {"kubeletVersion": version}}}
    if unschedulable is not None:
        obj["spec"]["unschedulable"] = unschedulable
    return obj


def test_pending_leaves_daemonset_and_mirror_pods_and_counts_terminating_ones():
    pods = [pod("web", owner="ReplicaSet"), pod("lone"), pod("agent", owner="DaemonSet"),
            pod("etcd", mirror=True, ns="kube-system"), pod("old", owner="ReplicaSet", deleting=True),
            pod("ds-not-controller", owner="DaemonSet", controller=False), pod("elsewhere", node="n2")]
    answer = {"resources": pods, "api_found": True, "changed": False}
    assert k8s_state.k8s_drain_pending(answer, "n1") == ["default/ds-not-controller", "default/lone",
                                                         "default/old", "default/web"]
    assert "default/elsewhere" in k8s_state.k8s_drain_pending(answer)
    assert k8s_state.k8s_drain_pending({"resources": [], "api_found": True}, "n1") == []


def test_pending_reads_kubectl_json_too():
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": [pod("web", owner="StatefulSet")]})
    assert k8s_state.k8s_drain_pending(text, "n1") == ["default/web"]
    assert k8s_state.k8s_drain_pending({"stdout": text, "rc": 0}, "n1") == ["default/web"]


PDB = "Failed to delete pod t/web-a due to: Cannot evict pod as it would violate the pod's disruption budget."


@pytest.mark.parametrize(("result", "state"), [
    ({"changed": True, "result": "node n1 marked unschedulable. 2 Pod(s) deleted from node."}, "done"),
    ({"changed": False, "result": "node n1 already marked unschedulable."}, "done"),
    ({"failed": True, "msg": PDB}, "retry"),
    ({"failed": True, "msg": "Failed to delete pod t/x due to: 429 Reason: Too Many Requests"}, "retry"),
    ({"failed": True, "msg": "Pod deletion errors: cannot delete Pods not managed by ReplicationController, "
                             "ReplicaSet, Job, DaemonSet or StatefulSet (use option force set to yes): t/lone."},
     "failed"),
    ({"failed": True, "msg": "Node n9 not found."}, "failed"),
    ({"failed": True, "msg": "Failed to retrieve node 'n1' due to: Max retries exceeded"}, "failed"),
    ({"failed": True}, "failed"),
    ({"skipped": True, "changed": False}, "failed"),
])
def test_drain_outcome(result, state):
    outcome = k8s_state.k8s_drain_outcome(result)
    assert outcome["state"] == state
    if result.get("msg"):
        assert outcome["message"] == result["msg"]


def test_drain_outcome_bad_input():
    with pytest.raises(AnsibleFilterError, match="k8s_drain_outcome: expected the registered result"):
        k8s_state.k8s_drain_outcome("failed")


def test_nodes_from_either_client_alike():
    nodes = [node("s1"), node("a1", ready="Unknown", unschedulable=True)]
    from_kubectl = {"rc": 0, "stdout": json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes})}
    from_api = {"changed": False, "api_found": True, "resources": nodes}
    assert k8s_state.k8s_nodes(from_kubectl) == k8s_state.k8s_nodes(from_api) == [
        {"name": "s1", "ready": True, "version": "v1.34.9+k3s1", "unschedulable": False},
        {"name": "a1", "ready": False, "version": "v1.34.9+k3s1", "unschedulable": True}]
    assert k8s_state.k8s_nodes_lagging(from_api, ["s1", "a1", "x"]) == ["a1", "x"]


@pytest.mark.parametrize("result", [
    {"failed": True, "msg": "Failed to load kubeconfig"},  # k8s_info could not reach the API
    {"skipped": True, "changed": False},
    {"rc": 1, "stdout": "", "stderr": "connection refused", "failed": True},
    {"changed": False, "api_found": True, "resources": []},
])
def test_no_answer_means_no_nodes(result):
    assert k8s_state.k8s_nodes(result) == []
    assert k8s_state.k8s_nodes_lagging(result, ["s1"]) == ["s1"]
