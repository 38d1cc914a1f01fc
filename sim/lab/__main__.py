"""Entry point: ``python -m sim.lab run SCENARIO|all [--report DIR]`` (see sim.lab.cli)."""

import sys

from sim.lab.cli import main

sys.exit(main())
