"""Every bad input of bad_inputs.yml is rejected before any change, naming the variable.

For each entry: rc != 0; a failure message names the variable (and the optional fragment); no
host changed (JSON callback stats); no host was contacted beyond the validation plays (an
``unreachable`` host in the stats means a task that needs the host ran, so the check came too
late); for the Argo CD entries the API stand-in received no request that writes.
A positive control per host mode proves the harness can see a run go further.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from tests.reliability import runner
from tests.standins.argocd_api import ArgoCDStandIn

CATALOG_PATH = Path(__file__).resolve().parent / "bad_inputs.yml"
CATALOG: List[Dict[str, Any]] = yaml.safe_load(CATALOG_PATH.read_text(encoding="utf-8"))
MODULE_PLAYBOOK = str(Path(__file__).resolve().parent / "playbooks" / "module.yml")
VALIDATION = re.compile(runner.VALIDATION_PLAYS)


def params() -> List[Any]:
    out = []
    for entry in CATALOG:
        marks = [pytest.mark.xfail(strict=True, reason=entry["xfail"])] if entry.get("xfail") else []
        out.append(pytest.param(entry, id=entry["id"], marks=marks))
    return out


def substitute(value: Any, server: str, token: str) -> Any:
    text = json.dumps(value).replace("@SERVER@", server).replace("@TOKEN@", token)
    return json.loads(text)


def run_entry(entry: Dict[str, Any], tmp_path: Path, standin: ArgoCDStandIn) -> runner.Run:
    token = standin.issue_token()
    extra = substitute(entry.get("extra_vars") or {}, standin.url, token)
    if entry["playbook"] == "module":
        extra = {"reliability_module": entry["module"],
                 "reliability_args": substitute(entry["args"], standin.url, token)}
        return runner.run(MODULE_PLAYBOOK, tmp_path, None, extra)
    inventory = None
    if entry.get("hosts", "unreachable") != "localhost":
        inventory = runner.write_inventory(tmp_path / "inventory", entry.get("hosts", "unreachable"),
                                           entry.get("servers", 1), entry.get("agents", 1),
                                           entry.get("group_vars"), entry.get("host_vars"))
    return runner.run(str(runner.REPO / entry["playbook"]), tmp_path, inventory, extra)


def excerpt(messages: List[str], needle: str) -> str:
    for message in messages:
        if needle in message:
            text = " ".join(message.split())
            start = max(0, text.index(needle) - 60)
            return ("..." if start else "") + text[start:start + 200]
    return ""


@pytest.mark.parametrize("entry", params())
def test_bad_input_rejected_before_any_change(entry: Dict[str, Any], tmp_path: Path, standin: ArgoCDStandIn,
                                              record) -> None:
    result = run_entry(entry, tmp_path, standin)
    messages = result.failures() + [result.proc.stderr]
    with standin.store.cond:
        requests = [dict(r) for r in standin.store.requests]
    row = record("bad_input", id=entry["id"], playbook=entry["playbook"] if entry["playbook"] != "module"
                 else "module " + entry["module"], variable=entry["variable"], rc=result.rc,
                 seconds=round(result.seconds, 1), plays=result.plays, changed=result.changed(),
                 unreachable=result.unreachable(), api_requests=len(requests),
                 message=excerpt(messages, entry["variable"]) or " ".join(" ".join(messages).split())[:200],
                 xfail=entry.get("xfail", ""))
    assert result.data, "no JSON from ansible-playbook: %r" % result
    assert result.rc != 0, result
    assert result.changed() == 0, result
    assert result.unreachable() == [], "a host was contacted before the input was rejected: %r" % result
    later = [p for p in result.plays[1:] if not VALIDATION.search(p)]
    if entry.get("hosts") == "local_validate":
        assert later == [], "plays after the validation started: %r" % result
    assert not [r for r in requests if r["method"] != "GET"], requests
    if entry["playbook"] != "module":
        assert requests == [], "the API was called before the input was rejected: %s" % requests
    assert any(entry["variable"] in m for m in messages), result
    if entry.get("expect"):
        assert any(entry["variable"] in m and entry["expect"] in m for m in messages), result
    assert row["message"]


def test_catalog_is_large_and_spread() -> None:
    ids = [e["id"] for e in CATALOG]
    assert len(ids) == len(set(ids)) and len(ids) >= 25
    playbooks = {e["playbook"] for e in CATALOG}
    for needed in ("playbooks/k3s_cluster.yml", "playbooks/platform.yml", "playbooks/gitops_bootstrap.yml",
                   "site.yml", "playbooks/upgrade_k3s.yml", "playbooks/sync.yml", "module"):
        assert needed in playbooks, needed


@pytest.mark.parametrize("mode, playbook, extra", [
    ("local_validate", "playbooks/k3s_cluster.yml", {}),
    # The discovery's first contact with cluster_kube_client controller is the controller's own read
    # through the kubeconfig k3s_cluster.yml writes (none here); with `server` it is the first server.
    ("unreachable", "playbooks/gitops_bootstrap.yml", {"cluster_kube_client": "server"}),
    ("unreachable", "playbooks/platform.yml", {}),
])
def test_positive_control_goes_past_validation(tmp_path: Path, mode: str, playbook: str, extra: dict) -> None:
    """With the staging sample's valid inputs the same harness sees the run go on to contact a host."""
    sys.path.insert(0, str(runner.REPO / "tests" / "standins" / "k3s"))
    import build_mirror  # pylint: disable=import-outside-toplevel
    version = staging_version()
    bundle = build_mirror.build(tmp_path / "bundle", [version])[0]  # the release checksum check passes offline
    inventory = runner.write_inventory(tmp_path / "inventory", mode, group_vars=dict(extra, cluster_k3s_airgap_dir=str(bundle)))
    result = runner.run(str(runner.REPO / playbook), tmp_path, inventory)
    assert result.rc != 0, result
    assert result.unreachable(), result
    assert result.changed() == 0, result
    if mode == "local_validate":
        assert result.plays[:2] == ["Validate the cluster inputs before any host is changed", "Prepare the nodes"], result


def staging_version() -> str:
    return str(runner.staging_vars()["cluster_k3s_version"])
