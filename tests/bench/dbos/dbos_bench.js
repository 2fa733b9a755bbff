// DBOS Transact running the shapes of Loom's PostgreSQL benchmark
// (loom_pg_bench) as no-op steps, for tests/bench/pg_peers.sh:
//
//   chain   one workflow of 2,000 steps (DBOS.runStep, one after another)
//   serial  200 workflows of 10 steps, started one after another
//           (DBOS.startWorkflow, awaited each; they run in this process)
//   burst   200 workflows of 10 steps, all started at once (Promise.all)
//   queue   200 workflows of 10 steps enqueued on a DBOS queue (all at once)
//           and dequeued by this process; the queue polls every 100 ms, as
//           Loom's executors poll for enqueued runs by default
//
//   node dbos_bench.js URL [--repeat N] [--shapes chain,serial,burst,queue] [--results FILE]
//
// URL: a PostgreSQL URL whose user may create databases, e.g.
// "postgresql://postgres@localhost/loom?host=/tmp/pgdir" (a unix socket
// directory goes in the host parameter). Each measurement runs in a child
// process of its own against a fresh database (created before it, dropped
// after), so that pg_stat_database.xact_commit counts that measurement alone.
// Wall time runs from the first start to the last workflow's result.
'use strict';

const { fork } = require('node:child_process');
const fs = require('node:fs');
const { Client } = require('pg');

const SHAPES = {
  chain: { label: 'chain of 2,000 steps', steps: 2000, runs: 1 },
  serial: { label: '200 x 10, started one by one', steps: 10, runs: 200 },
  burst: { label: '200 x 10, started at once', steps: 10, runs: 200 },
  queue: { label: '200 x 10, enqueued at once', steps: 10, runs: 200 },
};

function usage() {
  console.error('usage: node dbos_bench.js URL [--repeat N] [--shapes chain,serial,burst,queue] [--results FILE]');
  process.exit(2);
}

function parse(argv) {
  const o = { url: null, repeat: 3, shapes: Object.keys(SHAPES), results: null, child: null, db: null };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage();
      return argv[++i];
    };
    if (a === '--repeat') o.repeat = Math.max(1, parseInt(value(), 10));
    else if (a === '--shapes') o.shapes = value().split(',').filter((s) => s);
    else if (a === '--results') o.results = value();
    else if (a === '--child') o.child = value();
    else if (!a.startsWith('-') && o.url === null) o.url = a;
    else usage();
  }
  if (!o.url) usage();
  for (const s of o.shapes) if (!SHAPES[s]) usage();
  return o;
}

function withDatabase(url, db) {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

// ---- a child: one measurement ----------------------------------------------------------

async function child(shapeKey, url) {
  const { DBOS } = require('@dbos-inc/dbos-sdk');
  const shape = SHAPES[shapeKey];
  DBOS.setConfig({ name: 'loom-bench', systemDatabaseUrl: url, logLevel: 'warn' });

  const noop = DBOS.registerStep(async () => null, { name: 'noop' });
  async function steps(n) {
    for (let i = 0; i < n; ++i) await noop();
    return n;
  }
  const workflow = DBOS.registerWorkflow(steps, { name: 'steps' });

  await DBOS.launch();
  let queue = null;
  if (shapeKey === 'queue') {
    await DBOS.registerQueue('bench', { minPollingIntervalMs: 100 });
    queue = 'bench';
  }
  // Wait for the parent to read the server's counters.
  process.send({ ready: true });
  await new Promise((resolve) => process.once('message', resolve));

  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const handles = [];
  if (shapeKey === 'serial') {
    for (let i = 0; i < shape.runs; ++i) handles.push(await DBOS.startWorkflow(workflow)(shape.steps));
  } else {
    const params = queue ? { queueName: queue } : {};
    const starts = [];
    for (let i = 0; i < shape.runs; ++i) starts.push(DBOS.startWorkflow(workflow, params)(shape.steps));
    handles.push(...(await Promise.all(starts)));
  }
  const started = process.hrtime.bigint();
  let total = 0;
  for (const h of handles) total += await h.getResult();
  const t1 = process.hrtime.bigint();
  const cpu = process.cpuUsage(cpu0);
  if (total !== shape.steps * shape.runs) throw new Error(`ran ${total} steps, not ${shape.steps * shape.runs}`);
  process.send({
    wall: Number(t1 - t0) / 1e9,
    start: Number(started - t0) / 1e9,
    cpu: (cpu.user + cpu.system) / 1e6,
  });
  // Keep the connections until the parent has read the server's CPU times.
  await new Promise((resolve) => process.once('message', resolve));
  await DBOS.shutdown();
  process.disconnect();   // lets this child exit
}

// ---- the parent: fresh databases, counters, children ---------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function processCpu(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    return (Number(fields[11]) + Number(fields[12])) / 100;   // USER_HZ: 100 on Linux
  } catch {
    return null;
  }
}

async function serverCpu(admin) {
  const out = new Map();
  for (const row of (await admin.query('SELECT pid FROM pg_stat_activity')).rows) {
    const cpu = processCpu(row.pid);
    if (cpu !== null) out.set(row.pid, cpu);
  }
  return out;
}

function cpuDelta(before, after) {
  let sum = 0;
  for (const [pid, cpu] of after) sum += cpu - (before.get(pid) ?? 0);
  return sum;
}

