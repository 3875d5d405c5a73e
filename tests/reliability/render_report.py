"""Render the measured tables of docs/RELIABILITY.md from a --reliability-report JSON file.

    .venv/bin/pytest -q tests/reliability --reliability-report build/reliability.json
    .venv/bin/python tests/reliability/render_report.py build/reliability.json docs/RELIABILITY.md

Replaces the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` for the sections
machine, bad_inputs, leaks and faults; the rest of the document is left as written.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, List


def cell(value: Any) -> str:
    text = " ".join(str(value).split()) if value is not None else "-"
    return text.replace("|", "\\|")


def table(headers: List[str], rows: List[List[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine(data: Dict[str, Any]) -> str:
    m = data["machine"]
    counts: Dict[str, int] = {}
    for record in data["records"]:
        counts[record["outcome"]] = counts.get(record["outcome"], 0) + 1
    return ("Measured on %s, %s CPUs, Python %s, ansible-core %s. Whole `pytest tests/reliability` run: %s s "
            "wall time. Recorded cases by outcome: %s." % (
                m["platform"], m["cpus"], m["python"], m["ansible_core"], data["wall_seconds"],
                ", ".join("%s %d" % (k, v) for k, v in sorted(counts.items()))))


def bad_inputs(records: List[Dict[str, Any]]) -> str:
    rows = []
    for r in records:
        result = {"passed": "rejected before any change", "xfailed": "FINDING: " + r.get("xfail", ""),
                  "failed": "FAILED", "xpassed": "fixed (drop the xfail)"}.get(r["outcome"], r["outcome"])
        rows.append([r["id"], r["playbook"], "`%s`" % r["variable"], r["message"][:170], result, r["seconds"]])
    return table(["id", "playbook", "variable", "message excerpt", "result", "s"], rows)


def declared_inputs(records: List[Dict[str, Any]]) -> str:
    rows = [[r["id"], r["playbook"], "`%s`" % r["variable"], r["message"][:170],
             "rejected before any change" if r["outcome"] == "passed" else r["outcome"].upper(), r["seconds"]]
            for r in records]
    return table(["id", "playbook", "variable", "message excerpt", "result", "s"], rows)


def leaks(records: List[Dict[str, Any]]) -> str:
    rows = [[r["scenario"], r["secrets"], "%d B / %d lines" % (r["output_bytes"], r["output_lines"]),
             "%d files, %d B" % (r["files_scanned"], r["file_bytes"]), "%d samples, %d distinct lines" % (
                 r["ps_samples"], r["ps_lines"]),
             "clean" if r["outcome"] == "passed" and not (r["in_output"] or r["leaky_files"] or r["in_ps"])
             else "LEAK: %s %s %s" % (r["in_output"], r["leaky_files"], r["in_ps"]), r["seconds"]]
            for r in records]
    return table(["scenario", "secrets", "-vvv output", "files written (outside 0600 checked)", "ps", "result", "s"],
                 rows)


def faults(records: List[Dict[str, Any]]) -> str:
    rows = [[r["case"], r["attempts"] if r["attempts"] is not None else "-",
             ", ".join("%.2f" % g for g in r["gaps"]) or "-", r["seconds_to_error"], r["playbook_seconds"],
             r["message"][:180], r["outcome"]] for r in records]
    return table(["case", "attempts", "gaps between attempts (s)", "s to the error", "playbook s", "message",
                  "test"], rows)


def render(data: Dict[str, Any], doc: str) -> str:
    by_kind: Dict[str, List[Dict[str, Any]]] = {}
    for record in data["records"]:
        by_kind.setdefault(record["kind"], []).append(record)
    sections = {"machine": machine(data), "bad_inputs": bad_inputs(by_kind.get("bad_input", [])),
                "declared_inputs": declared_inputs(by_kind.get("declared_input", [])),
                "leaks": leaks(by_kind.get("leak", [])), "faults": faults(by_kind.get("fault", []))}
    for name, text in sections.items():
        pattern = re.compile(r"(<!-- BEGIN %s -->\n).*?(\n<!-- END %s -->)" % (name, name), re.S)
        doc, count = pattern.subn(lambda m, t=text: m.group(1) + t + m.group(2), doc)
        if count != 1:
            raise SystemExit("section %s not found exactly once" % name)
    return doc


def main(argv: List[str]) -> int:
    if len(argv) != 3:
        print(__doc__)
        return 2
    data = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    doc_path = Path(argv[2])
    doc_path.write_text(render(data, doc_path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
