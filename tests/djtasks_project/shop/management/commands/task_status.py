"""``manage.py task_status NAME RESULT_ID``: print one task's result (from any process) as JSON."""

import json

from django.core.management.base import BaseCommand

from tests.djtasks_project.shop import tasks
from tests.djtasks_project.shop.management.commands.checkout import describe


class Command(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("result_id")

    def handle(self, *args, name, result_id, **options):
        self.stdout.write(json.dumps(describe(getattr(tasks, name).get_result(result_id))))
