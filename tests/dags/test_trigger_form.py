"""The trigger form of ``deletion_requests`` as Airflow 3.3's UI draws it from the DAG's Params.

The UI's rules (airflow-core ``ui/src/components/FlexibleForm``): a field is marked required
when its schema has a ``type`` without ``"null"`` (``isParamRequired.tsx``); a string with
``enum`` is a drop-down whose options are the enum's values (``null`` included, as a literal
"null" unless ``values_display`` names it); an array with ``examples`` is a multi-select
(``FieldSelector.tsx``). The api-server validates the conf against every Param's JSON schema
when the run is triggered, so a pattern refuses a value before any run exists.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

OPERATOR_FIELDS = {"request_type", "tenant_id", "reference", "requested_by"}


@pytest.fixture(scope="module")
def params() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    from tests.e2e.conftest import ROOT

    bag = DagBag(dag_folder=str(ROOT / "dags" / "deletion_requests.py"))
    assert not bag.import_errors
    return bag.dags["deletion_requests"].params


def marked_required(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return bool(kind) and not (isinstance(kind, list) and "null" in kind)


def trigger(params: Any, **conf: Any) -> None:
    """What the api-server does with a trigger's conf: every Param validated (raises on a refusal)."""
    chosen = copy.deepcopy(params)
    chosen.update({"request_type": "deletion", "tenant_id": "1600123", "reference": "TKT-1",
                   "requested_by": "dpo@example.test", **conf})
    chosen.validate()


def test_only_the_fields_an_operator_must_fill_are_required(params: Any) -> None:
    required = {name for name in params if marked_required(params.get_param(name).schema)}
    # Mode is a drop-down that always holds a choice (preview first); it is never empty.
    assert required == OPERATOR_FIELDS | {"mode"}
    assert params.get_param("mode").value == "preview"
    for name in OPERATOR_FIELDS:  # empty: the form keeps Trigger disabled until they are filled
        assert not params.get_param(name).has_value, name


def test_subject_type_offers_no_null_option_and_starts_empty(params: Any, policy: Any) -> None:
    subject_type = params.get_param("subject_type")
    assert None not in (subject_type.schema.get("enum") or [])
    assert subject_type.value is None
    assert subject_type.schema["examples"] == list(policy.subject_formats)


def test_categories_are_a_multi_select_of_the_policy_names(params: Any, policy: Any) -> None:
    categories = params.get_param("categories").schema
    assert categories["examples"] == list(policy.categories)  # the UI's multi-select options
    assert set(categories["values_display"]) == set(policy.categories)
    assert "terminations only" in categories["values_display"]["configuration"]


def test_resume_is_in_a_section_of_its_own(params: Any) -> None:
    resume = params.get_param("resume")
    assert resume.schema.get("section") and resume.value is False
    assert {params.get_param(n).schema.get("section") for n in params if n != "resume"} == {None}


def test_the_time_zones_are_named_where_a_time_is_entered(params: Any, policy: Any) -> None:
    description = params.get_param("received_at").description
    assert "UTC" in description and policy.timezone_name in description and "+08:00" in description


@pytest.mark.parametrize(
    "conf, field",
    [
        pytest.param({"tenant_id": "16001*"}, "tenant_id", id="wildcard-tenant"),
        pytest.param({"tenant_id": "*"}, "tenant_id", id="star-tenant"),
        pytest.param({"subject_type": "phone_number", "subject_id": "*"}, "subject_id", id="star-subject"),
        pytest.param({"subject_type": "agent", "subject_id": "a1%"}, "subject_id", id="like-subject"),
        pytest.param({"subject_type": "phone_number", "subject_id": "+65 8123 4567"}, "subject_id", id="spaces"),
        pytest.param({"subject_type": "agnet", "subject_id": "a1"}, "subject_type", id="typo-type"),
        pytest.param({"categories": ["billing"]}, "categories", id="unknown-category"),
        pytest.param({"reference": "TKT 1; DROP"}, "reference", id="bad-reference"),
    ],
)
def test_the_trigger_refuses_what_no_format_admits(params: Any, conf: dict[str, Any], field: str) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match=f"param {field}"):
        trigger(params, **conf)


@pytest.mark.parametrize(
    "conf",
    [
        pytest.param({"request_type": "termination"}, id="termination-empty-subject"),
        pytest.param({"subject_type": "phone_number", "subject_id": "+6581234567"}, id="phone"),
        pytest.param({"subject_type": "agent", "subject_id": "a10", "categories": ["call_data"]}, id="agent"),
        pytest.param({"request_type": "termination", "categories": None, "resume": None}, id="cleared-fields"),
    ],
)
def test_the_trigger_accepts_a_well_formed_request(params: Any, conf: dict[str, Any]) -> None:
    trigger(params, **conf)
