"""The K3S stand-in's runtime module (standin/runtime.py): what a running K3S leaves on a node, and
that the k3s_killall module (roles/k3s_uninstall) removes it as k3s-killall.sh does.

The end-to-end cases run the runtime for real, as root, inside private mount, network and PID
namespaces (`unshare`) with tmpfs over /run and /var/lib, so nothing of the machine is touched.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests/standins/k3s"))

from standin import runtime  # noqa: E402

MODULE = REPO / "plugins/modules/k3s_killall.py"
DATA = "/var/lib/rancher/k3s"


# --------------------------------------------------------------------------- plan and switches


def test_pods_look_like_containerd_and_kubelet_ones() -> None:
    pods = runtime.pod_plan("node-1:" + DATA)
    assert pods == runtime.pod_plan("node-1:" + DATA)  # deterministic per node
    assert len(pods) == 2 and len({p["id"] for p in pods}) == 2
    for pod in pods:
        assert len(pod["id"]) == 64 and pod["netns"].startswith("cni-") and len(pod["netns"]) == 40
        rootfs, token = pod["mounts"]
        assert rootfs == "%s/%s/rootfs" % (runtime.TASK_DIR, pod["id"])
        assert token.startswith("/var/lib/kubelet/pods/%s/volumes/kubernetes.io~projected/kube-api-access-" % pod["uid"])
        for container in pod["containers"]:
            assert DATA not in " ".join(container["args"])  # pkill --full on the data dir misses them
            assert container["cwd"] in pod["mounts"]
    assert [c["args"][0] for c in pods[1]["containers"]] == ["/pause", "nginx: master process"]


def test_shim_command_line_is_what_k3s_killall_greps_for() -> None:
    bindir = runtime.shim_dir(DATA, b"binary")
    assert bindir == DATA + "/data/" + __import__("hashlib").sha256(b"binary").hexdigest() + "/bin"
    command = runtime.shim_command(bindir + "/" + runtime.SHIM_NAME, "abc")
    # install.sh getshims(): grep -w "${K3S_DATA_DIR}/data/[^/]*/bin/containerd-shim"
    assert __import__("re").search(r"/var/lib/rancher/k3s/data/[^/]*/bin/containerd-shim", " ".join(command))
    compile(runtime.SHIM_SOURCE, "shim", "exec")


@pytest.mark.parametrize("env, euid, expected", [
    ({"INVOCATION_ID": "x"}, 0, True),
    ({}, 0, False),                                          # not started by systemd
    ({"INVOCATION_ID": "x"}, 1000, False),                   # not root
    ({"INVOCATION_ID": "x", "K3S_STANDIN_ROOT": "/tmp/r"}, 0, False),  # unit tests' fake root
    ({"INVOCATION_ID": "x", "K3S_STANDIN_RUNTIME": "0"}, 0, False),
])
def test_runs_only_on_a_real_node(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], euid: int,
                                  expected: bool) -> None:
    for name in ("INVOCATION_ID", "K3S_STANDIN_ROOT", "K3S_STANDIN_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(runtime.os, "geteuid", lambda: euid)
    assert runtime.enabled() is expected


def test_hook_is_registered_after_day2() -> None:
    from standin import core
    assert core.EXTENSION_MODULES[-1] == "runtime" and "day2" in core.EXTENSION_MODULES


def test_running_shims_reads_command_lines(tmp_path: Path) -> None:
    for pid, args in ((10, ["/usr/bin/python3", DATA + "/data/ab/bin/" + runtime.SHIM_NAME, "-id", "x"]),
                      (11, ["/pause", "infinity"]), (12, ["/usr/local/bin/k3s", "server"])):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes("\0".join(args).encode() + b"\0")
    (tmp_path / "self").mkdir()
    assert runtime.running_shims(DATA, str(tmp_path)) == [10]


# --------------------------------------------------------------------------- end to end in namespaces

NEEDS = [tool for tool in ("unshare", "ip", "mount", "iptables-save", "ip6tables-save", "pkill") if not shutil.which(tool)]
namespaced = pytest.mark.skipif(os.geteuid() != 0 or bool(NEEDS), reason="needs root and %s" % NEEDS)

DRIVER = textwrap.dedent(r"""
    import json, os, subprocess, sys, time
    sys.path.insert(0, sys.argv[1])
    for path in ("/run", "/var/lib"):
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", path], check=True)
    subprocess.run(["mount", "-t", "sysfs", "sysfs", "/sys"], check=True)  # this namespace's links
    # systemd mounts / and /run shared: `ip netns add` then shows each cni- namespace twice in
    # /proc/self/mounts (its /run/netns bind mount is a peer), and one umount removes both.
    subprocess.run(["mount", "--make-shared", "/run"], check=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for tool in ("iptables", "ip6tables"):
        subprocess.run([tool, "-w", "-A", "INPUT", "-p", "tcp", "--dport", "2222", "-m", "comment",
                        "--comment", "unrelated rule", "-j", "ACCEPT"], check=True)
    from standin import runtime
    sys.argv[0] = sys.argv[2]  # the "k3s binary" the shims' directory is hashed from
    runtime.start({})
    time.sleep(1)

    def state():
        procs = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = open("/proc/%s/stat" % pid).read()
                args = open("/proc/%s/cmdline" % pid, "rb").read().decode().replace("\0", " ").strip()
                environ = open("/proc/%s/environ" % pid, "rb").read().decode("utf-8", "replace")
            except OSError:
                continue
            if stat[stat.rfind(")") + 2] == "Z":
                continue
            if "K3S_STANDIN_CONTAINER=" in environ or "containerd-shim" in args:
                procs[pid] = {"args": args, "container": "K3S_STANDIN_CONTAINER=" in environ,
                              "cwd": os.path.realpath("/proc/%s/cwd" % pid)}
        mounts = [l.split()[1] for l in open("/proc/self/mounts")
                  if l.split()[1].startswith(("/run/k3s", "/var/lib/kubelet", "/run/netns/cni-"))]
        save = lambda tool: subprocess.run([tool + "-save"], capture_output=True, text=True).stdout.splitlines()
        return {"processes": procs, "mounts": mounts,
                "netns": sorted(n for n in os.listdir("/run/netns") if n.startswith("cni-")),
                "links": sorted(os.listdir("/sys/class/net")),
                "iptables": save("iptables"), "ip6tables": save("ip6tables")}

    def umount(path):
        result = subprocess.run(["umount", path], capture_output=True, text=True)
        return {"rc": result.returncode, "stderr": result.stderr}

    out = {"started": state()}
    used = {p["cwd"] for p in out["started"]["processes"].values()}
    kubelet = [m for m in out["started"]["mounts"] if m.startswith("/var/lib/kubelet/pods/") and m in used]
    if sys.argv[3] == "old-role":  # what roles/k3s_uninstall did before: pkill --full, then umount
        subprocess.run(["pkill", "--signal", "KILL", "--full", "/var/lib/rancher/k3s/data/"])
        time.sleep(1)
        out["after"] = state()
        out["umount"] = umount(kubelet[0])
    else:
        out["umount"] = umount(kubelet[0])
        def module(check):
            args = {"ANSIBLE_MODULE_ARGS": {"data_dir": "/var/lib/rancher/k3s", "_ansible_check_mode": check}}
            with open("/run/args.json", "w") as handle:
                json.dump(args, handle)
            result = subprocess.run([sys.executable, sys.argv[4], "/run/args.json"], capture_output=True, text=True)
            return json.loads(result.stdout or json.dumps({"failed": True, "msg": result.stderr}))
        out["check"] = module(True)
        out["after_check"] = state()
        out["first"] = module(False)
        out["after"] = state()
        out["second"] = module(False)
    print(json.dumps(out))
""")


def run_in_namespaces(tmp_path: Path, mode: str) -> dict[str, Any]:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    binary = tmp_path / "k3s"
    binary.write_bytes(b"stand-in binary " + mode.encode())
    env = dict(os.environ, K3S_STANDIN_RUNTIME="1")
    result = subprocess.run(
        ["unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc", "--propagation", "private",
         sys.executable, str(driver), str(REPO / "tests/standins/k3s"), str(binary), mode, str(MODULE)],
        capture_output=True, text=True, timeout=240, env=env, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def k3s_rules(lines: list[str]) -> list[str]:
    return [line for line in lines if any(k in line.upper() for k in ("KUBE-", "CNI-", "FLANNEL"))]


@namespaced
def test_runtime_leaves_what_k3s_leaves_and_the_old_uninstall_stopped_at_a_busy_mount(tmp_path: Path) -> None:
    out = run_in_namespaces(tmp_path, "old-role")
    started = out["started"]
    shims = [p for p in started["processes"].values() if not p["container"]]
    containers = [p for p in started["processes"].values() if p["container"]]
    assert len(shims) == 2 and all(DATA + "/data/" in p["args"] for p in shims), started["processes"]
    assert len(containers) == 4 and not any(DATA in p["args"] for p in containers), containers
    assert len(started["netns"]) == 2 and {"cni0", "flannel.1"} <= set(started["links"])
    assert [line for line in started["links"] if line.startswith("veth")], started["links"]
    for chain in ("KUBE-", "CNI-", "FLANNEL-"):
        assert any(chain in line for line in started["iptables"]), chain
    assert k3s_rules(started["ip6tables"])
    # The defect of issue 11: killing what names the data dir leaves the containers, whose working
    # directories keep the mounts busy.
    assert not [p for p in out["after"]["processes"].values() if not p["container"]]
    assert len([p for p in out["after"]["processes"].values() if p["container"]]) == 4
    assert out["umount"]["rc"] != 0 and "busy" in out["umount"]["stderr"].lower(), out["umount"]


@namespaced
def test_k3s_killall_cleans_it_all_and_keeps_other_rules(tmp_path: Path) -> None:
    out = run_in_namespaces(tmp_path, "module")
    assert out["umount"]["rc"] != 0  # busy before the clean-up
    check = out["check"]
    assert check["changed"] and len(check["killed"]) == 6 and not check.get("failed"), check
    assert out["after_check"] == out["started"] or out["after_check"]["processes"] == out["started"]["processes"]
    first = out["first"]
    assert first["changed"] and not first.get("failed"), first.get("msg", first)
    after = out["after"]
    assert after["processes"] == {} and after["mounts"] == [] and after["netns"] == []
    assert not {"cni0", "flannel.1"} & set(after["links"]) and not [n for n in after["links"] if n.startswith("veth")]
    for tool in ("iptables", "ip6tables"):
        assert k3s_rules(after[tool]) == [], after[tool]
        assert any("unrelated rule" in line for line in after[tool]), after[tool]
    assert set(first["rules"]) == {"iptables", "ip6tables"}
    second = out["second"]
    assert second["changed"] is False and not second.get("failed"), second
