"""``python -m pgrad`` is the ``pgrad`` command."""

from pgrad.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
