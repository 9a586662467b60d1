'use strict';
// Shared helpers for the Node.js peers of the benchmark suite.
//
// Every script takes its iteration count, warm-up count and time budget as arguments and
// prints ONE JSON line on stdout: {"n": <timed iterations>, "seconds": <total>, "rss": <bytes>}.
// The runner divides seconds by n.  Any failure exits non-zero with a message on stderr.

function intArg(i, dflt) {
  const v = process.argv[i];
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!Number.isFinite(x) || x < 0) throw new Error(`bad argument ${i}: ${v}`);
  return x;
}

function now() {
  return Number(process.hrtime.bigint()) / 1e9;
}

// Hold `bytes` of touched memory, in Buffers of at most 1 GiB (a single Buffer is capped).
function holdMemory(bytes) {
  const held = [];
  const chunk = 2 ** 30;
  for (let left = bytes; left > 0; left -= chunk) {
    held.push(Buffer.alloc(Math.min(chunk, left), 1));  // the fill writes every page
  }
  return held;
}

// Run `op` (returning a Promise) warmup times, then until n runs or budget seconds have passed.
// First sleep BENCH_SETTLE seconds, as every implementation does (see run.py).
async function measure(op, n, warmup, budget) {
  const settle = Number(process.env.BENCH_SETTLE || 0);
  if (settle > 0) await new Promise((resolve) => setTimeout(resolve, settle * 1000));
  for (let i = 0; i < warmup; i++) await op();
  const t0 = now();
  let t = t0;
  let done = 0;
  while (done < n && (done === 0 || t - t0 < budget)) {
    await op();
    done++;
    t = now();
  }
  return { n: done, seconds: t - t0 };
}

function report(result) {
  const out = { n: result.n, seconds: result.seconds, rss: process.memoryUsage().rss };
  process.stdout.write(JSON.stringify(out) + '\n');
}

function fail(err) {
  process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
  // the runner reports the last line of stderr: make it the message, not a stack frame
  if (err && err.stack && err.message) process.stderr.write(`${err.message}\n`);
  process.exit(1);
}

module.exports = { intArg, now, holdMemory, measure, report, fail };
