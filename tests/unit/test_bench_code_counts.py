"""tests/bench/code_counts.py: the counts issue 13 asks for, on a small tree of YAML."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import code_counts  # noqa: E402  pylint: disable=wrong-import-position

TREE = {
    "roles/a/defaults/main.yml": "a_version: v1.2.3+k3s1\na_bin: /usr/local/bin/k3s\na_name: plain\n",
    "roles/a/tasks/main.yml": (
        "- name: Read\n  ansible.builtin.command: {argv: [k3s, x]}\n  register: a__out\n"
        "- ansible.builtin.assert:\n    that: a__out.stdout is search('ready')\n"
        "- ansible.builtin.assert:\n    that: \"'Ready' in a__out.stdout\"\n"
        "- ansible.builtin.debug:\n    msg: \"{% for x in y %}{{ x }}{% endfor %}\"\n"),
    "roles/b/defaults/main.yml": "b_bin: /usr/local/bin/k3s\n",
    "playbooks/p.yml": ("- hosts: all\n  roles:\n    - role: a\n      vars:\n        a_version: \"{{ cluster_version }}\"\n"
                        "        a_bin: \"{{ cluster_bin | default('/usr/local/bin/k3s') }}\"\n"
                        "        a_name: \"{{ cluster_name ~ '-x' }}\"\n"),
    "roles/a/templates/t.j2": "{% if x %}{% endif %}\n",
}


def test_counts() -> None:
    found = code_counts.counts(TREE)
    assert found["relay lines"] == 2  # the third line computes something: not a relay
    assert dict(found["most repeated"]) == {"/usr/local/bin/k3s": 3}  # two defaults and the playbook's default()
    assert (found["assert tasks"], found["files with assert tasks"]) == (2, 1)
    assert found["command output matched as text"] == 2
    assert found["Jinja statement lines"] == 1  # the template's own are not counted


def test_working_tree_is_read() -> None:
    tree = code_counts.files(None)
    assert "site.yml" in tree and any(path.startswith("roles/node_prep/") for path in tree)
