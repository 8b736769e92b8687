// One run of `bench/run.sh bodies` for BullMQ: drain N jobs of one body at one concurrency.
//   node bodies_bullmq.mjs BODY CONCURRENCY   (BENCH_REDIS_URL: a fresh redis-server, run_one.py)
// The same protocol as bench/bodies_jobfleet.py: jobs wait in a paused queue while the worker
// (bodies_bullmq_worker.mjs) starts and opens its body's connections; the queue is resumed and
// the drain timed until every job is completed. Worker CPU from /proc over the window; the
// handler's share from the same body in a bare Node loop (--bare), the framework's the rest.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import IORedis from 'ioredis';

const [body, concurrencyArg] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
const N = Number(process.env.BENCH_BODY_JOBS || 10000);
const POLL_MS = 5;
const TICK = 100; // SC_CLK_TCK on Linux
const url = new URL(process.env.BENCH_REDIS_URL);
const connection = { host: url.hostname, port: Number(url.port) };
const here = path.dirname(new URL(import.meta.url).pathname);
const workerScript = path.join(here, 'bodies_bullmq_worker.mjs');
const conn = new IORedis(connection);
const infoField = (text, name) => Number(text.match(new RegExp(`${name}:([0-9.]+)`))[1]);

// CPU seconds (user + system, every thread) of process `pid`, from /proc (Linux).
function processCpu(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 1).trim().split(/\s+/);
  return (Number(fields[11]) + Number(fields[12])) / TICK;
}

async function redisMeter() {
  const read = async () => {
    const cpu = await conn.info('cpu');
    const stats = await conn.info('stats');
    return [infoField(cpu, 'used_cpu_sys') + infoField(cpu, 'used_cpu_user'),
      infoField(stats, 'total_commands_processed')];
  };
  const [cpu0, cmds0] = await read();
  return async (n) => {
    const [cpu1, cmds1] = await read();
    return [((cpu1 - cpu0) * 1e6) / n, (cmds1 - cmds0 - 2) / n];
  };
}

const queue = new Queue('bench', { connection });
await queue.pause();
for (let start = 0; start < N; start += 5000) {
  const count = Math.min(5000, N - start);
  await queue.addBulk(Array.from({ length: count }, (_, i) => ({ name: 'body', data: { i } })));
}
const worker = spawn(process.execPath, [workerScript, body, String(concurrency)], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let out = '';
await new Promise((resolve, reject) => {
  worker.stdout.on('data', (d) => {
    out += d;
    if (out.includes('READY')) resolve();
  });
  worker.on('exit', () => reject(new Error('the worker exited before it was ready')));
});
const done = await redisMeter();
const cpu0 = processCpu(worker.pid);
const t0 = performance.now();
await queue.resume();
const deadline = Date.now() + 600_000;
while ((await conn.zcard('bull:bench:completed')) < N) {
  if (Date.now() > deadline) throw new Error('the drain did not finish');
  await sleep(POLL_MS);
}
const seconds = (performance.now() - t0) / 1000;
const workerUs = ((processCpu(worker.pid) - cpu0) * 1e6) / N;
const [redisUs, cmds] = await done(N);
worker.removeAllListeners('exit'); // the not-ready guard
const exited = new Promise((resolve) => worker.on('exit', resolve));
worker.kill('SIGTERM');
await exited;
await queue.close();
conn.disconnect();

const bareRun = spawnSync(process.execPath, [workerScript, body, String(concurrency), '--bare', String(N)],
  { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
const bareLine = bareRun.stdout.split('\n').find((l) => l.startsWith('BARE '));
if (!bareLine) throw new Error(`the bare run failed (${bareRun.status})`);
const handler = JSON.parse(bareLine.slice(5));
const r1 = (x) => Math.round(x * 10) / 10;
const result = {
  system: 'bullmq', loop: 'node', body, concurrency, n: N,
  jobs_per_s: Math.round(N / seconds),
  worker_cpu_us: r1(workerUs),
  handler_cpu_us: handler.cpu_us_per_job,
  framework_cpu_us: r1(workerUs - handler.cpu_us_per_job),
  bare_jobs_per_s: handler.jobs_per_s,
  redis_cpu_us: r1(redisUs),
  redis_cmds_per_job: Math.round(cmds * 100) / 100,
};
process.stderr.write(`bullmq ${body} c=${concurrency}: ${result.jobs_per_s}/s, ${workerUs.toFixed(0)} µs/job\n`);
process.stdout.write(`${JSON.stringify(result)}\n`);
