"""The K3S stand-in package (tests only; bundled into a zipapp by build_mirror.py)."""
