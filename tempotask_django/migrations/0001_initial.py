# The dashboard's permissions (the model itself has no table).

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Dashboard",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ],
            options={
                "verbose_name": "dashboard",
                "verbose_name_plural": "dashboard",
                "permissions": [
                    ("view_dashboard", "Can view the Tempotask dashboard"),
                    ("retry_job", "Can retry failed jobs"),
                    ("delete_job", "Can delete jobs"),
                    ("enqueue_job", "Can enqueue jobs from the admin"),
                    ("pause_queue", "Can pause and resume queues"),
                    ("purge_queue", "Can purge the history of a queue"),
                    ("run_cron", "Can run cron schedules now and pause them"),
                ],
                "managed": False,
                "default_permissions": (),
            },
        ),
    ]
