"""The suite's Redis Cluster (3 masters, 1 replica each): shipped with the chaos suite, which needs it too."""

from tempotask_django.chaos.cluster_servers import NODE_TIMEOUT_MS, SLOTS, ClusterSetup, free_cluster_port

__all__ = ["NODE_TIMEOUT_MS", "SLOTS", "ClusterSetup", "free_cluster_port"]
