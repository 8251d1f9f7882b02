"""Errors meant for the user: the CLI prints their message (no traceback) and exits with status 2."""


class UserError(Exception):
    """Bad input, missing file, refused gate… something the user can fix from the message alone."""
