"""``rayroute``: the one command line. This package owns the argument tree; the logic it calls
lives in plain functions of ``routers`` (library), ``deployments`` (server), ``bench`` and ``ops``.

Each module here has ``add_cli(subparsers)``, which adds its parsers and sets ``func`` to a callable
taking the parsed ``argparse.Namespace`` and returning an exit code. Logic modules are imported
when a command runs, never when the parser is built, so ``rayroute --help`` stays fast and a
library command never imports Ray.
"""


def split_list(value: str | None) -> list[str]:
    """A comma-separated option as a list, blanks dropped (``--routers a,b``)."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]
