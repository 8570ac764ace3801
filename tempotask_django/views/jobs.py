"""Jobs: the list of one queue and status (filter by task, search by id, pages) and a job's detail."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.utils import unquote
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.loader import render_to_string
from django.views import View

from tempotask_django import api
from tempotask_django.conf import get_settings
from tempotask_django.job import Job, JobStatus, ms_to_datetime
from tempotask_django.registry import registry
from tempotask_django.validation import RESERVED_NAME_PREFIX
from tempotask_django.views.base import DashboardMixin, DashboardPage, admin_url
from tempotask_django.views.crons import LOG_PREFIX as CRON_LOG_PREFIX
from tempotask_django.views.limits import limit_rows
from tempotask_django.views.timeline import pretty_json, timeline

# Jobs per page of the list.
PAGE_SIZE = 50
# Newest jobs of a status that a task-name filter looks through (a status set is ordered by time,
# not by task, so the filter reads names in chunks; see QueueInspector.find_jobs_by_name).
NAME_FILTER_WINDOW = 5000
# Seconds between two refreshes of an active job's status and progress on its page.
LIVE_REFRESH_SECONDS = 2
# Fragments of a job's page that its JSON endpoint renders again: name -> template.
JOB_FRAGMENTS = {
    "status": "admin/tempotask_django/includes/job_status.html",
    "progress": "admin/tempotask_django/includes/progress.html",
}
# Child jobs listed on a job's page.
CHILDREN_SHOWN = 100


def log_line(line: dict[str, Any]) -> dict[str, Any]:
    message = line.get("message")
    text = message if isinstance(message, str) else pretty_json(message, indent=None)
    return {"at": ms_to_datetime(line.get("t")), "text": text}


class JobsHomeView(DashboardPage):
    """The Jobs tab: the default queue's waiting jobs (the search and filters travel along)."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        queue = request.GET.get("queue") or get_settings().default_queue
        status = JobStatus.parse(request.GET.get("status")) or JobStatus.WAITING
        query = request.GET.copy()
        for key in ("queue", "status"):
            query.pop(key, None)
        target = admin_url("tempotask_job_list", queue, status)
        return HttpResponseRedirect(f"{target}?{query.urlencode()}" if query else target)


class LoggedObjectView(DashboardPage):
    """Where the admin's log links an action's object: "queue/job id" to the job, "queue" to the queue,
    "cron:<name>" to the cron schedules."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        object_id = unquote(kwargs["object_id"])
        if object_id.startswith(CRON_LOG_PREFIX):
            return HttpResponseRedirect(admin_url("tempotask_crons"))
        queue, _, job_id = object_id.partition("/")
        if job_id:
            return HttpResponseRedirect(admin_url("tempotask_job", queue, job_id))
        return HttpResponseRedirect(admin_url("tempotask_job_list", queue, "waiting"))


class JobListView(DashboardPage):
    template_name = "admin/tempotask_django/job_list.html"
    tab = "tempotask_jobs"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        queue = self.known_queue(kwargs["queue"])
        status = JobStatus(kwargs["status"])  # the URL pattern admits statuses only
        task_name = self.request.GET.get("task", "").strip()
        search = self.request.GET.get("q", "").strip()
        stats = self.store.inspect.queue_stats(queue)
        note = ""
        if search:
            jobs, total = self.search(search)
        elif task_name:
            jobs, total, note = self.by_task(queue, status, task_name)
        else:
            jobs, total = None, getattr(stats, status)
        page = Paginator(range(total), PAGE_SIZE).get_page(self.request.GET.get("p"))
        offset = page.start_index() - 1 if total else 0
        if jobs is None:
            jobs = self.store.inspect.list_jobs(queue, status, offset, PAGE_SIZE)
        return super().get_context_data(
            title=f"{status.label} jobs in {queue}",
            queue=queue,
            status=status.value,
            stats=stats,
            jobs=jobs,
            page=page,
            total=total,
            page_range=page.paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1),
            task_name=task_name,
            search=search,
            note=note,
            statuses=[(one.value, one.label, getattr(stats, one)) for one in JobStatus],
            queues=self.all_queues(),
            task_names=sorted(task.name for task in registry),
            is_history=status.is_history,
            limits=limit_rows(self.store, queue, stats.waiting),
            live_list=status == JobStatus.PROCESSING and not search,
            may_cancel=status in JobStatus.active(),
            cancel_limit=PAGE_SIZE,
        )

    def search(self, job_id: str) -> tuple[list[Job], int]:
        """The jobs with exactly this id, in any queue and status (an id is unique within its queue only)."""
        queues = self.store.inspect.find_queues(job_id, api.lookup_order())
        jobs = [job for queue in queues for job in self.store.inspect.get_jobs(queue, [job_id])]
        return jobs, len(jobs)

    def by_task(self, queue: str, status: str, name: str) -> tuple[list[Job], int, str]:
        page_number = self.request.GET.get("p", "1")
        number = int(page_number) if page_number.isdigit() and int(page_number) > 0 else 1
        jobs, found, complete = self.store.inspect.find_jobs_by_name(
            queue, status, name, (number - 1) * PAGE_SIZE, PAGE_SIZE, NAME_FILTER_WINDOW
        )
        note = "" if complete else f"The task filter looks at the newest {NAME_FILTER_WINDOW} {status} jobs."
        return jobs, found, note


class JobDetailView(DashboardPage):
    template_name = "admin/tempotask_django/job_detail.html"
    tab = "tempotask_jobs"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        queue = self.known_queue(kwargs["queue"])
        job = self.store.inspect.get_job(queue, kwargs["job_id"])
        if job is None:
            raise Http404(f"no job {kwargs['job_id']!r} in {queue} (it may have been deleted or trimmed)")
        queues = self.all_queues()
        parent_queue = self.store.inspect.find_queue(job.parent_id, queues) if job.parent_id else None
        children, children_total = self.store.inspect.children(job.id, queues, CHILDREN_SHOWN)
        worker = self.store.inspect.get_worker(job.worker) if job.worker else None
        return super().get_context_data(
            title=f"Job {job.id}",
            queue=queue,
            job=job,
            timeline=timeline(job),
            data_json=pretty_json(job.data),
            result_json=pretty_json(job.result),
            logs=[log_line(line) for line in job.logs],
            errors=list(reversed(job.errors)),
            parent_queue=parent_queue,
            children=children,
            children_total=children_total,
            worker=worker,
            can_retry_now=job.status in ("failed", "cancelled", "delayed"),
            can_cancel_now=job.status in JobStatus.active() and not job.cancel_requested,
            live=job.status in JobStatus.active(),
            refresh_seconds=LIVE_REFRESH_SECONDS,
            internal_task=job.name.startswith(RESERVED_NAME_PREFIX),
        )


class JobLiveView(DashboardMixin, View):
    """A job's status and progress as JSON, with their HTML fragments (the job page polls it)."""

    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        queue = self.known_queue(kwargs["queue"])
        job = self.store.inspect.get_jobs(queue, [kwargs["job_id"]])
        if not job:
            raise Http404(f"no job {kwargs['job_id']!r} in {queue}")
        context = {"job": job[0]}
        html = {name: render_to_string(template, context, request) for name, template in JOB_FRAGMENTS.items()}
        return JsonResponse({"status": job[0].status.value, "progress": job[0].progress, "html": html})
