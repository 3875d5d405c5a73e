"""`python -m standin ...` and the zipapp's entry point: the stand-in's `k3s` command line."""
import sys

from standin.core import main

sys.exit(main(sys.argv[1:]))
