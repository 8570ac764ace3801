"""The chaos suite: proves (or disproves) tempotask's reliability claims on real processes and Redis.

``python -m tempotask_django.chaos [--profile short|long]`` starts its own redis-server on free
loopback ports (one per scenario, plus one for the ledger), runs the scenarios in ``scenarios/``
with fixed seeds against real ``manage.py runworkers`` and ``runcron`` processes, and writes
``report.json`` and ``summary.txt``. It exits non-zero when a figure that must hold (no job lost,
...) does not.

It is shipped with the package so the claims can be checked on any machine and Redis version;
nothing in it is imported by the engine. Linux only (it reads /proc and sends SIGSTOP/SIGKILL).
"""
