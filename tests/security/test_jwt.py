"""JWT bearer tokens: HS256 and RS256, issuer and audience, role and tenant claims."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from personae.core.types import AccessRole, Principal
from personae.errors import ConfigurationError, NotAuthenticated, PermissionDenied
from personae.security.auth import KeyAuthenticator
from personae.security.jwt_tokens import JwtVerifier
from personae.settings import JwtSettings

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def hs256(**overrides: Any) -> JwtVerifier:
    settings = JwtSettings(secret=SECRET, issuer="https://login.example", audience="personae")
    return JwtVerifier.from_settings(settings.model_copy(update=overrides))


def token(key: Any = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    body = {
        "sub": "alice",
        "iss": "https://login.example",
        "aud": "personae",
        "exp": int(time.time()) + 300,
    } | claims
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm)


async def test_a_good_token_is_its_subject_with_the_default_role() -> None:
    auth = KeyAuthenticator(jwt=hs256())
    assert await auth.authenticate(token()) == Principal("alice", role=AccessRole.USER)


def test_role_and_tenant_come_from_claims() -> None:
    found = hs256().verify(token(role="service", tenant="acme"))
    assert found == Principal("alice", role=AccessRole.SERVICE, tenant="acme")


# Made in the test, not at collection: a token made then would expire before a long run
# reaches it, and fail for the wrong reason.
@pytest.mark.parametrize(
    ("made", "message"),
    [
        ({"exp": -120}, "expired"),  # exp relative to now
        ({"aud": "someone-else"}, "(?i)audience"),
        ({"iss": "https://evil.example"}, "(?i)issuer"),
        ({"key": "another-secret-that-is-long-enough-too!"}, "(?i)signature"),
        ({"exp": None}, "exp"),
        ({"sub": None}, "sub"),
        ({"sub": "acme/alice"}, "sub"),
        ({"role": "root"}, "unknown"),
        ({"algorithm": "none", "key": None}, "not valid"),
    ],
)
def test_bad_tokens_are_refused(made: dict[str, Any], message: str) -> None:
    claims = dict(made)
    if isinstance(claims.get("exp"), int):
        claims["exp"] = int(time.time()) + claims["exp"]
    with pytest.raises(NotAuthenticated, match=message):
        hs256().verify(token(**claims))


def test_an_admin_role_needs_to_be_allowed() -> None:
    with pytest.raises(PermissionDenied):
        hs256().verify(token(role="admin"))
    allowed = hs256(allowed_roles=frozenset(AccessRole))
    assert allowed.verify(token(role="admin")).is_admin


def test_rs256_with_a_public_key_file(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "pub.pem").write_bytes(pem)
    verifier = JwtVerifier.from_settings(
        JwtSettings(algorithm="RS256", public_key_file=tmp_path / "pub.pem", audience="personae")
    )
    assert verifier.verify(token(private, "RS256")).subject == "alice"
    # A token signed with HS256 using the public key as the secret (the classic mix-up).
    with pytest.raises(NotAuthenticated):
        verifier.verify(token(SECRET))


def test_settings_refuse_mismatched_keys_and_short_secrets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="RS256"):
        JwtSettings(algorithm="RS256", secret=SECRET)
    with pytest.raises(ValueError, match="HS256"):
        JwtSettings(secret=SECRET, secret_file=tmp_path / "s")
    with pytest.raises(ConfigurationError, match="32 bytes"):
        JwtVerifier.from_settings(JwtSettings(secret="short"))
    with pytest.raises(ConfigurationError, match="key file"):
        JwtVerifier.from_settings(JwtSettings(secret_file=tmp_path / "missing"))
