"""A page with buttons that enqueue each kind of job."""

import datetime

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from demo import exports, tasks

ACTIONS = {
    "notify": ("Notification with a child email", lambda n: tasks.send_notification.enqueue({"user_id": n})),
    "fail": ("Payment that fails, retries, then fails", lambda n: tasks.charge_card.enqueue({"amount": n})),
    "delay": ("Report in 30 seconds", lambda n: tasks.build_report.enqueue({}, delay=datetime.timedelta(seconds=30))),
    "async": ("Async weather fetch", lambda n: tasks.fetch_weather.enqueue({"city": "Lyon"})),
    "priority": (
        "Urgent notification (priority 10)",
        lambda n: tasks.send_notification.enqueue({"user_id": n}, priority=10),
    ),
    "django": (
        "Orders export, a Django Tasks framework task",
        lambda n: exports.export_orders.enqueue(f"2026-{n % 12 + 1:02}").id,
    ),
}


@require_http_methods(["GET", "POST"])
def home(request):
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action in ACTIONS:
            counter = request.session.get("counter", 0) + 1
            request.session["counter"] = counter
            job_id = ACTIONS[action][1](counter)
            messages.success(request, f"Enqueued {ACTIONS[action][0].lower()}: job {job_id}")
        return redirect("home")
    return render(request, "demo/home.html", {"actions": [(key, label) for key, (label, _) in ACTIONS.items()]})
