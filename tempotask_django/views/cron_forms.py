"""Runtime cron schedules in the admin: create, change and delete them, with their history.

Each action checks its own permission (``add_cron``, ``change_cron``, ``delete_cron``), goes
through the same API as ``add_cron()``/``update_cron()``/``delete_cron()`` (so the admin validates
exactly like the code), and writes the admin's LogEntry with the schedule before and after.
Code and settings schedules stay read-only here.
"""

from __future__ import annotations

import json
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from tempotask_django import serialization
from tempotask_django.cron import runtime
from tempotask_django.cron.schedules import OVERLAP_CHOICES, default_timezone
from tempotask_django.exceptions import CronNotFound, InvalidSchedule
from tempotask_django.models import VIEW, Dashboard
from tempotask_django.storage.crons import CronStore
from tempotask_django.views.base import DashboardAction, admin_url
from tempotask_django.views.crons import LOG_PREFIX
from tempotask_django.views.enqueue import offered_tasks

OVERLAP_HELP = {
    "allow": "allow: every tick runs, even while the previous run goes on",
    "skip": "skip: a tick whose previous run is still waiting or running enqueues nothing (the history says so)",
    "queue": "queue: such a tick waits until the previous run ends (at most one waits)",
}


class CronForm(forms.Form):
    name = forms.CharField(max_length=150, help_text="Letters, digits and _.@+=- (part of each job's id).")
    task = forms.ChoiceField(help_text="A task registered with @task.")
    cron = forms.CharField(
        label="Cron expression",
        help_text="minute hour day month weekday, e.g. 0 4 * * 1-5; a sixth field for seconds; or @daily.",
    )
    timezone = forms.CharField(help_text="An IANA name, e.g. Europe/Paris.")
    json_data = forms.CharField(
        label="Data",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80, "class": "vLargeTextField", "spellcheck": "false"}),
        help_text='JSON given to each job, e.g. {"customer": "acme"}. Empty: none.',
    )
    queue = forms.CharField(required=False, help_text="Empty: the task's queue.")
    attempts = forms.IntegerField(required=False, help_text="Total tries of each job. Empty: the task's.")
    priority = forms.IntegerField(required=False, help_text="-1000 to 1000. Empty: the task's.")
    overlap = forms.ChoiceField(
        choices=[(choice, choice) for choice in OVERLAP_CHOICES],
        initial="allow",
        help_text="; ".join(OVERLAP_HELP.values()),
    )

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["task"]).choices = [(task.name, task.name) for task in offered_tasks()]
        if editing:
            self.fields["name"].disabled = True
        self.fields["timezone"].initial = default_timezone()

    def clean_json_data(self) -> Any:
        text = self.cleaned_data["json_data"].strip()
        if not text:
            return None
        try:
            return serialization.decode(text)
        except ValueError as exc:
            raise forms.ValidationError(f"This is not valid JSON: {exc}") from None

    def options(self) -> dict[str, Any]:
        """The API's keyword arguments."""
        data = self.cleaned_data
        return {
            "task": data["task"],
            "cron": data["cron"].strip(),
            "timezone": data["timezone"].strip() or None,
            "data": data["json_data"],
            "queue": data["queue"].strip() or None,
            "attempts": data["attempts"],
            "priority": data["priority"],
            "overlap": data["overlap"],
        }


def describe_change(change: dict[str, dict[str, Any]]) -> str:
    """``{field: {"before", "after"}}`` as one line for the admin's log."""
    return "; ".join(
        f"{field}: {json.dumps(values['before'], default=str)} -> {json.dumps(values['after'], default=str)}"
        for field, values in change.items()
    )


def describe_fields(fields: dict[str, Any]) -> str:
    return ", ".join(f"{key}={json.dumps(value, default=str)}" for key, value in fields.items())


