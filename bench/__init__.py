"""Benchmarks: every hot path measured beside its reference, in one run (`make bench`)."""
