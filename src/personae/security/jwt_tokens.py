"""Bearer JWTs from a front end that owns its login: HS256 with a shared secret or RS256 with
the front end's public key. ``sub`` is the user; the role and tenant come from claims (names
configurable) or the defaults. Expiry is required."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from personae.core.types import DEFAULT_TENANT, TENANT_SEPARATOR, AccessRole, Principal
from personae.errors import ConfigurationError, NotAuthenticated, PermissionDenied
from personae.settings import JwtSettings


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


@dataclass(frozen=True, slots=True)
class JwtVerifier:
    key: Any  # the HS256 secret (bytes) or the RS256 public key (PEM text)
    algorithm: str
    issuer: str | None
    audience: str | None
    role_claim: str
    tenant_claim: str
    default_role: AccessRole
    allowed_roles: frozenset[AccessRole]
    leeway_s: float

    @classmethod
    def from_settings(cls, settings: JwtSettings) -> JwtVerifier:
        """Reads the key files now, so a missing file fails at start-up, not per request."""
        try:
            if settings.public_key_file is not None:
                key: Any = settings.public_key_file.read_text(encoding="utf-8")
            elif settings.secret_file is not None:
                key = settings.secret_file.read_bytes().strip()
            else:
                assert settings.secret is not None
                key = settings.secret.get_secret_value().encode()
        except OSError as exc:
            raise ConfigurationError(f"security.jwt: cannot read the key file: {exc}") from exc
        if settings.algorithm == "HS256" and len(key) < 32:
            raise ConfigurationError("security.jwt: an HS256 secret needs at least 32 bytes")
        return cls(
            key=key,
            algorithm=settings.algorithm,
            issuer=settings.issuer,
            audience=settings.audience,
            role_claim=settings.role_claim,
            tenant_claim=settings.tenant_claim,
            default_role=AccessRole(settings.default_role),
            allowed_roles=frozenset(AccessRole(r) for r in settings.allowed_roles),
            leeway_s=settings.leeway_s,
        )

    def verify(self, token: str) -> Principal:
        required = (
            ["exp", "sub"] + (["iss"] if self.issuer else []) + (["aud"] if self.audience else [])
        )
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[self.algorithm],  # never the token's own choice ("none", HS/RS mixups)
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_s,
                options={"require": required, "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise NotAuthenticated("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise NotAuthenticated(f"the token is not valid: {exc}") from None
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        subject = claims.get("sub")
        tenant = claims.get(self.tenant_claim, DEFAULT_TENANT)
        for name, value in (("sub", subject), (self.tenant_claim, tenant)):
            if not isinstance(value, str) or not value or TENANT_SEPARATOR in value:
                raise NotAuthenticated(
                    f"the token's {name!r} claim must be a non-empty string"
                    f" without {TENANT_SEPARATOR!r}"
                )
        raw_role = claims.get(self.role_claim, self.default_role.value)
        try:
            role = AccessRole(raw_role)
        except ValueError:
            raise NotAuthenticated(f"the token's role {raw_role!r} is unknown") from None
        if role not in self.allowed_roles:
            raise PermissionDenied(f"tokens may not carry the role {role.value!r}")
        assert isinstance(subject, str)
        assert isinstance(tenant, str)
        return Principal(subject=subject, role=role, tenant=tenant)
