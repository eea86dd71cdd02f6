"""The payments service's refusals; each derives from the shared kind that fixes its HTTP status."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.errors import Conflict, InvalidInput, NotFound, RuleBroken, ServiceError


class PaymentsError(ServiceError):
    """Base of every refusal of the payments service."""


class SchemeNotFound(PaymentsError, NotFound):
    """No frame was set for the year."""


class GrantNotFound(PaymentsError, NotFound):
    """No grant of the year for the municipality."""


class PaymentsConflict(PaymentsError, Conflict):
    """The command does not fit the current state (409): already done, out of order, stale."""


class PaymentsRuleBroken(PaymentsError, RuleBroken):
    """An amount or date breaks a rule of the grant (422)."""


class PaymentsInvalidInput(PaymentsError, InvalidInput):
    """Input that cannot be read (422)."""


class ConcurrentChange(PaymentsConflict):
    """Someone else changed the same scheme or grant between our read and our write."""


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "field": self.field, "reason": self.reason}


class AnnexRefused(PaymentsRuleBroken):
    """The annex file is refused whole; ``rows`` names every bad row (line, field, reason)."""

    def __init__(self, message: str, rows: list[RowError], file_errors: list[str] | None = None):
        errors: dict[str, list[str]] = {}
        for row in rows:
            errors.setdefault(f"line {row.line}.{row.field}", []).append(row.reason)
        if file_errors:
            errors["_file"] = list(file_errors)
        super().__init__(message, errors=errors)
        self.rows = rows
        self.file_errors = file_errors or []
