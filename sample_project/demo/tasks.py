"""Every kind of job the sample project shows. Discovered because this module is named tasks.py."""

import asyncio
import random
import time

from tempotask_django import task


@task(
    queue="notifications",
    attempts=3,
    retry_delay=5,
    backoff="exponential",
    description="Send a notification, then an email as a child job",
)
def send_notification(job, ctx):
    job.log(f"sending to {job.data['user_id']}")
    email_id = ctx.add_job("send_email", data={"user_id": job.data["user_id"]}, job_id=f"email-{job.data['user_id']}")
    job.logger({"child": email_id})
    return {"sent": True}


@task(queue="notifications", description="Send an email through the mailer from the app context")
def send_email(job, ctx):
    ctx.mailer.send(to=f"user-{job.data['user_id']}@example.com", subject="Hello from tempotask")
    return {"mailed": job.data["user_id"]}


@task(attempts=3, retry_delay=2, backoff="exponential", description="Fails every time: retries, then lands in failed")
def charge_card(job, ctx):
    job.log(f"charging {job.data['amount']} (attempt {job.attempt} of {job.max_attempts})")
    raise ConnectionError("payment gateway timed out")


@task(description="Builds a report; enqueued with a delay; reports its progress")
def build_report(job, ctx):
    job.log("collecting numbers")
    sections = ("sales", "stock", "returns", "summary")
    for done, section in enumerate(sections, 1):
        time.sleep(0.2)
        job.set_progress(100 * done / len(sections), {"section": section})
    return {"rows": random.randint(10, 100)}


@task(description="An async handler, at most 10 started a second across the fleet", rate_limit="10/s")
async def fetch_weather(job, ctx):
    await asyncio.sleep(0.2)
    return {"city": job.data.get("city", "Paris"), "celsius": random.randint(-5, 30)}


@task(queue="crons", cron="* * * * *", data={"source": "cron"}, description="Runs every minute")
def minutely_cleanup(job, ctx):
    job.log("cleaning up expired sessions")
    return {"cleaned": random.randint(0, 5)}
