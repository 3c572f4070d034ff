"""Every table's model, imported in one place so that metadata is complete for migrations."""

from backline.accounts.models import User
from backline.db import Base

metadata = Base.metadata

__all__ = ["User", "metadata"]
