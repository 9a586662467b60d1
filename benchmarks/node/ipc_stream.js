'use strict';
// Node peer for `ipc_stream`: fork() this script as a child that sends WARMUP + N messages
// {i: n, s: 'hello'} with process.send() in a loop (then exits once they are written); the
// parent counts its 'message' events.  Timed at the parent, as for every row of the scenario:
// from the arrival of message number WARMUP to that of message number WARMUP + N.
//
// usage: node ipc_stream.js N WARMUP BUDGET_SECONDS SERIALIZATION [CHILD_CPU]
//        node ipc_stream.js child TOTAL                             (the sending child)
//   SERIALIZATION: 'json' or 'advanced'.  CHILD_CPU >= 0: the child runs on that CPU (the
//   runner pins this parent): Node cannot set an affinity itself, so the child is started
//   through `taskset -c CHILD_CPU node ...` (fork()'s execPath/execArgv), pinned from birth.
const { fork } = require('child_process');

if (process.argv[2] === 'child') {
  // No disconnect(): it would close the channel with writes still queued.  The queued writes
  // keep the child alive until they are done; then it exits and the parent sees EOF.
  const total = Number(process.argv[3]);
  for (let i = 0; i < total; i++) process.send({ i, s: 'hello' });
} else {
  const { intArg, now, report, fail } = require('./common');
  const n = Math.max(1, intArg(2, 100000));
  const warmup = Math.max(1, intArg(3, 1000));
  const serialization = process.argv[5] || 'json';
  const childCpu = process.argv[6] === undefined ? -1 : Number(process.argv[6]);
  const options = { serialization };
  if (childCpu >= 0) {
    options.execPath = 'taskset';
    options.execArgv = ['-c', String(childCpu), process.execPath];
  }
  const total = warmup + n;

  new Promise((resolve, reject) => {
    const child = fork(__filename, ['child', String(total)], options);
    let count = 0;
    let t0 = 0;
    let t1 = 0;
    child.on('error', reject);
    child.on('message', (m) => {
      if (m.i !== count || m.s !== 'hello') {
        reject(new Error(`message ${count} is ${JSON.stringify(m)}`));
        child.kill();
        return;
      }
      count++;
      if (count === warmup) t0 = now();
      else if (count === total) t1 = now();
    });
    child.on('exit', (code, signal) => {
      if (code !== 0) reject(new Error(`the sending child exited with ${code} ${signal}`));
    });
    child.on('close', () => {  // after 'exit' and the channel's end: every message is in
      if (count !== total) reject(new Error(`received ${count} messages of ${total}`));
      else resolve({ n, seconds: t1 - t0 });
    });
  }).then(report, fail);
}
