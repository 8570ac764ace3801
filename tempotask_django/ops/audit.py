"""Who runs a command: the admin's permission check and LogEntry for ``--user``, nothing without it.

With ``--user NAME`` a command checks the named permissions the admin checks for the same action
(staff, active, the dashboard's view permission and the action's own) and writes the LogEntry the
admin writes. Without it the operator has shell access to the project, hence to its settings and
Redis, so there is nothing to check; no LogEntry is written because it needs a user.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from tempotask_django.models import VIEW
from tempotask_django.views.base import APP, has_permission, log_action


class Operator:
    """The user a command acts as (None: the trusted shell operator)."""

    def __init__(self, user: Any | None = None) -> None:
        self.user = user

    @classmethod
    def named(cls, username: str | None) -> Operator:
        """The operator for ``--user``; CommandError when no such user exists."""
        if username is None:
            return cls()
        model = get_user_model()
        try:
            user = model._default_manager.get(**{str(model.USERNAME_FIELD): username})
        except model.DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
        return cls(user)

    def require(self, codename: str) -> None:
        """Refuse, as the admin does, unless the user may see the dashboard and has ``codename``."""
        if self.user is None:
            return
        for needed in dict.fromkeys((VIEW, codename)):
            if not has_permission(self.user, needed):
                raise CommandError(
                    f"user {self.user.get_username()!r} may not do this: it needs to be active staff "
                    f"with the permission {APP}.{needed}"
                )

    def record(self, flag: int, object_id: str, description: str, message: str) -> None:
        """Write the admin's LogEntry for the action, when acting as a user."""
        if self.user is not None:
            log_action(self.user, flag, object_id, description, message)
