"""playbooks/tasks/cluster_nodes.yml (the node reads of upgrade_k3s.yml and upgrade_platform.yml)
through both clients against the API stand-in with its real kubectl: kubernetes.core.k8s_info on
the controller (at cluster_kube_api_url) and `k3s kubectl` on the first server; the answer feeds
the k8s_nodes filter the same way, and a read that fails fails the play."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Dict

import pytest

from tests.integration.cluster.test_kube_client import UNREACHABLE, Api, api  # noqa: F401 (the fixture)
from tests.integration.playbook_runner import PlaybookRun, run_playbook

REPO = Path(__file__).resolve().parents[3]
CONTROLLER_READ = "Read the Nodes (kubernetes.core on the controller)"
SERVER_READ = "Read the Nodes (k3s kubectl on the first server)"


def read_nodes(api: Api, client: str, **extra: Any) -> PlaybookRun:
    """A play on the inventory group k3s_servers (localhost) that includes the shared task file."""
    tag = uuid.uuid4().hex[:6]
    inventory = api.tmp / ("cluster-nodes-%s.ini" % tag)
    inventory.write_text("[k3s_servers]\nlocalhost ansible_connection=local\n", encoding="utf-8")
    play = api.tmp / ("cluster-nodes-%s.yml" % tag)
    play.write_text("""---
- name: The day-2 playbooks' node read
  hosts: k3s_servers
  gather_facts: false
  tasks:
    - name: Read the nodes
      ansible.builtin.include_tasks: %s

    - name: Report the nodes
      ansible.builtin.debug:
        msg: "{{ cluster_nodes_answer | dictamesh.k3s_gitops.k8s_nodes }}"
""" % (REPO / "playbooks" / "tasks" / "cluster_nodes.yml"), encoding="utf-8")
    variables: Dict[str, Any] = {"cluster_kube_client": client, "cluster_kubeconfig_path": str(api.kubeconfig)}
    if client == "controller":
        variables["cluster_kube_api_url"] = api.url
    else:
        variables["k3s_defaults_bin_dir"] = str(api.bin)
    variables.update(extra)
    return run_playbook(play, variables, inventory=str(inventory), env=api.env())


@pytest.mark.parametrize("client", ["controller", "server"])
def test_nodes_read_through_the_chosen_client(api: Api, client: str) -> None:
    api.node("cn-%s-1" % client)
    api.node("cn-%s-2" % client, ready="Unknown")
    run = read_nodes(api, client)
    assert run.rc == 0, run
    assert run.changed == 0
    assert run.task(CONTROLLER_READ).get("skipped", False) is (client == "server")
    assert run.task(SERVER_READ).get("skipped", False) is (client == "controller")
    nodes = {n["name"]: n["ready"] for n in run.task("Report the nodes")["msg"]}
    assert nodes["cn-%s-1" % client] is True
    assert nodes["cn-%s-2" % client] is False


@pytest.mark.parametrize("client", ["controller", "server"])
def test_a_failed_read_fails_the_play(api: Api, client: str, tmp_path: Path) -> None:
    if client == "controller":
        run = read_nodes(api, client, cluster_kube_api_url=UNREACHABLE)
    else:
        broken = tmp_path / "bin"
        broken.mkdir()
        (broken / "k3s").write_text("#!/bin/sh\necho 'The connection to the server was refused' >&2\nexit 1\n",
                                    encoding="utf-8")
        (broken / "k3s").chmod(0o755)
        run = read_nodes(api, client, k3s_defaults_bin_dir=str(broken))
    assert run.rc != 0
    assert run.task(CONTROLLER_READ if client == "controller" else SERVER_READ).get("failed") is True
    with pytest.raises(KeyError):
        run.task("Report the nodes")
