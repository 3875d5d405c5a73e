"""The Argo CD playbook tests run the playbooks of ./playbooks on localhost (local connection).

The stand-in and the runner come from tests/integration/conftest.py and playbook_runner.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest

from tests.integration.playbook_runner import PlaybookRun, run_playbook

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"


def run_local_playbook(name: str, extra_vars: Dict[str, Any], **kwargs: Any) -> PlaybookRun:
    return run_playbook(PLAYBOOKS / name, extra_vars, connection="local", **kwargs)


@pytest.fixture
def playbook():
    return run_local_playbook
