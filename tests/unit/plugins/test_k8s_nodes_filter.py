"""plugins/filter/k8s_state.py: readiness, version and cordon state of Nodes (k8s_nodes,
k8s_nodes_lagging), read from `kubectl get nodes -o json` / `get node <name> --ignore-not-found -o json`."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dictamesh.k3s_gitops.plugins.filter import k8s_state

OLD, NEW = "v1.34.1+k3s1", "v1.35.0+k3s1"


def node(name, ready="True", version=OLD, unschedulable=None, conditions=None):
    spec = {"unschedulable": unschedulable} if unschedulable is not None else {}
    if conditions is None:
        conditions = [{"type": "MemoryPressure", "status": "False"}]
        if ready is not None:
            conditions.append({"type": "Ready", "status": ready, "reason": "KubeletReady"})
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec,
            "status": {"conditions": conditions, "nodeInfo": {"kubeletVersion": version}}}


def listing(*items):
    return json.dumps({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
                       "items": list(items)})


def test_nodes_of_a_list():
    nodes = k8s_state.k8s_nodes(listing(node("s1"), node("a1", ready="Unknown", version=NEW, unschedulable=True)))
    assert nodes == [{"name": "s1", "ready": True, "version": OLD, "unschedulable": False},
                     {"name": "a1", "ready": False, "version": NEW, "unschedulable": True}]


def test_one_node_and_none():
    assert k8s_state.k8s_nodes(json.dumps(node("s1"))) == [
        {"name": "s1", "ready": True, "version": OLD, "unschedulable": False}]
    assert k8s_state.k8s_nodes(node("s1"))[0]["name"] == "s1"  # already parsed
    assert k8s_state.k8s_nodes("") == []  # --ignore-not-found, no such node
    assert k8s_state.k8s_nodes(listing()) == []


@pytest.mark.parametrize(("conditions", "ready"), [
    ([{"type": "Ready", "status": "True"}], True),
    ([{"type": "Ready", "status": "False"}], False),
    ([{"type": "Ready", "status": "Unknown"}], False),
    ([], False),                                   # a Node just registered
    ([{"type": "ready", "status": "True"}], False),  # condition types are case-sensitive
    ([{"type": "Ready", "status": "True"}, {"type": "Ready", "status": "False"}], False),
])
def test_ready_only_when_the_ready_condition_is_true(conditions, ready):
    assert k8s_state.k8s_nodes(listing(node("n", conditions=conditions)))[0]["ready"] is ready


def test_node_without_status():
    assert k8s_state.k8s_nodes({"kind": "Node", "metadata": {"name": "n"}}) == [
        {"name": "n", "ready": False, "version": "", "unschedulable": False}]


def test_not_json():
    with pytest.raises(AnsibleFilterError, match="k8s_nodes: not the JSON"):
        k8s_state.k8s_nodes("error: the server doesn't have a resource type")


NODES = listing(node("s1", version=NEW), node("s2", ready="False", version=NEW), node("a1"))


@pytest.mark.parametrize(("expected", "version", "lagging"), [
    (["s1", "s2", "a1"], "", ["s2"]),
    (["s1", "s2", "a1"], NEW, ["s2", "a1"]),
    (["a1", "gone", "s1"], "", ["gone"]),   # not registered
    (["s1"], NEW, []),
    ([], "", []),
])
def test_lagging(expected, version, lagging):
    assert k8s_state.k8s_nodes_lagging(NODES, expected, version) == lagging


def test_lagging_of_nothing_read():
    assert k8s_state.k8s_nodes_lagging("", ["s1"]) == ["s1"]


def test_lagging_needs_a_list():
    with pytest.raises(AnsibleFilterError, match="list of node names"):
        k8s_state.k8s_nodes_lagging(NODES, "s1")
