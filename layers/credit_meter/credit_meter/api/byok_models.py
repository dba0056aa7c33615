"""Models of the BYOK routes and of the internal key request: kept apart from
:mod:`credit_meter.api.models` so no other route builds them.

The API key is a :class:`~pydantic.SecretStr` from the moment it is parsed: a model's repr,
str and JSON dump show ``**********``, and validation messages never echo it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, WithJsonSchema

from credit_meter.api.fields import OrgId, RequestBody, ResponseBody

if TYPE_CHECKING:
    from credit_meter.byok.keys import ByokView

Provider = Literal["openai", "anthropic", "google", "azure-openai", "mistral", "openai-compatible"]
PROVIDERS: tuple[str, ...] = get_args(Provider)

API_KEY_MIN, API_KEY_MAX = 8, 512
_API_KEY = re.compile(rf"[\x21-\x7e]{{{API_KEY_MIN},{API_KEY_MAX}}}")
# The user id is a key part (``K#<user>``): visible ASCII but "#", the separator.
USER_ID_PATTERN = r"[\x21\x22\x24-\x7e]{1,128}"
USER_ID = re.compile(USER_ID_PATTERN)


def _api_key(value: object) -> SecretStr:
    # Checked here, before SecretStr wraps it, with messages that never quote the value.
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not _API_KEY.fullmatch(value):
        raise ValueError(
            f"must be {API_KEY_MIN}-{API_KEY_MAX} printable ASCII characters without spaces"
        )
    return SecretStr(value)


ApiKey = Annotated[
    SecretStr,
    BeforeValidator(_api_key),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": API_KEY_MIN,
            "maxLength": API_KEY_MAX,
            "pattern": f"^[!-~]{{{API_KEY_MIN},{API_KEY_MAX}}}$",
            "writeOnly": True,
        }
    ),
]


class ByokIn(RequestBody):
    """A user's own key for an AI provider; replaces the one stored before."""

    provider: Provider
    api_key: ApiKey


class ByokOut(ResponseBody):
    """What may be shown of a stored key: never the key, only its last four characters."""

    provider: str
    last4: str
    created_at: str = Field(description="RFC 3339, UTC.")
    updated_at: str = Field(description="RFC 3339, UTC: the last rotation.")

    @classmethod
    def of(cls, view: ByokView) -> ByokOut:
        return cls(
            provider=view.provider,
            last4=view.last4,
            created_at=view.created_at,
            updated_at=view.updated_at,
        )


class RevealIn(BaseModel):
    """The internal key request (a direct Lambda invocation, not an HTTP route)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    org_id: OrgId
    user_id: Annotated[str, Field(pattern=f"^{USER_ID_PATTERN}$")]
    purpose: Annotated[str, Field(min_length=1, max_length=200)]
