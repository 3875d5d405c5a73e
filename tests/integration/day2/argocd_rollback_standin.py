"""Rollback for the Argo CD API stand-in (tests/standins/argocd_api), added from the outside.

The stand-in has no ``POST /api/v1/applications/{name}/rollback`` yet. ``install()`` registers one
that follows Argo CD 3.6's ``Server.Rollback``: the request is validated against the swagger
contract by the stand-in's dispatcher; a deleted application, automated sync, an unknown history
id or a running operation are refused with the gRPC codes the real server uses; otherwise a sync
operation to the history entry's revision and source is recorded (apply strategy) and the fake
controller runs it like any sync. Candidate to move into the stand-in itself.
"""

from __future__ import annotations

import copy
from typing import Any, Dict

from tests.standins.argocd_api import server

ROUTE = ("POST", r"/api/v1/applications/(?P<name>[^/]+)/rollback", "/api/v1/applications/{name}/rollback",
         "h_rollback")


def rollback(api: Any, name: str, body: Dict[str, Any], user: str) -> Dict[str, Any]:
    """Record the rollback operation (store lock held); raise ApiError like Argo CD."""
    if body.get("name") not in (None, name):
        raise server.ApiError(3, "application name in the path and the body differ")
    api.app_or_error(name, body.get("project"))
    app = api.store.apps[name]
    if app["metadata"].get("deletionTimestamp"):
        raise server.ApiError(9, "application is being deleted")
    if (app["spec"].get("syncPolicy") or {}).get("automated") is not None:
        raise server.ApiError(9, "rollback cannot be initiated when auto-sync is enabled")
    wanted = int(body.get("id") or 0)
    entry = next((h for h in (app.get("status") or {}).get("history") or [] if int(h["id"]) == wanted), None)
    if entry is None:
        raise server.ApiError(3, "application %s does not have deployment with id %d" % (name, wanted))
    state = (app.get("status") or {}).get("operationState") or {}
    if app.get("operation") or (state.get("phase") in ("Running", "Terminating") and not state.get("finishedAt")):
        raise server.ApiError(9, "another operation is already in progress")
    sync_op: Dict[str, Any] = {"revision": entry["revision"], "source": copy.deepcopy(entry.get("source") or {}),
                               "syncStrategy": {"apply": {}}}
    if body.get("prune"):
        sync_op["prune"] = True
    if body.get("dryRun"):
        sync_op["dryRun"] = True
    # the fake controller maps a revision through config["commits"]: a history revision is already a commit
    api.store.config.setdefault("commits", {})[entry["revision"]] = entry["revision"]
    app["operation"] = {"sync": sync_op, "initiatedBy": {"username": user}}
    api.store.touch_app(name)
    api.store.mark("rollback_requested", app=name, id=wanted)
    api.ctl.schedule(api.store.config["pickup_delay"], lambda: api.ctl.start_operation(name))
    return copy.deepcopy(app)


def h_rollback(handler: Any, name: str, body: Dict[str, Any], user: str, **_: Any) -> Dict[str, Any]:
    return rollback(handler.standin.api, name, body or {}, user)


def install() -> None:
    """Register the route once (before the generic GET/PUT/DELETE application routes)."""
    if ROUTE not in server.ROUTES:
        server.ROUTES.insert(0, ROUTE)
    server.Handler.h_rollback = h_rollback  # type: ignore[attr-defined]
