"""HA rolling upgrade on 3 servers (molecule ha, upgrade.yml): playbooks/upgrade_k3s.yml to the
next minor (ha_upgrade_version), then once more.

Checked: every server runs the new version (binary, and every Node's kubeletVersion as each server's
API shows it); the pre-upgrade etcd snapshot was taken before the first cordon; the servers went one
at a time, read from the audit log of the first server (the API kubectl used): cordon, drain,
uncordon of one server before the next one's cordon, each server's only restart of the run (its
standin-starts.log) between its drain and its uncordon, so at every moment at least two servers
were uncordoned and running (etcd kept its quorum); the second run changed nothing.
Times from different VMs are compared as they are (each VM's clock is set from the host's at boot),
as molecule/upgrade's order tests do.
"""
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


def variables(host: testinfra.host.Host) -> dict[str, Any]:
    return host.ansible.get_variables()


def servers(host: testinfra.host.Host) -> list[str]:
    return variables(host)["groups"]["k3s_servers"]


def is_first_server(host: testinfra.host.Host) -> bool:
    return variables(host)["inventory_hostname"] == servers(host)[0]


def target(host: testinfra.host.Host) -> str:
    return variables(host)["ha_upgrade_version"]


def upgrade_started() -> float:
    return float((EPHEMERAL / "upgrade-started").read_text().strip())


def get_host(name: str) -> testinfra.host.Host:
    return testinfra.host.get_host("ansible://" + name, ansible_inventory=str(EPHEMERAL / "inventory"))


def nodes(host: testinfra.host.Host) -> dict[str, dict[str, Any]]:
    items = json.loads(host.check_output(f"{K3S} kubectl get nodes -o json"))["items"]
    return {i["metadata"]["name"]: i for i in items}


def starts(host: testinfra.host.Host) -> list[tuple[float, str]]:
    lines = host.file("/var/lib/rancher/k3s/standin-starts.log").content_string.splitlines()
    return [(float(line.split()[0]), line.split()[-1]) for line in lines if line.strip()]


def events(first: testinfra.host.Host) -> list[dict[str, Any]]:
    """Cordon, drain and uncordon as kubectl asked the first server's API (its audit log)."""
    lines = first.file("/var/lib/rancher/k3s/server/logs/audit.log").content_string.splitlines()
    return audit_timeline.node_actions(audit_timeline.parse(lines))


def test_every_server_runs_the_new_version(host: testinfra.host.Host) -> None:
    """On each server: its binary, and through its own API every Node Ready, uncordoned, at the
    new version (the Nodes are one state for all servers)."""
    version = target(host)
    assert host.check_output(f"{K3S} --version").startswith(f"k3s version {version} ")
    seen = nodes(host)
    assert set(seen) == set(servers(host))
    for name, node in seen.items():
        assert node["status"]["nodeInfo"]["kubeletVersion"] == version, name
        ready = [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready == ["True"], name
        assert not node["spec"].get("unschedulable"), f"{name} left cordoned"


def test_servers_one_at_a_time(host: testinfra.host.Host) -> None:
    """The first server's API saw cordon, drain, uncordon of each server in inventory order, the
    next cordon only after the previous uncordon; each server restarted exactly once during the run,
    at the new version, between its drain and its uncordon. So at most one server was cordoned or
    down at any moment: two of three always uncordoned and running."""
    if not is_first_server(host):
        return
    order = servers(host)
    log = events(host)
    assert [(e["action"], e["node"]) for e in log] == [
        (action, server) for server in order for action in ("cordon", "drain", "uncordon")], log
    for previous, following in zip(log[2::3], log[3::3]):
        assert previous["time"] < following["time"]
    started = upgrade_started()
    for index, server in enumerate(order):
        cordon, drain, uncordon = log[3 * index:3 * index + 3]
        during = [(t, v) for t, v in starts(get_host(server)) if t >= started]
        assert [v for _t, v in during] == [target(host)], (server, during)
        assert drain["time"] < during[0][0] < uncordon["time"], (server, during, drain, uncordon)
        assert cordon["time"] <= drain["begin"]


def test_pre_upgrade_snapshot_before_the_first_cordon(host: testinfra.host.Host) -> None:
    if not is_first_server(host):
        return
    prefix = "pre-upgrade-" + target(host).replace(".", "-").replace("+", "-") + "-"
    directory = "/var/lib/rancher/k3s/server/db/snapshots"
    taken = [s for s in host.file(directory).listdir() if s.startswith(prefix)]
    assert len(taken) == 1, taken
    assert host.file(f"{directory}/{taken[0]}").mode == 0o600
    # <name>-<node>-<unix time> (k3s-io/k3s pkg/etcd/snapshot.go), on the first server's clock as its audit log
    assert taken[0].startswith(f"{prefix}{servers(host)[0]}-")
    assert int(taken[0].rsplit("-", 1)[1]) <= events(host)[0]["time"]
    run = (EPHEMERAL / "upgrade-run.json").read_text()
    assert f"Pre-upgrade snapshot {taken[0]} on {servers(host)[0]}" in run


def test_runs_succeeded_and_the_second_changed_nothing(host: testinfra.host.Host) -> None:
    if not is_first_server(host):
        return
    first = json.loads((EPHEMERAL / "upgrade-run.json").read_text())["stats"]
    second = json.loads((EPHEMERAL / "upgrade-rerun.json").read_text())["stats"]
    assert all(s["failures"] == 0 and s["unreachable"] == 0 for s in first.values()), first
    assert all(first[server]["changed"] > 0 for server in servers(host)), first
    assert {h: (s["changed"], s["failures"]) for h, s in second.items()} == {h: (0, 0) for h in second}, second
