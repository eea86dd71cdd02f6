"""Payments: BZK's awards, advances, settlements and reclaims of the SPUK IDO (topic ido.grants.v1)."""
