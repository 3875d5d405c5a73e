"""Day-2 playbooks refuse bad inputs before any host is contacted.

The inventory's hosts are unreachable (127.0.0.1 port 1): a refusal must come from the input
checks with a clear message and no host may have been contacted (no unreachable host in the
stats); with valid inputs the same run gets as far as contacting the hosts (and fails there),
which proves that the checks ran first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest

REPO = Path(__file__).resolve().parents[3]
UPGRADE = str(REPO / "playbooks/upgrade_k3s.yml")
GOOD = {"cluster_k3s_version": "v1.35.0+k3s1", "cluster_token": "a-real-token-0123456789"}


@pytest.fixture
def unreachable_inventory(tmp_path: Path) -> str:
    path = tmp_path / "hosts.yml"
    path.write_text("""---
all:
  vars:
    ansible_host: 127.0.0.1
    ansible_port: 1
    ansible_connection: ssh
  children:
    k3s_cluster:
      children:
        k3s_servers:
          hosts:
            s1: {}
        k3s_agents:
          hosts:
            a1: {}
""", encoding="utf-8")
    return str(path)


def contacted(run: Any) -> int:
    return sum(s.get("unreachable", 0) for s in run.data["stats"].values())


def messages(run: Any) -> str:
    return "\n".join(str(t.get("msg")) for play in run.data["plays"] for task in play["tasks"]
                     for t in task["hosts"].values() if t.get("failed"))


@pytest.mark.parametrize("extra, message", [
    ({"cluster_k3s_version": "1.35"}, "cluster_k3s_version is \"1.35\""),
    ({"cluster_k3s_version": "v1.35.0"}, "to the K3S release to upgrade to"),
    ({"cluster_token": "CHANGE-ME-cluster-token"}, "CHANGE-ME placeholder"),
    ({"upgrade_agent_serial": "0"}, "upgrade_agent_serial must be"),
    ({"cluster_upgrade_drain_timeout": "soon"}, "cluster_upgrade_drain_timeout"),
])
def test_upgrade_refuses_bad_inputs_without_contacting_hosts(playbook, unreachable_inventory: str,
                                                             extra: Dict[str, Any], message: str) -> None:
    run = playbook(UPGRADE, dict(GOOD, **extra), inventory=unreachable_inventory)
    assert run.rc != 0
    assert message in messages(run), run
    assert contacted(run) == 0, run.data["stats"]
    assert "cluster_token" not in extra or "a-real-token" not in run.proc.stdout


def test_upgrade_with_good_inputs_reaches_the_hosts(playbook, unreachable_inventory: str) -> None:
    run = playbook(UPGRADE, GOOD, inventory=unreachable_inventory)
    assert run.rc != 0
    assert contacted(run) == 2, run.data["stats"]  # the checks passed; gathering facts is the first contact
    assert "a-real-token" not in run.proc.stdout


RESTORE = str(REPO / "playbooks/etcd_restore.yml")
BACKUP = str(REPO / "playbooks/etcd_backup.yml")
NAMED = dict(GOOD, cluster_name="staging")


@pytest.mark.parametrize("extra, message", [
    ({"restore_snapshot": "snap-1"}, "add -e confirm=staging"),
    ({"restore_snapshot": "snap-1", "confirm": "prod"}, "got \"prod\""),
    ({"confirm": "staging"}, "one of the two"),
    ({"confirm": "staging", "restore_snapshot": "a", "restore_snapshot_local": "/tmp/a"}, "one of the two"),
    ({"confirm": "staging", "restore_snapshot": "../../etc/shadow"}, "no '..'"),
    ({"confirm": "staging", "restore_snapshot_local": "/nonexistent/snap"}, "is not a file on the controller"),
])
def test_restore_refuses_without_confirmation_or_snapshot(playbook, unreachable_inventory: str,
                                                          extra: Dict[str, Any], message: str) -> None:
    run = playbook(RESTORE, dict(NAMED, **extra), inventory=unreachable_inventory)
    assert run.rc != 0
    assert message in messages(run), run
    assert contacted(run) == 0, run.data["stats"]


def test_restore_confirmed_reaches_the_first_server_only(playbook, unreachable_inventory: str) -> None:
    run = playbook(RESTORE, dict(NAMED, confirm="staging", restore_snapshot="snap-1"), inventory=unreachable_inventory)
    assert run.rc != 0
    assert run.data["stats"]["s1"].get("unreachable") == 1 and "a1" not in run.data["stats"], run.data["stats"]


@pytest.mark.parametrize("extra, message", [
    ({"backup_name": "Nightly Backup"}, "backup_name must be"),
    ({"backup_retention": "-1"}, "backup_retention a number"),
])
def test_backup_refuses_bad_inputs(playbook, unreachable_inventory: str, extra: Dict[str, Any], message: str) -> None:
    run = playbook(BACKUP, dict(NAMED, **extra), inventory=unreachable_inventory)
    assert run.rc != 0 and message in messages(run), run
    assert contacted(run) == 0


REMOVE = str(REPO / "playbooks/remove_node.yml")
RESET = str(REPO / "playbooks/reset.yml")


@pytest.mark.parametrize("extra, message", [
    ({}, "remove_node must name a host of k3s_cluster"),
    ({"remove_node": "ghost", "confirm": "ghost"}, "remove_node must name a host of k3s_cluster"),
    ({"remove_node": "a1"}, "type the host name again to confirm: -e confirm=a1"),
    ({"remove_node": "a1", "confirm": "s1"}, "-e confirm=a1"),
    ({"remove_node": "s1", "confirm": "s1"}, "is the first server"),
])
def test_remove_node_refusals(playbook, unreachable_inventory: str, extra: Dict[str, Any], message: str) -> None:
    run = playbook(REMOVE, dict(NAMED, **extra), inventory=unreachable_inventory)
    assert run.rc != 0 and message in messages(run), run
    assert contacted(run) == 0, run.data["stats"]


@pytest.mark.parametrize("extra, message", [
    ({}, "add -e confirm=staging"),
    ({"confirm": "prod"}, "got \"prod\""),
    ({"confirm": "staging", "reset_keep_snapshots": "perhaps"}, "reset removes K3S"),
])
def test_reset_refusals(playbook, unreachable_inventory: str, extra: Dict[str, Any], message: str) -> None:
    run = playbook(RESET, dict(NAMED, **extra), inventory=unreachable_inventory)
    assert run.rc != 0 and message in messages(run), run
    assert contacted(run) == 0, run.data["stats"]
    assert "s1, a1" in messages(run)


def test_reset_confirmed_reaches_the_agents_first(playbook, unreachable_inventory: str) -> None:
    run = playbook(RESET, dict(NAMED, confirm="staging"), inventory=unreachable_inventory)
    assert run.rc != 0
    assert run.data["stats"]["a1"].get("unreachable") == 1, run.data["stats"]
    assert run.data["stats"]["s1"].get("unreachable", 0) == 0, run.data["stats"]  # servers never contacted
    assert "K3S could not be removed from a1; the servers are left as they are" in messages(run)


ROTATE = str(REPO / "playbooks/rotate_argocd_admin.yml")


@pytest.mark.parametrize("extra, message", [
    ({"platform_argocd_enabled": False}, "Argo CD is not enabled"),
    ({"platform_argocd_enabled": True}, "platform_argocd_admin_password is undefined"),
    ({"platform_argocd_enabled": True, "platform_argocd_admin_password": "CHANGE-ME-argocd"}, "CHANGE-ME placeholder"),
    ({"platform_argocd_enabled": True, "platform_argocd_admin_password": "short-pw"}, "shorter than 12"),
])
def test_rotate_refuses_unusable_passwords(playbook, unreachable_inventory: str, extra: Dict[str, Any],
                                           message: str) -> None:
    run = playbook(ROTATE, dict(NAMED, **extra), inventory=unreachable_inventory)
    assert run.rc != 0 and message in messages(run), run
    assert contacted(run) == 0
    assert "short-pw" not in run.proc.stdout
