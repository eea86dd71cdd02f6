"""The ledger's refusals; the HTTP layer turns each into its status (see services.common.errors)."""

from __future__ import annotations

from services.common.errors import Conflict, InvalidInput, NotFound, ServiceError


class LedgerError(ServiceError):
    """Base of every refusal of the ledger service."""


class InvalidExpenditure(LedgerError, InvalidInput):
    """Input that breaks a rule of an expenditure (422, names the field)."""


class ExpenditureNotFound(LedgerError, NotFound):
    pass


class AlreadyReversed(LedgerError, Conflict):
    pass


class YearIsClosed(LedgerError, Conflict):
    """A posting or reversal into a year that is closed for the municipality."""


class YearAlreadyClosed(LedgerError, Conflict):
    pass


class IdempotencyKeyReused(LedgerError, Conflict):
    """The same Idempotency-Key was sent with a different request."""


class ConcurrentChange(LedgerError, Conflict):
    """Other writers kept changing the same stream; the caller may try again."""


class AlreadyDeclared(LedgerError, Conflict):
    """A SiSa line that the municipality (or the ministry on its behalf) declared before."""


class GrantYearUnknown(LedgerError, InvalidInput):
    """A posting into a grant year with no award known for the municipality (422, names the year)."""


class MunicipalityMerged(LedgerError, InvalidInput):
    """A posting under a merged municipality's code on or after the effective date (422, names the successor)."""
