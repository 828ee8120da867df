#!/usr/bin/env node
// Local single-node Apache Kafka (KRaft, combined broker+controller) for development and
// integration tests. Plain Node ESM, no dependencies.
//
//   node kafka/kafka.mjs start    fetch jars (first run, via Maven), format storage once, start, wait until ready
//   node kafka/kafka.mjs stop     stop the broker recorded in the pid file (SIGTERM, SIGKILL after 20 s)
//   node kafka/kafka.mjs status   print whether it runs (exit 0 = running and answering, 3 = not)
//
// Env: KAFKA_CACHE_DIR (default <repo>/.cache/kafka), KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093),
//      KAFKA_START_TIMEOUT (seconds, 90), KAFKA_HEAP_OPTS (default "-Xms256m -Xmx1g": Kafka's own default heap; 512 MB ran out after a day of test runs on one broker),
//      KAFKA_LIBS_DIR (default <cache>/libs: where the jars are fetched to and read from).
//
// A second, private broker (e.g. one a test stops and restarts) is the same script with its own
// cache dir (data, logs, config, pid file), ports, and the shared jars:
//   KAFKA_CACHE_DIR=/tmp/b2 KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093 \
//   KAFKA_LIBS_DIR=<repo>/.cache/kafka/libs node kafka/kafka.mjs start|stop|status
//
// Exit codes: 0 ok, 1 failure, 2 java/mvn missing or too old, 3 status: not running.

import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..');
const POM = path.join(HERE, 'pom.xml');
const CACHE = path.resolve(process.env.KAFKA_CACHE_DIR || path.join(REPO, '.cache', 'kafka'));
const LIBS = path.resolve(process.env.KAFKA_LIBS_DIR || path.join(CACHE, 'libs'));
const LIBS_MARKER = path.join(LIBS, '.complete.json');
const LOGS = path.join(CACHE, 'logs');
const LOG_FILE = path.join(LOGS, 'kafka.out');
const MAVEN_LOG = path.join(LOGS, 'maven.log');
const DATA = path.join(CACHE, 'data');
const CONFIG_DIR = path.join(CACHE, 'config');
const SERVER_PROPS = path.join(CONFIG_DIR, 'server.properties');
const LOG4J_PROPS = path.join(CONFIG_DIR, 'log4j2.properties');
const PID_FILE = path.join(CACHE, 'kafka.pid');
const LOCK_FILE = path.join(CACHE, 'start.lock');
const HOST = '127.0.0.1';
const PORT = intEnv('KAFKA_PORT', 9092);
const CONTROLLER_PORT = intEnv('KAFKA_CONTROLLER_PORT', 9093);
const START_TIMEOUT_MS = intEnv('KAFKA_START_TIMEOUT', 90) * 1000;
const STOP_GRACE_MS = 20_000;
const HEAP_OPTS = (process.env.KAFKA_HEAP_OPTS || '-Xms256m -Xmx1g').split(/\s+/).filter(Boolean);

