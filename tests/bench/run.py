#!/usr/bin/env python
"""`make bench`: the collection's benchmarks, selectable by name.

    .venv/bin/python tests/bench/run.py                      # all: site upgrade scale argocd_sync
    .venv/bin/python tests/bench/run.py scale argocd_sync    # some
    .venv/bin/python tests/bench/run.py --render             # only re-render the doc and plot
    BENCH_BASELINE=HEAD~3 .venv/bin/python tests/bench/run.py site upgrade   # and the same for HEAD~3

  site         site.yml first converge + immediate re-run on QEMU VMs (molecule/site wiring)
  upgrade      upgrade_k3s.yml per-node overhead beyond drain and restart (same VMs as site)
  scale        controller time per host at 3/10/30 podman containers over SSH
  argocd_sync  argocd_sync return latency after Synced+Healthy, stream vs polling

Raw results are merged into docs/bench/results.json (each benchmark replaces its own key, so
benchmarks can be run one at a time); docs/BENCHMARKS.md and docs/bench/time_per_host.png are
rendered from that file. Not part of `make test`: it takes 30-60 min on a 2-core machine.

With BENCH_BASELINE=<rev> (or --baseline <rev>) the VM benchmarks (site, upgrade) run a second
time, right after this checkout's, on fresh VMs of the same spec, from a temporary git worktree of
<rev> (its playbooks, roles, scenario wiring and stand-ins; this checkout's bench code and VM
tooling): the results' "baseline" key, rendered side by side.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUTPUT, REPO, Worktree, log, machine, now_iso  # noqa: E402

RESULTS = REPO / "docs" / "bench" / "results.json"
ALL = ("site", "upgrade", "scale", "argocd_sync")


def load_results() -> dict[str, Any]:
    try:
        return dict(json.loads(RESULTS.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return {}


def save_results(results: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def merge(name: str, value: Any) -> None:
    results = load_results()
    results.setdefault("machine", machine())
    results[name] = value
    save_results(results)
    log(f"{name}: results saved in {RESULTS.relative_to(REPO)}")


def guarded(name: str, func: Callable[[], Any]) -> bool:
    try:
        value = func()
    except Exception as exc:  # noqa: BLE001 (a failed benchmark is recorded, the others still run)
        log(f"{name}: FAILED: {exc}")
        traceback.print_exc()
        merge(f"{name}_error", {"when": now_iso(), "error": str(exc)[-4000:]})
        return False
    if isinstance(value, dict):
        for key, item in value.items():
            merge(key, item)
    results = load_results()
    if results.pop(f"{name}_error", None) is not None:   # an older failure of this benchmark
        save_results(results)
    return True


def run_baseline(vm_bench: Any, vm: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """The selected VM benchmarks again for args.baseline, from a temporary worktree, on fresh VMs
    of the same spec, right after this checkout's run."""
    with Worktree(args.baseline, OUTPUT) as tree:
        log(f"baseline {args.baseline} ({tree.commit}) in {tree.path}")
        measured = vm_bench.run(vm, args.servers, args.agents, args.keep, repo=tree.path, tag="-baseline")
        return {"rev": args.baseline, "commit": tree.commit, "when": now_iso(),
                "vms": "fresh VMs of the same spec, booted after this checkout's run", **measured}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmarks", nargs="*", metavar="BENCHMARK",
                        help="which to run (default: all)")
    parser.add_argument("--render", action="store_true", help="only render the doc and the plot")
    parser.add_argument("--servers", type=int, default=1, help="site/upgrade VMs: servers (1)")
    parser.add_argument("--agents", type=int, default=2, help="site/upgrade VMs: agents (2)")
    parser.add_argument("--keep", action="store_true", help="keep the site/upgrade VMs")
    parser.add_argument("--sizes", default="3,10,30", help="scale: host counts (3,10,30)")
    parser.add_argument("--forks", default="5", help="scale: forks values, comma-separated (5)")
    parser.add_argument("-n", "--repetitions", type=int, default=20, help="argocd_sync runs per method")
    parser.add_argument("--baseline", default=os.environ.get("BENCH_BASELINE", ""), metavar="REV",
                        help="also run site/upgrade for this git revision (default: $BENCH_BASELINE)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = list(args.benchmarks) or ([] if args.render else list(ALL))
    unknown = sorted(set(selected) - set(ALL))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(ALL)}", file=sys.stderr)
        return 2
    ok = True
    vm = [b for b in selected if b in ("site", "upgrade")]
    if vm:
        import vm_bench  # noqa: PLC0415 (needs PyYAML: the venv's python)
        ok &= guarded("+".join(vm), lambda: vm_bench.run(vm, args.servers, args.agents, args.keep))
        if args.baseline:
            ok &= guarded("baseline", lambda: {"baseline": run_baseline(vm_bench, vm, args)})
    if "scale" in selected:
        import scale_bench  # noqa: PLC0415
        sizes = [int(s) for s in args.sizes.split(",")]
        forks = [int(f) for f in args.forks.split(",")]
        earlier = load_results().get("scale", {}).get("runs", [])

        def keep_earlier(partial: dict[str, Any]) -> dict[str, Any]:
            """Rows of other (hosts, forks) pairs from earlier runs stay."""
            done = {(r["hosts"], r["forks"]) for r in partial["runs"]}
            rows = [r for r in earlier if (r["hosts"], r["forks"]) not in done] + partial["runs"]
            return {**partial, "runs": sorted(rows, key=lambda r: (r["forks"], r["hosts"]))}

        ok &= guarded("scale", lambda: {"scale": keep_earlier(scale_bench.run(
            sizes, forks, on_progress=lambda partial: merge("scale", keep_earlier(partial))))})
    if "argocd_sync" in selected:
        import argocd_sync_bench  # noqa: PLC0415
        ok &= guarded("argocd_sync", lambda: {"argocd_sync": argocd_sync_bench.measure(args.repetitions)})
    import render  # noqa: PLC0415
    render.render(load_results())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
