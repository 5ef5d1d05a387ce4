"""Who is calling: static bearer tokens, API keys and JWTs, each mapped to a role.

Credentials come from settings (Secret Manager in GCP, env locally), several at once so they can be
rotated. Only SHA-256 digests of static secrets are kept in memory, and every presented secret is
compared against every digest with :func:`hmac.compare_digest` (no early exit). JWTs are verified by
PyJWT (signature, ``exp``, ``nbf``, ``aud``, ``iss``).

=================  ===========================================================
``API_TOKEN``      one bearer token with role ``admin`` (as in the seed)
``API_TOKENS``     ``secret:role[:name]`` list, sent as ``Authorization: Bearer``
``API_KEYS``       ``secret:role[:name]`` list, sent as ``X-API-Key``
``JWT_SECRET``     HS256 shared secret; ``JWT_PUBLIC_KEY_FILE``: RS256 PEM or JWKS
=================  ===========================================================

The optional ``name`` gives a credential a stable client id (rate limits, idempotency) that
survives rotation: give the old and the new secret the same name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from shared.config import Settings
from shared.errors import ConfigError
from shared.observability import register_secret_digest

log = logging.getLogger(__name__)

MAX_CREDENTIAL_LENGTH = 8192


class Role(IntEnum):
    """Ordered roles: each includes the ones below it."""

    READ_ONLY = 1
    MESSAGE_SENDER = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role | None:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            return None


ROLE_NAMES = ", ".join(role.label for role in Role)


@dataclass(frozen=True)
class Identity:
    """An authenticated caller. ``client`` is a stable, non-secret id (rate limits, idempotency)."""

    client: str
    role: Role | None
    method: str

    def allows(self, required: Role) -> bool:
        return self.role is not None and self.role >= required


class AuthError(Exception):
    """The request carries credentials that are not valid (the reason is for logs, never secrets)."""


@dataclass(frozen=True)
class _Secret:
    digest: bytes
    role: Role
    client: str
    length: int  # characters, so that log redaction hashes only words of a secret's length


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _parse_entries(setting: str, entries: list[str], kind: str) -> list[_Secret]:
    """``secret:role`` or ``secret:role:name`` -> digests; errors never show the secret."""
    parsed = []
    for position, entry in enumerate(entries, start=1):
        secret, role, name = entry, None, ""
        head, _, tail = entry.rpartition(":")
        if head and Role.parse(tail) is not None:
            secret, role = head, Role.parse(tail)
        else:
            first, _, middle = head.rpartition(":")
            if first and Role.parse(middle) is not None:
                secret, role, name = first, Role.parse(middle), tail.strip()
        if role is None or not secret.strip():
            raise ConfigError(
                f"{setting}: entry {position} must be 'secret:role' or 'secret:role:name' with role one of "
                f"{ROLE_NAMES}"
            )
        digest = _digest(secret.strip())
        client = f"{kind}:{name}" if name else f"{kind}:{digest.hex()[:16]}"
        parsed.append(_Secret(digest, role, client, len(secret.strip())))
    return parsed


class Authenticator:
    """Maps the credentials of a request to an :class:`Identity`."""

    def __init__(self, settings: Settings) -> None:
        self.disabled = settings.auth_disabled
        self.role_claim = settings.jwt_role_claim
        self.audience = settings.jwt_audience or None
        self.issuer = settings.jwt_issuer or None
        self.leeway = settings.jwt_leeway
        self.tokens: list[_Secret] = []
        admin_token = settings.api_token.get_secret_value().strip()
        if admin_token:
            digest = _digest(admin_token)
            self.tokens.append(_Secret(digest, Role.ADMIN, f"token:{digest.hex()[:16]}", len(admin_token)))
        self.tokens += _parse_entries("API_TOKENS", settings.api_tokens, "token")
        self.keys = _parse_entries("API_KEYS", settings.api_keys, "key")
        self.jwt_keys: dict[str, Any] = {}
        jwt_secret = settings.jwt_secret.get_secret_value()
        if jwt_secret:
            if len(jwt_secret.encode()) < 32:
                raise ConfigError("JWT_SECRET: must be at least 32 bytes for HS256")
            self.jwt_keys["HS256"] = jwt_secret
            register_secret_digest(_digest(jwt_secret), len(jwt_secret))
        self.jwks: Any = None  # jwt.PyJWKSet, imported only when JWTs are configured
        if settings.jwt_public_key_file:
            self._load_public_key(settings.jwt_public_key_file)
        for secret in self.tokens + self.keys:
            register_secret_digest(secret.digest, secret.length)

    def _load_public_key(self, path: str) -> None:
        import jwt  # PyJWT and cryptography load only where JWTs are configured (cold start)
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"JWT_PUBLIC_KEY_FILE: cannot read {path!r}: {exc.strerror}") from None
        if text.lstrip().startswith("{"):
            try:
                self.jwks = jwt.PyJWKSet.from_dict(json.loads(text))
            except (ValueError, jwt.PyJWTError) as exc:
                raise ConfigError(f"JWT_PUBLIC_KEY_FILE: {path!r} is not a valid JWKS: {exc}") from None
            return
        try:
            key = serialization.load_pem_public_key(text.encode())
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"JWT_PUBLIC_KEY_FILE: expected a PEM RSA public key or a JWKS in {path!r}: {exc}"
            ) from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise ConfigError(f"JWT_PUBLIC_KEY_FILE: {path!r} holds a {type(key).__name__}, not an RSA key")
        self.jwt_keys["RS256"] = key

    @property
    def configured(self) -> bool:
        """True when at least one credential source exists."""
        return bool(self.tokens or self.keys or self.jwt_keys or self.jwks)

    @property
    def enabled(self) -> bool:
        return not self.disabled

    def authenticate(self, headers: Any) -> Identity | None:
        """The identity of the request's credentials; ``None`` when it carries none.

        Raises :class:`AuthError` when credentials are present but invalid.
        """
        authorization = (headers.get("Authorization") or "").strip()
        api_key = (headers.get("X-API-Key") or "").strip()
        if authorization:
            scheme, _, credential = authorization.partition(" ")
            credential = credential.strip()
            if scheme.lower() != "bearer" or not credential:
                raise AuthError("Authorization header is not 'Bearer <token>'")
            return self._bearer(credential)
        if api_key:
            return self._static(api_key, self.keys, "api_key")
        return None

    def _bearer(self, credential: str) -> Identity:
        if credential.count(".") == 2 and (self.jwt_keys or self.jwks):
            try:
                return self._jwt(credential)
            except AuthError:
                # A static token could contain two dots: give it its chance, then report the JWT error.
                try:
                    return self._static(credential, self.tokens, "token")
                except AuthError:
                    pass
                raise
        return self._static(credential, self.tokens, "token")

    @staticmethod
    def _static(credential: str, known: list[_Secret], method: str) -> Identity:
        if len(credential) > MAX_CREDENTIAL_LENGTH:
            raise AuthError(f"{method} too long")
        presented = _digest(credential)
        found: _Secret | None = None
        for secret in known:  # always walk the whole list: no timing hint of which entry matched
            if hmac.compare_digest(presented, secret.digest):
                found = secret
        if found is None:
            raise AuthError(f"unknown {method}")
        return Identity(client=found.client, role=found.role, method=method)

    def _jwt(self, token: str) -> Identity:
        import jwt

        if len(token) > MAX_CREDENTIAL_LENGTH:
            raise AuthError("JWT too long")
        try:
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg")
            key: Any
            if algorithm == "RS256" and self.jwks is not None:
                kid = header.get("kid")
                candidates = [k for k in self.jwks.keys if kid is None or k.key_id == kid]
                if not candidates:
                    raise AuthError("JWT kid not in JWKS")
                key = candidates[0].key
            elif algorithm in self.jwt_keys:
                key = self.jwt_keys[algorithm]
            else:
                raise AuthError(f"JWT algorithm {algorithm!r} not accepted")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"JWT rejected: {exc.__class__.__name__}") from None
        subject = str(claims.get("sub") or "")
        if not subject:
            subject = "sha256-" + hashlib.sha256(token.encode()).hexdigest()[:16]
        role = _role_from_claim(claims.get(self.role_claim))
        return Identity(client=f"jwt:{subject[:200]}", role=role, method="jwt")


def _role_from_claim(value: Any) -> Role | None:
    """A role name, or a list of names (the highest known one wins); unknown names give no role."""
    names = value if isinstance(value, list) else [value]
    roles = [Role.parse(name) for name in names if isinstance(name, str)]
    known = [role for role in roles if role is not None]
    return max(known) if known else None


def build_authenticator(settings: Settings) -> Authenticator:
    """The authenticator for ``settings`` (it may hold no credential: see :func:`require_credentials`)."""
    if settings.auth_disabled:
        log.warning("AUTH_DISABLED=true: every route is open")
    return Authenticator(settings)


def require_credentials(authenticator: Authenticator, settings: Settings) -> None:
    """Refuse to start a public function without credentials unless ``AUTH_DISABLED`` is set.

    The worker does not call this: its only caller is the bridge or Pub/Sub, authenticated by IAM.
    """
    if not authenticator.configured and not settings.auth_disabled:
        raise ConfigError(
            "no credentials configured: set API_TOKEN, API_TOKENS, API_KEYS, JWT_SECRET or "
            "JWT_PUBLIC_KEY_FILE, or AUTH_DISABLED=true to run without authentication"
        )
