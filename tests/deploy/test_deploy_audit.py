"""The audit stream's Terraform: a log sink filtered on the audit records, into a 90-day log bucket."""

from __future__ import annotations

from shared.audit import LOGGER_NAME, STREAM_LABEL
from tests.deploy.deploy_helpers import Terraform


def test_audit_records_go_to_a_90_day_bucket(terraform: Terraform) -> None:
    bucket = terraform.resource("google_logging_project_bucket_config", "audit")
    sink = terraform.resource("google_logging_project_sink", "audit")
    assert bucket["retention_days"] == "${var.audit_log.retention_days}"
    assert "google_logging_project_bucket_config.audit.bucket_id" in sink["destination"]
    assert (
        f'jsonPayload.logger=\\"{LOGGER_NAME}\\"' in sink["filter"]
        or f'jsonPayload.logger="{LOGGER_NAME}"' in sink["filter"]
    )
    assert STREAM_LABEL in sink["filter"]
    variable = terraform.variables["audit_log"]
    assert "optional(number, 90)" in str(variable["type"])
