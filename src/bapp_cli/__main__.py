"""`python -m bapp_cli` runs the same entry point as the `bapp` console script."""

from bapp_cli.cli.launcher import main

if __name__ == "__main__":
    main()
