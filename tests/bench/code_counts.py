"""The counts issue 13 asks for, read from the YAML of any revision, so that "before and after" is
one command instead of a regex retyped by hand in each session:

    .venv/bin/python tests/bench/code_counts.py                   # the working tree
    .venv/bin/python tests/bench/code_counts.py 53cff39~1 HEAD    # revisions side by side

- relay lines: playbook lines that only hand one variable to another, `x: "{{ y }}"`, optionally
  through `default(...)`, `int`, `bool` or `string` (site.yml, playbooks/, playbooks/vars/);
- literals written more than once: a version, URL or path (a scalar of the role defaults and the
  common inventory with a dot or a slash, 6 characters or more) and the number of files under
  roles/, playbooks/, inventories/ and site.yml that write it;
- assert tasks: `ansible.builtin.assert` per directory (roles/<role>/tasks, playbooks);
- text matching of command output: `stdout ... is search/match/regex`, `'...' in x.stdout`,
  `stdout_lines` tests, `stderr ... is search` (the registered output of a command read as text);
- Jinja statement lines: lines with `{%` in task, vars, defaults and playbook files (not templates).
"""
from __future__ import annotations

import argparse
import re
import subprocess
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
RELAY = re.compile(r"^\s+[a-z0-9_]+: \"\{\{ [a-z0-9_]+(\[[^\]]+\])?( \| (default\([^()]*\)|int|bool|string))* \}\}\"$")
TEXT_MATCH = re.compile(r"(stdout|stderr)(_lines)?[^\n]{0,40}\bis (not )?(search|match|regex)\b"
                        r"|'[^']*' (not )?in [a-z0-9_.]+\.(stdout|stderr)\b|\bstdout_lines\b")
LITERAL = re.compile(r"^[^{}\s]{6,}$")


def files(rev: str | None) -> dict[str, str]:
    """path -> text of the YAML files under roles/, playbooks/, inventories/ and site.yml."""
    roots = ["roles", "playbooks", "inventories", "site.yml"]
    if rev is None:
        paths = [p for root in roots for p in ([REPO / root] if root.endswith(".yml") else (REPO / root).rglob("*"))
                 if p.is_file() and p.suffix in (".yml", ".yaml")]
        return {str(p.relative_to(REPO)): p.read_text(encoding="utf-8") for p in paths}
    listed = subprocess.run(["git", "-C", str(REPO), "ls-tree", "-r", "--name-only", rev, "--"] + roots,
                            capture_output=True, text=True, check=True).stdout.split()
    return {path: subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{path}"], capture_output=True, text=True,
                                 check=True).stdout
            for path in listed if path.endswith((".yml", ".yaml"))}


def scalars(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in scalars(v)]
    if isinstance(value, list):
        return [s for v in value for s in scalars(v)]
    return [value] if isinstance(value, str) else []


def counts(tree: dict[str, str]) -> dict[str, object]:
    playbooks = {p: t for p, t in tree.items() if p == "site.yml" or p.startswith("playbooks/")}
    relay = sum(1 for text in playbooks.values() for line in text.splitlines() if RELAY.match(line))

    sources = [t for p, t in tree.items() if re.match(r"roles/[^/]+/defaults/main\.yml$|inventories/common/", p)]
    literals = set()
    for text in sources:
        try:
            literals.update(s for s in scalars(yaml.safe_load(text)) if LITERAL.match(s) and ("/" in s or "." in s))
        except yaml.YAMLError:
            continue
    repeated = {}
    for literal in literals:
        where = sum(1 for text in tree.values() if re.search(r"(^|[\s\"'=:])%s($|[\s\"',])" % re.escape(literal), text, re.M))
        if where > 1:
            repeated[literal] = where

    asserts = Counter()
    for path, text in tree.items():
        found = text.count("ansible.builtin.assert")
        if found:
            parts = path.split("/")
            asserts["/".join(parts[:2]) if parts[0] in ("roles",) else parts[0]] += found

    logic = {p: t for p, t in tree.items()
             if re.match(r"roles/[^/]+/(tasks|vars|defaults|handlers)/|playbooks/|site\.yml", p)}
    text_matching = sum(len(TEXT_MATCH.findall(t)) for t in logic.values())
    jinja_statements = sum(1 for t in logic.values() for line in t.splitlines() if "{%" in line)
    return {"relay lines": relay, "literals written in 2+ files": len(repeated),
            "their files": sum(repeated.values()), "most repeated": sorted(repeated.items(), key=lambda i: -i[1])[:5],
            "assert tasks": sum(asserts.values()), "files with assert tasks": len(asserts),
            "command output matched as text": text_matching, "Jinja statement lines": jinja_statements}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("revs", nargs="*", help="git revisions (default: the working tree)")
    args = parser.parse_args()
    columns = [(rev, counts(files(rev))) for rev in (args.revs or [None])]
    for key in columns[0][1]:
        print("%-32s %s" % (key, "  |  ".join("%s: %s" % (rev or "tree", found[key]) for rev, found in columns)))


if __name__ == "__main__":
    main()
