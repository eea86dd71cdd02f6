"""`ido recover`: a lost event store re-recorded from its topic, the ledger's view projected again (issue 19)."""
