"""`python -m alexnet_edu ...` runs the command line (see `alexnet_edu.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
