"""Auditors' tools: replay the history from the topics, prove it unchanged and extended, reconcile, export.

`ido audit replay|verify|reconcile|checkpoint|prove|export` (see docs/audit.md).
"""
