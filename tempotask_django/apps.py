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

        from tempotask_django import checks, receivers, signals  # noqa: F401 - registers the checks
        from tempotask_django.conf import reset_on_setting_changed

        setting_changed.connect(reset_on_setting_changed, dispatch_uid="tempotask_settings_reset")
        signals.job_enqueued.connect(receivers.log_enqueued, dispatch_uid="tempotask_log_enqueued")
        autodiscover_modules("tasks")
