"""IMAP intake: the mailbox adapter, folder sync, the ledger, prefetch and the processor."""
