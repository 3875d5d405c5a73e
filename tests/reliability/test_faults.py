"""Fault cases: Argo CD API errors and timeouts, a node lost mid-play, an operation stuck Running.

API faults go through ansible-playbook and the real modules to the Argo CD API stand-in behind
fault_proxy.FaultProxy, which logs the arrival time of every request: the tests count the
attempts and measure the gaps (the client retries idempotent requests 3 times on 502/503/504 and
timeouts, sleeping 0.5 s, 1 s, 2 s). Timings are recorded for docs/RELIABILITY.md; only lower
bounds of the backoff are asserted (the machine may be slow, never faster than the sleeps).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from tests.reliability import runner
from tests.reliability.fault_proxy import FaultProxy, Rule
from tests.standins.argocd_api import ArgoCDStandIn

MODULE_PLAYBOOK = str(Path(__file__).resolve().parent / "playbooks" / "module.yml")
APP = {"metadata": {"name": "demo"}, "spec": {"project": "default", "source": {
    "repoURL": "https://github.com/controle-digital/dictamesh.git", "path": "apps", "targetRevision": "main"},
    "destination": {"server": "https://kubernetes.default.svc", "namespace": "demo"}}}
APP_PATH = "/api/v1/applications/demo"
BACKOFF = [0.5, 1.0, 2.0]  # ArgoCDClient defaults: backoff 0.5 s doubled, 3 retries
PASSWORD = "reliability-fault-admin-pw"


@pytest.fixture
def seeded(standin: ArgoCDStandIn) -> ArgoCDStandIn:
    with standin.store.cond:
        standin.api.create_app(json.loads(json.dumps(APP)), {})
        standin.store.users["admin"] = PASSWORD
    return standin


@pytest.fixture
def proxy(seeded: ArgoCDStandIn) -> Iterator[FaultProxy]:
    with FaultProxy(seeded.url) as fault_proxy:
        yield fault_proxy


def call_module(tmp_path: Path, module: str, **args: Any) -> runner.Run:
    return runner.run(MODULE_PLAYBOOK, tmp_path, None, {"reliability_module": module, "reliability_args": args})


def gaps(times: List[float]) -> List[float]:
    return [round(b - a, 2) for a, b in zip(times, times[1:])]


def failure(result: runner.Run) -> str:
    return " ".join(result.failures())


@pytest.mark.parametrize("status", [502, 503, 504])
def test_idempotent_read_retried_with_backoff_then_clear_error(tmp_path: Path, seeded: ArgoCDStandIn,
                                                               proxy: FaultProxy, record, status: int) -> None:
    proxy.add(Rule("GET", APP_PATH, count=100, status=status))
    result = call_module(tmp_path, "argocd_application_info", server_url=proxy.url,
                         auth_token=seeded.issue_token(), name="demo")
    times = proxy.attempts("GET", APP_PATH)
    record("fault", case="GET answered HTTP %d every time" % status, attempts=len(times), gaps=gaps(times),
           seconds_to_error=round(times[-1] - times[0], 2), playbook_seconds=round(result.seconds, 1),
           message=failure(result)[:220])
    assert result.rc != 0, result
    assert len(times) == 4, times
    for measured, planned in zip(gaps(times), BACKOFF):
        assert measured >= planned * 0.9, (gaps(times), BACKOFF)
    assert gaps(times) == sorted(gaps(times)), "the backoff does not grow: %s" % gaps(times)
    message = failure(result)
    assert proxy.url in message and "HTTP %d" % status in message, message


def test_transient_503_recovers(tmp_path: Path, seeded: ArgoCDStandIn, proxy: FaultProxy, record) -> None:
    proxy.add(Rule("GET", APP_PATH, count=2, status=503))
    result = call_module(tmp_path, "argocd_application_info", server_url=proxy.url,
                         auth_token=seeded.issue_token(), name="demo")
    times = proxy.attempts("GET", APP_PATH)
    record("fault", case="GET answered 503 twice, then 200", attempts=len(times), gaps=gaps(times),
           seconds_to_error=None, playbook_seconds=round(result.seconds, 1), message="succeeded (rc %d)" % result.rc)
    assert result.rc == 0, result
    assert len(times) == 3, times


def test_request_timeout_retried_then_clear_error(tmp_path: Path, seeded: ArgoCDStandIn, proxy: FaultProxy,
                                                  record) -> None:
    proxy.add(Rule("GET", APP_PATH, count=100, delay=2.5))
    result = call_module(tmp_path, "argocd_application_info", server_url=proxy.url, auth_token=seeded.issue_token(),
                         name="demo", request_timeout=1)
    times = proxy.attempts("GET", APP_PATH)
    record("fault", case="GET never answered within request_timeout=1", attempts=len(times), gaps=gaps(times),
           seconds_to_error=round(result.seconds, 1), playbook_seconds=round(result.seconds, 1),
           message=failure(result)[:220])
    assert result.rc != 0, result
    assert len(times) == 4, times
    for measured, planned in zip(gaps(times), BACKOFF):
        assert measured >= 1.0 + planned * 0.9, (gaps(times), "timeout 1 s plus the backoff")
    message = failure(result)
    assert proxy.url in message and "timed out" in message.lower(), message


def test_internal_error_500_is_not_retried(tmp_path: Path, seeded: ArgoCDStandIn, proxy: FaultProxy, record) -> None:
    """Only 502/503/504 are retried (the plugin notes): a 500 is the server's answer, shown at once."""
    proxy.add(Rule("GET", APP_PATH, count=100, status=500, body="internal error"))
    result = call_module(tmp_path, "argocd_application_info", server_url=proxy.url,
                         auth_token=seeded.issue_token(), name="demo")
    times = proxy.attempts("GET", APP_PATH)
    record("fault", case="GET answered HTTP 500", attempts=len(times), gaps=gaps(times), seconds_to_error=0,
           playbook_seconds=round(result.seconds, 1), message=failure(result)[:220])
    assert result.rc != 0 and len(times) == 1, (times, result)
    assert "HTTP 500" in failure(result)


