"""Enqueue a job from the admin: choose a task, give JSON data and options; errors show on the form."""

from __future__ import annotations

import json
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.contrib.admin.models import ADDITION
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from tempotask_django import serialization, validation
from tempotask_django.conf import get_settings
from tempotask_django.decorators import Task
from tempotask_django.exceptions import TaskNotRegistered
from tempotask_django.models import VIEW
from tempotask_django.producer import build_spec, submit
from tempotask_django.registry import registry
from tempotask_django.storage.records import JobSpec
from tempotask_django.validation import RESERVED_NAME_PREFIX
from tempotask_django.views.base import DashboardAction, admin_url


def offered_tasks() -> list[Task]:
    """The tasks the form offers, by name: not the internal ones (Django tasks are enqueued through Django)."""
    return sorted((task for task in registry if not task.name.startswith(RESERVED_NAME_PREFIX)), key=lambda t: t.name)


def _checked(check: Any, value: Any) -> Any:
    """Run one of validation.py's checks, turning its error into a form error."""
    try:
        return check(value)
    except (TypeError, ValueError) as exc:
        raise forms.ValidationError(str(exc)) from None


class EnqueueForm(forms.Form):
    task = forms.ChoiceField(help_text="A task registered with @task.")
    json_data = forms.CharField(
        label="Data",
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80, "class": "vLargeTextField", "spellcheck": "false"}),
        initial="{}",
        help_text='JSON, e.g. {"user_id": 123}.',
    )
    queue = forms.CharField(required=False, help_text="Empty: the task's queue.")
    priority = forms.IntegerField(required=False, help_text="-1000 to 1000, higher runs first. Empty: the task's.")
    delay = forms.FloatField(required=False, help_text="Seconds before it may run. Empty: now.")
    attempts = forms.IntegerField(required=False, help_text="Total tries. Empty: the task's.")
    job_id = forms.CharField(required=False, label="Job id", help_text="Empty: a new random id.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        task_field = cast(forms.ChoiceField, self.fields["task"])
        task_field.choices = [(task.name, task.name) for task in offered_tasks()]
        self.spec: JobSpec | None = None

    def clean_json_data(self) -> Any:
        text = self.cleaned_data["json_data"]
        try:
            value = serialization.decode(text) if text.strip() else json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"This is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from None
        except ValueError as exc:  # nested too deeply
            raise forms.ValidationError(f"This JSON cannot be used: {exc}.") from None
        limit = get_settings().max_payload_bytes
        _checked(lambda v: serialization.encode(v, max_bytes=limit, what="the data"), value)
        return value

    def clean_queue(self) -> str | None:
        queue = self.cleaned_data["queue"].strip()
        return _checked(validation.queue_name, queue) if queue else None

    def clean_priority(self) -> int | None:
        value = self.cleaned_data["priority"]
        return None if value is None else _checked(validation.priority, value)

    def clean_delay(self) -> float | None:
        value = self.cleaned_data["delay"]
        return None if value is None else _checked(lambda v: validation.seconds(v, "delay"), value)

    def clean_attempts(self) -> int | None:
        value = self.cleaned_data["attempts"]
        return None if value is None else _checked(validation.attempts, value)

    def clean_job_id(self) -> str | None:
        value = self.cleaned_data["job_id"].strip()
        return _checked(validation.job_id, value) if value else None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        options = {key: cleaned.get(key) for key in ("queue", "priority", "delay", "attempts", "job_id")}
        try:
            task = registry.get(cleaned["task"])
            self.spec = build_spec(task, cleaned["json_data"], settings=get_settings(), **options)
        except (TaskNotRegistered, TypeError, ValueError) as exc:
            raise forms.ValidationError(str(exc)) from None
        return cleaned


class EnqueueView(DashboardAction):
    permissions = (VIEW, "enqueue_job")
    template_name = "admin/tempotask_django/enqueue.html"
    title = "Enqueue a job"
    tab = "tempotask_enqueue"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        initial = {key: request.GET[key] for key in ("task", "queue") if key in request.GET}
        return self.render(EnqueueForm(initial=initial))

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = EnqueueForm(request.POST)
        if not form.is_valid() or form.spec is None:
            return self.render(form, status=400)
        spec = form.spec
        [(added, status)] = submit([spec])
        link = admin_url("tempotask_job", spec.queue, spec.id)
        if not added:
            self.report(messages.WARNING, f"A job with id {spec.id} is already {status}; nothing was added.")
            return HttpResponseRedirect(link)
        self.record(
            ADDITION, f"{spec.queue}/{spec.id}", f"job {spec.id} on {spec.queue}", f"Enqueued {spec.name} ({status})."
        )
        self.report(messages.SUCCESS, f"Job {spec.id} ({spec.name}) was added to {spec.queue} as {status}.")
        return HttpResponseRedirect(link)

    def render(self, form: EnqueueForm, status: int = 200) -> TemplateResponse:
        context = self.dashboard_context(form=form, tasks={task.name: task for task in offered_tasks()})
        return TemplateResponse(self.request, self.template_name, context, status=status)
