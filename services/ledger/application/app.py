"""The ledger's eventsourcing Application: loads and saves the small aggregates."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, RecordConflictError

from services.ledger.domain.model import Books, Expenditure, books_id, expenditure_aggregate_id

CONFLICTS = (IntegrityError, RecordConflictError)
"""What eventsourcing raises when another writer saved the same stream version first."""


class LedgerApplication(Application[UUID]):
    name = "ledger"

    def find_expenditure(self, expenditure_id: UUID | str) -> Expenditure | None:
        try:
            found: Expenditure = self.repository.get(expenditure_aggregate_id(expenditure_id))
        except AggregateNotFoundError:
            return None
        return found

    def find_books(self, municipality_code: str, year: int) -> Books | None:
        try:
            found: Books = self.repository.get(books_id(municipality_code, year))
        except AggregateNotFoundError:
            return None
        return found
