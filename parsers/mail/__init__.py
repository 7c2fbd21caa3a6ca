"""Readers of a mail: bytes -> InboundEmail, its headers, attachments and classification."""
