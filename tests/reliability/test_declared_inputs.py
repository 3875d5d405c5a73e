"""End to end: each playbook runs the declared-input check (meta/operator_inputs.yml) before any change.

tests/unit/plugins/test_operator_inputs.py refuses every generated wrong value in-process; here one
ansible-playbook run per playbook (plus the issue's examples and the inventory-shape rules) shows
that the playbook really runs that check first, with the evidence of test_bad_inputs.py: rc != 0, a
message naming the variable and the bad value, no host changed, no host contacted beyond the
validation plays, no request to the Argo CD API. An inventory with an empty agents group goes on
past the validation (positive control).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from tests.reliability import runner
from tests.reliability.test_bad_inputs import VALIDATION, excerpt, run_entry, staging_version
from tests.standins.argocd_api import ArgoCDStandIn

SYNC = {"gitops_server_url": "@SERVER@", "sync_apps": "dictamesh-dev"}
ROLLBACK = {"gitops_server_url": "@SERVER@", "rollback_app": "dictamesh-dev", "rollback_id": 1}
CASES: List[Dict[str, Any]] = [
    # the examples of issue 16
    {"id": "cluster-tls-san-string", "playbook": "playbooks/k3s_cluster.yml", "hosts": "local_validate",
     "group_vars": {"cluster_tls_san": "api.example.com"}, "variable": "cluster_tls_san",
     "expect": '"api.example.com" (a string): expected a list'},
    {"id": "cluster-ready-timeout-5m", "playbook": "playbooks/k3s_cluster.yml", "hosts": "local_validate",
     "group_vars": {"cluster_ready_timeout": "5m"}, "variable": "cluster_ready_timeout", "expect": '"5m"'},
    {"id": "cluster-api-endpoint-url", "playbook": "playbooks/k3s_cluster.yml", "hosts": "local_validate",
     "group_vars": {"cluster_api_endpoint": "https://api.example.com:6443"}, "variable": "cluster_api_endpoint",
     "expect": "not a URL"},
    {"id": "site-longhorn-enabled-quoted-no", "playbook": "site.yml", "hosts": "local_validate",
     "group_vars": {"platform_longhorn_enabled": "no"}, "variable": "platform_longhorn_enabled",
     "expect": '"no" (a string): expected a boolean'},
    # the inventory's shape
    {"id": "cluster-host-in-both-groups", "playbook": "playbooks/k3s_cluster.yml", "hosts": "local_validate",
     "also_agent": "s1", "variable": "k3s_agents", "expect": "both list s1"},
    {"id": "cluster-duplicate-node-ip", "playbook": "playbooks/k3s_cluster.yml", "hosts": "local_validate",
     "host_vars": {"a1": {"node_ip": "192.0.2.1"}}, "variable": "node_ip", "expect": '"192.0.2.1" is used by s1, a1'},
    {"id": "cluster-overlapping-cidrs", "playbook": "playbooks/k3s_cluster.yml", "hosts": "local_validate",
     "group_vars": {"cluster_server_config": {"cluster-cidr": "10.0.0.0/8"}}, "variable": "cluster-cidr",
     "expect": "overlap"},
    # one declared variable per playbook
    {"id": "platform-longhorn-enabled-quoted-no", "playbook": "playbooks/platform.yml",
     "group_vars": {"platform_longhorn_enabled": "no"}, "variable": "platform_longhorn_enabled", "expect": '"no"'},
    {"id": "gitops-repo-url-with-credentials", "playbook": "playbooks/gitops_bootstrap.yml",
     "group_vars": {"gitops_repo_url": "https://bot:s3cr3t-pw@github.com/controle-digital/dictamesh.git"},
     "variable": "gitops_repo_url", "expect": "without credentials", "hidden": "s3cr3t-pw"},
    {"id": "gitops-sync-timeout-10m", "playbook": "playbooks/gitops_bootstrap.yml",
     "group_vars": {"gitops_sync_timeout": "10m"}, "variable": "gitops_sync_timeout", "expect": '"10m"'},
    {"id": "gitops-project-destination-without-server", "playbook": "playbooks/gitops_bootstrap.yml",
     "group_vars": {"gitops_bootstrap_project": {"sourceRepos": ["*"], "destinations": [{"namespace": "apps"}]}},
     "variable": "gitops_bootstrap_project.destinations[0]", "expect": "neither server nor name"},
    {"id": "gitops-sync-window-four-fields", "playbook": "playbooks/gitops_bootstrap.yml",
     "group_vars": {"gitops_bootstrap_project": {"sourceRepos": ["*"], "syncWindows": [
         {"kind": "allow", "schedule": "0 9 * *", "duration": "1h", "applications": ["*"]}]}},
     "variable": "gitops_bootstrap_project.syncWindows[0].schedule", "expect": '"0 9 * *"'},
    {"id": "upgrade-drain-quoted-no", "playbook": "playbooks/upgrade_k3s.yml",
     "group_vars": {"cluster_upgrade_drain": "no"}, "variable": "cluster_upgrade_drain", "expect": '"no"'},
    {"id": "upgrade-platform-metrics-yes", "playbook": "playbooks/upgrade_platform.yml",
     "group_vars": {"platform_argocd_metrics": "yes"}, "variable": "platform_argocd_metrics", "expect": '"yes"'},
    {"id": "upgrade-platform-kube-client-kubectl", "playbook": "playbooks/upgrade_platform.yml",
     "group_vars": {"cluster_kube_client": "kubectl"}, "variable": "cluster_kube_client", "expect": '"kubectl"'},
    {"id": "rotate-validate-certs-maybe", "playbook": "playbooks/rotate_argocd_admin.yml",
     "extra_vars": {"gitops_validate_certs": "maybe"}, "variable": "gitops_validate_certs", "expect": '"maybe"'},
    {"id": "backup-fetch-dir-list", "playbook": "playbooks/etcd_backup.yml",
     "extra_vars": {"cluster_name": "staging", "backup_fetch_dir": ["/tmp/a"]}, "variable": "backup_fetch_dir",
     "expect": '["/tmp/a"] (a list): expected a string'},
    {"id": "restore-local-path-list", "playbook": "playbooks/etcd_restore.yml",
     "extra_vars": {"cluster_name": "staging", "confirm": "staging", "restore_snapshot_local": ["a", "b"]},
     "variable": "restore_snapshot_local"},
    {"id": "reset-keep-snapshots-maybe", "playbook": "playbooks/reset.yml",
     "extra_vars": {"cluster_name": "staging", "confirm": "staging", "reset_keep_snapshots": "maybe"},
     "variable": "reset_keep_snapshots", "expect": '"maybe"'},
    {"id": "remove-node-confirm-list", "playbook": "playbooks/remove_node.yml",
     "extra_vars": {"cluster_name": "staging", "remove_node": "a1", "confirm": ["a1"]}, "variable": "confirm"},
    {"id": "sync-project-upper-case", "playbook": "playbooks/sync.yml", "hosts": "localhost",
     "extra_vars": dict(SYNC, sync_project="Dictamesh"), "variable": "sync_project", "expect": '"Dictamesh"'},
    {"id": "rollback-project-upper-case", "playbook": "playbooks/rollback.yml", "hosts": "localhost",
     "extra_vars": dict(ROLLBACK, rollback_project="Dictamesh"), "variable": "rollback_project",
     "expect": '"Dictamesh"'},
]


def run_case(entry: Dict[str, Any], tmp_path: Path, standin: ArgoCDStandIn) -> runner.Run:
    if not entry.get("also_agent"):
        return run_entry(entry, tmp_path, standin)
    inventory = runner.write_inventory(tmp_path / "inventory", entry["hosts"])
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text(encoding="utf-8"))
    children = hosts["k3s_cluster"]["children"]
    children["k3s_agents"]["hosts"][entry["also_agent"]] = dict(children["k3s_servers"]["hosts"][entry["also_agent"]])
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts), encoding="utf-8")
    return runner.run(str(runner.REPO / entry["playbook"]), tmp_path, inventory)


@pytest.mark.parametrize("entry", [pytest.param(c, id=c["id"]) for c in CASES])
def test_declared_input_refused_before_any_change(entry: Dict[str, Any], tmp_path: Path, standin: ArgoCDStandIn,
                                                  record) -> None:
    result = run_case(entry, tmp_path, standin)
    messages = result.failures() + [result.proc.stderr]
    with standin.store.cond:
        requests = [dict(r) for r in standin.store.requests]
    record("declared_input", id=entry["id"], playbook=entry["playbook"], variable=entry["variable"], rc=result.rc,
           seconds=round(result.seconds, 1), changed=result.changed(), unreachable=result.unreachable(),
           message=excerpt(messages, entry["variable"]) or " ".join(" ".join(messages).split())[:200])
    assert result.data, "no JSON from ansible-playbook: %r" % result
    assert result.rc != 0, result
    assert result.changed() == 0, result
    assert result.unreachable() == [], "a host was contacted before the input was rejected: %r" % result
    if entry.get("hosts") == "local_validate":
        assert [p for p in result.plays[1:] if not VALIDATION.search(p)] == [], result
    assert requests == [], "the API was called before the input was rejected: %s" % requests
    assert any(entry["variable"] in m and entry.get("expect", "") in m for m in messages), result
    if entry.get("hidden"):
        assert entry["hidden"] not in result.output, "a secret was shown"


def test_empty_agents_group_goes_past_validation(tmp_path: Path) -> None:
    """Positive control: one server and no agent is a valid inventory; the run goes on to contact the host."""
    sys.path.insert(0, str(runner.REPO / "tests" / "standins" / "k3s"))
    import build_mirror  # pylint: disable=import-outside-toplevel
    bundle = build_mirror.build(tmp_path / "bundle", [staging_version()])[0]
    inventory = runner.write_inventory(tmp_path / "inventory", "local_validate", agents=0,
                                       group_vars={"cluster_k3s_airgap_dir": str(bundle)})
    result = runner.run(str(runner.REPO / "playbooks/k3s_cluster.yml"), tmp_path, inventory)
    assert result.rc != 0 and result.unreachable() == ["s1"], result
    assert result.changed() == 0, result
    assert result.plays[:2] == ["Validate the cluster inputs before any host is changed", "Prepare the nodes"], result
