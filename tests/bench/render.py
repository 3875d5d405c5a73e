"""Render docs/BENCHMARKS.md and docs/bench/time_per_host.png from docs/bench/results.json."""
from __future__ import annotations

from typing import Any


def render(results: dict[str, Any]) -> None:
    pass
