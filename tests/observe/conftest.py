"""The record store's fixtures (a SQLite file per test, the real PostgreSQL cluster)."""

from tests.store.conftest import pg_cluster, pg_url, sqlite_url, store_url

__all__ = ["pg_cluster", "pg_url", "sqlite_url", "store_url"]
