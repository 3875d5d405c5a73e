"""plugins/filter/k8s_state.py: several workloads of one namespace decided from one listing
(k8s_rollouts_state, k8s_rollouts_problems), each with kubectl rollout status's rules."""
from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dictamesh.k3s_gitops.plugins.filter import k8s_state

WANTED = [{"namespace": "argocd", "kind": "deployment", "name": "argocd-server"},
          {"namespace": "argocd", "kind": "statefulset", "name": "argocd-application-controller"},
          {"namespace": "other", "kind": "deployment", "name": "elsewhere"}]


def deployment(name, available=1, generation=1, observed=1):
    return {"kind": "Deployment", "metadata": {"name": name, "namespace": "argocd", "generation": generation},
            "spec": {"replicas": 1},
            "status": {"observedGeneration": observed, "replicas": 1, "updatedReplicas": 1,
                       "availableReplicas": available}}


def statefulset(name, ready=1, strategy="RollingUpdate"):
    return {"kind": "StatefulSet", "metadata": {"name": name, "namespace": "argocd", "generation": 1},
            "spec": {"replicas": 1, "updateStrategy": {"type": strategy, "rollingUpdate": {"partition": 0}}},
            "status": {"observedGeneration": 1, "readyReplicas": ready, "updatedReplicas": 1}}


def listing(*items):
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)})


def mine(namespace="argocd"):
    return [w for w in WANTED if w["namespace"] == namespace]


def test_ready_only_when_every_wanted_workload_rolled_out():
    ready = listing(deployment("argocd-server"), statefulset("argocd-application-controller"),
                    deployment("argocd-unrelated", available=0))
    assert k8s_state.k8s_rollouts_state(ready, mine()) == {"state": "ready"}
    waiting = listing(deployment("argocd-server", available=0), statefulset("argocd-application-controller"))
    assert k8s_state.k8s_rollouts_state(waiting, mine()) == {"state": "progressing"}
    unobserved = listing(deployment("argocd-server", generation=2), statefulset("argocd-application-controller"))
    assert k8s_state.k8s_rollouts_state(unobserved, mine()) == {"state": "progressing"}


def test_a_missing_workload_is_waited_for_and_a_failed_one_ends_the_wait():
    assert k8s_state.k8s_rollouts_state(listing(deployment("argocd-server")), mine()) == {"state": "progressing"}
    assert k8s_state.k8s_rollouts_state('{"kind": "List", "items": null}', mine()) == {"state": "progressing"}
    failed = listing(deployment("argocd-server", available=0),
                     statefulset("argocd-application-controller", strategy="OnDelete"))
    assert k8s_state.k8s_rollouts_state(failed, mine()) == {"state": "failed"}


def test_problems_name_each_workload_of_the_loop_items_namespace():
    result = {"item": "argocd", "rc": 0,
              "stdout": listing(deployment("argocd-server", available=0))}
    assert k8s_state.k8s_rollouts_problems(result, WANTED) == [
        "argocd/deployment/argocd-server: 0 of 1 updated replicas are available",
        "argocd/statefulset/argocd-application-controller: does not exist"]
    done = {"item": "argocd", "rc": 0,
            "stdout": listing(deployment("argocd-server"), statefulset("argocd-application-controller"))}
    assert k8s_state.k8s_rollouts_problems(done, WANTED) == []
    broken = {"item": "other", "rc": 1, "stdout": "", "stderr": "The connection to the server was refused\n"}
    assert k8s_state.k8s_rollouts_problems(broken, WANTED) == [
        "other/deployment/elsewhere: The connection to the server was refused"]


def test_unknown_kind_is_refused():
    with pytest.raises(AnsibleFilterError, match="kind 'cronjob'"):
        k8s_state.k8s_rollouts_state(listing(), [{"namespace": "a", "kind": "cronjob", "name": "x"}])


def test_one_workload_read_by_kubernetes_core_per_loop_item():
    # The controller's rollout wait: k8s_info of one workload by name per loop item (a GET: the
    # object carries its kind), polled with failed_when: false.
    server, controller = WANTED[0], WANTED[1]
    ready = {"item": server, "resources": [deployment("argocd-server")], "failed": False}
    assert k8s_state.k8s_rollouts_state(ready, [server]) == {"state": "ready"}
    assert k8s_state.k8s_rollouts_problems(ready, WANTED) == []
    missing = {"item": controller, "resources": [], "failed": False}
    assert k8s_state.k8s_rollouts_state(missing, [controller]) == {"state": "progressing"}
    assert k8s_state.k8s_rollouts_problems(missing, WANTED) == [
        "argocd/statefulset/argocd-application-controller: does not exist"]
    unreachable = {"item": server, "failed": False, "msg": "Failed to get client due to HTTPSConnectionPool"}
    assert k8s_state.k8s_rollouts_problems(unreachable, WANTED) == [
        "argocd/deployment/argocd-server: Failed to get client due to HTTPSConnectionPool"]
