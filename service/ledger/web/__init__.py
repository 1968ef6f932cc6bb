"""The HTTP adaptor: parse, call the domain, render. No ledger rule lives here."""
