"""Ledger service: expenditures of the SPUK IDO grant and the balances projected from Kafka."""
