"""Local servers for the demo and the tests: MariaDB, Redis, an S3 store (Swift s3api) and an
Elasticsearch stand-in. Each module offers ``ensure() -> Endpoint`` (reuse a running server,
else start one we own) and the package stops only the processes it started, by pid.

Usage: ``python -m devservers up|down|status|env``.
"""
