"""The two ways a command ends early: bad input (exit 2) and a failed check (exit 1)."""


class ComError(Exception):
    """Usage or input error: one clear line for the user, exit code 2, nothing written."""

    exit_code = 2


class CheckFailed(ComError):
    """The check the user asked for failed (e.g. tests failed in a hook): exit code 1."""

    exit_code = 1
