"""The shop's background tasks: plain Django Tasks framework code, nothing else imported.

The one conditional import is there because Django 5.2 has no ``django.tasks``: its backport offers
the same API as ``django_tasks``. On Django 6 only the first line is needed.
"""

import asyncio

try:
    from django.tasks import TaskContext, task
except ImportError:
    from django_tasks import TaskContext, task


@task(queue_name="emails")
def send_receipt(order_id: int) -> dict:
    return {"order": order_id, "sent": True}


@task(takes_context=True, priority=10)
def charge_card(context: TaskContext, order_id: int) -> dict:
    """The payment gateway times out twice before it answers."""
    if context.attempt < 3:
        raise ConnectionError(f"gateway timeout (attempt {context.attempt})")
    return {"order": order_id, "charged": True, "attempt": context.attempt}


@task()
async def refresh_stock(sku: str) -> dict:
    await asyncio.sleep(0.01)
    return {"sku": sku, "in_stock": 3}
