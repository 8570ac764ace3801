from django.apps import AppConfig


class TempotaskConfig(AppConfig):
    name = "tempotask_django"
    label = "tempotask_django"
    verbose_name = "Tempotask"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        # Only imports and signal connections: no Redis, no threads.
        from django.core.signals import setting_changed
        from django.utils.module_loading import autodiscover_modules

        from tempotask_django import checks, conf, immediate, producer, signals  # checks: imported to register them
        from tempotask_django.djtasks import handlers  # registers the tasks that run Django tasks
        from tempotask_django.storage import connection

        setting_changed.connect(conf.reset_on_setting_changed, dispatch_uid="tempotask_settings_reset")
        setting_changed.connect(connection.reset_on_setting_changed, dispatch_uid="tempotask_store_reset")
        producer.jobs_added.connect(immediate.run_added_jobs, dispatch_uid="tempotask_immediate_mode")
        for task in (handlers.SYNC_TASK, handlers.ASYNC_TASK):  # only jobs of Django tasks pay for these
            signals.job_completed.connect(handlers.on_job_completed, sender=task, dispatch_uid=f"{task.name}_completed")
            signals.job_failed.connect(handlers.on_job_failed, sender=task, dispatch_uid=f"{task.name}_failed")
            signals.job_cancelled.connect(handlers.on_job_cancelled, sender=task, dispatch_uid=f"{task.name}_cancelled")
        if checks.uses_tasks_backend() and checks.tasks_framework_available():
            # Importing the Tasks framework registers its system check, which calls our backend's.
            from tempotask_django.djtasks import compat  # noqa: F401
        autodiscover_modules("tasks")
