"""A passkey as a method of the sign-in challenge, registered with `factors.methods` on import.

Passkeys sit above second factors: this domain knows `factors`, never the other way round. An
account holding a passkey is asked for a second step after its password (or after an external
provider), offered `passkey` among its methods, and counts as holding the factor its role may
require.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, exists

from backline.factors import methods
from backline.passkeys.models import Passkey

PASSKEY = "passkey"


def held(user_id: Any) -> ColumnElement[bool]:
    return exists().where(Passkey.user_id == user_id)


methods.register(PASSKEY, standalone=True, held=held)
