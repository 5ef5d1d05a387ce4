"""Policy checks on terraform/ (parsed with python-hcl2; no provider, no cloud)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from shared.config import Settings
from tests.deploy.deploy_helpers import FUNCTIONS, TERRAFORM, Terraform, parse_file

SECRET_NAME = re.compile(r"(?i)(secret|token|password|passwd|api_key|_url$|dsn)")
ALLOWED_PLAIN_URLS = {"PUBLIC_BASE_URL", "WORKER_URL"}  # addresses, not credentials


def _only(blocks: list[dict[str, Any]] | None, what: str) -> dict[str, Any]:
    assert blocks and len(blocks) == 1, f"expected exactly one {what} block, found {blocks!r}"
    return blocks[0]


def _dynamic(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    for block in body.get("dynamic", []):
        if name in block:
            return block[name]
    return None


def _option_default(type_expr: str, attribute: str) -> float:
    match = re.search(rf"\b{attribute}\s*=\s*optional\(number,\s*([0-9.]+)\)", type_expr)
    assert match, f"expected `{attribute} = optional(number, N)` in {type_expr}"
    return float(match.group(1))


@pytest.mark.parametrize("path", sorted(TERRAFORM.rglob("*.tf")) + sorted(TERRAFORM.rglob("*.tfvars*")))
def test_every_file_parses(path) -> None:
    assert isinstance(parse_file(path), dict)


def test_provider_and_terraform_versions_are_pinned(terraform: Terraform) -> None:
    block = _only(terraform.files["versions.tf"]["terraform"], "terraform")
    assert block["required_version"] == ">= 1.6.0"
    google = _only(block["required_providers"], "required_providers")["google"]
    assert google == {"source": "hashicorp/google", "version": "~> 7.45"}


def test_state_is_remote_in_gcs_with_partial_config(terraform: Terraform) -> None:
    backend = _only(terraform.files["backend.tf"]["terraform"], "terraform")["backend"]
    assert backend == [{"gcs": {}}]


def test_every_variable_has_description_and_type_in_alphabetical_order(terraform: Terraform) -> None:
    names = list(terraform.variables)
    assert names == sorted(names), "variables.tf must list variables alphabetically"
    for name, body in terraform.variables.items():
        assert body.get("description", "").strip(), f"variable {name} needs a description"
        assert body.get("type"), f"variable {name} needs a type"
        for rule in body.get("validation", []):
            assert len(rule["error_message"]) > 30, f"variable {name}: say how to fix it"


def test_three_python312_functions_from_content_addressed_bundles(terraform: Terraform) -> None:
    fn = terraform.resource("google_cloudfunctions2_function", "this")
    assert fn["for_each"] == "${local.functions}"
    assert sorted(terraform.locals["functions"]) == sorted(FUNCTIONS)
    build = _only(fn["build_config"], "build_config")
    assert build["runtime"] == "python312"
    assert build["entry_point"] == "${each.key}"  # entry points are named after the function
    source = _only(_only(build["source"], "source")["storage_source"], "storage_source")
    assert source["object"] == "${google_storage_bucket_object.bundle[each.key].name}"
    bundle = terraform.resource("google_storage_bucket_object", "bundle")
    assert "filemd5(" in bundle["name"] and "dist" in terraform.locals["bundle_dir"]


def test_each_function_has_its_own_service_account(terraform: Terraform) -> None:
    service = _only(terraform.resource("google_cloudfunctions2_function", "this")["service_config"], "sc")
    assert service["service_account_email"] == "${google_service_account.function[each.key].email}"
    accounts = terraform.resource("google_service_account", "function")
    assert accounts["for_each"] == "${local.functions}"
    assert "${each.key}" in accounts["account_id"]
    bridge = _only(terraform.resource("google_cloud_run_v2_worker_pool", "bridge")["template"], "template")
    assert bridge["service_account"] == "${google_service_account.bridge.email}"


def test_least_privilege_project_roles(terraform: Terraform) -> None:
    project_bindings = terraform.resources.get("google_project_iam_member", {})
    assert set(project_bindings) == {"worker", "build"}
    worker = project_bindings["worker"]
    assert worker["member"] == '${google_service_account.function["worker"].member}'
    assert sorted(terraform.locals["worker_project_roles"]) == [
        "roles/aiplatform.user",
        "roles/speech.client",
    ]
    roles = [role for _, _, body in terraform.all_resources() for role in [body.get("role", "")]]
    assert not [r for r in roles if r in {"roles/owner", "roles/editor"}]


def test_secret_access_is_per_secret_and_per_workload(terraform: Terraform) -> None:
    consumers = terraform.locals["secret_consumers"]
    assert set(consumers) >= {
        "API_KEYS", "API_TOKENS", "CALLBACK_HMAC_SECRET", "EAI_AGENT_SERVICE_TOKEN",
        "JWT_SECRET", "OPENAI_API_KEY", "RABBITMQ_URL", "REDIS_URL",
    }  # fmt: skip
    for workload in ("poll", "webhook"):
        reads = {name for name, who in consumers.items() if workload in who}
        assert reads <= {"API_KEYS", "API_TOKENS", "JWT_SECRET", "RABBITMQ_URL", "REDIS_URL"}
    access = terraform.resource("google_secret_manager_secret_iam_member", "access")
    assert access["role"] == "roles/secretmanager.secretAccessor"
    assert access["secret_id"].startswith("${google_secret_manager_secret.this[")


def test_no_all_users_invoker_on_the_worker(terraform: Terraform) -> None:
    assert terraform.locals["functions"]["worker"]["public"] is False
    for rtype, name, body in terraform.all_resources():
        if "allUsers" not in str(body) and "allAuthenticatedUsers" not in str(body):
            continue
        assert (rtype, name) == ("google_cloud_run_v2_service_iam_member", "public_invoker"), (
            f"{rtype}.{name} grants a public member"
        )
        assert "if fn.public" in body["for_each"], "the public invoker must be limited to public functions"


def test_worker_ingress_is_internal_only(terraform: Terraform) -> None:
    service = _only(terraform.resource("google_cloudfunctions2_function", "this")["service_config"], "sc")
    assert service["ingress_settings"] == "${each.value.ingress}"
    ingress = {name: fn["ingress"] for name, fn in terraform.locals["functions"].items()}
    assert ingress == {
        "poll": "ALLOW_INTERNAL_AND_GCLB",
        "webhook": "ALLOW_INTERNAL_AND_GCLB",
        "worker": "ALLOW_INTERNAL_ONLY",
    }


def test_worker_timeout_exceeds_the_agent_timeout(terraform: Terraform) -> None:
    timeouts = terraform.variables["timeouts"]
    agent = _option_default(timeouts["type"], "agent")
    worker = _option_default(timeouts["type"], "worker")
    app_default = Settings.model_fields["agent_timeout"].default
    assert agent == app_default, "AGENT_TIMEOUT default must match shared/config.py"
    assert worker > agent and worker <= 3600
    assert any("var.timeouts.worker > var.timeouts.agent" in v["condition"] for v in timeouts["validation"])
    assert terraform.locals["functions"]["worker"]["timeout"] == "${var.timeouts.worker}"
    assert terraform.locals["common_env"].count("AGENT_TIMEOUT") == 1


def test_threads_follow_concurrency(terraform: Terraform) -> None:
    service = _only(terraform.resource("google_cloudfunctions2_function", "this")["service_config"], "sc")
    assert service["max_instance_request_concurrency"] == "${each.value.scaling.concurrency}"
    assert "THREADS = tostring(each.value.scaling.concurrency)" in service["environment_variables"]


def _plain_env_names(terraform: Terraform) -> set[str]:
    names = set(re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=", terraform.locals["common_env"]))
    names |= set(re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=", str(terraform.locals["bridge_env"])))
    service = _only(terraform.resource("google_cloudfunctions2_function", "this")["service_config"], "sc")
    names |= set(re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=", service["environment_variables"]))
    return names


def test_secrets_only_as_secret_env_vars(terraform: Terraform) -> None:
    plain = _plain_env_names(terraform)
    assert {"THREADS", "AGENT_PROVIDER", "WORKER_URL", "BRIDGE_SINK"} <= plain
    leaking = {n for n in plain if SECRET_NAME.search(n)} - ALLOWED_PLAIN_URLS
    assert not leaking, f"secret-looking settings in plain env: {sorted(leaking)}"
    assert not set(terraform.locals["secret_consumers"]) & plain

    service = _only(terraform.resource("google_cloudfunctions2_function", "this")["service_config"], "sc")
    mounted = _dynamic(service, "secret_environment_variables")
    assert mounted and mounted["for_each"] == "${local.workload_secrets[each.key]}"
    container = _only(
        _only(terraform.resource("google_cloud_run_v2_worker_pool", "bridge")["template"], "t")["containers"],
        "containers",
    )
    env_blocks = [b["env"] for b in container["dynamic"]]
    assert any("secret_key_ref" in str(b) and "workload_secrets" in b["for_each"] for b in env_blocks)
    extra = terraform.variables["extra_env"]["validation"][0]["condition"]
    assert "secret" in extra and "redis_url" in extra


def test_no_literal_credentials_anywhere(terraform: Terraform) -> None:
    for path in sorted(TERRAFORM.rglob("*.tf*")):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(amqps?|rediss?)://[^\"$]*:[^\"$@]+@", text), f"credential URL in {path.name}"
        assert not re.search(r"(?i)(password|secret_data)\s*=\s*\"[^$]", text), (
            f"literal secret in {path.name}"
        )


def test_push_subscription_has_oidc_retry_and_dead_letter(terraform: Terraform) -> None:
    sub = terraform.resource("google_pubsub_subscription", "worker_push")
    push = _only(sub["push_config"], "push_config")
    oidc = _only(push["oidc_token"], "oidc_token")
    assert oidc["service_account_email"] == "${google_service_account.push.email}"
    retry = _only(sub["retry_policy"], "retry_policy")
    assert retry["minimum_backoff"] and retry["maximum_backoff"]
    dead = _only(sub["dead_letter_policy"], "dead_letter_policy")
    assert dead["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert dead["max_delivery_attempts"] == "${var.pubsub.max_delivery_attempts}"
    agent = "${local.pubsub_service_agent}"
    assert (
        terraform.resource("google_pubsub_topic_iam_member", "service_agent_dead_letter")["member"] == agent
    )
    assert (
        terraform.resource("google_pubsub_subscription_iam_member", "service_agent_acks_dead_letters")[
            "member"
        ]
        == agent
    )
    assert terraform.resource("google_service_account_iam_member", "service_agent_mints_push_tokens")
    terraform.resource("google_pubsub_subscription", "dead_letter")


def test_bridge_and_push_identities_may_invoke_the_worker(terraform: Terraform) -> None:
    for name, member in (
        ("bridge_invokes_worker", "${google_service_account.bridge.member}"),
        ("push_invokes_worker", "${google_service_account.push.member}"),
    ):
        binding = terraform.resource("google_cloud_run_v2_service_iam_member", name)
        assert binding["role"] == "roles/run.invoker" and binding["member"] == member
        assert '["worker"]' in binding["name"]


def test_redis_requires_auth_and_is_private(terraform: Terraform) -> None:
    redis = terraform.resource("google_redis_instance", "this")
    assert redis["auth_enabled"] is True
    assert redis["authorized_network"] == "${google_compute_network.this.id}"


def test_public_routes_go_to_webhook_and_poll(terraform: Terraform) -> None:
    url_map = terraform.resource("google_compute_url_map", "https")
    matcher = _only(url_map["path_matcher"], "path_matcher")
    rule = _only(matcher["path_rule"], "path_rule")
    assert rule["paths"] == ["/api/v1/message/webhook/*"]
    assert 'function["webhook"]' in rule["service"]
    assert 'function["poll"]' in matcher["default_service"]
    proxy = terraform.resource("google_compute_target_https_proxy", "this")
    assert "managed_ssl_certificate" in str(proxy["ssl_certificates"])


def test_env_names_are_the_settings_names(terraform: Terraform) -> None:
    from shared.config import env_name

    known = {env_name(Settings, field) for field in Settings.model_fields}
    future = {"GOOGLE_PROJECT_ID", "GOOGLE_REGION", "REASONING_ENGINE_ID", "TRANSCRIBE_PROVIDER"}
    runtime = {"THREADS", "LOG_EXECUTION_ID"}  # read by functions-framework / Cloud Run
    unknown = _plain_env_names(terraform) - known - future - runtime
    assert not unknown, f"env vars no setting reads: {sorted(unknown)}"


def test_redis_cluster_is_an_option_wired_to_the_app(terraform: Terraform) -> None:
    """redis.mode = "cluster" swaps the instance for Memorystore Cluster and a redis+cluster:// URL."""
    instance = terraform.resource("google_redis_instance", "this")
    cluster = terraform.resource("google_redis_cluster", "this")
    policy = terraform.resource("google_network_connectivity_service_connection_policy", "redis")
    assert instance["count"] == '${var.redis.mode == "instance" ? 1 : 0}'
    assert cluster["count"] == policy["count"] == '${var.redis.mode == "cluster" ? 1 : 0}'
    assert policy["service_class"] == "gcp-memorystore-redis"
    assert cluster["psc_configs"][0]["network"] == "${google_compute_network.this.id}"
    secrets = (TERRAFORM / "secrets.tf").read_text()
    assert '"redis+cluster"' in secrets and "discovery_endpoints[0].address" in secrets
