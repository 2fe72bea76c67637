"""Errors a user can fix; the CLI turns them into a one-line message and exit code 2."""


class InputError(ValueError):
    """Bad user input (file, row, field or argument). The message names where the problem is."""

    exit_code = 2
