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

# What the login page says when a provider's sign-in comes back refused (`/login?error=CODE`).
MESSAGES = {
    UNKNOWN_PROVIDER[1]: "That sign-in provider is not available.",
    BAD_STATE[1]: "That sign-in link is unknown, expired or was started in another browser.",
    USED_STATE[1]: "That sign-in was already used. Please start again.",
    PROVIDER_ERROR[1]: "The provider did not sign you in.",
    EXCHANGE_FAILED[1]: "The provider did not accept the sign-in. Please start again.",
    BAD_TOKEN[1]: "The provider's answer could not be verified.",
    EMAIL_UNVERIFIED[1]: "The provider has not verified your email address.",
    NO_ACCOUNT[1]: "No account uses this email address. Sign up first, then link the provider.",
    LINKED_ELSEWHERE[1]: "That identity is already linked to another account.",
    UNAVAILABLE[1]: "The provider cannot be reached right now. Please try again later.",
    "rate_limited": "Too many sign-in attempts; try again later.",
}
