"""helm_chart on a re-run (issue 14): a manifest that did not change, whose helm-install job had
completed, costs one structured read (jobs and pods) and no wait; a changed manifest, or an
install that had not completed, still waits for the job and the rollouts.

Run by ansible-playbook on localhost with a real kubectl (every call logged) or kubernetes.core
against the K3S stand-in's API server and platform controllers (the harness of
test_platform_waits.py).
helm-controller keeps a completed job and replaces it only when the chart's job spec changes
(k3s-io/helm-controller pkg/controllers/chart/chart.go: no TTL on the job, jobPatcher deletes and
recreates it on a change), which is what the stand-in imitates (tests/standins/FIDELITY.md).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# make_site is a fixture, found by pytest under this name
from test_platform_waits import CHART, Site, make_site, tasks_run  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import

ROLLOUTS = [{"namespace": "cert-manager", "kind": "deployment", "name": "cert-manager"}]
FAST = {"K3S_STANDIN_SCAN_INTERVAL": "1", "K3S_STANDIN_HELM_DELAY": "1", "K3S_STANDIN_ROLLOUT_DELAY": "3"}


def logged_site(make_site, tmp_path: Path, **env: str) -> tuple[Site, Path]:
    """A Site whose kubectl is a wrapper that appends each call's arguments to a log (one JSON list
    a line), then runs the real kubectl."""
    site = make_site(dict(FAST, **env))
    log = tmp_path / "kubectl.log"
    wrapper = tmp_path / "kubectl-logged.py"
    real = site.kubectl_cmd.split()
    wrapper.write_text("import json, os, sys\nopen(%r, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
                       "os.execv(%r, %r + sys.argv[1:])\n" % (str(log), real[0], real))
    site.kubectl_cmd = "%s %s" % (sys.executable, wrapper)
    site.start()
    assert site.kubectl("get", "crd").returncode == 0  # K3S is running
    return site, log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def job_uid(site: Site) -> str:
    return site.kubectl("-n", "kube-system", "get", "job", "helm-install-cert-manager", "-o",
                        "jsonpath={.metadata.uid}").stdout


def rolled_out(site: Site) -> bool:
    out = site.kubectl("-n", "cert-manager", "get", "deployment", "cert-manager", "-o", "json")
    obj = json.loads(out.stdout)
    return (obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
            and obj["status"].get("availableReplicas") == 1)


HELM = "dictamesh.k3s_gitops.helm_chart : "
CONTROLLER_READS = [HELM + "Read the digest, mode, owner and modification time of the manifest cert-manager.yaml",
                    HELM + "Read the current helm-install job (kubernetes.core on the controller) of cert-manager",
                    HELM + "Read the pods of that job (kubernetes.core on the controller)"]


def rollouts_read(client: str, log: Path, output: str) -> bool:
    if client == "server":
        return ["get", "deployments,daemonsets,statefulsets"] in [call[2:4] for call in calls(log)]
    return HELM + "Wait for the rollout of the workloads (kubernetes.core on the controller) of cert-manager" in tasks_run(output)


@pytest.mark.parametrize("client", ["controller", "server"])
def test_unchanged_completed_chart_is_read_once_and_not_waited_for(make_site, tmp_path, client):
    site, log = logged_site(make_site, tmp_path)
    result, _seconds = site.helm_chart("cert-manager", client, helm_chart_timeout=60, helm_chart_rollouts=ROLLOUTS)
    assert result.returncode == 0, result.stdout[-3000:]
    assert rolled_out(site)
    log.unlink()
    result, _seconds = site.helm_chart("cert-manager", client, helm_chart_timeout=60, helm_chart_rollouts=ROLLOUTS)
    assert result.returncode == 0 and "changed=0" in result.stdout, result.stdout[-3000:]
    # One read of the manifest (not written again), one of the job and its pods; no new-job wait, no
    # job wait, no rollout read.
    assert HELM + "Write the manifest cert-manager.yaml" not in tasks_run(result.stdout)
    if client == "server":
        assert calls(log) == [["-n", "kube-system", "get", "jobs,pods", "-l",
                               "helmcharts.helm.cattle.io/chart=cert-manager", "-o", "json"]], calls(log)
    else:
        assert calls(log) == []
        ran = [name for name in tasks_run(result.stdout) if name.startswith(HELM) and ("Read" in name or "Wait" in name)]
        assert ran == CONTROLLER_READS, ran


@pytest.mark.parametrize("client", ["controller", "server"])
def test_changed_manifest_still_waits_for_the_new_job_and_the_rollout(make_site, tmp_path, client):
    site, log = logged_site(make_site, tmp_path)
    result, _seconds = site.helm_chart("cert-manager", client, helm_chart_timeout=60, helm_chart_rollouts=ROLLOUTS)
    assert result.returncode == 0, result.stdout[-3000:]
    first_uid = job_uid(site)
    log.unlink()
    changed = CHART.format(name="cert-manager").replace("enabled: true", "enabled: true\n    replicaCount: 1")
    result, _seconds = site.helm_chart("cert-manager", client, helm_chart_timeout=60, helm_chart_rollouts=ROLLOUTS,
                                       helm_chart_manifest_content=changed)
    assert result.returncode == 0 and "changed=1" in result.stdout, result.stdout[-3000:]
    assert job_uid(site) not in ("", first_uid), "no new helm-install job after the change"
    assert rolled_out(site), "the role returned before the new generation rolled out"
    assert rollouts_read(client, log, result.stdout), (calls(log), tasks_run(result.stdout))


@pytest.mark.parametrize("client", ["controller", "server"])
def test_rerun_after_an_unfinished_install_waits_for_it(make_site, tmp_path, client):
    # The manifest is on the server but its install was never awaited (a run stopped right after
    # the write): the re-run's write changes nothing, yet the job has not completed (each helm
    # attempt takes 15 s here, so it is still running or not even started when the re-run reads it).
    site, log = logged_site(make_site, tmp_path, K3S_STANDIN_HELM_DELAY="15")
    manifest = site.manifests / "cert-manager.yaml"
    manifest.write_text(CHART.format(name="cert-manager"))
    manifest.chmod(0o600)
    result, _seconds = site.helm_chart("cert-manager", client, helm_chart_timeout=60, helm_chart_rollouts=ROLLOUTS)
    assert result.returncode == 0 and "changed=0" in result.stdout, result.stdout[-3000:]
    assert_waited_for_the_install(site, log, client, result.stdout)


def assert_waited_for_the_install(site, log, client, output) -> None:
    """The re-run returned only after the current job completed and the workloads rolled out, which
    it read."""
    job = json.loads(site.kubectl("-n", "kube-system", "get", "job", "helm-install-cert-manager", "-o", "json").stdout)
    assert any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"].get("conditions", [])), \
        "the re-run returned before the install completed"
    assert rolled_out(site), "the re-run returned before the rollout"
    assert rollouts_read(client, log, output), (calls(log), tasks_run(output))


def test_rollouts_of_one_namespace_are_read_together(make_site, tmp_path):
    # cert-manager's three Deployments, ready as soon as the job completed: one poll, one read.
    site, log = logged_site(make_site, tmp_path, K3S_STANDIN_ROLLOUT_DELAY="0")
    rollouts = [{"namespace": "cert-manager", "kind": "deployment", "name": name}
                for name in ("cert-manager", "cert-manager-cainjector", "cert-manager-webhook")]
    result, _seconds = site.helm_chart("cert-manager", helm_chart_timeout=60, helm_chart_rollouts=rollouts)
    assert result.returncode == 0, result.stdout[-3000:]
    reads = [call for call in calls(log) if call[:2] == ["-n", "cert-manager"]]
    assert reads == [["-n", "cert-manager", "get", "deployments,daemonsets,statefulsets", "-o", "json"]], reads


@pytest.mark.parametrize("client", ["controller", "server"])
def test_missing_workload_is_named_after_the_timeout(make_site, tmp_path, client):
    site, _log = logged_site(make_site, tmp_path, K3S_STANDIN_ROLLOUT_DELAY="0")
    rollouts = [{"namespace": "cert-manager", "kind": "deployment", "name": "cert-manager"},
                {"namespace": "cert-manager", "kind": "statefulset", "name": "no-such-thing"}]
    result, _seconds = site.helm_chart("cert-manager", client, helm_chart_timeout=4, helm_chart_rollouts=rollouts)
    assert result.returncode != 0
    assert "not rolled out within 4 s: cert-manager/statefulset/no-such-thing: does not exist" in result.stdout, \
        result.stdout[-3000:]


@pytest.mark.parametrize("client", ["controller", "server"])
def test_rerun_after_a_run_stopped_right_after_a_changed_write_waits_for_the_new_job(make_site, tmp_path, monkeypatch, client):
    # A run wrote a CHANGED manifest and stopped before K3S's deploy controller applied it (it scans
    # every 15 s: k3s pkg/deploy/controller.go). The re-run's write changes nothing and the job it
    # reads is the previous spec's, still complete: only its creationTimestamp, older than the
    # manifest's mtime, tells it that helm-controller has yet to replace it (chart.go jobPatcher).
    site, log = logged_site(make_site, tmp_path)
    manifest = site.manifests / "cert-manager.yaml"
    result, _seconds = site.helm_chart("cert-manager", client, helm_chart_timeout=60, helm_chart_rollouts=ROLLOUTS)
    assert result.returncode == 0, result.stdout[-3000:]
    old_uid = job_uid(site)
    # From now on the deploy controller scans every 20 s (at least 19 s after its last scan): the
    # re-run reads the jobs long before the changed manifest is applied.
    monkeypatch.setenv("K3S_STANDIN_SCAN_INTERVAL", "20")
    time.sleep(1.1)  # the manifest's mtime is a later second than the old job's creationTimestamp
    changed = CHART.format(name="cert-manager").replace("enabled: true", "enabled: true\n    replicaCount: 1")
    manifest.write_text(changed)
    manifest.chmod(0o600)
    assert job_uid(site) == old_uid  # not applied yet: the old job is still there, complete
    log.unlink()
    result, _seconds = site.helm_chart("cert-manager", client, helm_chart_timeout=60, helm_chart_rollouts=ROLLOUTS,
                                       helm_chart_manifest_content=changed)
    assert result.returncode == 0 and "changed=0" in result.stdout, result.stdout[-3000:]
    assert job_uid(site) not in ("", old_uid), "the re-run returned before helm-controller replaced the old job"
    assert_waited_for_the_install(site, log, client, result.stdout)
