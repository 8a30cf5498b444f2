"""Airflow plugin: the data-retention operator dashboard (read-only).

Mounts the FastAPI app of ``include/retention/dashboard/app.py`` at ``/retention`` in the
api-server and adds "Retention" to the UI's navigation (an external view, shown in
the UI at ``/plugin/retention``). It only reads the ledger and Airflow's metadata; it never
deletes or changes anything. Routes, auth and screenshots: ``docs/DASHBOARD.md``.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.retention.dashboard.app import app

URL_PREFIX = "/retention"


class RetentionDashboardPlugin(AirflowPlugin):
    name = "retention_dashboard"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Data retention dashboard"}]
    external_views = [
        {
            "name": "Retention",
            "href": f"{URL_PREFIX}/",
            "url_route": "retention",
            "destination": "nav",
            "nav_top_level": True,  # a button of its own in the nav bar, not under "Plugins"
        }
    ]
