"""Alembic migrations of the call-record store (``bridge.store``); applied by ``migrate``."""
