"""`python -m foley` (and `torchrun -m foley`): the `foley` command, whose code lives in stages.cli."""

import sys

from stages.cli import main

sys.exit(main())
