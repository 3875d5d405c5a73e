"""node_prep's one read (roles/node_prep/tasks/read.yml) run for real on this machine by
ansible-playbook: the script parses, and the files the role writes with ansible.builtin.template
count as unchanged on the next read (the rendered content node_prep_drift compares with is the
template module's own, byte for byte), so a re-run skips the template tasks; a changed mode or
content is found again."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "node_prep"


def run_read(tmp_path: Path, write: bool) -> dict:
    """Runs read.yml (include_role tasks_from) with the role's two files pointed into tmp_path, with
    write the template module writes them as kernel.yml does, and read.yml runs again: its result."""
    out = tmp_path / "drift.json"
    playbook = tmp_path / "play.yml"
    playbook.write_text(f"""
- hosts: localhost
  gather_facts: true
  gather_subset: ["!all", "!min", pkg_mgr]
  tasks:
    - ansible.builtin.include_vars: {ROLE}/vars/Debian.yml
    - ansible.builtin.include_role:
        name: dictamesh.k3s_gitops.node_prep
        tasks_from: read.yml
        public: true  # the role's variables for the template task below
    - name: Write the files as kernel.yml does
      ansible.builtin.template:
        src: "{ROLE}/templates/{{{{ item.src }}}}"
        dest: "{{{{ item.dest }}}}"
        mode: "0644"
      loop:
        - {{src: modules-load.conf.j2, dest: "{tmp_path}/modules-load.conf"}}
        - {{src: sysctl.conf.j2, dest: "{tmp_path}/sysctl.conf"}}
      when: write | bool
    - name: Read again
      ansible.builtin.include_role:
        name: dictamesh.k3s_gitops.node_prep
        tasks_from: read.yml
    - ansible.builtin.copy:
        content: "{{{{ {{'drift': node_prep__drift, 'stdout': node_prep__read.stdout}} | to_json }}}}"
        dest: {out}
        mode: "0644"
""", encoding="utf-8")
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({
        "write": write, "ansible_python_interpreter": sys.executable,
        "node_prep__modules_load_file": f"{tmp_path}/modules-load.conf", "node_prep__sysctl_file": f"{tmp_path}/sysctl.conf",
        # the role's defaults apply (include_role), but not its OS vars: loaded above
        "node_prep_longhorn_enabled": True, "node_prep_sysctl_extra": {"fs.inotify.max_user_instances": 8192}}),
        encoding="utf-8")
    result = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), "-i", "localhost,", "-c", "local",
                             str(playbook), "-e", f"@{extra}"], capture_output=True, text=True,
                            env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")), timeout=180, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text(encoding="utf-8"))


def test_the_read_parses_and_template_output_counts_as_unchanged(tmp_path: Path) -> None:
    fresh = run_read(tmp_path, write=False)
    assert fresh["drift"]["files"] == sorted([f"{tmp_path}/modules-load.conf", f"{tmp_path}/sysctl.conf"])
    for section in ("sysctl", "modules", "builtin", "swap", "fstab", "files", "services", "multipathd"):
        assert f"==> node_prep:{section} <==" in fresh["stdout"], section
    packages = fresh["stdout"].split("==> node_prep:packages <==\n", 1)[1].split("==> node_prep:swap <==")[0]
    assert packages and all(len(line.split()) == 2 for line in packages.splitlines()), packages  # dpkg-query's lines
    assert fresh["drift"]["installed"], packages  # a Debian machine has ca-certificates at least
    assert fresh["drift"]["services"] in ([], ["systemd-timesyncd"], ["iscsid"], ["systemd-timesyncd", "iscsid"])

    written = run_read(tmp_path, write=True)
    assert written["drift"]["files"] == [], written["stdout"]

    (tmp_path / "sysctl.conf").chmod(0o600)
    with open(tmp_path / "modules-load.conf", "a", encoding="utf-8") as handle:
        handle.write("extra\n")
    changed = run_read(tmp_path, write=False)
    assert changed["drift"]["files"] == sorted([f"{tmp_path}/modules-load.conf", f"{tmp_path}/sysctl.conf"])
