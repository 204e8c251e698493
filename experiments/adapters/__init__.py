"""Every use of a library's private internals, one module per library, each with the version it was checked
against; ``tests/test_adapters.py`` fails when a library changes one of them.  Nothing here imports the rest of
``experiments``: any layer may use an adapter."""
