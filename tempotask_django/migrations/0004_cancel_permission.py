# Cancelling jobs (the admin's Cancel button and bulk action) gets its own permission.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("tempotask_django", "0003_runtime_cron_permissions"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="dashboard",
            options={
                "verbose_name": "dashboard",
                "verbose_name_plural": "dashboard",
                "permissions": [
                    ("view_dashboard", "Can view the Tempotask dashboard"),
                    ("retry_job", "Can retry failed jobs"),
                    ("delete_job", "Can delete jobs"),
                    ("cancel_job", "Can cancel jobs"),
                    ("enqueue_job", "Can enqueue jobs from the admin"),
                    ("pause_queue", "Can pause and resume queues"),
                    ("purge_queue", "Can purge the history of a queue"),
                    ("run_cron", "Can run cron schedules now"),
                    ("pause_cron", "Can pause and resume cron schedules"),
                    ("add_cron", "Can create runtime cron schedules"),
                    ("change_cron", "Can change runtime cron schedules"),
                    ("delete_cron", "Can delete runtime cron schedules"),
                ],
                "managed": False,
                "default_permissions": (),
            },
        ),
    ]
