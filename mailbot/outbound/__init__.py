"""Sending replies: the outbox sender and the SMTP adapter."""
