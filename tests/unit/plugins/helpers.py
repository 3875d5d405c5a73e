"""Run a module's main() with arguments and a fake client; capture its result."""

from __future__ import annotations

import json
from typing import Any, Dict
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dictamesh.k3s_gitops.plugins.module_utils.argocd_module import ArgoCDModule

CONN = {"server_url": "https://argocd.example.com", "auth_token": "tok"}


class Exited(Exception):
    def __init__(self, result: Dict[str, Any]) -> None:
        super().__init__(result)
        self.result = result


def run_main(module: Any, args: Dict[str, Any], client: Any, check: bool = False, diff: bool = False) -> Dict[str, Any]:
    full = dict(CONN, **args)
    if check:
        full["_ansible_check_mode"] = True
    if diff:
        full["_ansible_diff"] = True

    def exit_json(self, **kwargs):
        kwargs.setdefault("failed", False)
        raise Exited(kwargs)

    def fail_json(self, msg, **kwargs):
        raise Exited(dict(kwargs, msg=msg, failed=True))

    with patch_module_args(full), \
            mock.patch.object(ArgoCDModule, "exit_json", exit_json), \
            mock.patch.object(ArgoCDModule, "fail_json", fail_json), \
            mock.patch.object(ArgoCDModule, "make_client", return_value=client):
        with pytest.raises(Exited) as info:
            module.main()
    result = info.value.result
    json.dumps(result)  # must be serialisable
    return result
