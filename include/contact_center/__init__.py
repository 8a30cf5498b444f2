"""The contact center's own data model (what the retention package deletes from), for the
demo and the tests: MySQL schema, Redis key layout, COS key layout, log indices, seeding."""
