'use strict';
/*
 * The incident, recreated in Node.js: an HTTP service that calls its upstream through a
 * keep-alive agent for every request.
 *
 *   leaky: each request leaves a 'free' listener on the shared agent (holding the request's
 *          state: a copy of its headers, a 1 KB string, a 1 KB Buffer) and a promise that is
 *          never settled, parked on the agent, whose callbacks hold the same state;
 *   fixed: the state lives for the request only; the promise settles; nothing is parked.
 *
 *   node --expose-gc --max-old-space-size=200 server.js --port 8000 [--variant leaky|fixed]
 *
 * GET /health answers 200; GET /heap answers the V8 heap (JSON); any other path is one
 * request of work. Binds 127.0.0.1 only. SIGINT/SIGTERM close the server and exit.
 */
const http = require('http');
const v8 = require('v8');

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const PORT = Number(option('port', '8000'));
const VARIANT = option('variant', 'leaky');
if (!['leaky', 'fixed'].includes(VARIANT)) {
  console.error(`unknown variant ${VARIANT}: leaky or fixed`);
  process.exit(2);
}

// The upstream the service calls for every request (in the same process, on its own port).
const upstream = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end('{"ok":true}');
});

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
agent.setMaxListeners(0); // the leak would otherwise be announced by a warning, which PM2 users rarely read
agent.parked = []; // leaky: promises that are never settled
let served = 0;

function callUpstream(state) {
  const request = new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: upstream.address().port, path: '/data', agent }, (res) => {
      let body = '';
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
  });
  if (VARIANT === 'leaky') {
    agent.on('free', function onFree() { return state.id; }); // per-request listener on the shared agent
    const never = new Promise(() => {}); // nobody ever resolves it
    never.then(() => state.note.length + state.buffer.length);
    agent.parked.push(never);
  }
  return request;
}

const server = http.createServer(async (req, res) => {
  if (req.url === '/health') {
    res.end('ok');
    return;
  }
  if (req.url === '/heap') {
    const heap = v8.getHeapStatistics();
    const mem = process.memoryUsage();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ heap_used: heap.used_heap_size, heap_total: heap.total_heap_size,
      external: mem.external, rss: mem.rss, served }));
    return;
  }
  const state = {
    id: ++served,
    headers: { ...req.headers },
    note: `request ${served} `.padEnd(1024, '.'),
    buffer: Buffer.alloc(1024, served % 256),
  };
  try {
    const body = await callUpstream(state);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`{"id":${state.id},"upstream":${body}}`);
  } catch (err) {
    res.writeHead(502);
    res.end(String(err));
  }
});

function stop() {
  server.close();
  upstream.close();
  agent.destroy();
  setTimeout(() => process.exit(0), 200).unref();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

upstream.listen(0, '127.0.0.1', () => {
  server.listen(PORT, '127.0.0.1', () => {
    console.log(`${VARIANT} service on 127.0.0.1:${PORT} (pid ${process.pid})`);
  });
});
