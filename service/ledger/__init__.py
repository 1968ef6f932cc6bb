"""Ledger: a double-entry payment ledger on PostgreSQL.

The domain lives in this package's top-level modules and never imports aiohttp; the HTTP adaptor is in
`ledger.web`, and `ledger.app` wires the two together.
"""

__version__ = "0.1.0"
