"""mailbot: an email-driven claims processing daemon (cashback claims and warranty returns)."""

__version__ = "0.1.0"
