"""Errors the user can act on: the CLI prints their message on one line, with no traceback."""


class RagError(Exception):
    """Base for expected failures (bad input, missing index, unreachable model)."""
