// One benchmark run of BullMQ: bulk enqueue, drain by one worker process, pickup latency.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import IORedis from 'ioredis';
import { counter } from './rtt_count.mjs';

const N = Number(process.env.BENCH_JOBS || 20000);
const N_LATENCY = Number(process.env.BENCH_LATENCY_JOBS || 1000);
const GAP_MS = 10;
const url = new URL(process.env.BENCH_REDIS_URL);
const connection = { host: url.hostname, port: Number(url.port) };
const here = path.dirname(new URL(import.meta.url).pathname);
const nowMs = () => performance.timeOrigin + performance.now();
const note = (msg) => process.stderr.write(`${msg}\n`);

const conn = new IORedis(connection);
const infoField = (text, name) => Number(text.match(new RegExp(`${name}:([0-9.]+)`))[1]);

// Redis server CPU seconds and commands executed (including inside Lua) over a phase.
async function meter() {
  const read = async () => {
    const cpu = await conn.info('cpu');
    const stats = await conn.info('stats');
    return [
      infoField(cpu, 'used_cpu_sys') + infoField(cpu, 'used_cpu_user'),
      infoField(stats, 'total_commands_processed'),
    ];
  };
  const [cpu0, cmds0] = await read();
  return async (n) => {
    const [cpu1, cmds1] = await read();
    return [((cpu1 - cpu0) * 1e6) / n, (cmds1 - cmds0 - 2) / n];
  };
}

function percentile(values, p) {
  const s = [...values].sort((a, b) => a - b);
  const k = Math.max(0, Math.min(s.length - 1, Math.round((p / 100) * s.length + 0.5) - 1));
  return s[k];
}

function latencySummary(ms) {
  const r = (x) => Math.round(x * 1000) / 1000;
  return { latency_n: ms.length, latency_p50_ms: r(percentile(ms, 50)),
    latency_p99_ms: r(percentile(ms, 99)), latency_max_ms: r(Math.max(...ms)) };
}

function spawnWorker(env = {}) {
  const child = spawn(process.execPath, [path.join(here, 'bullmq_worker.mjs')], {
    env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  child.out = '';
  child.ready = new Promise((resolve) => {
    child.stdout.on('data', (d) => {
      child.out += d;
      if (child.out.includes('READY')) resolve();
    });
  });
  return child;
}

async function stopWorker(child) {
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.kill('SIGTERM');
  await exited;
  const line = child.out.split('\n').find((l) => l.startsWith('REPORT '));
  return line ? JSON.parse(line.slice(7)) : {};
}

async function waitCompleted(queue, target) {
  const deadline = Date.now() + 300_000;
  while ((await conn.zcard('bull:bench:completed')) < target) {
    if (Date.now() > deadline) throw new Error(`fewer than ${target} jobs completed`);
    await sleep(10);
  }
  return performance.now();
}

async function jobFields(ids, fields) {
  const rows = [];
  for (let i = 0; i < ids.length; i += 1000) {
    const pipe = conn.pipeline();
    for (const id of ids.slice(i, i + 1000)) pipe.hmget(`bull:bench:${id}`, ...fields);
    for (const [err, row] of await pipe.exec()) {
      if (err) throw err;
      rows.push(row);
    }
  }
  return rows;
}

const queue = new Queue('bench', { connection });
const warm = new Queue('warmup', { connection });
await warm.add('noop', {}); // loads the scripts (one-time cost)
await warm.close();
const result = { system: 'bullmq', n: N };

// 1. Bulk enqueue: one addBulk call.
const jobs = Array.from({ length: N }, (_, i) => ({ name: 'noop', data: { i } }));
let done = await meter();
const rt0 = counter.roundTrips;
let t0 = performance.now();
const added = await queue.addBulk(jobs);
const elapsed = (performance.now() - t0) / 1000;
const enqueueRoundTrips = counter.roundTrips - rt0;
let [cpu, cmds] = await done(N);
Object.assign(result, { enqueue_per_s: Math.round(N / elapsed),
  enqueue_round_trips_per_job: +(enqueueRoundTrips / N).toFixed(5),
  enqueue_cpu_us_per_job: +cpu.toFixed(2), enqueue_cmds_per_job: +cmds.toFixed(2) });
note(`bullmq enqueue: ${result.enqueue_per_s}/s`);

// 2. Drain: one worker process, jobs already waiting.
done = await meter();
t0 = performance.now();
let worker = spawnWorker();
const tDone = await waitCompleted(queue, N);
[cpu, cmds] = await done(N);
const report = await stopWorker(worker);
const rows = await jobFields(added.map((j) => j.id), ['processedOn', 'finishedOn']);
const first = Math.min(...rows.map((r) => Number(r[0])));
const last = Math.max(...rows.map((r) => Number(r[1])));
Object.assign(result, { drain_per_s: Math.round(N / ((last - first) / 1000)),
  drain_wall_per_s: Math.round(N / ((tDone - t0) / 1000)),
  drain_round_trips_per_job: +(report.round_trips / N).toFixed(4),
  drain_cpu_us_per_job: +cpu.toFixed(2), drain_cmds_per_job: +cmds.toFixed(2) });
note(`bullmq drain: ${result.drain_per_s}/s`);

// 3. Pickup latency: an idle worker, one job every 10 ms.
const latFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-')), 'bullmq.lat');
fs.writeFileSync(latFile, '');
worker = spawnWorker({ BENCH_LATENCY_FILE: latFile });
await worker.ready;
await sleep(500);
const pingIds = [];
const calls = [];
let nextAt = performance.now();
for (let i = 0; i < N_LATENCY; i++) {
  const t = nowMs();
  pingIds.push((await queue.add('ping', { t })).id);
  calls.push(nowMs() - t);
  nextAt += GAP_MS;
  await sleep(Math.max(0, nextAt - performance.now()));
}
await waitCompleted(queue, N + N_LATENCY);
await stopWorker(worker);
const lat = fs.readFileSync(latFile, 'utf8').split('\n').filter(Boolean).map(Number);
Object.assign(result, latencySummary(lat));
result.enqueue_call_p50_ms = latencySummary(calls).latency_p50_ms;
const stamps = await jobFields(pingIds, ['timestamp', 'processedOn']);
const own = latencySummary(stamps.map(([e, s]) => Number(s) - Number(e)));
result.latency_job_stamps_p50_ms = own.latency_p50_ms;
result.latency_job_stamps_p99_ms = own.latency_p99_ms;
note(`bullmq latency p50 ${result.latency_p50_ms} ms p99 ${result.latency_p99_ms} ms`);
fs.rmSync(path.dirname(latFile), { recursive: true });

await queue.close();
conn.disconnect();
process.stdout.write(`${JSON.stringify(result)}\n`);
