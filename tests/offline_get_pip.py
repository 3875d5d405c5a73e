"""Offline replacement for pip's get-pip.py bootstrap script.

ansible-test bootstraps pip into the virtual environments of some sanity tests with a
get-pip.py that it downloads from a host that CI machines cannot reach. This script does the
same job from the standard library's bundled pip, then lets that pip install the versions
ansible-test asks for from the package index.
"""
import ensurepip
import os
import subprocess
import sys

GET_PIP_FLAGS = {"--no-setuptools": "setuptools", "--no-wheel": "wheel"}

args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_FLAGS]
# get-pip.py also installs setuptools and wheel unless told not to.
args += [package for flag, package in GET_PIP_FLAGS.items() if flag not in sys.argv[1:]]

# ensurepip discards pip's configuration in os.environ; the real install must keep it.
environment = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args], env=environment))