function intEnv(name, def) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0 || n > 65535 * 1000) fail(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

function log(msg) {
  console.log(`[kafka] ${msg}`);
}

function fail(msg, code = 1) {
  console.error(`[kafka] ERROR: ${msg}`);
  process.exit(code);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- processes

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

function cmdlineOf(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    const r = spawnSync('ps', ['-p', String(pid), '-o', 'command='], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : '';
  }
}

/** A pid is "ours" when it is alive and is kafka.Kafka started with this cache's server.properties. */
function isOurBroker(pid) {
  if (!pid || !isAlive(pid)) return false;
  const cmd = cmdlineOf(pid);
  return cmd.includes('kafka.Kafka') && cmd.includes(SERVER_PROPS);
}

function readPid() {
  try {
    const pid = Number(fs.readFileSync(PID_FILE, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function removePidFile() {
  fs.rmSync(PID_FILE, { force: true });
}

/** Pid of a running broker of this project, or null (a stale pid file is removed). */
function runningBrokerPid() {
  const pid = readPid();
  if (pid && isOurBroker(pid)) return pid;
  if (pid) removePidFile();
  return null;
}

// ---------------------------------------------------------------- start lock

async function acquireLock(timeoutMs) {
  fs.mkdirSync(CACHE, { recursive: true });
  const deadline = Date.now() + timeoutMs;
  let told = false;
  for (;;) {
    try {
      const fd = fs.openSync(LOCK_FILE, 'wx');
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      process.on('exit', releaseLock);
      return;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
    }
    let holder = null;
    try {
      holder = Number(fs.readFileSync(LOCK_FILE, 'utf8').trim()) || null;
    } catch {
      continue; // removed in between
    }
    if (!holder || !isAlive(holder)) {
      fs.rmSync(LOCK_FILE, { force: true }); // stale (holder died, e.g. Ctrl-C)
      continue;
    }
    if (!told) {
      log(`another "start" (pid ${holder}) is in progress, waiting for it ...`);
      told = true;
    }
    if (Date.now() > deadline) fail(`timed out waiting for the start lock held by pid ${holder} (${LOCK_FILE})`);
    await sleep(500);
  }
}

function releaseLock() {
  try {
    if (Number(fs.readFileSync(LOCK_FILE, 'utf8').trim()) === process.pid) fs.rmSync(LOCK_FILE, { force: true });
  } catch {
    /* already gone */
  }
}

// ---------------------------------------------------------------- tools

function checkJava() {
  const r = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (r.error) {
    fail(
      `"java" was not found on PATH (${r.error.code}). Kafka 4.x needs a Java 17+ runtime; ` +
        'on Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless',
      2,
    );
  }
  const m = /version "(\d+)(?:\.(\d+))?/.exec(`${r.stderr}${r.stdout}`);
  const major = m ? (Number(m[1]) === 1 ? Number(m[2]) : Number(m[1])) : NaN;
  if (Number.isFinite(major) && major < 17) fail(`Kafka 4.x needs Java 17 or newer, "java" is version ${major}`, 2);
}

function checkMaven() {
  const r = spawnSync('mvn', ['-v'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    fail(
      `"mvn" was not found or does not work (${r.error ? r.error.code : `exit ${r.status}`}); it is needed once ` +
        `to fetch the Kafka jars into ${LIBS}. On Debian/Ubuntu: apt-get install -y maven`,
      2,
    );
  }
}

// ---------------------------------------------------------------- jars

function pomHash() {
  return createHash('sha256').update(fs.readFileSync(POM)).digest('hex');
}

function libsComplete() {
  try {
    const marker = JSON.parse(fs.readFileSync(LIBS_MARKER, 'utf8'));
    if (marker.pom !== pomHash()) return false;
    return marker.jars.length > 0 && marker.jars.every((j) => fs.existsSync(path.join(LIBS, j)));
  } catch {
    return false;
  }
}

function kafkaVersion() {
  try {
    const jar = fs.readdirSync(LIBS).find((f) => /^kafka_2\.\d+-.+\.jar$/.test(f));
    return jar ? jar.replace(/^kafka_2\.\d+-/, '').replace(/\.jar$/, '') : '?';
  } catch {
    return '?';
  }
}

async function ensureLibs() {
  if (libsComplete()) return;
  checkMaven();
  fs.rmSync(LIBS, { recursive: true, force: true });
  fs.mkdirSync(LOGS, { recursive: true });
  log(`fetching the Kafka jars with Maven into ${LIBS} (first run only, usually 10-60 s) ...`);
  const t0 = Date.now();
  const out = fs.openSync(MAVEN_LOG, 'w');
  const child = spawn(
    'mvn',
    ['-B', '-q', '-f', POM, 'dependency:copy-dependencies', `-DoutputDirectory=${LIBS}`, '-DincludeScope=runtime'],
    { stdio: ['ignore', out, out] },
  );
  fs.closeSync(out);
  const ticker = setInterval(() => log(`  ... still fetching (${Math.round((Date.now() - t0) / 1000)} s)`), 15_000);
  const code = await new Promise((resolve) => {
    child.on('error', () => resolve(-1));
    child.on('exit', (c) => resolve(c ?? -1));
  });
  clearInterval(ticker);
  const jars = fs.existsSync(LIBS) ? fs.readdirSync(LIBS).filter((f) => f.endsWith('.jar')) : [];
  if (code !== 0 || !jars.some((j) => j.startsWith('kafka_2.'))) {
    printTail(MAVEN_LOG, 40);
    fail(`Maven could not fetch the Kafka jars (exit ${code}); full output: ${MAVEN_LOG}`);
  }
  fs.writeFileSync(LIBS_MARKER, JSON.stringify({ pom: pomHash(), jars }, null, 1));
  log(`fetched ${jars.length} jars (Kafka ${kafkaVersion()}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

// ---------------------------------------------------------------- config + storage

function writeConfig() {
  fs.mkdirSync(CONFIG_DIR, { recursive: true });
  fs.mkdirSync(DATA, { recursive: true });
  fs.mkdirSync(LOGS, { recursive: true });
  const server = [
    '# Generated by kafka/kafka.mjs on every start: edit that script, not this file.',
    '# One combined KRaft broker+controller, bound to 127.0.0.1 only.',
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@${HOST}:${CONTROLLER_PORT}`,
    `listeners=PLAINTEXT://${HOST}:${PORT},CONTROLLER://${HOST}:${CONTROLLER_PORT}`,
    `advertised.listeners=PLAINTEXT://${HOST}:${PORT}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    `log.dirs=${DATA}`,
    'num.partitions=8',
    'auto.create.topics.enable=false',
    'offsets.topic.replication.factor=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    'group.initial.rebalance.delay.ms=0',
    '',
  ].join('\n');
  fs.writeFileSync(SERVER_PROPS, server);
  const log4j = [
    '# Generated by kafka/kafka.mjs: everything goes to stdout, which is redirected to logs/kafka.out.',
    'status = warn',
    '# keep logging while Kafka runs its own shutdown hook, so the shutdown is visible in the log',
    'shutdownHook = disable',
    'name = kafka-dev',
    'appender.out.type = Console',
    'appender.out.name = STDOUT',
    'appender.out.layout.type = PatternLayout',
    'appender.out.layout.pattern = [%d] %p %m (%c)%n',
    'rootLogger.level = info',
    'rootLogger.appenderRef.out.ref = STDOUT',
    'logger.request.name = kafka.request.logger',
    'logger.request.level = warn',
    'logger.state.name = state.change.logger',
    'logger.state.level = warn',
    'logger.cleaner.name = kafka.log.LogCleaner',
    'logger.cleaner.level = warn',
    '',
  ].join('\n');
  fs.writeFileSync(LOG4J_PROPS, log4j);
}

function javaBase() {
  return [`-Dlog4j2.configurationFile=${LOG4J_PROPS}`, '-Djava.awt.headless=true', '-cp', `${LIBS}${path.sep}*`];
}

function newClusterId() {
  // Same shape as org.apache.kafka.common.Uuid: 16 random bytes, base64url, no padding; not starting with '-'.
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

function formatStorageOnce() {
  if (fs.existsSync(path.join(DATA, 'meta.properties'))) return;
  const clusterId = newClusterId();
  log(`formatting KRaft storage in ${DATA} (cluster id ${clusterId}) ...`);
  const r = spawnSync(
    'java',
    [...javaBase(), 'kafka.tools.StorageTool', 'format', '--ignore-formatted', '-t', clusterId, '-c', SERVER_PROPS],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) {
    console.error(`${r.stdout}${r.stderr}`);
    fail(`formatting the storage failed (exit ${r.status})`);
  }
}

// ---------------------------------------------------------------- readiness probe (Kafka wire protocol)

/** Sends one request (header v1) and resolves with the response body (after the correlation id). */
function kafkaRequest(port, apiKey, apiVersion, body, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const clientId = Buffer.from('kafka.mjs');
    const header = Buffer.alloc(10 + clientId.length);
    header.writeInt16BE(apiKey, 0);
    header.writeInt16BE(apiVersion, 2);
    header.writeInt32BE(7, 4); // correlation id
    header.writeInt16BE(clientId.length, 8);
    clientId.copy(header, 10);
    const size = Buffer.alloc(4);
    size.writeInt32BE(header.length + body.length);
    const sock = net.connect({ host: HOST, port });
    let buf = Buffer.alloc(0);
    const done = (err, val) => {
      sock.destroy();
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(val);
    };
    const timer = setTimeout(() => done(new Error('timeout')), timeoutMs);
    sock.on('connect', () => sock.write(Buffer.concat([size, header, body])));
    sock.on('error', (e) => done(e));
    sock.on('close', () => done(new Error('connection closed')));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        const resp = buf.subarray(4, 4 + buf.readInt32BE(0));
        if (resp.readInt32BE(0) !== 7) return done(new Error('bad correlation id'));
        done(null, resp.subarray(4));
      }
    });
  });
}

/**
 * Ready = ApiVersions answers and a Metadata (v4) request lists a broker on our port, i.e. the broker
 * is registered, unfenced and serving metadata. Resolves to a short state string, throws if not ready.
 */
async function probe(port) {
  const av = await kafkaRequest(port, 18, 0, Buffer.alloc(0)); // ApiVersions v0
  const err = av.readInt16BE(0);
  if (err !== 0) throw new Error(`ApiVersions error ${err}`);
  let metaMin = -1;
  let metaMax = -1;
  for (let i = 0, n = av.readInt32BE(2), o = 6; i < n; i++, o += 6) {
    if (av.readInt16BE(o) === 3) {
      metaMin = av.readInt16BE(o + 2);
      metaMax = av.readInt16BE(o + 4);
    }
  }
  if (!(metaMin <= 4 && metaMax >= 4)) return 'answering (ApiVersions only)';
  const body = Buffer.alloc(5);
  body.writeInt32BE(-1, 0); // topics = null: all topics
  body.writeInt8(0, 4); // allow_auto_topic_creation = false
  const md = await kafkaRequest(port, 3, 4, body); // Metadata v4
  const n = md.readInt32BE(4); // after throttle_time_ms
  let o = 8;
  const brokers = [];
  for (let i = 0; i < n; i++) {
    const nodeId = md.readInt32BE(o);
    const hostLen = md.readInt16BE(o + 4);
    const host = md.toString('utf8', o + 6, o + 6 + hostLen);
    o += 6 + hostLen;
    const p = md.readInt32BE(o);
    const rackLen = md.readInt16BE(o + 4);
    o += 6 + Math.max(rackLen, 0);
    brokers.push({ nodeId, host, port: p });
  }
  if (!brokers.some((b) => b.port === port)) throw new Error('broker not registered yet');
  return `answering, brokers: ${brokers.map((b) => `${b.nodeId}@${b.host}:${b.port}`).join(',')}`;
}

async function tryProbe(port) {
  try {
    return await probe(port);
  } catch {
    return null;
  }
}

function portInUse(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port });
    s.setTimeout(1000);
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------- commands

function printTail(file, n) {
  try {
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    console.error(`----- last ${n} lines of ${file} -----`);
    console.error(lines.slice(-n - 1).join('\n'));
    console.error('-----');
  } catch {
    console.error(`(no log at ${file})`);
  }
}

async function waitReady(pid, t0) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let lastTell = Date.now();
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return { ok: false, why: 'the broker process exited' };
    const state = await tryProbe(PORT);
    if (state) return { ok: true, state };
    if (Date.now() - lastTell >= 5000) {
      log(`  ... waiting for the broker (${Math.round((Date.now() - t0) / 1000)} s)`);
      lastTell = Date.now();
    }
    await sleep(500);
  }
  return { ok: false, why: `not ready within ${START_TIMEOUT_MS / 1000} s` };
}

async function start() {
  const t0 = Date.now();
  checkJava();
  await acquireLock(15 * 60_000);

  const existing = runningBrokerPid();
  if (existing) {
    const state = await tryProbe(PORT);
    if (state) {
      log(`already running (pid ${existing}) on ${HOST}:${PORT}, ${state}`);
      log(`log: ${LOG_FILE}`);
      return;
    }
    log(`broker pid ${existing} is running but not answering on ${HOST}:${PORT} yet; waiting ...`);
    const r = await waitReady(existing, t0);
    if (r.ok) {
      log(`running (pid ${existing}) on ${HOST}:${PORT}, ${r.state}`);
      log(`log: ${LOG_FILE}`);
      return;
    }
    printTail(LOG_FILE, 40);
    fail(`broker pid ${existing} does not answer on ${HOST}:${PORT} (${r.why}); try "node kafka/kafka.mjs stop" first`);
  }

  for (const p of [PORT, CONTROLLER_PORT]) {
    if (await portInUse(p)) {
      fail(
        `${HOST}:${p} is already in use by a process this script did not start; stop it or set ` +
          'KAFKA_PORT / KAFKA_CONTROLLER_PORT',
      );
    }
  }

  await ensureLibs();
  writeConfig();
  formatStorageOnce();

  if (fs.existsSync(LOG_FILE)) fs.renameSync(LOG_FILE, `${LOG_FILE}.1`);
  const out = fs.openSync(LOG_FILE, 'a');
  const args = [
    ...HEAP_OPTS,
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-XX:InitiatingHeapOccupancyPercent=35',
    '-XX:+ExplicitGCInvokesConcurrent',
    ...javaBase(),
    'kafka.Kafka',
    SERVER_PROPS,
  ];
  const child = spawn('java', args, { cwd: CACHE, detached: true, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const spawnError = await new Promise((resolve) => {
    child.once('error', resolve);
    child.once('spawn', () => resolve(null));
  });
  if (spawnError) fail(`could not start java: ${spawnError.message}`);
  child.unref();
  fs.writeFileSync(PID_FILE, `${child.pid}\n`);
  log(`starting Kafka ${kafkaVersion()} (pid ${child.pid}) on ${HOST}:${PORT}, controller ${HOST}:${CONTROLLER_PORT}`);
  log(`log: ${LOG_FILE}`);

  const r = await waitReady(child.pid, t0);
  if (!r.ok) {
    printTail(LOG_FILE, 40);
    if (isAlive(child.pid)) await killBroker(child.pid);
    removePidFile();
    fail(`Kafka did not become ready: ${r.why}`);
  }
  log(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (${r.state}); data: ${DATA}`);
}

async function killBroker(pid) {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + STOP_GRACE_MS;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return;
    await sleep(200);
  }
  log(`pid ${pid} still alive after ${STOP_GRACE_MS / 1000} s, sending SIGKILL`);
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  while (isAlive(pid)) await sleep(100);
}

async function stop() {
  const pid = readPid();
  if (!pid) {
    log('not running (no pid file)');
    return;
  }
  if (!isOurBroker(pid)) {
    removePidFile();
    log(`not running (stale pid file for pid ${pid}, removed)`);
    return;
  }
  log(`stopping broker pid ${pid} ...`);
  const t0 = Date.now();
  await killBroker(pid);
  removePidFile();
  log(`stopped in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

async function status() {
  const pid = runningBrokerPid();
  if (!pid) {
    log('not running');
    process.exitCode = 3;
    return;
  }
  const state = await tryProbe(PORT);
  if (state) {
    log(`running (pid ${pid}) on ${HOST}:${PORT}, ${state}; log: ${LOG_FILE}`);
  } else {
    log(`running (pid ${pid}) but not answering on ${HOST}:${PORT}; log: ${LOG_FILE}`);
    process.exitCode = 3;
  }
}

/** Fetches the broker's jars into the cache without starting it (tools that run Kafka's own classes need them). */
async function fetchLibs() {
  checkJava();
  await acquireLock(15 * 60_000);
  await ensureLibs();
  log(`jars: ${LIBS}`);
}

const commands = { start, stop, status, fetch: fetchLibs };
const cmd = process.argv[2];
if (!commands[cmd]) {
  console.error('usage: node kafka/kafka.mjs start|stop|status|fetch');
  process.exit(1);
}
await commands[cmd]();
