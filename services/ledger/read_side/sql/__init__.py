"""The read side's SQL adapter: the view's tables, the projection writing them, the queries and the
read-your-writes poller reading them. The only part of ``read_side`` that imports SQLAlchemy."""
