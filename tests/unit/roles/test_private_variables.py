"""One private-variable convention in roles/ (docs/architecture.md, "Conventions"): a role's inputs are
`<role>_<name>` (its meta/argument_specs.yml), its private variables (registers, vars/main.yml,
set_fact, task-level vars) are `<role>__<name>`, and no variable starts with `__`."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "meta").is_dir())
LEADING_UNDERSCORES = re.compile(r"(?<![\w])__(?!\w+__)[A-Za-z]\w*")  # `__x`, not a dunder like `__name__`
SET_FACT = ("ansible.builtin.set_fact", "set_fact")


def specs(role: str) -> dict[str, Any]:
    path = REPO / "roles" / role / "meta" / "argument_specs.yml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))["argument_specs"] if path.exists() else {}


INPUTS = {name for role in ROLES for entry in specs(role).values() for name in entry.get("options", {})}


def tasks_of(items: Any) -> Iterator[dict[str, Any]]:
    for task in items if isinstance(items, list) else []:
        if isinstance(task, dict):
            yield task
            for key in ("block", "rescue", "always"):
                yield from tasks_of(task.get(key))


def names(base: Path) -> Iterator[tuple[str, str, str]]:
    """(kind, variable, file) for every variable the role's own YAML defines."""
    for sub in ("tasks", "handlers"):
        for path in sorted((base / sub).glob("*.yml")):
            for task in tasks_of(yaml.safe_load(path.read_text(encoding="utf-8"))):
                where = f"{base.name}/{sub}/{path.name}"
                if "register" in task:
                    yield "register", task["register"], where
                for module in SET_FACT:
                    for name in task.get(module) or {}:
                        if name != "cacheable":
                            yield "set_fact", name, where
                for name in task.get("vars") or {}:
                    yield "vars", name, where
    path = base / "vars" / "main.yml"
    if path.exists():
        for name in yaml.safe_load(path.read_text(encoding="utf-8")) or {}:
            yield "vars/", name, f"{base.name}/vars/main.yml"


def misnamed(role: str, base: Path, documented: str) -> list[str]:
    wrong = []
    for kind, name, where in names(base):
        if name.startswith(role + "__"):
            continue
        # a task's vars may set another role's (or this role's) inputs for an include_role
        if kind == "vars" and name in INPUTS:
            continue
        # a fact the role sets for its callers is part of its documented interface
        if kind == "set_fact" and name.startswith(role + "_") and f"C({name})" in documented:
            continue
        wrong.append(f"{where}: {kind} {name}")
    return wrong


def leading_underscores(base: Path) -> list[str]:
    found = []
    for sub in ("tasks", "handlers", "vars", "defaults", "meta", "templates"):
        for path in sorted((base / sub).rglob("*")):
            if path.is_file():
                for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                    found += [f"{base.name}/{path.relative_to(base)}:{number}: {m}" for m in LEADING_UNDERSCORES.findall(line)]
    return found


@pytest.mark.parametrize("role", ROLES)
def test_private_variables_carry_the_role_prefix(role: str) -> None:
    wrong = misnamed(role, REPO / "roles" / role, yaml.safe_dump(specs(role)))
    assert not wrong, f"not {role}__<name>:\n" + "\n".join(wrong)


def shadowed(base: Path) -> list[str]:
    """Registers and facts outrank vars/main.yml: one of the same name replaces the derived value."""
    seen = list(names(base))
    derived = {name for kind, name, _where in seen if kind == "vars/"}
    return sorted(f"{where}: {kind} {name}" for kind, name, where in seen
                  if kind in ("register", "set_fact") and name in derived)


@pytest.mark.parametrize("role", ROLES)
def test_no_register_or_fact_shadows_a_derived_name(role: str) -> None:
    found = shadowed(REPO / "roles" / role)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("role", ROLES)
def test_no_variable_starts_with_two_underscores(role: str) -> None:
    found = leading_underscores(REPO / "roles" / role)
    assert not found, "\n".join(found)


def test_the_checks_refuse_the_old_forms(tmp_path: Path) -> None:
    """An unprefixed register, an undocumented unprefixed fact, `__x` task vars and the old
    `__<role>_<name>` vars/ entry are all reported; inputs, prefixed and documented names are not."""
    role = tmp_path / "k3s_upgrade"
    (role / "tasks").mkdir(parents=True)
    (role / "vars").mkdir()
    (role / "tasks" / "main.yml").write_text("""
- name: t
  ansible.builtin.command: {argv: ["{{ __k3s_upgrade_bin }}"]}
  register: k3s_upgrade_installed
- block:
    - ansible.builtin.set_fact: {k3s_upgrade__ok: 1, k3s_upgrade_leak: 2, k3s_upgrade_out: 3}
      vars: {k3s_install_version: v1, k3s_upgrade__node: n, __binary: "{{ x.__class__ }}"}
""", encoding="utf-8")
    (role / "vars" / "main.yml").write_text("__k3s_upgrade_stage: /x\nk3s_upgrade__bin: /y\n", encoding="utf-8")
    assert misnamed("k3s_upgrade", role, "Sets the fact C(k3s_upgrade_out).") == [
        "k3s_upgrade/tasks/main.yml: register k3s_upgrade_installed",
        "k3s_upgrade/tasks/main.yml: set_fact k3s_upgrade_leak",
        "k3s_upgrade/tasks/main.yml: vars __binary",
        "k3s_upgrade/vars/main.yml: vars/ __k3s_upgrade_stage",
    ]
    assert shadowed(role) == []
    (role / "tasks" / "stat.yml").write_text("- ansible.builtin.stat: {path: x}\n  register: k3s_upgrade__bin\n")
    assert shadowed(role) == ["k3s_upgrade/tasks/stat.yml: register k3s_upgrade__bin"]
    assert leading_underscores(role) == [
        "k3s_upgrade/tasks/main.yml:3: __k3s_upgrade_bin",
        "k3s_upgrade/tasks/main.yml:7: __binary",
        "k3s_upgrade/vars/main.yml:1: __k3s_upgrade_stage",
    ]
