"""The operator dashboard (``plugins/retention_dashboard.py``): read-only, in Airflow's api-server.

- ``queries``: the reads (a ``READ ONLY`` ledger session, Airflow's metadata through the ORM);
- ``view``: the view model: filters, days left and bar colours, purge volumes, JSON (pure);
- ``app``: the FastAPI app, its auth check, the page (``dashboard.html``) and the SVG plot.

Nothing here deletes or writes, and nothing it imports does: ``tests/dags/test_layering.py``
checks that from the imports.
"""
