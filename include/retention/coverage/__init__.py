"""Coverage: a daily inventory of the four stores against the policy (issue 16, part 1).

Every table and column of the configured MySQL schemas, the key families of a bounded Redis
SCAN sample, the top-level COS prefixes and the Elasticsearch indices, aliases and data
streams are listed and classified as *covered* (a policy target names it), *exempt* (the
checked-in exemptions file gives a reason and an owner) or *unknown*. Unknown items are
flagged as likely personal data from their names and from a bounded sample of their values
that match E.164 or e-mail shapes: **counts only**, no sampled value is ever logged, stored
or returned. Results go to the ledger (``ledger/coverage.py``), the dashboard shows them, and
a new unknown item is e-mailed through the SLA monitor's notifier.

One module per job: ``items`` (values, name shapes, flags; pure), ``exemptions`` (the file),
``classify`` (pure: policy + exemptions -> status), ``inventory_<store>`` (list and sample one
store), ``run`` (one store's inventory, the record, the alert), ``alerting`` (the e-mail),
``tasks`` (the DAG's task bodies) and ``__main__`` (the CLI). This package imports nothing
at import time, so the dashboard may read ``ledger/coverage.py`` without reaching a store.
"""
