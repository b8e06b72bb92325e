"""The error taxonomy of driveferry.

Every error is named for what the caller should do next and carries its evidence. This module imports
nothing from the package so that every layer can raise these errors. Messages never contain credentials:
callers pass identifiers and paths, never tokens or secrets.
"""

from __future__ import annotations

from datetime import datetime


class DriveferryError(Exception):
    """Root of every error driveferry raises on purpose."""


# --- providers ---------------------------------------------------------------------------------------


class ProviderError(DriveferryError):
    """A remote (or the local filesystem) refused or failed an operation.

    `status` is the HTTP status when there was one; `code` is the API's own reason or error code.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class TransientError(ProviderError):
    """Retrying the same request later may succeed (5xx, reset connection, timeout)."""


class ThrottledError(TransientError):
    """The remote asked us to slow down; wait `retry_after_s` seconds before the next request."""

    def __init__(self, message: str, *, retry_after_s: float, status: int | None = None,
                 code: str | None = None) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after_s = retry_after_s


class QuotaExceededError(ProviderError):
    """A quota is used up: the daily upload cap (resets at `resets_at`) or storage (`resets_at` None).

    The run pauses or checkpoints; the item itself has not failed.
    """

    def __init__(self, message: str, *, resets_at: datetime | None = None, kind: str = "daily_upload",
                 status: int | None = None, code: str | None = None) -> None:
        super().__init__(message, status=status, code=code)
        self.resets_at = resets_at
        self.kind = kind


class NotFoundError(ProviderError):
    """The item, folder or path does not exist."""


class AlreadyExistsError(ProviderError):
    """An item with that name (or id) already exists where one was to be created."""


class PermissionDeniedError(ProviderError):
    """The credentials are valid but not allowed to do this, or they were rejected (expired, revoked)."""


class UnsupportedError(ProviderError):
    """The provider cannot do this at all (e.g. download a OneNote package or a Google Doc)."""


class UploadSessionLostError(ProviderError):
    """The upload session expired or is unknown to the server: restart that file from byte 0."""


class PermanentError(ProviderError):
    """Retrying will not help (bad request, invalid name, ...)."""


# --- integrity, journal, user ------------------------------------------------------------------------


class IntegrityError(DriveferryError):
    """Content hashes disagree. Never swallowed: the item fails with both hashes recorded."""

    def __init__(self, message: str, *, hash_type: str, expected: str, actual: str) -> None:
        super().__init__(f"{message}: {hash_type} expected {expected}, got {actual}")
        self.hash_type = hash_type
        self.expected = expected
        self.actual = actual


class JournalError(DriveferryError):
    """The transfer journal cannot be opened, read or written."""


class FailedAfterWritesError(DriveferryError):
    """A failure (provider, journal) after the command began to change things (the journal, the
    destination): not "bad input, nothing changed". The CLI exits with its own code (5); running the
    same command again continues from the journal. `cause` is the original error."""

    def __init__(self, message: str, *, cause: DriveferryError) -> None:
        super().__init__(message)
        self.cause = cause


class UserError(DriveferryError):
    """Bad input from the user: the CLI prints the one-line message and exits with code 2.

    The message names the problem and the fix.
    """
