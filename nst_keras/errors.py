"""Errors a user can cause: the CLI turns them into one line on stderr and exit code 2."""


class UserError(Exception):
    """Bad input: a message naming the bad value and what would be accepted."""
