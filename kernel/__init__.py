"""The shared kernel: settings, the database binding, the tables, money, secrets and the error tree.

It imports nothing else of ours (tests/test_layout.py checks), so every other
package can build on it: ``billing``, ``accounts``, ``gateway``, ``arweave_store``,
``telegram_bot`` and ``webapp``.
"""
