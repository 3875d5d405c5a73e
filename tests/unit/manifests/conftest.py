"""Session fixtures: each scenario is rendered once (in parallel) and shared by the tests."""

from __future__ import annotations

import base64
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

import render  # noqa: E402

FAKE_CHART = b"\x1f\x8b\x08\x00fake-chart-archive"


def _scenarios(base: Path) -> dict[str, dict]:
    charts = base / "charts"
    charts.mkdir(parents=True, exist_ok=True)
    # Named as playbooks/platform.yml looks them up, from the prod inventory's pins.
    pins = yaml.safe_load((render.REPO / "inventories/common/platform.yml").read_text())
    for chart, var in (("ingress-nginx", "platform_ingress_nginx_chart_version"),
                       ("cert-manager", "platform_cert_manager_version"),
                       ("longhorn", "platform_longhorn_version"), ("argo-cd", "platform_argocd_chart_version")):
        (charts / f"{chart}-{pins[var]}.tgz").write_bytes(FAKE_CHART)
    return {
        "defaults": {"inventory_env": None},
        "prod": {"inventory_env": "prod"},
        # ingress-nginx, air-gapped charts, metrics on, local-path demoted.
        "prod-nginx-airgap": {"inventory_env": "prod", "extra": {
            "platform_ingress_controller": "ingress-nginx",
            "platform_chart_archives_dir": str(charts),
            "platform_argocd_metrics": True,
            "platform_longhorn_local_path": "demote",
            "argocd__metrics_enabled": True}},
    }


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, render.Rendered]:
    base = tmp_path_factory.mktemp("render")
    scenarios = _scenarios(base)
    with ThreadPoolExecutor(max_workers=len(scenarios)) as pool:
        futures = {name: pool.submit(render.render, base / name, **kwargs) for name, kwargs in scenarios.items()}
        results = {name: f.result() for name, f in futures.items()}
    for name, result in results.items():
        assert result.rc == 0, f"render {name} failed:\n{result.output[-4000:]}"
    return results


@pytest.fixture(scope="session")
def fake_chart_b64() -> str:
    return base64.b64encode(FAKE_CHART).decode()
