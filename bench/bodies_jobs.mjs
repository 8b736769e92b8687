// The job bodies of `bench/run.sh bodies`, the same work as bench/bodies_jobs.py does in Python.
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import IORedis from 'ioredis';

export const BODIES = ['noop', 'redis', 'http', 'sleep', 'cpu'];
const SLEEP_MS = 1;
const SPIN_MS = 0.2;
const COUNTER_KEY = 'bench:bodies';

// The body `name` and its close; its clients are made once, as a handler module would.
export function make(name, concurrency) {
  const nothing = async () => {};
  if (name === 'noop') return [nothing, nothing];
  if (name === 'redis') {
    // INCR on a second redis-server (not the queue's), through ioredis.
    const url = new URL(process.env.BENCH_SIDE_REDIS_URL);
    const side = new IORedis({ host: url.hostname, port: Number(url.port) });
    return [async () => { await side.incr(COUNTER_KEY); }, async () => side.disconnect()];
  }
  if (name === 'http') {
    const url = process.env.BENCH_HTTP_URL;
    const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
    const get = () => new Promise((resolve, reject) => {
      http.get(url, { agent }, (res) => {
        res.on('data', () => {});
        res.on('end', resolve);
        res.on('error', reject);
      }).on('error', reject);
    });
    return [get, async () => agent.destroy()];
  }
  if (name === 'sleep') return [() => sleep(SLEEP_MS), nothing];
  if (name === 'cpu') {
    // On the event loop, as a CPU-heavy handler is: a core for its whole length.
    const spin = async () => {
      const end = performance.now() + SPIN_MS;
      while (performance.now() < end);
    };
    return [spin, nothing];
  }
  throw new Error(`unknown body ${name}; one of ${BODIES.join(', ')}`);
}

// `concurrency` calls at once: every connection the run will use is open before timing.
export async function warm(body, concurrency) {
  await Promise.all(Array.from({ length: concurrency }, () => body()));
}

// `jobs` calls of `body` by `concurrency` lanes, nothing else: the handler's own cost.
export async function bare(body, concurrency, jobs) {
  let left = jobs;
  const lane = async () => {
    while (left > 0) {
      left -= 1;
      await body();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
}
