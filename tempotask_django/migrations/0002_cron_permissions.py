# Pausing and resuming cron schedules gets its own permission; run_cron is now only "run now".

from django.db import migrations


def rename_run_cron(apps, schema_editor):
    """Django creates missing permissions after migrating but never renames existing ones: do it here."""
    try:
        permission = apps.get_model("auth", "Permission")
    except LookupError:  # django.contrib.auth is not installed (or not migrated yet): nothing to rename
        return
    permission.objects.using(schema_editor.connection.alias).filter(
        content_type__app_label="tempotask_django", codename="run_cron"
    ).update(name="Can run cron schedules now")


class Migration(migrations.Migration):
    dependencies = [
        ("tempotask_django", "0001_initial"),
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
                    ("enqueue_job", "Can enqueue jobs from the admin"),
                    ("pause_queue", "Can pause and resume queues"),
                    ("purge_queue", "Can purge the history of a queue"),
                    ("run_cron", "Can run cron schedules now"),
                    ("pause_cron", "Can pause and resume cron schedules"),
                ],
                "managed": False,
                "default_permissions": (),
            },
        ),
        migrations.RunPython(rename_run_cron, migrations.RunPython.noop, elidable=True),
    ]