async function counters(admin, db) {
  const d = await admin.query('SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1', [db]);
  const w = await admin.query('SELECT wal_sync FROM pg_stat_wal');
  return {
    xact: d.rows.length ? Number(d.rows[0].xact_commit) : 0,
    rollback: d.rows.length ? Number(d.rows[0].xact_rollback) : 0,
    sync: Number(w.rows[0].wal_sync),
  };
}

let measurements = 0;

async function measure(o, admin, shapeKey) {
  const shape = SHAPES[shapeKey];
  const db = `dbos_bench_${process.pid}_${++measurements}`;
  await admin.query(`DROP DATABASE IF EXISTS ${db}`);
  await admin.query(`CREATE DATABASE ${db}`);
  const url = withDatabase(o.url, db);
  // --no-deprecation: pg 8.23 warns about a use inside DBOS, not ours.
  const proc = fork(__filename, ['--child', shapeKey, url], { stdio: 'inherit', execArgv: ['--no-deprecation'] });
  const exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  const message = () =>
    new Promise((resolve, reject) => {
      proc.once('message', resolve);
      exited.then((code) => reject(new Error(`the DBOS child exited (${code}) early`)));
    });
  await message();   // ready
  await sleep(1100);   // a busy backend reports its counters at most once a second
  const before = await counters(admin, db);
  const cpuBefore = await serverCpu(admin);
  proc.send({ go: true });
  const result = await message();
  const cpuServer = cpuDelta(cpuBefore, await serverCpu(admin));
  proc.send({ stop: true });
  const code = await exited;
  if (code !== 0) throw new Error(`the DBOS child exited with ${code}`);
  // A backend reports its counters as it exits: wait until all have.
  for (let i = 0; ; ++i) {
    const r = await admin.query('SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1', [db]);
    if (Number(r.rows[0].n) === 0) break;
    if (i === 500) throw new Error(`connections to ${db} did not close`);
    await sleep(20);
  }
  const after = await counters(admin, db);
  await admin.query(`DROP DATABASE ${db} WITH (FORCE)`);
  const steps = shape.steps * shape.runs;
  return {
    ...result,
    steps,
    rate: steps / result.wall,
    txPerStep: (after.xact - before.xact) / steps,
    rollbacks: after.rollback - before.rollback,
    syncPerStep: (after.sync - before.sync) / steps,
    cpuServer,
  };
}

function median(values) {
  const v = [...values].sort((a, b) => a - b);
  const n = v.length;
  return n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

async function parent(o) {
  const { version } = JSON.parse(
    fs.readFileSync(require('node:path').join(__dirname, 'node_modules/@dbos-inc/dbos-sdk/package.json'), 'utf8'));
  const admin = new Client({ connectionString: o.url });
  await admin.connect();
  const server = (await admin.query('SHOW server_version')).rows[0].server_version;
  console.log(`DBOS Transact ${version} (Node ${process.version}) on PostgreSQL ${server}; ` +
              `a fresh database per measurement; ${o.repeat} repetitions\n`);
  const pad = (s, n) => String(s).padEnd(n);
  const num = (x, n, d = 0) => x.toFixed(d).padStart(n);
  console.log(`${pad('shape', 32)} rep   steps/s   wall s  start s  tx/step sync/st  cores  cpu server/node s`);
  const all = {};
  for (let rep = 1; rep <= o.repeat; ++rep) {
    for (const key of o.shapes) {
      const m = await measure(o, admin, key);
      (all[key] ??= []).push(m);
      console.log(`${pad(SHAPES[key].label, 32)} ${num(rep, 3)} ${num(m.rate, 9)} ${num(m.wall, 8, 3)} ` +
                  `${num(m.start, 8, 3)} ${num(m.txPerStep, 8, 2)} ${num(m.syncPerStep, 7, 2)} ` +
                  `${num((m.cpu + m.cpuServer) / m.wall, 6, 2)}  ${m.cpuServer.toFixed(2)}/${m.cpu.toFixed(2)}`);
    }
  }
  await admin.end();
  console.log(`\nSummary: median (min-max) of ${o.repeat}`);
  console.log(`${pad('shape', 32)} ${pad('steps/s', 22)} tx/step sync/st`);
  const lines = [];
  for (const key of o.shapes) {
    const ms = all[key];
    const rates = ms.map((m) => m.rate);
    const lo = Math.min(...rates), hi = Math.max(...rates), med = median(rates);
    const tx = median(ms.map((m) => m.txPerStep)), sync = median(ms.map((m) => m.syncPerStep));
    console.log(`${pad(SHAPES[key].label, 32)} ${pad(`${med.toFixed(0)} (${lo.toFixed(0)}-${hi.toFixed(0)})`, 22)} ` +
                `${num(tx, 7, 2)} ${num(sync, 7, 2)}`);
    lines.push(`dbos ${key} 1 ${med.toFixed(0)} ${lo.toFixed(0)} ${hi.toFixed(0)} ${tx.toFixed(2)}\n`);
  }
  console.log('\nsteps/s: all steps over the wall time from the first start to the last result. tx/step: ' +
              'server transactions committed in the measurement\'s database per step. sync/st: WAL syncs ' +
              'of the cluster per step. cores: CPU seconds of this process\'s child and the server per wall second.');
  if (o.results) fs.appendFileSync(o.results, lines.join(''));
}

const o = parse(process.argv.slice(2));
(o.child ? child(o.child, o.url) : parent(o)).catch((e) => {
  console.error(e);
  process.exit(1);
});
