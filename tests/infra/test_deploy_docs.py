"""docs/deploy.md is what a first-time deployer follows: every key and output
the program has is explained there, and what the mocks cannot see is written down."""

from __future__ import annotations

import re
from pathlib import Path

from infra.config import PLAIN_KEYS
from tests.infra.pulumi_mocks import Deployment

DEPLOY_DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def deploy_section() -> str:
    text = DEPLOY_DOC.read_text()
    return text[text.index("# Deploy to Google Cloud") :]


def table_keys(section: str, heading: str) -> set[str]:
    """The first-column names of the table under ``heading`` (`a`, `b` rows included)."""
    part = section[section.index(heading) :]
    rows = re.findall(r"^\| ([^|]+) \|", part[: part.index("\n## ")], flags=re.M)
    return {name for row in rows for name in re.findall(r"`([a-z_:]+)`", row)}


def test_every_config_key_is_in_the_stack_table() -> None:
    assert set(PLAIN_KEYS) <= table_keys(deploy_section(), "## 2. Configure a stack")


def test_every_output_is_in_the_outputs_table(
    deployment: Deployment, with_domain: Deployment, messaging: Deployment, foundation: Deployment
) -> None:
    runs = (deployment, with_domain, messaging, foundation)
    outputs = {name for run in runs for name in run.outputs}
    assert outputs <= table_keys(deploy_section(), "## 4. Read the outputs")


def test_the_first_deploy_checklist_has_both_passes_and_the_smoke_test() -> None:
    section = deploy_section()
    checklist = section[section.index("## First deploy checklist") :]
    checklist = checklist[: checklist.index("\n## ")]
    for step in ("make deploy", "make image", "make smoke", "egress_ip", "public_domain"):
        assert step in checklist, step
    assert "Cannot find metric(s)" in checklist  # the alert race, and the second `up`


def test_the_prerequisites_a_first_run_cannot_do_itself() -> None:
    section = deploy_section()
    assert (
        "gcloud services enable cloudresourcemanager.googleapis.com serviceusage.googleapis.com"
        in section
    )
    # Cloud Build's account in new projects, and exactly the role it needs.
    assert "-compute@developer.gserviceaccount.com" in section
    assert "roles/cloudbuild.builds.builder" in section


def test_teardown_says_what_a_destroy_meets() -> None:
    section = deploy_section()
    teardown = section[section.index("**Tearing down.**") :]
    assert "pulumi destroy --exclude-protected" in teardown
    assert "one to two" in teardown and "subnet" in teardown  # Direct VPC egress addresses
    assert "firestore_import true" in teardown  # a database left behind, adopted


def test_rotation_says_how_old_secret_versions_go() -> None:
    section = deploy_section()
    assert "DISABLE" in section and "gcloud secrets versions destroy" in section
