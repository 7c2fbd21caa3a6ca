"""Readers of RMA shipment notices: the RMA number, tracking numbers, drop-off times."""
