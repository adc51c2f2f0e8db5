'use strict';
/*
 * Preloaded into a Node.js program by `leaklab run -- node ...` (NODE_OPTIONS=--require):
 * every interval it sends the V8 heap (used, total) and the memory outside it (external,
 * array buffers) to leaklab over the socket whose descriptor LEAKLAB_INPROCESS names, one
 * JSON message per packet, as the Python bootstrap does. The timer never keeps the
 * program alive; without that socket (a child started by the program) it does nothing.
 */
(function leaklabHeap() {
  let spec;
  try {
    spec = JSON.parse(process.env.LEAKLAB_INPROCESS || 'null');
  } catch (err) {
    return;
  }
  if (!spec || typeof spec.report_fd !== 'number') return;
  const fs = require('fs');
  const v8 = require('v8');
  const fd = spec.report_fd;
  try {
    fs.fstatSync(fd);
  } catch (err) {
    return;
  }
  let broken = false;
  function send(message) {
    if (broken) return;
    try {
      fs.writeSync(fd, JSON.stringify({ ...message, pid: process.pid }));
    } catch (err) {
      broken = true;
    }
  }
  const t0 = Number(spec.t0);
  function now() {
    // performance.timeOrigin + now() is wall time; leaklab's t0 is CLOCK_MONOTONIC, which hrtime reads
    return Number(process.hrtime.bigint()) / 1e9 - t0;
  }
  send({ type: 'hello', t: now(), ppid: process.ppid, forked: false, columns: ['v8_heap_used', 'v8_heap_total', 'v8_external'], argv: process.argv.slice(0, 8), runtime: `node ${process.version}` });
  function sample() {
    const heap = v8.getHeapStatistics();
    const mem = process.memoryUsage();
    send({ type: 'sample', t: now(), v8_heap_used: heap.used_heap_size, v8_heap_total: heap.total_heap_size, v8_external: mem.external + 0 });
  }
  sample();
  const timer = setInterval(sample, Math.max(50, Number(spec.interval || 0.5) * 1000));
  timer.unref();
})();
