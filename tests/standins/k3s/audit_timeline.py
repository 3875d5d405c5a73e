"""Cordon, drain and uncordon per node, read from the API server's audit log (JSON lines of
audit.k8s.io/v1 Events, written by the K3S stand-in's API, or by a real K3S given
`kube-apiserver-arg: audit-log-path=...`). Used by molecule's upgrade tests and the benchmark.

What kubectl sends, read from kubernetes/kubectl pkg/drain (cordon.go, drain.go) at v0.34:
- cordon / uncordon: a patch of the Node whose body sets `spec.unschedulable` (true) or removes it
  (null or false); none when the node is already in the wanted state ("already cordoned");
- drain: a cordon as above, then one list of pods with `fieldSelector=spec.nodeName=<node>`, then
  one eviction per pod to remove (429 while a PodDisruptionBudget refuses), then gets of those pods
  until they are gone.
"""
from __future__ import annotations

import datetime
import json
import urllib.parse
from typing import Any, Iterable


def parse(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The audit events of a log's lines, oldest first, with `time` (request received, epoch s)."""
    events = []
    for line in lines:
        if line.strip():
            event = json.loads(line)
            event["time"] = epoch(event["requestReceivedTimestamp"])
            events.append(event)
    return sorted(events, key=lambda e: e["time"])


def epoch(stamp: str) -> float:
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def _unschedulable_patch(event: dict[str, Any]) -> bool | None:
    """True (cordon) or False (uncordon) for a successful patch of a Node's spec.unschedulable."""
    ref = event.get("objectRef", {})
    if event["verb"] != "patch" or ref.get("resource") != "nodes" or ref.get("subresource"):
        return None
    if not 200 <= event["responseStatus"]["code"] < 300:
        return None
    spec = (event.get("requestObject") or {}).get("spec") or {}
    return bool(spec["unschedulable"]) if "unschedulable" in spec else None


def _drain_list_node(event: dict[str, Any]) -> str | None:
    """The node of a drain's pod list (`fieldSelector=spec.nodeName=<node>`), else None."""
    ref = event.get("objectRef", {})
    if event["verb"] != "list" or ref.get("resource") != "pods":
        return None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(event["requestURI"]).query)
    for selector in query.get("fieldSelector", []):
        for term in selector.split(","):
            key, _sep, value = term.partition("=")
            if key == "spec.nodeName" and value:
                return value.lstrip("=")
    return None


def node_actions(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """[{action: cordon|drain|uncordon, node, time}, ...] in order. A drain's time is when its last
    pod request was received (the end of the drain), `begin` its pod list; `evicted` the pods whose
    eviction was accepted, `refused` how many evictions a PodDisruptionBudget refused (429)."""
    actions: list[dict[str, Any]] = []
    drain: dict[str, Any] | None = None
    for event in events:
        ref = event.get("objectRef", {})
        wanted = _unschedulable_patch(event)
        if wanted is not None:
            drain = None
            actions.append({"action": "cordon" if wanted else "uncordon", "node": ref["name"], "time": event["time"]})
            continue
        node = _drain_list_node(event)
        if node is not None:
            if drain is None or drain["node"] != node:
                drain = {"action": "drain", "node": node, "time": event["time"], "begin": event["time"],
                         "evicted": [], "refused": 0}
                actions.append(drain)
            drain["time"] = event["time"]
            continue
        if drain is None or ref.get("resource") != "pods" or not ref.get("name"):
            continue
        if ref.get("subresource") == "eviction" and event["verb"] == "create":
            drain["time"] = event["time"]
            code = event["responseStatus"]["code"]
            if 200 <= code < 300:
                drain["evicted"].append(ref["name"])
            elif code == 429:
                drain["refused"] += 1
        elif event["verb"] == "get" and ref["name"] in drain["evicted"]:
            drain["time"] = event["time"]  # waiting for an evicted pod to be gone
    return actions
