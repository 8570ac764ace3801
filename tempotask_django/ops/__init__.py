"""Tools for operators: ``manage.py tempotask`` (stats, queue, job and cron actions, health) and the
health view. Every read and write of Redis state goes through ``backend``."""
