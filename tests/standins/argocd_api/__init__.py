"""Argo CD API stand-in (tests only; never shipped in roles/ or plugins/)."""

from .server import ArgoCDStandIn  # noqa: F401
