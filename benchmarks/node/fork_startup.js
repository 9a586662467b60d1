'use strict';
// Node peer for `fork_startup`: fork() a Node child that sends one message
// (`process.send('ready')`).  Timed: from the fork() call to the parent's 'message' event.
// Not timed: the child's exit (it ends by itself once the message is written).
//
// usage: node fork_startup.js N WARMUP BUDGET_SECONDS
//        node fork_startup.js child
const { fork } = require('child_process');

if (process.argv[2] === 'child') {
  process.send('ready');
} else {
  const { intArg, now, report, fail } = require('./common');
  const n = intArg(2, 20);
  const warmup = intArg(3, 2);
  const budget = intArg(4, 1e9);

  // One fork; resolves with the seconds from fork() to the first message, after the exit.
  function once() {
    return new Promise((resolve, reject) => {
      let seconds = null;
      const t0 = now();
      const child = fork(__filename, ['child']);
      child.on('error', reject);
      child.once('message', (m) => {
        seconds = now() - t0;
        if (m !== 'ready') reject(new Error(`unexpected message ${JSON.stringify(m)}`));
      });
      child.on('exit', (code, signal) => {
        if (code !== 0) reject(new Error(`the child exited with ${code} ${signal}`));
        else if (seconds === null) reject(new Error('the child exited without a message'));
        else resolve(seconds);
      });
    });
  }

  (async () => {
    for (let i = 0; i < warmup; i++) await once();
    let total = 0;
    let done = 0;
    while (done < n && (done === 0 || total < budget)) {
      total += await once();
      done++;
    }
    return { n: done, seconds: total };
  })().then(report, fail);
}
