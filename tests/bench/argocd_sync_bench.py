#!/usr/bin/env python
"""Benchmark argocd_sync: time from the application turning Synced+Healthy in the
stand-in to the module's runner returning, stream against polling.

Runs the module's SyncRunner in-process (no ansible-playbook start-up) against the
Argo CD API stand-in. Not a test: prints a table. ``make bench`` calls measure() through
tests/bench/run.py (median/p90 into docs/bench/results.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINK = REPO / ".collections" / "ansible_collections" / "dictamesh" / "k3s_gitops"
if not LINK.exists():
    LINK.parent.mkdir(parents=True, exist_ok=True)
    LINK.symlink_to("../../..")
sys.path[:0] = [str(REPO / ".collections"), str(REPO)]

from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_client import ArgoCDClient  # noqa: E402
from ansible_collections.dictamesh.k3s_gitops.plugins.modules.argocd_sync import SyncRunner, argument_spec  # noqa: E402
from tests.standins.argocd_api import ArgoCDStandIn  # noqa: E402

APP = {"metadata": {"name": "bench"}, "spec": {"project": "default", "source": {
    "repoURL": "https://g/r.git", "path": "p", "targetRevision": "main"},
    "destination": {"server": "https://kubernetes.default.svc", "namespace": "bench"}}}


def params(**over):
    out = {k: v.get("default") for k, v in argument_spec().items()}
    out.update(name="bench", timeout=60)
    out.update(over)
    return out


def fresh_app():
    return json.loads(json.dumps(APP))


def reset(server, settle_timeout=30.0):
    """Every run starts from the state of the first: the stand-in's controller idle (no step of
    the previous run still scheduled), the application as just created (OutOfSync, Missing, no
    operation), an empty timeline. Without it a run could start on the previous run's
    Synced+Healthy state with a reconciledAt in the same second as its own operation's end
    (RFC 3339 times have whole seconds): the module then returned before the stand-in reached
    Healthy again, and the run found no synced_healthy mark."""
    deadline = time.monotonic() + settle_timeout
    while True:
        with server.store.cond:
            if not server.controller.jobs:
                server.store.apps.pop("bench", None)
                server.store.history.pop("bench", None)
                server.api.create_app(fresh_app(), {})
                server.store.timeline.clear()
                return
        if time.monotonic() > deadline:
            raise RuntimeError("the Argo CD stand-in's controller did not settle within %s s" % settle_timeout)
        time.sleep(0.01)


def one_run(server, token, **over):
    client = ArgoCDClient(server.url, auth_token=token)
    reset(server)
    result = SyncRunner(params(**over), client).run()
    returned = time.time()
    with server.store.cond:
        marks = [e["time"] for e in server.store.timeline if e["event"] == "synced_healthy"]
    if result.get("health_status") != "Healthy" or len(marks) != 1:
        raise RuntimeError("run without exactly one synced_healthy mark (%d) or not Healthy: %s"
                           % (len(marks), result.get("health_status")))
    return returned - marks[0]


def percentile(values, fraction):
    """Nearest-rank percentile (no interpolation: a value that was measured)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def p95(values):
    return percentile(values, 0.95)


CONFIG = {"pickup_delay": 0.1, "op_duration": 0.5, "reconcile_delay": 0.1, "health_delay": 0.7}
METHODS = (("stream", dict(watch=True)),
           ("poll 2.0 s (default)", dict(watch=False, poll_interval=2.0)),
           ("poll 0.5 s", dict(watch=False, poll_interval=0.5)))


def measure(repetitions=20):
    """Every method `repetitions` times; latencies in ms, the stand-in timings, the load."""
    import os  # pylint: disable=import-outside-toplevel
    load_before = os.getloadavg()[0]
    rows = []
    with ArgoCDStandIn(config=CONFIG) as server:
        token = server.issue_token()
        for label, over in METHODS:
            samples = [one_run(server, token, **over) for _repetition in range(repetitions)]
            rows.append({"method": label, "n": len(samples),
                         "median_ms": round(statistics.median(samples) * 1000, 1),
                         "p90_ms": round(percentile(samples, 0.90) * 1000, 1),
                         "max_ms": round(max(samples) * 1000, 1),
                         "min_ms": round(min(samples) * 1000, 1)})
        violations = list(server.store.violations)
    if violations:
        raise RuntimeError("stand-in contract violations: %s" % violations)
    return {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "standin_config": CONFIG,
            "rows": rows, "load1_before": round(load_before, 2),
            "load1_after": round(os.getloadavg()[0], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--repetitions", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    config = {"pickup_delay": 0.1, "op_duration": 0.5, "reconcile_delay": 0.1, "health_delay": 0.7}
    rows = []
    with ArgoCDStandIn(config=config) as server:
        token = server.issue_token()
        for label, over in (("stream", dict(watch=True)),
                            ("poll 2.0 s (default)", dict(watch=False, poll_interval=2.0)),
                            ("poll 0.5 s", dict(watch=False, poll_interval=0.5))):
            samples = [one_run(server, token, **over) for _repetition in range(args.repetitions)]
            rows.append((label, statistics.median(samples), p95(samples), max(samples)))
        violations = list(server.store.violations)
    if args.json:
        print(json.dumps([dict(method=r[0], median_s=r[1], p95_s=r[2], max_s=r[3]) for r in rows]))
    else:
        print("argocd_sync: Synced+Healthy in the stand-in -> module returns (n=%d each)" % args.repetitions)
        print("%-22s %10s %10s %10s" % ("wait method", "median ms", "p95 ms", "max ms"))
        for label, med, p, mx in rows:
            print("%-22s %10.1f %10.1f %10.1f" % (label, med * 1000, p * 1000, mx * 1000))
    if violations:
        print("stand-in contract violations: %s" % violations, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
