"""Vanta credentials from a Secrets Manager secret, through Powertools Parameters (cached)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from lambdakit.lazy import lazy_import
from vulnstats.errors import VulnStatsError

if TYPE_CHECKING:
    from collections.abc import Callable

    import aws_lambda_powertools.utilities.parameters
else:
    # Binds the top package, as `import aws_lambda_powertools.utilities.parameters` would.
    aws_lambda_powertools = lazy_import("aws_lambda_powertools.utilities.parameters")

__all__ = ["CredentialsError", "SecretCredentials"]

_KEYS: Final = ("client_id", "client_secret")


class CredentialsError(VulnStatsError):
    """The secret is unreadable or lacks a field; the message names the secret, never a value."""


class SecretCredentials:
    """A ``vulnstats.vanta.CredentialsProvider`` over a JSON secret ``{client_id, client_secret}``.

    Values are cached for ``max_age`` seconds by Powertools (one Secrets Manager call per
    execution environment and period); ``refresh()`` makes the next read bypass the cache, which
    the client asks for once when the token endpoint refuses the credentials (a rotation).
    """

    __slots__ = ("_fetch", "_force", "_max_age", "secret_arn")

    def __init__(
        self,
        secret_arn: str,
        *,
        max_age: int = 300,
        fetch: Callable[..., Any] | None = None,
    ) -> None:
        """``fetch`` defaults to ``parameters.get_secret`` (tests pass a fake)."""
        self.secret_arn = secret_arn
        self._max_age = max_age
        self._fetch = fetch
        self._force = False

    def __call__(self) -> tuple[str, str]:
        """The current ``(client_id, client_secret)``."""
        parameters = aws_lambda_powertools.utilities.parameters
        fetch = self._fetch if self._fetch is not None else parameters.get_secret
        try:
            value = fetch(
                self.secret_arn, transform="json", max_age=self._max_age, force_fetch=self._force
            )
        except parameters.exceptions.GetParameterError as exc:
            raise CredentialsError(f"secret {self.secret_arn}: cannot be read ({exc})") from None
        except parameters.exceptions.TransformParameterError:
            raise CredentialsError(f"secret {self.secret_arn}: is not a JSON object") from None
        self._force = False
        if not isinstance(value, dict):
            raise CredentialsError(f"secret {self.secret_arn}: is not a JSON object")
        problems = [key for key in _KEYS if not isinstance(value.get(key), str) or not value[key]]
        if problems:
            raise CredentialsError(
                f"secret {self.secret_arn}: missing or empty {', '.join(problems)}"
            )
        return value["client_id"], value["client_secret"]

    def refresh(self) -> None:
        """Bypass the cache on the next read."""
        self._force = True

    def __repr__(self) -> str:
        """Name the secret, not its value."""
        return f"SecretCredentials({self.secret_arn!r})"
