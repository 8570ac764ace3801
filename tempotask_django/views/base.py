"""What every dashboard page and action shares: permissions, admin context, navigation, audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.generic import TemplateView, View

from tempotask_django import api, partitions
from tempotask_django.conf import get_settings
from tempotask_django.models import VIEW, Dashboard
from tempotask_django.storage.connection import get_default_store
from tempotask_django.validation import NAME_PATTERN

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    from tempotask_django.storage.store import RedisStore

APP = Dashboard._meta.app_label

# The dashboard's tabs: (url name, label, permission needed to see the tab).
NAVIGATION = (
    ("tempotask_overview", "Overview", VIEW),
    ("tempotask_jobs", "Jobs", VIEW),
    ("tempotask_workers", "Workers", VIEW),
    ("tempotask_crons", "Cron schedules", VIEW),
    ("tempotask_enqueue", "Enqueue a job", "enqueue_job"),
)

# Permission flags templates use to show a button: {"retry": "retry_job", ...} -> can.retry.
ACTION_PERMISSIONS = {
    "retry": "retry_job",
    "delete": "delete_job",
    "cancel": "cancel_job",
    "enqueue": "enqueue_job",
    "pause": "pause_queue",
    "purge": "purge_queue",
    "run_cron": "run_cron",
    "pause_cron": "pause_cron",
    "add_cron": "add_cron",
    "change_cron": "change_cron",
    "delete_cron": "delete_cron",
}


def has_permission(user: Any, codename: str) -> bool:
    return bool(user.is_active and user.is_staff and user.has_perm(f"{APP}.{codename}"))


def admin_url(name: str, *args: Any) -> str:
    return reverse(f"admin:{name}", args=args)


def log_action(user: Any, flag: int, object_id: str, description: str, message: str) -> None:
    """Write the admin's LogEntry of an action on queues, jobs or schedules by ``user``.

    ``flag`` is ADDITION, CHANGE or DELETION; ``object_id`` names the target ("default/job-1",
    "reports", "cron:nightly"). Shared by the dashboard's actions and ``manage.py tempotask --user``,
    so both show up alike in "Recent actions" and the admin log.
    """
    LogEntry.objects.create(
        user_id=user.pk,
        content_type=ContentType.objects.get_for_model(Dashboard, for_concrete_model=False),
        object_id=object_id,
        object_repr=description[:200],
        action_flag=flag,
        change_message=message,
    )


class DashboardMixin:
    """Checks the page's permissions and builds the admin context (title, breadcrumbs, tabs)."""

    model_admin: ModelAdmin | None = None
    permissions: tuple[str, ...] = (VIEW,)
    title = ""
    tab = ""
    request: HttpRequest

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not all(has_permission(request.user, codename) for codename in self.permissions):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    @property
    def store(self) -> RedisStore:
        return get_default_store()

    def all_queues(self) -> list[str]:
        return api.all_queues()

    def known_queue(self, queue: str) -> str:
        """``queue`` when it exists (configured, used by a task or in Redis), or is a partition of
        one (a job's page names the partition holding it); else 404."""
        name = partitions.logical(queue)
        if not NAME_PATTERN.match(name) or name not in self.all_queues():
            raise Http404(f"no queue named {queue!r}")
        return queue

    def dashboard_context(self, **extra: Any) -> dict[str, Any]:
        assert self.model_admin is not None, "mount the views through DashboardAdmin.get_urls()"
        user = self.request.user
        tabs = [
            {"url": admin_url(name), "label": label, "active": name == self.tab}
            for name, label, codename in NAVIGATION
            if has_permission(user, codename)
        ]
        return {
            **self.model_admin.admin_site.each_context(self.request),
            "opts": Dashboard._meta,
            "app_label": APP,
            "title": self.title,
            "tabs": tabs,
            "can": {flag: has_permission(user, codename) for flag, codename in ACTION_PERMISSIONS.items()},
            "redis_url": get_settings().safe_redis_url,
            **extra,
        }


class DashboardPage(DashboardMixin, TemplateView):
    """A read-only page: GET (and HEAD) only."""

    http_method_names = ["get", "head"]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return self.dashboard_context(**super().get_context_data(**kwargs))


class DashboardAction(DashboardMixin, View):
    """A state change: POST only; destructive ones show ``confirm_template`` on GET (changing nothing)."""

    http_method_names = ["get", "post"]
    confirm_template: str | None = None

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if self.confirm_template is None:
            return self.http_method_not_allowed(request, *args, **kwargs)
        context = self.dashboard_context(**self.confirm_context(**kwargs))
        return TemplateResponse(request, self.confirm_template, context)

    def confirm_context(self, **kwargs: Any) -> dict[str, Any]:
        return {}

    def redirect_back(self, default: str) -> HttpResponseRedirect:
        """To the page named by the form's ``next`` field when it is on this site, else ``default``."""
        target = self.request.POST.get("next", "")
        if target and url_has_allowed_host_and_scheme(
            target, allowed_hosts={self.request.get_host()}, require_https=self.request.is_secure()
        ):
            return HttpResponseRedirect(target)
        return HttpResponseRedirect(default)

    def record(self, flag: int, object_id: str, description: str, message: str) -> None:
        """Write the admin's LogEntry for this action (shown in "Recent actions" and the log)."""
        log_action(self.request.user, flag, object_id, description, message)

    def report(self, level: int, text: str) -> None:
        messages.add_message(self.request, level, text)
