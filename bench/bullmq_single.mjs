// Single-job enqueue (BullMQ `add`): one call at a time, then 100 concurrent callers —
// the same protocol as bench/single_enqueue.py, one JSON line on stdout.
import { performance } from 'node:perf_hooks';
import { Queue } from 'bullmq';
import IORedis from 'ioredis';

const N = Number(process.env.BENCH_SINGLE_JOBS || 20000);
const CALLERS = 100;
const url = new URL(process.env.BENCH_REDIS_URL);
const connection = { host: url.hostname, port: Number(url.port) };
const conn = new IORedis(connection);
const field = (text, name) => Number(text.match(new RegExp(`${name}:([0-9.]+)`))[1]);
const redisCpu = async () => {
  const cpu = await conn.info('cpu');
  return field(cpu, 'used_cpu_sys') + field(cpu, 'used_cpu_user');
};
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

const queue = new Queue('single', { connection });
const warm = new Queue('warmup', { connection });
for (let i = 0; i < 500; i++) await warm.add('warmup', { i });
const out = { system: 'bullmq', n: N };

let r0 = await redisCpu();
let c0 = cpuSeconds();
let t0 = performance.now();
const calls = [];
for (let i = 0; i < N; i++) {
  const t = performance.now();
  await queue.add('email', { to: 'ada@example.com', i });
  calls.push(performance.now() - t);
}
let wall = (performance.now() - t0) / 1000;
calls.sort((a, b) => a - b);
Object.assign(out, {
  seq_per_s: Math.round(N / wall),
  seq_p50_ms: Math.round(calls[Math.floor(N / 2)] * 1000) / 1000,
  seq_client_cpu_us: Math.round(((cpuSeconds() - c0) / N) * 1e7) / 10,
  seq_redis_cpu_us: Math.round((((await redisCpu()) - r0) / N) * 1e7) / 10,
});

const per = Math.floor(N / CALLERS);
const n = per * CALLERS;
r0 = await redisCpu();
c0 = cpuSeconds();
t0 = performance.now();
await Promise.all(Array.from({ length: CALLERS }, async (_, k) => {
  for (let i = 0; i < per; i++) await queue.add('email', { to: 'ada@example.com', i, k });
}));
wall = (performance.now() - t0) / 1000;
Object.assign(out, {
  conc_per_s: Math.round(n / wall),
  conc_client_cpu_us: Math.round(((cpuSeconds() - c0) / n) * 1e7) / 10,
  conc_redis_cpu_us: Math.round((((await redisCpu()) - r0) / n) * 1e7) / 10,
});
const counts = await queue.getJobCounts('waiting');
if (counts.waiting !== N + n) throw new Error(`${counts.waiting} waiting, expected ${N + n}`);
console.log(JSON.stringify(out));
await queue.close();
await warm.close();
await conn.quit();