class CronFormView(DashboardAction):
    """Create (no ``name``) or change (``name``) a runtime schedule."""

    template_name = "admin/tempotask_django/cron_form.html"

    @property
    def permissions(self) -> tuple[str, ...]:  # type: ignore[override]
        return (VIEW, "change_cron" if self.kwargs.get("name") else "add_cron")

    @property
    def title(self) -> str:  # type: ignore[override]
        name = self.kwargs.get("name")
        return f"Change cron schedule {name}" if name else "Add a cron schedule"

    def get(self, request: HttpRequest, *args: Any, name: str | None = None, **kwargs: Any) -> HttpResponse:
        if name is None:
            return self.render(CronForm(initial={"overlap": "allow"}))
        schedule = self.current(name)
        initial = {
            **runtime.editable_fields(schedule),
            "name": name,
            "json_data": "" if schedule.data is None else serialization.dumps(schedule.data),
        }
        return self.render(CronForm(initial=initial, editing=True), name)

    def current(self, name: str) -> Any:
        try:
            return runtime.current(name, CronStore(self.store))
        except (CronNotFound, InvalidSchedule) as exc:  # missing, or a code schedule: read-only
            raise Http404(str(exc)) from None

    def post(self, request: HttpRequest, *args: Any, name: str | None = None, **kwargs: Any) -> HttpResponse:
        editing = name is not None
        form = CronForm(request.POST, initial={"name": name}, editing=editing)
        if not form.is_valid():
            return self.render(form, name, status=400)
        options = form.options()
        try:
            if name is None:
                name = form.cleaned_data["name"].strip()
                after = runtime.add_cron(name, **options)
                message = f"Created: {describe_fields(after)}."
                flag = ADDITION
            else:
                self.current(name)
                change = runtime.update_cron(name, **options)
                if not change:
                    self.report(messages.INFO, f"Cron schedule {name} is unchanged.")
                    return HttpResponseRedirect(admin_url("tempotask_crons"))
                message = f"Changed: {describe_change(change)}."
                flag = CHANGE
        except (InvalidSchedule, CronNotFound) as exc:
            form.add_error(None, str(exc))
            return self.render(form, name if editing else None, status=400)
        self.record(flag, f"{LOG_PREFIX}{name}", f"cron schedule {name}", message)
        verb = "created" if flag == ADDITION else "changed"
        self.report(messages.SUCCESS, f"Cron schedule {name} was {verb}; every beat picks it up within a heartbeat.")
        return HttpResponseRedirect(admin_url("tempotask_crons"))

    def render(self, form: CronForm, name: str | None = None, status: int = 200) -> TemplateResponse:
        context = self.dashboard_context(
            form=form,
            name=name,
            history=CronStore(self.store).history(name) if name else [],
            log=log_entries(name) if name else [],
        )
        return TemplateResponse(self.request, self.template_name, context, status=status)


def log_entries(name: str, limit: int = 20) -> list[LogEntry]:
    """The admin's log of one schedule, newest first."""
    content_type = ContentType.objects.get_for_model(Dashboard, for_concrete_model=False)
    entries = LogEntry.objects.filter(content_type=content_type, object_id=f"{LOG_PREFIX}{name}")
    return list(entries.select_related("user").order_by("-action_time")[:limit])


class DeleteCronView(DashboardAction):
    permissions = (VIEW, "delete_cron")
    confirm_template = "admin/tempotask_django/confirm_delete_cron.html"
    title = "Delete a cron schedule"

    def confirm_context(self, **kwargs: Any) -> dict[str, Any]:
        try:
            schedule = runtime.current(kwargs["name"], CronStore(self.store))
        except (CronNotFound, InvalidSchedule) as exc:
            raise Http404(str(exc)) from None
        return {"schedule": schedule, "title": f"Delete cron schedule {schedule.name}?"}

    def post(self, request: HttpRequest, name: str) -> HttpResponse:
        try:
            before = runtime.delete_cron(name)
        except (CronNotFound, InvalidSchedule) as exc:
            self.report(messages.ERROR, str(exc))
            return HttpResponseRedirect(admin_url("tempotask_crons"))
        self.record(
            DELETION, f"{LOG_PREFIX}{name}", f"cron schedule {name}", f"Deleted; it was: {describe_fields(before)}."
        )
        self.report(messages.SUCCESS, f"Cron schedule {name} was deleted: no tick after this moment fires.")
        return HttpResponseRedirect(admin_url("tempotask_crons"))
