"""`python -m foley` (and `torchrun -m foley`): the `foley` command, whose code lives in foley.stages.commands.cli."""

import sys

from foley.stages.commands.cli import main

sys.exit(main())
