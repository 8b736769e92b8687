// One BullMQ worker process for the benchmark (concurrency 50): no-op and latency jobs.
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Worker } from 'bullmq';
import { counter } from './rtt_count.mjs';

const url = new URL(process.env.BENCH_REDIS_URL);
const connection = { host: url.hostname, port: Number(url.port), maxRetriesPerRequest: null };
const latencyFd = fs.openSync(process.env.BENCH_LATENCY_FILE || '/dev/null', 'a');
const nowMs = () => performance.timeOrigin + performance.now();

const worker = new Worker(
  'bench',
  async (job) => {
    if (job.name === 'ping') {
      fs.writeSync(latencyFd, `${(nowMs() - job.data.t).toFixed(3)}\n`);
    }
  },
  { connection, concurrency: 50 },
);

await worker.waitUntilReady();
process.stdout.write('READY\n');

process.on('SIGTERM', async () => {
  await worker.close();
  process.stdout.write(`REPORT ${JSON.stringify({ round_trips: counter.roundTrips })}\n`);
  process.exit(0);
});
