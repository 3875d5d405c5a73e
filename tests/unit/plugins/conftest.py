"""Make ``ansible_collections.dictamesh.k3s_gitops`` importable for the unit tests."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
COLLECTIONS = REPO / ".collections"
LINK = COLLECTIONS / "ansible_collections" / "dictamesh" / "k3s_gitops"
if not LINK.exists():
    LINK.parent.mkdir(parents=True, exist_ok=True)
    LINK.symlink_to("../../..")
for path in (str(COLLECTIONS), str(REPO)):
    if path not in sys.path:
        sys.path.insert(0, path)