def test_sync_post_is_not_retried(tmp_path: Path, seeded: ArgoCDStandIn, proxy: FaultProxy, record) -> None:
    proxy.add(Rule("POST", APP_PATH + "/sync", count=100, status=503))
    result = call_module(tmp_path, "argocd_sync", server_url=proxy.url, auth_token=seeded.issue_token(),
                         name="demo", timeout=20)
    posts = proxy.attempts("POST", APP_PATH + "/sync")
    record("fault", case="sync POST answered 503 (not idempotent)", attempts=len(posts), gaps=gaps(posts),
           seconds_to_error=0, playbook_seconds=round(result.seconds, 1), message=failure(result)[:220])
    assert result.rc != 0, result
    assert len(posts) == 1, posts
    assert "HTTP 503" in failure(result) and proxy.url in failure(result)
    with seeded.store.cond:
        assert "operation" not in seeded.store.apps["demo"], "the stand-in never saw the sync"


def test_login_is_not_retried(tmp_path: Path, seeded: ArgoCDStandIn, proxy: FaultProxy, record) -> None:
    """sync.yml's session (POST /api/v1/session) answered 503: one attempt, then a clear error."""
    proxy.add(Rule("POST", "/api/v1/session", count=100, status=503))
    result = runner.run("dictamesh.k3s_gitops.sync", tmp_path, None,
                        {"gitops_server_url": proxy.url, "sync_apps": "demo"}, env={"ARGOCD_PASSWORD": PASSWORD})
    posts = proxy.attempts("POST", "/api/v1/session")
    record("fault", case="login POST answered 503 (sync.yml)", attempts=len(posts), gaps=gaps(posts),
           seconds_to_error=0, playbook_seconds=round(result.seconds, 1), message=failure(result)[:220])
    assert result.rc != 0, result
    assert len(posts) == 1, posts
    assert proxy.attempts("POST", APP_PATH) == []
    assert PASSWORD not in result.output


def test_login_failure_message_is_clear(tmp_path: Path, seeded: ArgoCDStandIn, proxy: FaultProxy) -> None:
    proxy.add(Rule("POST", "/api/v1/session", count=100, status=503))
    result = runner.run("dictamesh.k3s_gitops.sync", tmp_path, None,
                        {"gitops_server_url": proxy.url, "sync_apps": "demo"}, env={"ARGOCD_PASSWORD": PASSWORD})
    assert result.rc != 0, result
    assert proxy.url in failure(result) and "HTTP 503" in failure(result), failure(result)


def test_stuck_operation_times_out_naming_app_phase_and_timeout(tmp_path: Path, seeded: ArgoCDStandIn,
                                                                record) -> None:
    seeded.configure(op_duration=10 ** 6)  # the controller starts the operation and never finishes it
    timeout = 5
    result = runner.run("dictamesh.k3s_gitops.sync", tmp_path, None,
                        {"gitops_server_url": seeded.url, "sync_apps": "demo", "sync_timeout": timeout},
                        env={"ARGOCD_PASSWORD": PASSWORD})
    task_seconds = task_duration(result, "Sync and wait")
    message = failure(result)
    record("fault", case="sync operation stuck Running, sync_timeout=%d" % timeout, attempts=1, gaps=[],
           seconds_to_error=round(task_seconds, 2), playbook_seconds=round(result.seconds, 1), message=message[:260])
    assert result.rc != 0, result
    assert "'demo'" in message and "Running" in message and "%ss" % timeout in message, message
    assert timeout <= task_seconds < timeout + 30, task_seconds
    with seeded.store.cond:
        phase = seeded.store.apps["demo"]["status"]["operationState"]["phase"]
    assert phase == "Running"


