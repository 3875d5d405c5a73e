"""The Argo CD modules' documentation as ansible-doc renders it (doc fragments merged) against their
argument specs: the shared application/operation options come from the doc fragments
dictamesh.k3s_gitops.argocd.application / .operation and module_utils' shared specs, and every option
documented is accepted with the same type, default, choices and required flag (and the other way round).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List
from unittest import mock

import pytest
from ansible.parsing.plugin_docs import read_docstring

from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils import argocd_module

REPO = Path(__file__).resolve().parents[3]
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("argocd_*.py"))
APPLICATION_MODULES = ("argocd_application", "argocd_rollback", "argocd_sync")
OPERATION_MODULES = ("argocd_rollback", "argocd_sync")


class Captured(Exception):
    pass


@pytest.fixture(scope="module")
def docs() -> Dict[str, Dict[str, Any]]:
    """ansible-doc --json of every argocd_* module, keyed by short name."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_NOCOLOR="1")
    names = ["dictamesh.k3s_gitops.%s" % m for m in MODULES]
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "--json", "-t", "module"] + names,
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    return {name.rsplit(".", 1)[1]: value["doc"] for name, value in data.items()}


def own_doc(name: str) -> Dict[str, Any]:
    """The module's DOCUMENTATION as written (fragments not merged)."""
    return read_docstring(str(REPO / "plugins" / "modules" / ("%s.py" % name)))["doc"]


def own_fragments(name: str) -> List[str]:
    return list(own_doc(name).get("extends_documentation_fragment") or [])


def own_options(name: str) -> Dict[str, Any]:
    return dict(own_doc(name).get("options") or {})


def argument_spec_of(name: str) -> Dict[str, Any]:
    """The full argument spec ``main()`` hands to AnsibleModule (common connection options included)."""
    module = importlib.import_module("ansible_collections.dictamesh.k3s_gitops.plugins.modules.%s" % name)
    seen: Dict[str, Any] = {}

    def capture(self: Any, argument_spec: Any = None, **kwargs: Any) -> None:
        seen.update(argocd_module.argocd_argument_spec(**(argument_spec or {})))
        raise Captured()

    with mock.patch.object(argocd_module.ArgoCDModule, "__init__", capture):
        with pytest.raises(Captured):
            module.main()
    return seen


def test_every_argocd_module_is_documented(docs):
    assert set(docs) == set(MODULES) and len(MODULES) >= 7


@pytest.mark.parametrize("name", MODULES)
def test_documented_options_match_the_argument_spec(docs, name):
    spec = argument_spec_of(name)
    options = docs[name]["options"]
    assert sorted(options) == sorted(spec)
    for key, arg in spec.items():
        doc = options[key]
        assert doc.get("type", "str") == arg.get("type", "str"), key
        assert bool(doc.get("required")) == bool(arg.get("required")), key
        assert doc.get("default") == arg.get("default"), key
        assert doc.get("choices") == arg.get("choices"), key
        assert doc.get("description"), key


@pytest.mark.parametrize("name", APPLICATION_MODULES)
def test_application_options_come_from_the_shared_fragment_and_spec(docs, name):
    options = docs[name]["options"]
    assert "dictamesh.k3s_gitops.argocd.application" in own_fragments(name)
    assert "name" not in own_options(name) and "app_namespace" not in own_options(name)
    assert options["name"]["required"] is True and options["name"]["description"]
    assert options["app_namespace"]["type"] == "str"
    spec = argument_spec_of(name)
    for key, arg in argocd_module.ARGOCD_APPLICATION_ARGS.items():
        assert spec[key] == arg, key


@pytest.mark.parametrize("name", OPERATION_MODULES)
def test_operation_options_come_from_the_shared_fragment_and_spec(docs, name):
    options = docs[name]["options"]
    assert "dictamesh.k3s_gitops.argocd.operation" in own_fragments(name)
    assert not set(argocd_module.ARGOCD_OPERATION_ARGS) & set(own_options(name))
    assert options["on_running_operation"]["choices"] == ["wait", "terminate", "fail"]
    assert options["poll_interval"]["default"] == 2.0 and options["watch"]["default"] is True
    spec = argument_spec_of(name)
    for key, arg in argocd_module.ARGOCD_OPERATION_ARGS.items():
        assert spec[key] == arg, key


def test_module_text_overrides_the_fragment_where_it_says_more(docs):
    """argocd_application documents project its own way (it also sets spec.project)."""
    assert "spec.project" in " ".join(docs["argocd_application"]["options"]["project"]["description"])
    assert "spec.project" not in str(docs["argocd_sync"]["options"]["project"]["description"])


def test_shared_specs_are_copies():
    one = argocd_module.operation_argument_spec()
    one["name"]["required"] = False
    one["watch"]["default"] = False
    assert argocd_module.ARGOCD_APPLICATION_ARGS["name"]["required"] is True
    assert argocd_module.ARGOCD_OPERATION_ARGS["watch"]["default"] is True
    assert argocd_module.application_argument_spec(name=dict(type="str"))["name"] == {"type": "str"}
