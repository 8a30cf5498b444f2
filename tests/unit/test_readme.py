"""The README quotes the policy exactly as policy.yaml says it."""

from __future__ import annotations

from pathlib import Path

from include.retention.cli import policy_doc

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_policy_table_matches_policy_yaml(policy) -> None:  # type: ignore[no-untyped-def]
    text = README.read_text()
    start, end = text.index(policy_doc.BEGIN), text.index(policy_doc.END) + len(policy_doc.END)
    assert text[start:end] == policy_doc.readme_block(policy), (
        "README policy table is stale: regenerate with `python -m include.retention.cli.policy_doc`"
    )


def test_readme_names_the_two_commands() -> None:
    text = README.read_text()
    assert "./scripts/demo.sh" in text and "./scripts/test.sh" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "./scripts/test.sh" in ci