def task_duration(result: runner.Run, name: str) -> float:
    from datetime import datetime  # pylint: disable=import-outside-toplevel
    for play in result.data.get("plays", []):
        for task in play["tasks"]:
            if task["task"]["name"] == name:
                span = task["task"]["duration"]
                start = datetime.fromisoformat(span["start"].replace("Z", "+00:00"))
                end = datetime.fromisoformat(span["end"].replace("Z", "+00:00"))
                return (end - start).total_seconds()
    raise AssertionError("task %r did not run: %r" % (name, result))


def test_node_lost_mid_play_stops_k3s_cluster(tmp_path: Path, record) -> None:
    """3 servers (the controller, local) and a1, which answers the fact gathering and then is gone.

    The validation play has any_errors_fatal: a1 unreachable at its first contact after the facts
    must stop the run: no other host runs another task, no later play runs a task on any host.
    (The later plays are safe anyway: in them every host is unreachable, see runner.local_validate.)
    """
    sys.path.insert(0, str(runner.REPO / "tests" / "standins" / "k3s"))
    import build_mirror  # pylint: disable=import-outside-toplevel
    version = str(runner.staging_vars()["cluster_k3s_version"])
    bundle = build_mirror.build(tmp_path / "bundle", [version])[0]
    lost = ("{{ 'local' if ansible_play_name is search('^Validate') and k3s_cluster_node_ip is not defined "
            "else 'ssh' }}")
    inventory = runner.write_inventory(tmp_path / "inventory", "local_validate", servers=3, agents=1,
                                       group_vars={"cluster_k3s_airgap_dir": str(bundle)},
                                       host_vars={"a1": {"ansible_connection": lost}})
    started = time.monotonic()
    result = runner.run(str(runner.REPO / "playbooks/k3s_cluster.yml"), tmp_path, inventory)
    seconds = time.monotonic() - started
    lost_at = [t["task"]["name"] for p in result.data.get("plays", []) for t in p["tasks"]
               if (t["hosts"].get("a1") or {}).get("unreachable")]
    later_on_others = tasks_after(result, lost_at[0] if lost_at else "", ["s1", "s2", "s3"])
    record("fault", case="k3s_cluster.yml: agent a1 unreachable after the facts (3 servers local)",
           attempts=None, gaps=[], seconds_to_error=round(seconds, 1), playbook_seconds=round(seconds, 1),
           message="; ".join(result.failures())[:220], plays=result.plays, lost_at=lost_at)
    assert result.rc != 0, result
    assert result.unreachable() == ["a1"], result
    assert result.plays[0] == "Validate the cluster inputs before any host is changed", result
    # ansible-playbook still walks the later plays (the JSON callback lists them) but with no host left
    assert [t["task"]["name"] for p in result.data["plays"][1:] for t in p["tasks"] if t["hosts"]] == [], result
    assert [t.split(" : ")[-1] for t in lost_at] == ["Look for an installed k3s binary"], lost_at
    assert later_on_others == [], "other hosts went on after a1 was lost: %s" % later_on_others
    assert result.changed() == 0
    assert any("a1" in f for f in result.failures())


def tasks_after(result: runner.Run, task_name: str, hosts: List[str]) -> List[str]:
    """Tasks run on ``hosts`` after ``task_name`` (in the JSON callback's order)."""
    seen, after = False, []
    for play in result.data.get("plays", []):
        for task in play["tasks"]:
            if seen and any(h in task["hosts"] and not task["hosts"][h].get("skipped") for h in hosts):
                after.append(task["task"]["name"])
            seen = seen or task["task"]["name"] == task_name
    return after


def test_agent_lost_stops_reset_before_the_servers(tmp_path: Path, record) -> None:
    """reset.yml: an unreachable agent stops the run; the servers are never contacted."""
    inventory = runner.write_inventory(tmp_path / "inventory", "unreachable")
    result = runner.run(str(runner.REPO / "playbooks/reset.yml"), tmp_path, inventory,
                        {"cluster_name": "staging", "confirm": "staging"})
    record("fault", case="reset.yml: agent a1 unreachable", attempts=None, gaps=[],
           seconds_to_error=round(result.seconds, 1), playbook_seconds=round(result.seconds, 1),
           message="; ".join(result.failures())[-220:], plays=result.plays)
    assert result.rc != 0, result
    assert result.unreachable() == ["a1"], result.stats
    assert "K3S could not be removed from a1; the servers are left as they are" in " ".join(result.failures())
