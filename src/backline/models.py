"""Every table's model, imported in one place so that metadata is complete for migrations."""

from backline.accounts.models import AccountToken, AuthSession, RefreshToken, User
from backline.accounts.throttle import LoginThrottle
from backline.artists.models import ArtistApplication
from backline.audit.models import AuditEvent
from backline.chat.models import ChatMessage, Conversation
from backline.db import Base
from backline.email.models import OutboxEmail
from backline.factors.models import MfaChallenge, RecoveryCode, TotpFactor
from backline.oidc.models import OidcAttempt, OidcIdentity
from backline.passkeys.models import Passkey, PasskeyChallenge
from backline.tax.models import TaxForm
from backline.tracks.models import Track

metadata = Base.metadata

__all__ = [
    "AccountToken",
    "ArtistApplication",
    "AuditEvent",
    "AuthSession",
    "ChatMessage",
    "Conversation",
    "LoginThrottle",
    "MfaChallenge",
    "OidcAttempt",
    "OidcIdentity",
    "OutboxEmail",
    "Passkey",
    "PasskeyChallenge",
    "RecoveryCode",
    "RefreshToken",
    "TaxForm",
    "TotpFactor",
    "Track",
    "User",
    "metadata",
]
