"""What the ledger must know of a grant year before it books a posting into it (issue 15).

The grants topic, projected into the ledger's view, says which municipality holds an award of which
year and who merged into whom. The command loads this as a ``GrantYear`` and passes it to
``Expenditure.record``, so no command can book past the two rules here:

- a posting under a merged municipality's code, booked on or after the merger's effective date, is
  refused naming the successor: from that day the successor answers for the grant;
- a posting into a grant year the municipality holds no award of is refused naming the year, unless
  that year is opened for posting before its award (``IDO_YEARS_OPEN_BEFORE_AWARD``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.ledger.domain.errors import GrantYearUnknown, MunicipalityMerged


@dataclass(frozen=True)
class GrantYear:
    municipality_code: str
    year: int
    awarded: bool
    """An award of the year was held by the code: its own, or passed to it by a merger."""
    open_before_award: bool
    """The year is opened for posting before its award by the setting."""
    merged_into: str | None = None
    merged_on: date | None = None
    """The successor and the effective date, if the municipality merged."""


def check_grant_year(grant: GrantYear, municipality_code: str, grant_year: int, booked_on: date) -> None:
    """Refuses a posting the grants topic gives the ledger no ground for (422)."""
    if (grant.municipality_code, grant.year) != (municipality_code, grant_year):
        # A caller that loads another year's standing would let a posting through: fail loudly instead.
        raise ValueError(
            f"the grant year {grant.municipality_code} {grant.year} passed for {municipality_code} {grant_year}"
        )
    if grant.merged_into is not None and grant.merged_on is not None and booked_on >= grant.merged_on:
        raise MunicipalityMerged(
            f"{municipality_code} merged into {grant.merged_into} on {grant.merged_on.isoformat()}: post spending "
            f"booked from that day under {grant.merged_into}, which answers for {municipality_code}'s grants",
            field="municipality_code",
        )
    if not grant.awarded and not grant.open_before_award:
        raise GrantYearUnknown(
            f"no award of the grant year {grant_year} is known for {municipality_code}: the ledger books spending "
            f"only into a year it has the award of (or a year opened by IDO_YEARS_OPEN_BEFORE_AWARD); if the award "
            f"was just made, retry once it is projected",
            field="grant_year",
        )
