"""plugins/filter/k3s_member.py: what to do with the Node of a server that rejoins with an empty data dir."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dictamesh.k3s_gitops.plugins.filter.k3s_member import k3s_stale_member


def node(ready="Unknown", etcd=True, member="server-1-1a2b3c4d", address="192.0.2.11"):
    labels = {"kubernetes.io/hostname": "server-1", "node-role.kubernetes.io/control-plane": "true"}
    if etcd:
        labels["node-role.kubernetes.io/etcd"] = "true"
    annotations = {}
    if member:
        annotations["etcd.k3s.cattle.io/node-name"] = member
    if address:
        annotations["etcd.k3s.cattle.io/node-address"] = address
    return {"rc": 0, "stderr": "", "stdout": json.dumps({
        "kind": "Node", "metadata": {"name": "server-1", "labels": labels, "annotations": annotations},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                  {"type": "Ready", "status": ready}]}})}


def listing(*results):
    """`kubectl get nodes -o json` holding the Nodes of the given node() results."""
    items = [json.loads(r["stdout"]) for r in results]
    return {"rc": 0, "stderr": "", "stdout": json.dumps({"apiVersion": "v1", "kind": "List", "items": items})}


def test_no_node_nothing_to_remove():
    other = json.loads(node()["stdout"])
    other["metadata"]["name"] = "server-2"
    result = {"rc": 0, "stderr": "", "stdout": json.dumps({"apiVersion": "v1", "kind": "List", "items": [other]})}
    assert k3s_stale_member(result, "server-1")["action"] == "none"


def test_empty_answer_nothing_to_remove():
    # `kubectl get node <name> --ignore-not-found -o json` prints nothing for a missing Node
    # (kubernetes/kubectl pkg/cmd/get/get.go: no infos and IgnoreNotFound -> no output)
    assert k3s_stale_member({"rc": 0, "stdout": "", "stderr": ""}, "server-1")["action"] == "none"


def test_node_found_in_the_list():
    answer = k3s_stale_member(listing(node()), "server-1", "192.0.2.11")
    assert (answer["action"], answer["member"]) == ("remove", "server-1-1a2b3c4d")
    assert k3s_stale_member(listing(node(ready="True")), "server-1")["action"] == "wait"


def test_kubectl_error_text_is_not_read():
    """A failed kubectl is a refusal whatever it says: absence is decided from data, not from 'NotFound'."""
    result = {"rc": 1, "stdout": "", "stderr": 'Error from server (NotFound): nodes "server-1" not found'}
    assert k3s_stale_member(result, "server-1")["action"] == "refuse"


def test_not_ready_member_is_removed():
    answer = k3s_stale_member(node(), "server-1", "192.0.2.11")
    assert answer["action"] == "remove"
    assert (answer["member"], answer["address"]) == ("server-1-1a2b3c4d", "192.0.2.11")
    assert "lost its data" in answer["reason"] and "it had address" not in answer["reason"]


def test_moved_address_is_named():
    answer = k3s_stale_member(node(ready="False"), "server-1", "192.0.2.99")
    assert answer["action"] == "remove" and "it had address 192.0.2.11, this host uses 192.0.2.99" in answer["reason"]


def test_ready_member_is_never_removed():
    answer = k3s_stale_member(node(ready="True"), "server-1", "192.0.2.11")
    assert answer["action"] == "wait" and "never removed" in answer["reason"]


@pytest.mark.parametrize("kwargs, words", [
    ({"etcd": False}, "not an etcd server"),
    ({"member": ""}, "etcdctl"),
    ({"address": ""}, "etcdctl"),
])
def test_refused(kwargs, words):
    answer = k3s_stale_member(node(**kwargs), "server-1", "192.0.2.11")
    assert answer["action"] == "refuse" and words in answer["reason"]


def test_kubectl_failure_refuses_with_its_message():
    result = {"rc": 1, "stdout": "", "stderr": "The connection to the server 127.0.0.1:6443 was refused"}
    answer = k3s_stale_member(result, "server-1")
    assert answer["action"] == "refuse" and "was refused" in answer["reason"]


def test_bad_input():
    with pytest.raises(AnsibleFilterError):
        k3s_stale_member("text", "server-1")
    with pytest.raises(AnsibleFilterError):
        k3s_stale_member({"rc": 0, "stdout": "{oops"}, "server-1")
