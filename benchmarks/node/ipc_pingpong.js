'use strict';
// Node peer for `ipc_pingpong`: fork() this script as a child that echoes every message
// (`process.on('message', m => process.send(m))`); the parent sends {i: n, s: 'hello'} and
// sends the next one from its 'message' listener.  Only the round trips after the warm-up are
// timed (fork, the child's start-up and its exit are not).
//
// usage: node ipc_pingpong.js N WARMUP BUDGET_SECONDS SERIALIZATION [CHILD_CPU]
//        node ipc_pingpong.js child                                   (the echoing child)
//   SERIALIZATION: 'json' or 'advanced'.  CHILD_CPU >= 0: the child runs on that CPU (the
//   runner pins this parent): Node cannot set an affinity itself, so the child is started
//   through `taskset -c CHILD_CPU node ...` (fork()'s execPath/execArgv), pinned from birth.
const { fork } = require('child_process');

if (process.argv[2] === 'child') {
  process.on('message', (m) => process.send(m));
} else {
  const { intArg, now, report, fail } = require('./common');
  const n = intArg(2, 10000);
  const warmup = Math.max(1, intArg(3, 100));
  const budget = intArg(4, 1e9);
  const serialization = process.argv[5] || 'json';
  const childCpu = process.argv[6] === undefined ? -1 : Number(process.argv[6]);
  const options = { serialization };
  if (childCpu >= 0) {
    options.execPath = 'taskset';
    options.execArgv = ['-c', String(childCpu), process.execPath];
  }

  new Promise((resolve, reject) => {
    const child = fork(__filename, ['child'], options);
    let sent = 0;
    let done = 0;
    let t0 = 0;
    let seconds = 0;
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code !== 0) reject(new Error(`the echo child exited with ${code} ${signal}`));
      else resolve({ n: done, seconds });
    });
    child.on('message', (m) => {
      if (m.i !== sent - 1 || m.s !== 'hello') {
        reject(new Error(`unexpected reply ${JSON.stringify(m)}`));
        child.kill();
        return;
      }
      if (sent === warmup) {
        t0 = now();
      } else if (sent > warmup) {
        done++;
        const t = now();
        if (done >= n || t - t0 >= budget) {
          seconds = t - t0;
          child.disconnect();  // the child's channel closes; it exits
          return;
        }
      }
      child.send({ i: sent++, s: 'hello' });
    });
    child.send({ i: sent++, s: 'hello' });
  }).then(report, fail);
}
