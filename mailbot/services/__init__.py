"""Use cases over the database: the glue between the pure core and the store.

Each function runs inside a Session the caller owns (one transaction), loads
snapshots, calls the pure core with `now`, and records what it returned: the new
snapshot, one event with reasons and rules version, and at most one queued reply.
"""
