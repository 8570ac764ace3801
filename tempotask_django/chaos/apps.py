from django.apps import AppConfig


class ChaosConfig(AppConfig):
    """The chaos suite's own app, installed only by its settings (``tempotask_django.chaos.settings``)."""

    name = "tempotask_django.chaos"
    label = "chaos"

    def ready(self) -> None:
        # The handlers its worker processes run; the module is not named tasks.py, so a project's
        # task autodiscovery could never import it even if it listed the package.
        from tempotask_django.chaos import handlers  # noqa: F401
