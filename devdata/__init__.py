"""Development tooling, not deployed with the DAGs: the demo contact center's own data model
(what the retention package deletes from) and the synthetic-data seeder, for the demo, the
tests and the benchmarks. It may import ``include.retention``; nothing under ``include/``
imports it."""
