// BullMQ on Node.js, the same adapter as the Python peers' (bench/peers/common.py):
//   node peer.mjs enqueue TOTAL | probe TOTAL RATE | worker default|best
// with the Redis URL in $BENCH_REDIS_URL and the same keys and job body as bench/body.py.
import { Queue, Worker } from "bullmq";
import IORedis from "ioredis";

const COUNTER = "bench:counter";
const FIRST = "bench:first";
const DONE = "bench:done";
const LATENCIES = "bench:latencies";
const QUEUE = "bench";
const CONFIGS = {
  default: { concurrency: 1 }, // the Worker's default
  best: { concurrency: 50 },
};

const url = new URL(process.env.BENCH_REDIS_URL);
const connection = { host: url.hostname, port: Number(url.port), maxRetriesPerRequest: null };
const redis = new IORedis(connection);
// Seconds since the epoch with sub-millisecond resolution, like Python's time.time().
const now = () => (performance.timeOrigin + performance.now()) / 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const emit = (result) => console.log("RESULT " + JSON.stringify(result));

async function count(total) {
  const n = await redis.incr(COUNTER);
  if (n === 1) await redis.set(FIRST, String(now()));
  if (n === total) await redis.rpush(DONE, "1");
}

async function latency(enqueued) {
  const started = now();
  await redis.incr(COUNTER);
  await redis.rpush(LATENCIES, String(started - enqueued));
}

async function enqueue(total) {
  const queue = new Queue(QUEUE, { connection });
  await queue.waitUntilReady();
  const start = performance.now();
  for (let i = 0; i < total; i++) await queue.add("count", { total });
  emit({ seconds: (performance.now() - start) / 1000 });
  await queue.close();
}

async function probe(total, rate) {
  const queue = new Queue(QUEUE, { connection });
  await queue.add("stamp", { t: now() }); // warm-up: wait until it ran, then let the worker go idle
  const deadline = Date.now() + 60000;
  while (!(await redis.exists(COUNTER))) {
    if (Date.now() > deadline) throw new Error("the warm-up probe did not run within 60 s");
    await sleep(10);
  }
  await sleep(1000);
  await redis.del(COUNTER, LATENCIES);
  const start = performance.now();
  for (let i = 0; i < total; i++) {
    const delay = start + (i * 1000) / rate - performance.now();
    if (delay > 0) await sleep(delay);
    await queue.add("stamp", { t: now() });
  }
  emit({ seconds: (performance.now() - start) / 1000 });
  await queue.close();
}

function worker(config) {
  new Worker(
    QUEUE,
    async (job) => (job.name === "count" ? count(job.data.total) : latency(job.data.t)),
    { connection, ...CONFIGS[config] },
  );
  process.on("SIGTERM", () => process.exit(0));
}

const [command, ...rest] = process.argv.slice(2);
if (command === "enqueue") await enqueue(Number(rest[0]));
else if (command === "probe") await probe(Number(rest[0]), Number(rest[1]));
else if (command === "worker") worker(rest[0]);
else throw new Error(`unknown command ${command}`);
if (command !== "worker") redis.disconnect();
