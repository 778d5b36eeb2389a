"""``python -m mercato``: the same as the ``mercato`` console script."""

from mercato.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
