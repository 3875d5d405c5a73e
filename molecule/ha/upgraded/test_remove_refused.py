"""remove_node.yml's quorum refusal on 3 servers (molecule ha, remove_refused.yml).

With the third server's K3S stopped (NotReady), removing the second would leave two etcd members of
which one runs: below etcd's majority. The run must fail at "Refuse to break the etcd quorum" with
a message that names the rule, before any change: the second server's Node still listed and
schedulable with its etcd member, its K3S running with the same main PID and no new start, no
write request in the first server's API (its audit log between the two records), changed=0.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import testinfra.host

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
READ_VERBS = {"get", "list", "watch"}


def servers(host: testinfra.host.Host) -> list[str]:
    return host.ansible.get_variables()["groups"]["k3s_servers"]


def is_first_server(host: testinfra.host.Host) -> bool:
    return host.ansible.get_variables()["inventory_hostname"] == servers(host)[0]


def record(phase: str) -> dict[str, Any]:
    return json.loads((EPHEMERAL / f"quorum-{phase}.json").read_text())


def run_output() -> dict[str, Any]:
    return json.loads((EPHEMERAL / "remove-refused.json").read_text())


def task_results(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Task name -> {host: result} over every play of an ansible.posix.json document."""
    return {t["task"]["name"]: t["hosts"] for play in doc["plays"] for t in play["tasks"]}


def test_refused_by_the_quorum_rule_with_a_message_naming_it(host: testinfra.host.Host) -> None:
    if not is_first_server(host):
        return
    first, leaving = servers(host)[0], servers(host)[1]
    tasks = task_results(run_output())
    refusal = tasks["Refuse to break the etcd quorum"]
    failed = [r for r in refusal.values() if r.get("failed")]  # run_once: one host's result
    assert len(failed) == 1, refusal
    message = failed[0]["msg"]
    assert f"Removing {leaving} would leave 2 servers of which only 1 are Ready ({first})" in message, message
    assert "etcd needs a majority (2)" in message and "Nothing was changed." in message, message
    # the run stopped there: no drain, no uninstall, no Node deletion was even attempted
    for later in ("Drain it (DaemonSet pods stay, emptyDir data is deleted)", "Uninstall K3S",
                  "Delete it (for a server, K3S then removes its etcd member)"):
        assert later not in tasks, later


def test_refused_run_changed_nothing(host: testinfra.host.Host) -> None:
    if not is_first_server(host):
        return
    stats = run_output()["stats"]
    assert set(stats) >= set(servers(host))
    assert {h: s["changed"] for h, s in stats.items()} == {h: 0 for h in stats}, stats


def test_leaving_server_untouched(host: testinfra.host.Host) -> None:
    """Its Node listed, schedulable, still an etcd member (annotation = its server/db/etcd/name);
    its K3S running, not restarted (same main PID, no new start)."""
    if not is_first_server(host):
        return
    before, after = record("before"), record("after")
    leaving = servers(host)[1]
    for phase in (before, after):
        node = phase["node"]
        assert node["metadata"]["name"] == leaving
        assert not node["spec"].get("unschedulable"), phase
        assert not node["metadata"].get("deletionTimestamp"), phase
        assert node["metadata"]["annotations"]["etcd.k3s.cattle.io/node-name"] == phase["unit"]["Member"]
        assert phase["unit"]["ActiveState"] == "active"
        assert int(phase["unit"]["MainPID"]) > 0
    assert after["unit"] == before["unit"]
    assert after["node"]["metadata"]["uid"] == before["node"]["metadata"]["uid"]
    assert after["node"]["metadata"]["annotations"] == before["node"]["metadata"]["annotations"]


def test_no_write_reached_the_api(host: testinfra.host.Host) -> None:
    """The first server's audit log between the two records: the run's read of the nodes, no write."""
    if not is_first_server(host):
        return
    before, after = record("before")["audit_lines"], record("after")["audit_lines"]
    lines = host.file("/var/lib/rancher/k3s/server/logs/audit.log").content_string.splitlines()[before:after]
    events = [json.loads(line) for line in lines if line.strip()]
    writes = [(e["verb"], e["requestURI"]) for e in events if e["verb"] not in READ_VERBS]
    assert writes == []
    assert any(e["verb"] == "list" and e["objectRef"].get("resource") == "nodes" for e in events), events
