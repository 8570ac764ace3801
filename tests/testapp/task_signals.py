"""Records Django's task_started / task_finished signals in the ledger, from any process (workers too)."""

from django.conf import settings

from tests.testapp.context import Ledger


def _record(event: str, sender, task_result, **kwargs) -> None:
    extra = {"status": str(task_result.status), "attempts": task_result.attempts, "sender": sender.__name__}
    if event == "task_finished":
        # What another process sees at this moment: the outcome must already be stored.
        stored = task_result.task.get_backend().get_result(task_result.id)
        extra["stored_status"] = str(stored.status)
        extra["errors"] = [error.exception_class_path for error in task_result.errors]
    Ledger(settings.TEMPOTASK["REDIS_URL"]).record(event, task_result.id, **extra)


def on_started(sender, task_result, **kwargs) -> None:
    _record("task_started", sender, task_result)


def on_finished(sender, task_result, **kwargs) -> None:
    _record("task_finished", sender, task_result)


def connect() -> None:
    from tempotask_django.djtasks import framework_available

    if not framework_available():
        return
    from tempotask_django.djtasks.compat import task_finished, task_started

    task_started.connect(on_started, dispatch_uid="tests_task_started")
    task_finished.connect(on_finished, dispatch_uid="tests_task_finished")


def disconnect() -> None:
    from tempotask_django.djtasks.compat import task_finished, task_started

    task_started.disconnect(dispatch_uid="tests_task_started")
    task_finished.disconnect(dispatch_uid="tests_task_finished")
