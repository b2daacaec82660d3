"""Alembic migrations of the call-record store (``callbridge.service.store``); applied by
``migrate``."""
