"""Parity tables: every learning-relevant setting of each preset against its reference code."""
