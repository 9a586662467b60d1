'use strict';
// Node peer for `concurrent200`: spawn K /bin/true children with stdout piped, then wait until
// every one has emitted 'close'.  One batch = all K started and all K closed.
//
// usage: node concurrent.js BATCHES WARMUP BUDGET_SECONDS [K=200]
const { spawn } = require('child_process');
const { intArg, measure, report, fail } = require('./common');

const n = intArg(2, 10);
const warmup = intArg(3, 1);
const budget = intArg(4, 1e9);
const k = Math.max(1, intArg(5, 200));

function batch() {
  return new Promise((resolve, reject) => {
    let closed = 0;
    for (let i = 0; i < k; i++) {
      const child = spawn('/bin/true', [], { stdio: ['ignore', 'pipe', 'ignore'] });
      child.on('error', reject);
      child.on('close', (code, signal) => {
        if (code !== 0) reject(new Error(`/bin/true exited with ${code} ${signal}`));
        else if (++closed === k) resolve();
      });
    }
  });
}

measure(batch, n, warmup, budget).then(report, fail);
