"""`python -m coordinator` = the `coordinator` console script."""

import sys

from coordinator.cli import main

sys.exit(main())
