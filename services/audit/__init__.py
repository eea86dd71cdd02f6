"""Auditors' tools: replay the history from the topics, prove it unchanged, reconcile, export.

`ido audit replay|verify|reconcile|checkpoint|export` (see docs/audit.md).
"""
