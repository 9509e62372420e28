"""Every money move: quota reservations and settlements, persisted holds, the ledger and its group commit,
model prices, and the token counts a charge is priced on.

Nothing outside this package changes a balance (tests/test_layout.py checks that
the balance columns are written here only). It builds on ``kernel`` alone.
"""
