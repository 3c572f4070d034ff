"""Every table's model, imported in one place so that metadata is complete for migrations."""

from backline.accounts.models import User
from backline.db import Base
from backline.email.models import OutboxEmail

metadata = Base.metadata

__all__ = ["OutboxEmail", "User", "metadata"]
