"""The ways a use-case ends early, as data: a code, the offending parameter, and a message without CLI wording.

Front ends render them: the CLI as one line naming its own flag for `param` (exit 2, or 1 for a failed check),
`--json` as `{"error": {"code", "param", "message"}}`, a future server as an HTTP status."""

from __future__ import annotations


class ComError(Exception):
    """Usage or input error: one clear line for the user, exit code 2, nothing written.

    `param` names the parameter at fault in the library's words (e.g. "status", "limit", "at"); the CLI
    turns it into the flag the user typed. `code` is a stable word for programs."""

    exit_code = 2
    code = "invalid_input"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict:
        return {"code": self.code, "param": self.param, "message": self.message}


class NotFound(ComError):
    """Something the user named does not exist (a revision, an event id, a branch, a remote)."""

    code = "not_found"


class InvalidEvent(ComError):
    """An event failed validation; the message names the field (and the line, when known)."""

    code = "invalid_event"


class Damaged(ComError):
    """The journal (or a derived store) is damaged: a ref pointing at a missing object, a garbage HEAD, a missing
    batch. Reported as damage, never read as emptiness; the message points at `com fsck`."""

    code = "damaged"


class CheckFailed(ComError):
    """The check the user asked for failed (e.g. tests failed in a hook): exit code 1."""

    exit_code = 1
    code = "check_failed"
