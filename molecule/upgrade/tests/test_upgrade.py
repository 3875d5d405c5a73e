"""Rolling upgrade (molecule upgrade): versions, the pre-upgrade snapshot, the order of cordon,
drain, restart and uncordon, from the K3S stand-in's records; after side_effect.yml (marker
`fault-run-started`), the failed server's rollback and the untouched agent."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import testinfra.host

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests/standins/k3s"))
import audit_timeline  # noqa: E402

K3S = "/usr/local/bin/k3s"
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])


def fault_started() -> float | None:
    marker = EPHEMERAL / "fault-run-started"
    return float(marker.read_text().strip()) if marker.exists() else None


def variables(host: testinfra.host.Host) -> dict[str, Any]:
    return host.ansible.get_variables()


def is_first_server(host: testinfra.host.Host) -> bool:
    v = variables(host)
    return v["inventory_hostname"] == v["groups"]["k3s_servers"][0]


def nodes(host: testinfra.host.Host) -> dict[str, dict[str, Any]]:
    items = json.loads(host.check_output(f"{K3S} kubectl get nodes -o json"))["items"]
    return {i["metadata"]["name"]: i for i in items}


def events(host: testinfra.host.Host) -> list[dict[str, Any]]:
    """Cordon, drain and uncordon as kubectl asked the first server's API (its audit log)."""
    lines = host.file("/var/lib/rancher/k3s/server/logs/audit.log").content_string.splitlines()
    return audit_timeline.node_actions(audit_timeline.parse(lines))


def starts(host: testinfra.host.Host) -> list[tuple[float, str]]:
    lines = host.file("/var/lib/rancher/k3s/standin-starts.log").content_string.splitlines()
    return [(float(line.split()[0]), line.split()[-1]) for line in lines if line.strip()]


def test_binary_and_node_versions(host: testinfra.host.Host) -> None:
    target = variables(host)["cluster_k3s_version"]
    assert host.check_output(f"{K3S} --version").startswith(f"k3s version {target} ")
    if is_first_server(host):
        versions = {n: v["status"]["nodeInfo"]["kubeletVersion"] for n, v in nodes(host).items()}
        assert set(versions.values()) == {target}, versions
        assert len(versions) == 2
        for name, node in nodes(host).items():
            ready = [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"]
            assert ready == ["True"], name
            assert not node["spec"].get("unschedulable"), f"{name} left cordoned"


def test_each_node_restarted_once_at_the_new_version(host: testinfra.host.Host) -> None:
    v = variables(host)
    versions = [version for _time, version in starts(host)]
    old, new = v["upgrade_from_version"], v["cluster_k3s_version"]
    # installed at the old version, one restart at the new one (and, after the fault run on the
    # server, one failed start that left no line plus the restart of the previous binary)
    expected = [old, new] + ([new] if fault_started() and v["inventory_hostname"] in v["groups"]["k3s_servers"] else [])
    assert versions == expected


def test_pre_upgrade_snapshot(host: testinfra.host.Host) -> None:
    if not is_first_server(host):
        return
    target = variables(host)["cluster_k3s_version"]
    prefix = "pre-upgrade-" + target.replace(".", "-").replace("+", "-")
    snapshots = host.file("/var/lib/rancher/k3s/server/db/snapshots").listdir()
    assert len([s for s in snapshots if s.startswith(prefix + "-")]) == 1, snapshots
    assert host.file(f"/var/lib/rancher/k3s/server/db/snapshots/{[s for s in snapshots if s.startswith(prefix)][0]}").mode == 0o600


def test_cordon_drain_restart_uncordon_order(host: testinfra.host.Host) -> None:
    """Servers first, then agents; each node cordoned and drained before its restart at the new
    version, uncordoned after it; the next node only after the previous one was uncordoned."""
    v = variables(host)
    if not is_first_server(host):
        return
    limit = fault_started() or float("inf")
    log = [e for e in events(host) if e["time"] < limit]
    order = [v["groups"]["k3s_servers"][0], v["groups"]["k3s_agents"][0]]
    assert [(e["action"], e["node"]) for e in log] == [
        ("cordon", order[0]), ("drain", order[0]), ("uncordon", order[0]),
        ("cordon", order[1]), ("drain", order[1]), ("uncordon", order[1]),
    ], log  # vmlab names each VM's host (and so its node) after its inventory name
    restart_server = [t for t, version in starts(host) if version == v["cluster_k3s_version"]][0]
    assert log[1]["time"] < restart_server < log[2]["time"]
    # kubectl refuses pods with an emptyDir without --delete-emptydir-data and DaemonSet pods without
    # --ignore-daemonsets (with it, it skips them): metrics-server (emptyDir) is evicted from whichever
    # node runs it when that node is drained, servicelb's DaemonSet pods never are
    evicted = [pod for e in log if e["action"] == "drain" for pod in e["evicted"]]
    assert any(pod.startswith("metrics-server-") for pod in evicted), evicted
    assert not any(pod.startswith("svclb-") for pod in evicted), evicted


def test_agent_restart_between_its_drain_and_uncordon(host: testinfra.host.Host) -> None:
    v = variables(host)
    if v["inventory_hostname"] not in v["groups"]["k3s_agents"]:
        return
    server = testinfra.host.get_host("ansible://" + v["groups"]["k3s_servers"][0],
                                     ansible_inventory=str(EPHEMERAL / "inventory"))
    limit = fault_started() or float("inf")
    mine = [e for e in events(server) if e["node"] == v["inventory_hostname"] and e["time"] < limit]
    restart = [t for t, version in starts(host) if version == v["cluster_k3s_version"]][0]
    assert [e["action"] for e in mine] == ["cordon", "drain", "uncordon"]
    assert mine[1]["time"] < restart < mine[2]["time"]


def test_fault_run_rolled_back_the_server_and_left_the_agent_alone(host: testinfra.host.Host) -> None:
    started = fault_started()
    if started is None or not is_first_server(host):
        return
    v = variables(host)
    server, agent = v["groups"]["k3s_servers"][0], v["groups"]["k3s_agents"][0]
    after = [(e["action"], e["node"]) for e in events(host) if e["time"] >= started]
    assert after == [("cordon", server), ("drain", server), ("uncordon", server)], after
    assert all(node != agent for _action, node in after)
    current = {n: x["status"]["nodeInfo"]["kubeletVersion"] for n, x in nodes(host).items()}
    assert current == {server: v["cluster_k3s_version"], agent: v["cluster_k3s_version"]}
    assert "Upgrade of" in (EPHEMERAL / "fault-run.log").read_text()


def test_downgrade_and_skipped_minor_refused_from_host_facts_before_any_change(host: testinfra.host.Host) -> None:
    """side_effect.yml's first runs: the installed version (read on each node in the pre-flight play)
    refuses them, with the node, its version and the reason; no host changed (and no cordon nor
    restart: the order and restart tests above see none before the fault run)."""
    if not is_first_server(host) or fault_started() is None:
        return
    v = variables(host)
    installed = v["cluster_k3s_version"]
    for name, reason in (("downgrade", "is older: downgrades are not supported"),
                         ("skipped-minor", "skips a minor version")):
        text = (EPHEMERAL / f"refused-{name}.log").read_text()
        doc, _end = json.JSONDecoder().raw_decode(text)  # the JSON callback's document, then stderr
        assert {h: s["changed"] for h, s in doc["stats"].items()} == {h: 0 for h in doc["stats"]}, doc["stats"]
        for node in v["groups"]["k3s_cluster"]:
            assert f"{node} runs {installed}" in text, (name, node)
        assert reason in text, name
