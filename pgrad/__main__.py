"""``python -m pgrad`` is the ``pgrad`` command (:mod:`pgrad.tools.cli`)."""

import sys

try:
    from pgrad.tools.cli import run
except KeyboardInterrupt:  # Ctrl-C while Python is still importing the command
    print("pgrad: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

if __name__ == "__main__":
    run()
