"""`python -m alexnet_edu ...` runs the command line (see `alexnet_edu.cli`)."""

import sys


def run() -> int:
    """`cli.main`, imported here so that a Ctrl-C while PyTorch loads (seconds) is one line and
    exit code 130, like a Ctrl-C later, not a traceback through the import machinery."""
    try:
        from .cli import main
    except KeyboardInterrupt:
        print("alexnet-edu: error: interrupted while starting (nothing was done)", file=sys.stderr)
        return 130
    return main()


if __name__ == "__main__":
    raise SystemExit(run())
