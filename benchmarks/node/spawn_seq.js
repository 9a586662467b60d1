'use strict';
// Node peer for `spawn_seq` and `spawn_bigparent`: spawn('/bin/true') and await 'close', in a
// sequential loop.
//
// usage: node spawn_seq.js N WARMUP BUDGET_SECONDS STDIO [HOLD_BYTES]
//   STDIO: 'ignore' or 'pipe' (Node's default).  HOLD_BYTES > 0 first holds that much
//   touched memory (the "big parent" case).
const { spawn } = require('child_process');
const { intArg, holdMemory, measure, report, fail } = require('./common');

const n = intArg(2, 1000);
const warmup = intArg(3, 10);
const budget = intArg(4, 1e9);
const stdio = process.argv[5] || 'pipe';
const held = holdMemory(intArg(6, 0));

function once() {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/true', [], { stdio });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0) reject(new Error(`/bin/true exited with ${code} ${signal}`));
      else resolve();
    });
  });
}

measure(once, n, warmup, budget).then((r) => {
  report(r);
  held.length = 0;
}, fail);
