"""The dashboard's coverage panel: the last run's totals and its unknown items, names and counts only."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from include.retention.dashboard import view as dash
from include.retention.ledger.coverage import CoverageItemRow, CoverageRun
from include.retention.policy import Policy
from tests.unit.test_dashboard import _view

AS_OF = datetime(2026, 12, 1, tzinfo=timezone.utc)


def _panel(full_view: bool = True) -> dash.CoveragePanel | None:
    run = CoverageRun("scheduled__2026-12-01", AS_OF, AS_OF, 40, 30, 8, 2, 1, 2,
                      {"mysql": {"full_view": full_view}})
    rows = [CoverageItemRow("mysql:table:crm_callbacks", "mysql", "table", "crm_callbacks", "unknown", (), 1, 60, 60,
                            0, AS_OF, AS_OF, True),
            CoverageItemRow("redis:keys:cc:*:tmp:*", "redis", "keys", "cc:*:tmp:*", "unknown", (), 12, 5, 0, 0, AS_OF,
                            AS_OF, True)]
    return dash.coverage_panel(run, rows)


def test_the_page_shows_the_unknown_items_with_their_flags_and_counts(policy: Policy) -> None:
    from include.retention.dashboard.app import render_page

    page = render_page(dataclasses.replace(_view(policy), coverage=_panel()), policy)
    assert 'id="coverage-section"' in page and "2 unknown" in page and "1 likely personal data" in page
    assert 'data-item="mysql:table:crm_callbacks" data-personal="yes"' in page
    assert 'data-item="redis:keys:cc:*:tmp:*" data-personal="no"' in page
    assert "retention_coverage_mysql" not in page
    limited = render_page(dataclasses.replace(_view(policy), coverage=_panel(full_view=False)), policy)
    assert "define <code>retention_coverage_mysql</code>" in limited


def test_no_run_yet_and_the_json(policy: Policy) -> None:
    from include.retention.dashboard.app import render_page

    assert 'id="no-coverage"' in render_page(_view(policy), policy)
    assert dash.view_json(_view(policy))["coverage"] is None
    data = dash.view_json(dataclasses.replace(_view(policy), coverage=_panel()))["coverage"]
    assert data["unknown"] == 2 and data["unknown_items"][0]["e164_matches"] == 60
