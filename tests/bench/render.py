"""Render docs/BENCHMARKS.md and docs/bench/time_per_host.png from docs/bench/results.json.

The whole document is generated: change the text here, then `tests/bench/run.py --render`.
"""
from __future__ import annotations

from typing import Any

from common import REPO, log

DOC = REPO / "docs" / "BENCHMARKS.md"
PLOT = REPO / "docs" / "bench" / "time_per_host.png"


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if c is None else str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def load_cell(fig: dict[str, Any]) -> str:
    if fig.get("load1_max") is None:
        return f"{fig.get('load1_mean', '?')}"
    return f"{fig.get('load1_mean', '?')} (max {fig.get('load1_max')})"


def section_machine(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    return "\n".join([
        "## Machine",
        "",
        table(["", ""], [
            ["CPU", f"{m.get('cores')} cores, {m.get('cpu_model')}"],
            ["Memory", f"{m.get('mem_gib')} GiB"],
            ["OS / kernel", f"{m.get('os')} / {m.get('kernel')}"],
            ["VM acceleration", f"{m.get('vm_accel')} (see docs/lab.md: /dev/kvm is a paravirtual "
                                "flavour without vmx/svm, so QEMU emulates the CPU)"],
            ["Python / ansible-core", f"{m.get('python')} / {m.get('ansible_core')}"],
        ]),
        "",
        "The machine has 2 cores and was shared: other jobs' QEMU VMs (molecule scenarios) ran "
        "during most runs. Every figure below carries the 1-minute load average sampled every 5 s "
        "during its run (mean and maximum) and the number of QEMU processes running when it "
        "started, ours included. With a load of 6-14 on 2 cores the wall times are upper bounds; "
        "re-run on an idle machine before comparing with other figures.",
    ])


def section_site(results: dict[str, Any]) -> str:
    site = results.get("site")
    out = ["## 1. site.yml on the VM lab: first converge and re-run", ""]
    if not site:
        err = results.get("site_error", {}).get("error", "not run yet")
        return "\n".join(out + [f"No result: {err}"])
    out += [
        f"{site['servers']} server + {site['agents']} agents, QEMU {site.get('accel')} VMs with "
        f"1 vCPU and {site.get('memory_mib')} MiB each (tests/vmlab/vmlab.py, boot to SSH "
        f"{site.get('boot_s')} s), no network beyond the controller: the K3S stand-in from the "
        "artifact mirror, the Argo CD API stand-in on the controller, the Argo CD CLI stand-in. "
        "The wiring is molecule/site's, read at run time: its `group_vars` and environment from "
        "molecule/site/molecule.yml, then molecule/site/prepare.yml (starts the Argo CD stand-in, "
        "checks the VMs) and molecule/site/converge.yml (publishes the stand-ins, imports the root "
        "site.yml) twice. Output through the `ansible.posix.json` callback; forks from ansible.cfg "
        f"(20). Measured {site['when']}.",
        "",
    ]
    rows = []
    for key, label in (("converge", "first converge"), ("rerun", "re-run (idempotence)")):
        r = site[key]
        t = r["recap"]["totals"]
        rows.append([label, round(r["wall_s"]), r["recap"]["tasks_run"],
                     r["recap"]["host_task_results"], t["ok"], t["changed"], t["skipped"],
                     round(r["cpu_s"], 1), load_cell(r), r.get("qemu_vms")])
    out.append(table(["run", "wall s", "tasks run", "host results", "ok", "changed", "skipped",
                      "controller CPU s", "load1 mean (max)", "QEMU VMs"], rows))
    ratio = site.get("rerun_ratio") or (round(site["rerun"]["wall_s"] / site["converge"]["wall_s"], 3)
                                        if site["converge"].get("wall_s") else None)
    out += ["", f"Re-run / first converge (wall): **{ratio}** (target 0.25). "
            f"Commit measured: {site.get('commit', 'not recorded')}.", "",
            f"Idempotent (re-run changed=0): **{'yes' if site['idempotent'] else 'NO'}**. "
            "\"tasks run\" counts the tasks the run executed (each task once, whatever the number "
            "of hosts; includes the controller play that publishes the stand-ins); \"host results\" "
            "is ok + skipped + failed + unreachable summed over the hosts of the recap (ok already "
            "includes changed). Controller CPU is user+sys of ansible-playbook and all its children, "
            "plus the SSH ControlPersist masters alive at the end.", "",
            "What a re-run leaves out since issue 14 (figures measured before it, with commit "
            "'not recorded', do not show it; compare with a baseline before it): for each "
            "chart (ingress, cert-manager, Longhorn, Argo CD) whose manifest is unchanged and whose "
            "helm-install job had completed, the new-job wait, the job wait and the rollout wait "
            "(one read of the job and its pods remains, through kubernetes.core from the controller by "
            "default); the fact gathering of the Argo CD CLI plays (the facts come from k3s_cluster.yml's "
            "first play, which gathers only the platform, distribution, pkg_mgr and network subsets); in "
            "node_prep, every module run whose item one read of the node (kernel parameters and modules, "
            "dpkg status, swap and fstab, the two files it writes, its services) finds already right: "
            "the modprobe and sysctl loops, the two templates, apt, the two service starts, the fstab "
            "edit and the multipathd check; in k3s_install, the second download of the release's "
            "checksum file and the second `k3s --version` of a host in the same run, and every file, "
            "binary and service task whose item one read (digests, modes, owners, the service's state) "
            "finds already right. On first runs and changes the rollout wait reads each "
            "workload with one GET per poll.",
            "",
            "Slowest tasks of the first converge:", ""]
    out.append(table(["task", "play", "s"],
                     [[s["task"], s["play"], s["seconds"]] for s in site["converge"]["slowest"]]))
    out += ["", "Slowest tasks of the re-run:", ""]
    out.append(table(["task", "play", "s"],
                     [[s["task"], s["play"], s["seconds"]] for s in site["rerun"]["slowest"]]))
    out += ["", "The package installation (node_prep: open-iscsi, nfs-common, cryptsetup, "
            "systemd-timesyncd for Longhorn and time sync) goes to the Debian mirror through the "
            "VMs' user-mode network and runs dpkg under software emulation: it dominates the first "
            "converge here and would be far shorter on real hosts or with KVM. A task's time is "
            "the wall time of the task across all hosts of its batch."]
    return "\n".join(out)


def median(values: list[float]) -> float | None:
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else round((ordered[mid - 1] + ordered[mid]) / 2, 2)


def site_figures(site: dict[str, Any] | None) -> dict[str, Any]:
    if not site or "converge" not in site:
        return {}
    first, second = site["converge"], site["rerun"]
    return {"first converge wall s": round(first["wall_s"]), "re-run wall s": round(second["wall_s"]),
            "re-run / first": site.get("rerun_ratio") or round(second["wall_s"] / first["wall_s"], 3),
            "re-run tasks run": second["recap"]["tasks_run"], "re-run changed": second["recap"]["totals"]["changed"],
            "re-run controller CPU s": round(second["cpu_s"], 1),
            "load1 mean (max), first": load_cell(first), "load1 mean (max), re-run": load_cell(second)}


def upgrade_figures(data: dict[str, Any] | None) -> dict[str, Any]:
    if not data or "nodes" not in data:
        return {}
    nodes = data["nodes"]
    out: dict[str, Any] = {"median overhead s": data.get("median_overhead_s"),
                           "median window s": median([r["window_s"] for r in nodes]),
                           "median drain s": median([r["drain_s"] for r in nodes]),
                           "median restart-to-Ready s": median([r["restart_to_ready_s"] for r in nodes]),
                           "load1 mean (max), whole upgrade": load_cell(data["run"])}
    for r in nodes:
        out[f"{r['host']}: window / drain / restart / overhead s"] = (
            f"{r['window_s']} / {r['drain_s']} / {r['restart_to_ready_s']} / {r['overhead_s']}"
            + (f" (load {load_cell(r)})" if r.get("load1_mean") is not None else ""))
    return out


def section_baseline(results: dict[str, Any]) -> str:
    base = results.get("baseline")
    out = ["## 5. Side by side with a baseline commit (`BENCH_BASELINE=<rev>`)", ""]
    if not base:
        err = results.get("baseline_error", {}).get("error")
        how = ("Not measured yet: `BENCH_BASELINE=<rev> make bench BENCH=\"site upgrade\"` runs the VM "
               "benchmarks for this checkout, then for <rev> from a temporary git worktree, on fresh VMs of the "
               "same spec, back to back.")
        return "\n".join(out + [f"No result: {err}" if err else how])
    out += [f"Baseline {base['rev']} (commit {base.get('commit')}), measured {base.get('when')} on "
            f"{base.get('vms')}; this checkout: commit "
            f"{(results.get('site') or results.get('upgrade') or {}).get('commit', 'not recorded')}. "
            "Each figure carries the load average of its own run: compare runs made at similar load.", ""]
    rows = []
    for label, ours, theirs in (("site", site_figures(results.get("site")), site_figures(base.get("site"))),
                                ("upgrade", upgrade_figures(results.get("upgrade")),
                                 upgrade_figures(base.get("upgrade")))):
        for key in list(ours) + [k for k in theirs if k not in ours]:
            rows.append([label, key, ours.get(key, ""), theirs.get(key, "")])
    out.append(table(["benchmark", "figure", "this checkout", f"baseline {base['rev']}"], rows))
    for key in ("site_error", "upgrade_error"):
        if key in base:
            out += ["", f"Baseline {key.split('_', maxsplit=1)[0]} failed: {base[key].get('error', '')[:500]}"]
    if base.get("site", {}).get("rerun"):
        out += ["", "Slowest tasks of the baseline's re-run:", "",
                table(["task", "play", "s"], [[t["task"], t["play"], t["seconds"]]
                                              for t in base["site"]["rerun"].get("slowest", [])])]
    return "\n".join(out)


def section_scale(results: dict[str, Any]) -> str:
    scale = results.get("scale")
    out = ["## 2. Controller time per host (3, 10, 30 hosts)", ""]
    if not scale:
        err = results.get("scale_error", {}).get("error", "not run yet")
        return "\n".join(out + [f"No result: {err}"])
    out += [
        "Hosts are podman containers (runc, `--privileged --systemd=always`, systemd as PID 1, "
        "sshd) made from the vmlab base image's root file system, on podman's default bridge; "
        "ansible reaches them over **SSH** at their bridge addresses (ansible.builtin.ssh with "
        "ControlPersist and pipelining, as ansible.cfg sets them: the real connection path, not "
        "the podman connection). The playbook is **playbooks/k3s_cluster.yml without its node_prep "
        "play** (modprobe and host-wide sysctls cannot run in containers; the plan is generated "
        "from the playbook at run time): input validation with the release checksum check, 1 K3S "
        "server and N-1 agents with the K3S stand-in from an artifact mirror on the bridge, every "
        "node Ready, the kubeconfig fetched. Each size gets fresh containers; the playbook runs "
        "twice (first install, then the idempotent re-run). `forks` is given with `-f` "
        "(ansible's default is 5; the project's ansible.cfg sets 20). Per host = total / hosts. "
        "CPU = user+sys of ansible-playbook, its workers and ssh processes, plus the SSH masters "
        "left alive at the end (the containers' own CPU is not counted).",
        "",
    ]
    rows = []
    for run in scale["runs"]:
        if "error" in run:
            rows.append([run["hosts"], run["forks"], "incomplete: " + run["error"][:200].replace("|", "/")]
                        + [""] * 8)
        for key, label in (("first", "first"), ("rerun", "re-run")):
            if key not in run:
                continue
            r = run[key]
            rows.append([run["hosts"], run["forks"], label, r["wall_s"], r["wall_per_host_s"],
                         r["cpu_s"], r["cpu_per_host_s"], r.get("tasks_run"),
                         (r.get("recap") or {}).get("changed"), load_cell(r), r.get("qemu_vms")])
    out.append(table(["hosts", "forks", "run", "wall s", "wall s/host", "CPU s", "CPU s/host",
                      "tasks run", "changed", "load1 mean (max)", "QEMU VMs"], rows))
    out += ["", f"![time per host against host count](bench/{PLOT.name})", "",
            "Reading the recorded runs: the controller CPU per host stays between about 3 and 5 s "
            "from 3 to 30 hosts (it is highest at 3 hosts, where the per-run fixed part weighs "
            "most: validation, the single server, the readiness wait), so ansible's controller cost "
            "grows about linearly with the host count, about 100 tasks per host. Wall time per "
            "host falls from 3 to 10 hosts as the 5 forks fill up; at 30 hosts the first install "
            "is dominated by the agents' file writes and service starts (each task waits for 6 "
            "batches of 5 hosts) on a machine at load 10-15, so that point says more about the "
            "machine than about the collection. Raise `forks` (ansible.cfg has 20) for large "
            "inventories: with 5 the agents' tasks run in batches of 5.", "",
            "Note: 30 containers with systemd need more than the kernel's default 128 inotify "
            "instances per user (systemd holds about 7 per container, all charged to root); the "
            "benchmark raises `fs.inotify.max_user_instances` on the host for the run when needed "
            "and restores it afterwards (without that, containers 22-30 never reached sshd)."]
    return "\n".join(out)


def section_argocd(results: dict[str, Any]) -> str:
    data = results.get("argocd_sync")
    out = ["## 3. argocd_sync: return latency after Synced+Healthy", ""]
    if not data:
        err = results.get("argocd_sync_error", {}).get("error", "not run yet")
        return "\n".join(out + [f"No result: {err}"])
    cfg = data["standin_config"]
    out += [
        "Time from the application turning Synced+Healthy in the Argo CD API stand-in (its "
        "timeline's `synced_healthy` mark) to the module's `SyncRunner.run()` returning, "
        "in-process (no ansible-playbook start-up, no SSH): tests/bench/argocd_sync_bench.py. "
        f"Stand-in timings: operation picked up after {cfg['pickup_delay']} s, runs "
        f"{cfg['op_duration']} s, reconciled after {cfg['reconcile_delay']} s, Healthy after "
        f"{cfg['health_delay']} s. Nearest-rank percentiles. Measured {data['when']}, load1 "
        f"{data['load1_before']} before, {data['load1_after']} after.",
        "",
        table(["wait method", "runs", "median ms", "p90 ms", "min ms", "max ms"],
              [[r["method"], r["n"], r["median_ms"], r["p90_ms"], r["min_ms"], r["max_ms"]]
               for r in data["rows"]]),
        "",
        "Polling returns on the first poll after the state changed: its latency is below one "
        "interval. The stand-in's timings are fixed, so the polls fall at nearly the same moment "
        "of each run and the spread is small; against a real server it ranges from 0 to the "
        "interval (half of it on average). The stream returns on the event.",
    ]
    return "\n".join(out)


def section_upgrade(results: dict[str, Any]) -> str:
    data = results.get("upgrade")
    out = ["## 4. Upgrade overhead per node beyond drain and restart", ""]
    if not data:
        err = results.get("upgrade_error", {}).get("error", "not run yet")
        return "\n".join(out + [f"No result: {err}"])
    run = data["run"]
    out += [
        (f"playbooks/upgrade_k3s.yml to {data['target']} on the site benchmark's VMs right after "
         "its re-run (the whole platform installed; no etcd snapshot: SQLite datastore). "
         if data.get("wiring") == "molecule/site" else
         f"playbooks/upgrade_k3s.yml to {data['target']} on fresh VMs ({data['servers']} server + "
         f"{data['agents']} agents) with molecule/upgrade's wiring, read at run time: its "
         "group_vars (embedded etcd), then molecule/upgrade/prepare.yml (K3S stand-in builds of "
         "three versions on the artifact mirror, playbooks/k3s_cluster.yml at the old version); "
         "the pre-upgrade etcd snapshot is taken (outside the node windows). ")
        + "Per node, from the controller's task timings (ansible.posix.json): the "
        "maintenance window is from the start of *Cordon the node* to the end of *Uncordon the "
        "node*; drain is the *Drain the node* task; restart-to-Ready is from the start of *Restart "
        "K3S with the new binary* to the end of *Wait until the node is Ready at the new version*; "
        "overhead = window - drain - restart-to-Ready (what remains: cordon, installing the verified "
        "binary, uncordon, and the per-task cost of ansible over SSH; the copy of the previous binary "
        "for a rollback is made before the cordon since issue 14's upgrade change, inside the window "
        "in a baseline before it). The K3S stand-in's own records (cordon/drain/uncordon times on the first server, "
        "in the VM's clock) are given beside them as a cross-check. Whole run: "
        f"{round(run['wall_s'])} s wall, {run['recap']['tasks_run']} tasks, changed "
        f"{run['recap']['totals']['changed']}, load1 {load_cell(run)}, {run.get('qemu_vms')} QEMU "
        "VMs.",
        "",
        table(["node", "window s", "drain s", "restart-to-Ready s", "overhead s",
               "stand-in cordon-to-uncordon s", "stand-in drain s", "load1 in window mean (max)"],
              [[r["host"], r["window_s"], r["drain_s"], r["restart_to_ready_s"], r["overhead_s"],
                r["standin_cordon_to_uncordon_s"], r["standin_drain_s"],
                load_cell(r) if r.get("load1_mean") is not None else "not recorded"] for r in data["nodes"]]),
        "",
        f"Median overhead per node: **{data['median_overhead_s']} s** (target 10 s).",
        "",
        "Slowest tasks of the upgrade run:",
        "",
        table(["task", "play", "s"], [[t["task"], t["play"], t["seconds"]] for t in run.get("slowest", [])]),
        "",
        "The stand-in's drain evicts nothing (the stand-in runs no pods): the *Drain the node* "
        "task's time is ansible's task and the drain call through `cluster_kube_client` "
        "(kubernetes.core on the controller by default). Nodes are upgraded one after the other, so "
        "the load changed during the run: each node's row carries the load of its own window.",
    ]
    return "\n".join(out)


CAVEATS = """## Caveats

- Shared 2-core machine: other jobs' VMs ran during most runs (see the load and QEMU columns).
  Under software emulation every guest is about 11x slower than the host, and each running VM
  takes CPU from the controller and from the other VMs: the VM wall times measure this machine
  under this load, not the collection alone.
- Stand-ins, not K3S or Argo CD (docs/lab.md, tests/standins/): K3S starts in seconds, pulls no
  images and runs no pods, so the K3S and platform steps are faster than on a real cluster, and
  drains evict nothing. The figures measure the collection's own work (ansible tasks, SSH, the
  checks it makes) rather than K3S.
- Containers for the scale benchmark skip node_prep (kernel modules, sysctls, packages, swap,
  time sync): on VMs or machines that play adds its own per-host work.
- The upgrade right after the site benchmark failed at the pre-upgrade etcd snapshot: the
  site scenario's single server keeps K3S's default SQLite datastore, which has no etcd
  snapshot, and `cluster_upgrade_snapshot` defaults to true (the error says so clearly). The
  bench now passes `cluster_upgrade_snapshot=false` on that path; the upgrade figures above come
  from molecule/upgrade's wiring (embedded etcd, snapshot taken) on fresh VMs.
- One run per configuration for the VM and scale benchmarks (they take minutes to tens of
  minutes each here); argocd_sync repeats each method.
"""


def render_doc(results: dict[str, Any]) -> str:
    parts = [
        "# Benchmarks",
        "",
        "Generated by `tests/bench/run.py` (`make bench`) from the raw results in "
        "[bench/results.json](bench/results.json); do not edit by hand (the text lives in "
        "tests/bench/render.py). `make bench` is not part of `make test` or CI.",
        "",
        "```sh",
        ".venv/bin/python tests/bench/run.py                    # all: site upgrade scale argocd_sync",
        ".venv/bin/python tests/bench/run.py scale --sizes 3,10,30 --forks 5,20",
        ".venv/bin/python tests/bench/run.py argocd_sync -n 20",
        ".venv/bin/python tests/bench/run.py --render           # re-render this page and the plot",
        "BENCH_BASELINE=HEAD~1 .venv/bin/python tests/bench/run.py site upgrade  # and side by side with HEAD~1",
        "```",
        "",
        "Needs root, the vmlab packages (qemu-system-x86, qemu-utils, debootstrap), podman and runc "
        "(scale), and matplotlib in the venv (the plot). Work files, VM state and the "
        "ansible-playbook JSON logs go to tests/output/bench/ (git-ignored).",
        "",
        section_machine(results), "", section_site(results), "", section_scale(results), "",
        section_argocd(results), "", section_upgrade(results), "", section_baseline(results), "", CAVEATS,
    ]
    return "\n".join(parts)


def plot(results: dict[str, Any]) -> bool:
    scale = results.get("scale")
    if not scale:
        return False
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    done = [r for r in scale["runs"] if "first" in r and "rerun" in r]
    if not done:
        return False
    for forks in sorted({r["forks"] for r in done}):
        runs = sorted((r for r in done if r["forks"] == forks), key=lambda r: r["hosts"])
        hosts = [r["hosts"] for r in runs]
        for key, label, style in (("first", "first install", "-"), ("rerun", "re-run", "--")):
            wall = [r[key]["wall_per_host_s"] for r in runs]
            cpu = [r[key]["cpu_per_host_s"] for r in runs]
            ax.plot(hosts, wall, style, marker="o", label=f"wall / host, {label}, forks={forks}")
            ax.plot(hosts, cpu, style, marker="s", label=f"controller CPU / host, {label}, forks={forks}")
            for x, y, r in zip(hosts, wall, runs):
                ax.annotate(f"load {r[key]['load1_mean']}", (x, y), textcoords="offset points",
                            xytext=(4, 4), fontsize=7)
    ax.set_xlabel("hosts (podman containers over SSH)")
    ax.set_ylabel("seconds per host")
    ax.set_xscale("log")
    ax.set_xticks(sorted({r["hosts"] for r in done}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_ylim(bottom=0)
    ax.set_title("k3s_cluster.yml (without node_prep): time per host against host count\n"
                 "2-core shared machine; load1 mean annotated", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT)
    plt.close(fig)
    return True


def render(results: dict[str, Any]) -> None:
    DOC.write_text(render_doc(results) + "\n", encoding="utf-8")
    log(f"wrote {DOC.relative_to(REPO)}")
    if plot(results):
        log(f"wrote {PLOT.relative_to(REPO)}")
