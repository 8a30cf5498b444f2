"""Operator command lines (``python -m include.retention.cli.<name>``): thin argument parsing
over the ledger and the policy; none is imported by a DAG."""
