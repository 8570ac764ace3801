"""The suite's Sentinel setup (1 master, 1 replica, 3 sentinels): shipped with the chaos suite, which needs it too."""

from tempotask_django.chaos.sentinel_servers import MASTER_NAME, SentinelSetup

__all__ = ["MASTER_NAME", "SentinelSetup"]
