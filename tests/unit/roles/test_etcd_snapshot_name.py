"""etcd_snapshot's reading of the snapshot name (roles/etcd_snapshot/vars/main.yml), evaluated by
ansible-playbook itself on outputs of `k3s etcd-snapshot save`: K3S v1.34 logs the name on stderr
through logrus (k3s-io/k3s pkg/cli/etcdsnapshot/etcd_snapshot.go); stdout is read too."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
LOGRUS = 'time="2026-11-28T10:00:00Z" level=info msg="Snapshot {} saved."'
CASES = [
    ({"stdout": "", "stderr": LOGRUS.format("pre-upgrade-v1-35-0-k3s1-server-1-1795861065")},
     "pre-upgrade-v1-35-0-k3s1-server-1-1795861065"),
    ({"stdout": "Snapshot on-demand-a-1 saved.\n", "stderr": ""}, "on-demand-a-1"),
    ({"stdout": "", "stderr": 'time="x" level=info msg="Saving etcd snapshot to /x/b-a-2"\n' + LOGRUS.format("b-a-2")},
     "b-a-2"),
    ({"stdout": "", "stderr": 'time="x" level=fatal msg="Error: see server log for details: etcd datastore disabled"'},
     ""),
    ({}, ""),
]


def test_saved_name_from_either_stream(tmp_path: Path) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.set_fact:
        names: "{{{{ names | default([]) + [lookup('ansible.builtin.template', '{tmp_path}/name.j2',
                    template_vars={{'etcd_snapshot__save': item}})] }}}}"
      loop: "{{{{ cases }}}}"
    - ansible.builtin.copy:
        content: "{{{{ names | to_json }}}}"
        dest: {tmp_path}/out.json
        mode: "0644"
""", encoding="utf-8")
    # the role's expression, verbatim, rendered with each case's etcd_snapshot__save
    expression = yaml.safe_load((REPO / "roles/etcd_snapshot/vars/main.yml").read_text())["etcd_snapshot__saved_name"]
    (tmp_path / "name.j2").write_text(expression, encoding="utf-8")
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"cases": [case for case, _name in CASES], "ansible_python_interpreter": sys.executable}))
    result = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), "-i", "localhost,", "-c", "local",
                             str(playbook), "-e", f"@{extra}"], capture_output=True, text=True,
                            env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")), timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [n.strip() for n in json.loads((tmp_path / "out.json").read_text())] == [name for _case, name in CASES]
