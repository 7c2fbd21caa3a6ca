"""Throwaway servers for tests, the demo and benchmarks: a local Dovecot and an SMTP sink.

Not used by the daemon in production.
"""
