"""The benchmark's job bodies: the same work the plain Streams loop does per entry (see bench/body.py)."""

from bench import body
from tempotask_django import task


@task(queue="bench")
def incr(job, ctx):
    """One INCR of the counter (plus a timestamp on the first and the last job of a drain)."""
    body.count(ctx.redis, job.data["total"])


@task(queue="bench")
def stamp(job, ctx):
    """One INCR, and the enqueue-to-start latency of this job pushed to a list."""
    body.latency(ctx.redis, job.data["t"], started=body.now())


@task(queue="bench")
async def aincr(job, ctx):
    """``incr`` as an async handler: one INCR awaited through redis.asyncio."""
    await body.acount(ctx.aredis, job.data["total"])
