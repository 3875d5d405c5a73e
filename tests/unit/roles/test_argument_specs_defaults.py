"""A role's defaults live in its defaults/main.yml; its meta/argument_specs.yml documents them
(ansible-core's role argument validation checks types but never sets a spec `default:`, so the
value a role runs with is always the defaults/main.yml one). Where the spec repeats a default it
must be the same value, and a default that refers to another variable (k3s_defaults_*) is
described, not copied as its current value (issue 13: no default written twice)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists())


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None


def documented(role: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(entry point, option, spec) for the role's own options in every entry point."""
    specs = _yaml(REPO / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]
    for entry, spec in specs.items():
        for name, option in (spec.get("options") or {}).items():
            if name.startswith(role + "_"):
                yield entry, name, option


def disagreements(role: str, defaults: dict[str, Any], options: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    found = []
    for entry, name, option in options:
        if "default" not in option:
            continue
        if name not in defaults:
            found.append(f"{entry}: {name}: spec default {option['default']!r}, none in defaults/main.yml")
        elif option["default"] != defaults[name]:
            found.append(f"{entry}: {name}: spec default {option['default']!r}, defaults/main.yml {defaults[name]!r}")
    return found


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_are_the_role_defaults(role: str) -> None:
    defaults = _yaml(REPO / "roles" / role / "defaults" / "main.yml") or {}
    found = disagreements(role, defaults, list(documented(role)))
    assert not found, f"roles/{role}:\n" + "\n".join(found)


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_documented(role: str) -> None:
    defaults = _yaml(REPO / "roles" / role / "defaults" / "main.yml") or {}
    names = {name for _entry, name, _option in documented(role)}
    assert not set(defaults) - names, f"roles/{role}: undocumented defaults {sorted(set(defaults) - names)}"


def test_disagreements_are_found() -> None:
    defaults = {"r_a": "{{ k3s_defaults_airgap_dir }}", "r_b": 1, "r_c": "{{ x | default(y) }}"}
    options = [("main", "r_a", {"default": ""}), ("main", "r_b", {"default": 1}),
               ("main", "r_c", {"default": "{{ x }}"}), ("stage", "r_d", {"default": 2}), ("main", "r_e", {})]
    assert disagreements("r", defaults, options) == [
        "main: r_a: spec default '', defaults/main.yml '{{ k3s_defaults_airgap_dir }}'",
        "main: r_c: spec default '{{ x }}', defaults/main.yml '{{ x | default(y) }}'",
        "stage: r_d: spec default 2, none in defaults/main.yml",
    ]
