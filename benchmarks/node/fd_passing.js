'use strict';
// Node peer for `fd_passing`: fork() this script as a child that closes every socket it is
// sent; the parent sends one bound UDP socket (a dgram.Socket: never closed by the sender) again
// and again with child.send('s', socket, cb).  Node holds every send behind the child's
// NODE_HANDLE_ACK, so one descriptor is in flight: the next send is issued from the previous
// one's callback (its write) and goes out when the ACK arrives.  Timed from the write of the
// last warm-up transfer to the write of the last one.
//
// usage: node fd_passing.js N WARMUP BUDGET_SECONDS SERIALIZATION
//        node fd_passing.js child
const { fork } = require('child_process');

if (process.argv[2] === 'child') {
  process.on('message', (m, h) => { if (h) h.close(); });
} else {
  const dgram = require('dgram');
  const { intArg, now, report, fail } = require('./common');
  const n = intArg(2, 10000);
  const warmup = Math.max(1, intArg(3, 100));
  const budget = intArg(4, 1e9);
  const serialization = process.argv[5] || 'json';

  new Promise((resolve, reject) => {
    const child = fork(__filename, ['child'], { serialization });
    const udp = dgram.createSocket('udp4');
    let written = 0;
    let done = 0;
    let t0 = 0;
    let seconds = 0;
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      udp.close();
      if (code !== 0) reject(new Error(`the child exited with ${code} ${signal}`));
      else resolve({ n: done, seconds });
    });
    function onWritten(err) {
      if (err) { reject(err); child.kill(); return; }
      written++;
      if (written === warmup) {
        t0 = now();
      } else if (written > warmup) {
        done++;
        const t = now();
        if (done >= n || t - t0 >= budget) {
          seconds = t - t0;
          child.disconnect();   // deferred until the last ACK
          return;
        }
      }
      child.send('s', udp, onWritten);
    }
    udp.bind(0, '127.0.0.1', () => child.send('s', udp, onWritten));
  }).then(report, fail);
}
