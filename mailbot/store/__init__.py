"""Persistence: SQLAlchemy models, engine/session setup and alembic migrations.

This package is the only place that opens a database Session.
"""
