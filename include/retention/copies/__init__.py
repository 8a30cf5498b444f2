"""Derived copies: where deleted data may live on after the delete, and until when, read from each server.

One reader per store (``mysql_binlog``, ``redis_persistence``, ``cos_versions``,
``es_snapshots``), each a pure statement of what its server answered; ``read`` opens the
servers through the connections the stores already use. The certificate lists every copy.
"""
