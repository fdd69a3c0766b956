"""`python -m foley` (and `torchrun -m foley`): the `foley` command (foley.stages.commands.cli)."""

if __name__ == "__main__":
    import sys

    from foley.stages.commands.cli import main

    sys.exit(main())
