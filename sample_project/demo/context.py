"""The app context handlers receive as ``ctx`` (TEMPOTASK["CONTEXT"] points here)."""

import logging

logger = logging.getLogger("demo")


class ConsoleMailer:
    """Stands in for a real mail client: prints instead of sending."""

    def send(self, to: str, subject: str) -> None:
        logger.info("MAIL to=%s subject=%r", to, subject)


def build_context() -> dict:
    """Called once per worker process: build clients here, not per job."""
    return {"mailer": ConsoleMailer()}
