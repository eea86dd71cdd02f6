"""The errors that say a database is away (down, restarting, its pool exhausted), not that a write is wrong.

The HTTP layer answers them 503 with Retry-After; the group commit stops trying the other saves it
holds when it meets one, since they would only wait on the same retries to fail the same way.
"""

from __future__ import annotations

import psycopg
import psycopg_pool
from eventsourcing.persistence import InterfaceError as StoreInterfaceError
from eventsourcing.persistence import OperationalError as StoreOperationalError
from sqlalchemy.exc import InterfaceError as SqlInterfaceError
from sqlalchemy.exc import OperationalError as SqlOperationalError

from services.common.outage_budget import DatabaseAway

DATABASE_UNREACHABLE: tuple[type[Exception], ...] = (
    StoreOperationalError,
    StoreInterfaceError,
    SqlOperationalError,
    SqlInterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
    DatabaseAway,
)
