"""Errors the CLI turns into a one-line message and a non-zero exit."""


class GogokuError(Exception):
    """A user-facing error: the message names the bad input and what to change."""


class InputError(GogokuError, ValueError):
    """A bad argument, parameter or file given by the user."""
