"""Domain building blocks shared by the services: hash-chained aggregates."""
