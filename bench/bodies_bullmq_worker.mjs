// One BullMQ worker process of `bench/run.sh bodies`, or the same body in a bare loop.
//   node bodies_bullmq_worker.mjs BODY CONCURRENCY          a Worker; REPORT at SIGTERM
//   node bodies_bullmq_worker.mjs BODY CONCURRENCY --bare N N bodies, no framework
import { performance } from 'node:perf_hooks';
import { Worker } from 'bullmq';
import { bare, make, warm } from './bodies_jobs.mjs';

const [name, concurrencyArg, mode, jobsArg] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
const [body, close] = make(name, concurrency);
await warm(body, concurrency);

if (mode === '--bare') {
  const jobs = Number(jobsArg);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await bare(body, concurrency, jobs);
  const cpu = process.cpuUsage(cpu0);
  const seconds = (performance.now() - t0) / 1000;
  await close();
  const perJob = (cpu.user + cpu.system) / jobs;
  const line = { cpu_us_per_job: +perJob.toFixed(2), jobs_per_s: Math.round(jobs / seconds) };
  process.stdout.write(`BARE ${JSON.stringify(line)}\n`);
  process.exit(0);
}

const url = new URL(process.env.BENCH_REDIS_URL);
const connection = { host: url.hostname, port: Number(url.port), maxRetriesPerRequest: null };
const worker = new Worker('bench', async () => { await body(); }, { connection, concurrency });
await worker.waitUntilReady();
process.stdout.write('READY\n');

process.on('SIGTERM', async () => {
  await worker.close();
  await close();
  process.stdout.write('REPORT {}\n');
  process.exit(0);
});
