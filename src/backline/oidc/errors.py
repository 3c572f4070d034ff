"""The refusals of OpenID Connect sign-in, each with a stable code."""

from __future__ import annotations

from backline.errors import ProblemError


class OidcError(ProblemError):
    status, code = 400, "oidc_failed"


def refused(status: int, code: str, detail: str) -> OidcError:
    error = OidcError(detail, code=code)
    error.status = status
    return error


UNKNOWN_PROVIDER = (404, "oidc_unknown_provider")
BAD_STATE = (400, "oidc_state_invalid")
USED_STATE = (400, "oidc_state_used")
PROVIDER_ERROR = (400, "oidc_provider_error")
EXCHANGE_FAILED = (502, "oidc_exchange_failed")
BAD_TOKEN = (401, "oidc_id_token_invalid")
EMAIL_UNVERIFIED = (403, "oidc_email_unverified")
NO_ACCOUNT = (403, "oidc_no_account")
LINKED_ELSEWHERE = (409, "oidc_identity_linked_elsewhere")
LAST_SIGN_IN = (409, "oidc_last_sign_in")
UNAVAILABLE = (503, "oidc_provider_unavailable")

ALL = (
    UNKNOWN_PROVIDER,
    BAD_STATE,
    USED_STATE,
    PROVIDER_ERROR,
    EXCHANGE_FAILED,
    BAD_TOKEN,
    EMAIL_UNVERIFIED,
    NO_ACCOUNT,
    LINKED_ELSEWHERE,
    UNAVAILABLE,
)
