'use strict';
// Node peer for `capture`: capture all of a child's stdout (NBYTES bytes) into one Buffer and
// check its length.  One operation = one whole capture, spawn to 'close'.
//
// It prints report()'s JSON plus "maxrss", the peak resident size of this process (bytes).
//
// usage: node capture.js N WARMUP BUDGET_SECONDS MODE NBYTES PROGRAM [ARG...]
//   MODE 'sync':  execFileSync(PROGRAM, ARGS, {maxBuffer: Infinity, encoding: 'buffer'})
//   MODE 'spawn': spawn(PROGRAM, ARGS, {stdio: ['ignore', 'pipe', 'ignore']}), 'data' chunks
//                 collected in an array, Buffer.concat on 'close'
const { execFileSync, spawn } = require('child_process');
const { intArg, measure, fail } = require('./common');

const n = intArg(2, 5);
const warmup = intArg(3, 1);
const budget = intArg(4, 1e9);
const mode = process.argv[5];
const nbytes = intArg(6, 0);
const program = process.argv[7];
const args = process.argv.slice(8);
if (!program) fail(new Error('usage: capture.js N WARMUP BUDGET MODE NBYTES PROGRAM [ARG...]'));

function check(buf) {
  if (buf.length !== nbytes) {
    throw new Error(`captured ${buf.length} bytes, expected ${nbytes}`);
  }
}

function viaSync() {
  const out = execFileSync(program, args, { maxBuffer: Infinity, encoding: 'buffer' });
  check(out);
  return Promise.resolve();
}

function viaSpawn() {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    const chunks = [];
    child.stdout.on('data', (chunk) => chunks.push(chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`${program} exited with ${code} ${signal}`));
        return;
      }
      try {
        check(Buffer.concat(chunks));
        resolve();
      } catch (err) {
        reject(err);
      }
    });
  });
}

const ops = { sync: viaSync, spawn: viaSpawn };
if (!ops[mode]) fail(new Error(`unknown mode ${mode}`));
measure(ops[mode], n, warmup, budget).then((r) => {
  const out = {
    n: r.n, seconds: r.seconds, rss: process.memoryUsage().rss,
    maxrss: process.resourceUsage().maxRSS * 1024,  // KiB
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}, fail);
