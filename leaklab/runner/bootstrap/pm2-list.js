'use strict';
/*
 * leaklab's view of PM2's own process list: connects to the PM2 daemon of PM2_HOME once
 * and prints, every interval, one JSON line with each app's pid, status, restart count,
 * start time and PM2's memory reading. Ends when its stdin closes (leaklab is done).
 *
 *   node pm2-list.js PM2_MODULE_DIR INTERVAL_SECONDS
 */
const pm2 = require(process.argv[2]);
const intervalMs = Math.max(100, Number(process.argv[3] || 0.5) * 1000);

function app(p) {
  const env = p.pm2_env || {};
  return {
    name: p.name, pm_id: p.pm_id, pid: p.pid, status: env.status, restarts: env.restart_time,
    unstable_restarts: env.unstable_restarts, started_at_ms: env.pm_uptime,
    memory: p.monit ? p.monit.memory : null, max_memory_restart: env.max_memory_restart === undefined ? null : Number(env.max_memory_restart),
    exec_mode: env.exec_mode,
  };
}

pm2.connect((err) => {
  if (err) {
    console.log(JSON.stringify({ error: String(err) }));
    process.exit(3);
  }
  function poll() {
    pm2.list((listErr, list) => {
      if (listErr) console.log(JSON.stringify({ error: String(listErr) }));
      else console.log(JSON.stringify({ wall_ms: Date.now(), apps: list.map(app) }));
    });
  }
  poll();
  setInterval(poll, intervalMs);
});
process.stdin.resume();
process.stdin.on('end', () => { pm2.disconnect(); process.exit(0); });
