"""``manage.py checkout ORDER``: enqueue the order's tasks and print their results as JSON."""

import json

from django.core.management.base import BaseCommand

from tests.djtasks_project.shop import tasks


class Command(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("order_id", type=int)

    def handle(self, *args, order_id, **options):
        results = {
            "send_receipt": tasks.send_receipt.enqueue(order_id=order_id),
            "charge_card": tasks.charge_card.enqueue(order_id),
            "refresh_stock": tasks.refresh_stock.using(priority=-5).enqueue(f"sku-{order_id}"),
        }
        self.stdout.write(json.dumps({name: describe(result) for name, result in results.items()}))


def describe(result) -> dict:
    return {
        "id": result.id,
        "status": str(result.status),
        "attempts": result.attempts,
        "return_value": result.return_value if result.status == "SUCCESSFUL" else None,
        "errors": [error.exception_class_path for error in result.errors],
    }
