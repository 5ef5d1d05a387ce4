"""Every auth path x role x endpoint, JWT verification, and the start-up refusal without credentials."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import functions_framework
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth import Authenticator, AuthError, Role, build_authenticator, require_credentials
from shared.config import get_settings
from shared.errors import ConfigError
from shared.runtime import build_runtime, set_runtime
from tests.conftest import (
    ADMIN_TOKEN,
    JWT_SECRET,
    READER_KEY,
    READER_TOKEN,
    SENDER_KEY,
    SENDER_TOKEN,
    make_settings,
)

MESSAGE_ID = str(uuid.uuid4())
BODY = {"user_number": "5521999999999", "message": "conta=1"}


def hs256(**claims: Any) -> str:
    payload = {"sub": "svc-1", "exp": int(time.time()) + 300, **claims}
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


CREDENTIALS: dict[str, dict[str, str]] = {
    "none": {},
    "bad-token": {"Authorization": "Bearer not-a-token"},
    "bad-scheme": {"Authorization": f"Basic {ADMIN_TOKEN}"},
    "bad-key": {"X-API-Key": "nope"},
    "admin-token": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    "sender-token": {"Authorization": f"Bearer {SENDER_TOKEN}"},
    "reader-token": {"Authorization": f"bearer {READER_TOKEN}"},
    "sender-key": {"X-API-Key": SENDER_KEY},
    "reader-key": {"X-API-Key": READER_KEY},
    "admin-jwt": {"Authorization": "Bearer " + hs256(role="admin")},
    "sender-jwt": {"Authorization": "Bearer " + hs256(role="message_sender")},
    "reader-jwt": {"Authorization": "Bearer " + hs256(role=["read_only"])},
    "roleless-jwt": {"Authorization": "Bearer " + hs256()},
}
LEVEL = {
    "admin-token": 3,
    "admin-jwt": 3,
    "sender-token": 2,
    "sender-key": 2,
    "sender-jwt": 2,
    "reader-token": 1,
    "reader-key": 1,
    "reader-jwt": 1,
    "roleless-jwt": 0,
}
ENDPOINTS: list[tuple[str, str, int | None]] = [
    # method, path, required level (None: open)
    ("POST", "/api/v1/message/webhook/user", 2),
    ("GET", f"/api/v1/message/response?message_id={MESSAGE_ID}", 1),
    ("GET", "/api/v1/message/last-activity?user_number=5521999999999", 1),
    ("GET", f"/api/v1/message/debug/task-status?message_id={MESSAGE_ID}", 3),
    ("GET", "/health", 1),
    ("GET", "/health/redis", 1),
    ("GET", "/metrics", 1),
    ("GET", "/live", None),
    ("GET", "/ready", None),
    ("GET", "/openapi.json", None),
]


def expected_status(credential: str, required: int | None) -> str:
    if required is None:
        return "ok"
    if credential not in LEVEL:
        return "401"
    return "ok" if LEVEL[credential] >= required else "403"


CASES = [
    pytest.param(method, path, name, expected_status(name, level), id=f"{name}-{method}-{path.split('?')[0]}")
    for method, path, level in ENDPOINTS
    for name in CREDENTIALS
]


@pytest.fixture(scope="module")
def client():
    from tests.conftest import gateway_app

    runtime = build_runtime(make_settings())
    yield gateway_app(runtime).test_client()
    runtime.close()


@pytest.mark.parametrize(("method", "path", "credential", "expected"), CASES)
def test_role_matrix(client, method, path, credential, expected):
    headers = dict(CREDENTIALS[credential])
    kwargs: dict[str, Any] = {"headers": headers}
    if method == "POST":
        kwargs["json"] = BODY
    response = client.open(path, method=method, **kwargs)
    if expected == "401":
        assert response.status_code == 401
        assert response.json == {
            "error": "Unauthorized",
            "message": "Invalid or missing authentication token",
        }
        assert response.headers["WWW-Authenticate"] == "Bearer"
    elif expected == "403":
        assert response.status_code == 403
        assert response.json["error"] == "Forbidden"
    else:
        assert response.status_code not in (401, 403), response.data


def test_worker_endpoint_is_not_covered_by_tokens(client):
    response = client.post("/internal/worker", json={"message": {"data": "!!"}})
    assert response.status_code == 400  # reached the handler: no 401


def test_health_and_metrics_can_be_public(make_gateway):
    client, _ = make_gateway(health_public=True, metrics_public=True)
    assert client.get("/health").status_code == 200
    assert client.get("/health/redis").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get(f"/api/v1/message/response?message_id={MESSAGE_ID}").status_code == 401


def test_auth_disabled_opens_every_route(make_gateway):
    client, _ = make_gateway(auth_disabled=True, api_token="", api_tokens=[], api_keys=[], jwt_secret="")
    assert client.post("/api/v1/message/webhook/user", json=BODY).status_code == 202
    assert client.get(f"/api/v1/message/debug/task-status?message_id={MESSAGE_ID}").status_code == 404


def test_public_functions_refuse_to_start_without_credentials():
    settings = make_settings(api_token="", api_tokens=[], api_keys=[], jwt_secret="")
    runtime = build_runtime(settings)  # the worker may start: IAM guards it
    with pytest.raises(ConfigError, match="AUTH_DISABLED"):
        require_credentials(runtime.auth, settings)
    disabled = make_settings(api_token="", api_tokens=[], api_keys=[], jwt_secret="", auth_disabled=True)
    require_credentials(build_runtime(disabled).auth, disabled)


def test_webhook_function_refuses_to_start_without_credentials(monkeypatch):
    for name in ("API_TOKEN", "API_TOKENS", "API_KEYS", "JWT_SECRET", "JWT_PUBLIC_KEY_FILE", "AUTH_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    set_runtime(None)
    get_settings.cache_clear()
    source = str(Path(__file__).resolve().parents[2] / "functions" / "webhook" / "main.py")
    with pytest.raises(ConfigError, match="no credentials configured"):
        functions_framework.create_app("webhook", source, "http")
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("field", "entries"),
    [("api_tokens", ["secret-without-role"]), ("api_keys", ["s3cret:superuser"]), ("api_tokens", [":admin"])],
)
def test_bad_credential_entries_are_config_errors_without_the_secret(field, entries):
    with pytest.raises(ConfigError) as caught:
        build_authenticator(make_settings(**{field: entries}))
    assert "s3cret" not in str(caught.value) and "secret-without-role" not in str(caught.value)


def test_named_credentials_share_one_client_across_rotation():
    auth = Authenticator(
        make_settings(api_tokens=["old-secret-1:message_sender:wa", "new-secret-2:message_sender:wa"])
    )
    old = auth.authenticate({"Authorization": "Bearer old-secret-1"})
    new = auth.authenticate({"Authorization": "Bearer new-secret-2"})
    assert old is not None and new is not None
    assert old.client == new.client == "token:wa"


def test_only_digests_of_secrets_are_kept():
    auth = Authenticator(make_settings())
    dumped = repr(vars(auth)) + repr([vars(s) for s in auth.tokens + auth.keys])
    for secret in (ADMIN_TOKEN, SENDER_TOKEN, READER_TOKEN, SENDER_KEY, READER_KEY):
        assert secret not in dumped
    assert ADMIN_TOKEN not in repr(make_settings())


# --- JWT ---------------------------------------------------------------------------------------


def rsa_pair() -> tuple[rsa.RSAPrivateKey, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public_pem


@pytest.fixture(scope="module")
def rsa_keys(tmp_path_factory):
    private, public_pem = rsa_pair()
    folder = tmp_path_factory.mktemp("keys")
    pem = folder / "public.pem"
    pem.write_text(public_pem)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwk["kid"] = "k1"
    jwks = folder / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    return private, pem, jwks


def authenticator(**overrides: Any) -> Authenticator:
    return Authenticator(
        make_settings(**{"jwt_audience": "eai-gateway", "jwt_issuer": "https://idp", **overrides})
    )


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": "client-7",
        "aud": "eai-gateway",
        "iss": "https://idp",
        "exp": now + 300,
        "role": "admin",
        **extra,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_hs256_jwt_gives_subject_and_role():
    identity = authenticator().authenticate(bearer(jwt.encode(claims(), JWT_SECRET, algorithm="HS256")))
    assert identity is not None
    assert (identity.client, identity.role, identity.method) == ("jwt:client-7", Role.ADMIN, "jwt")


def test_custom_role_claim():
    token = jwt.encode(
        claims(role=None, groups=["read_only", "message_sender"]), JWT_SECRET, algorithm="HS256"
    )
    identity = authenticator(jwt_role_claim="groups").authenticate(bearer(token))
    assert identity is not None and identity.role == Role.MESSAGE_SENDER


@pytest.mark.parametrize("source", ["pem", "jwks"])
def test_rs256_jwt_with_pem_or_jwks(rsa_keys, source):
    private, pem, jwks = rsa_keys
    path: Path = pem if source == "pem" else jwks
    token = jwt.encode(claims(role="message_sender"), private, algorithm="RS256", headers={"kid": "k1"})
    identity = authenticator(jwt_secret="", jwt_public_key_file=str(path)).authenticate(bearer(token))
    assert identity is not None and identity.role == Role.MESSAGE_SENDER


def test_rs256_signed_by_another_key_is_refused(rsa_keys):
    _, pem, _ = rsa_keys
    other, _ = rsa_pair()
    token = jwt.encode(claims(), other, algorithm="RS256")
    with pytest.raises(AuthError):
        authenticator(jwt_secret="", jwt_public_key_file=str(pem)).authenticate(bearer(token))


def test_hs256_signed_with_the_public_key_is_refused(rsa_keys):
    """Algorithm confusion: an HS256 token keyed with the RSA public key must not pass."""
    _, pem, _ = rsa_keys
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims()).encode())
    signature = hmac.new(pem.read_bytes(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    token = f"{head}.{body}.{b64(signature)}"
    with pytest.raises(AuthError):
        authenticator(jwt_secret="", jwt_public_key_file=str(pem)).authenticate(bearer(token))


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"exp": int(time.time()) - 3600}, id="expired"),
        pytest.param({"nbf": int(time.time()) + 3600}, id="not-yet-valid"),
        pytest.param({"aud": "someone-else"}, id="wrong-audience"),
        pytest.param({"iss": "https://evil"}, id="wrong-issuer"),
        pytest.param({"exp": None}, id="no-exp"),
    ],
)
def test_jwt_claims_are_checked(bad):
    payload = {k: v for k, v in claims(**bad).items() if v is not None}
    token = jwt.encode(payload, JWT_SECRET, algorithm="HS256")
    with pytest.raises(AuthError):
        authenticator().authenticate(bearer(token))


def test_unsigned_and_wrong_secret_jwts_are_refused():
    unsigned = jwt.encode(claims(), None, algorithm="none")  # type: ignore[arg-type]
    forged = jwt.encode(claims(), "another-secret-" + "x" * 32, algorithm="HS256")
    for token in (unsigned, forged):
        with pytest.raises(AuthError):
            authenticator().authenticate(bearer(token))


def test_short_jwt_secret_is_a_config_error():
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        Authenticator(make_settings(jwt_secret="short"))


def test_missing_public_key_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="JWT_PUBLIC_KEY_FILE"):
        Authenticator(make_settings(jwt_public_key_file=str(tmp_path / "absent.pem")))


def test_expired_jwt_through_the_app_is_401(client):
    token = jwt.encode(claims(exp=int(time.time()) - 3600, aud=None), JWT_SECRET, algorithm="HS256")
    response = client.get(f"/api/v1/message/response?message_id={MESSAGE_ID}", headers=bearer(token))
    assert response.status_code == 401
