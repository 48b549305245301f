// Long-call soak (issue 12, finding 7). Started by scripts/call-soak.sh inside the server
// namespace, which also made one namespace per browser (SOAK_CHROMIUM_WRAPPERS start
// Chromium inside them). Runs SOAK_CALLS three-party calls of SOAK_MINUTES minutes with a
// camera-like Y4M (noise: Chromium's 1.7 Mbit/s cap at 640x480), samples every page twice
// a second, and when an inbound video's framesDecoded stops growing for more than 2 s
// while its publisher is still in the room, captures into SOAK_ARTIFACTS/call-N/stall-T/:
// every page's full getStats (candidate pairs and their state, transports' DTLS state,
// bytes/packets, consent), every worker's worker.getStats (drop counters, UDP send
// counters and errors, packetLoop liveness) over a direct control connection, and the
// daemon's and signaling's logs so far. Prints one `reliability: {...}` line at the end.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { chromium } from 'playwright-core';
import { repo, sfuBin, signalingBin } from '../lib/server.mjs';
import { writeNoiseY4m } from '../lib/y4m.mjs';
import { ownId, waitJoined } from '../lib/page.mjs';

const CALLS = Number(process.env.SOAK_CALLS || 10);
const MINUTES = Number(process.env.SOAK_MINUTES || 3);
const ART = path.resolve(process.env.SOAK_ARTIFACTS || path.join(repo, 'e2e', 'artifacts', 'call-soak'));
const IP = process.env.SOAK_SERVER_IP || '10.77.0.1';
const WRAPPERS = (process.env.SOAK_CHROMIUM_WRAPPERS || '').split(',').filter(Boolean);
const SAMPLE_MS = 500;
const STALL_MS = 2000;
if (WRAPPERS.length !== 3) throw new Error('SOAK_CHROMIUM_WRAPPERS must name 3 wrappers (scripts/call-soak.sh)');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'call-soak-'));
const children = [];
const contexts = [];
async function cleanup() {
  for (const c of contexts.splice(0)) await c.close().catch(() => {});
  for (const ch of children.splice(0)) if (ch.exitCode === null) ch.kill('SIGTERM');
}
process.on('SIGTERM', () => { cleanup().finally(() => process.exit(143)); });

/** Spawns `bin`, logging stderr to `log`; resolves the child and the first stdout line matching `re`. */
function start(bin, args, log, re, timeoutMs = 30000) {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', fs.openSync(log, 'a')] });
  children.push(child);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${bin}: no ready line in ${timeoutMs} ms`)), timeoutMs);
    child.once('exit', (code) => { clearTimeout(t); reject(new Error(`${bin} exited (${code})`)); });
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const m = re.exec(line);
      if (m) { clearTimeout(t); child.removeAllListeners('exit'); resolve({ child, m }); }
    });
  });
}

/** One control request over a fresh connection (4-byte big-endian length + JSON). */
function control(sock, method, timeoutMs = 3000) {
  return new Promise((resolve) => {
    const c = net.connect(sock);
    let buf = Buffer.alloc(0);
    const done = (v) => { clearTimeout(t); c.destroy(); resolve(v); };
    const t = setTimeout(() => done({ error: `no answer in ${timeoutMs} ms` }), timeoutMs);
    c.on('error', (e) => done({ error: e.message }));
    c.on('connect', () => {
      const body = Buffer.from(JSON.stringify({ id: 1, method }));
      const len = Buffer.alloc(4); len.writeUInt32BE(body.length);
      c.write(Buffer.concat([len, body]));
    });
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const msg = JSON.parse(buf.subarray(4, 4 + buf.readUInt32BE(0)).toString());
        buf = buf.subarray(4 + buf.readUInt32BE(0));
        if (msg.id === 1) return done(msg);
      }
    });
  });
}

/** Everything a page's two peer connections say (getStats, states). */
function pageState(page) {
  return page.evaluate(async () => {
    const out = { at: Date.now(), peerId: (document.querySelector('.tile.self') || { dataset: {} }).dataset.peerId };
    for (const [name, pc] of Object.entries(window.sfuTest.peerConnections())) {
      if (!pc) continue;
      const stats = [];
      for (const s of (await pc.getStats()).values()) stats.push(s);
      out[name] = { connectionState: pc.connectionState, iceConnectionState: pc.iceConnectionState, stats };
    }
    out.inbound = await window.sfuTest.inboundStats();
    return out;
  }).catch((e) => ({ error: e.message }));
}

async function capture(dir, why, pages, sockets, logs) {
  fs.mkdirSync(dir, { recursive: true });
  const workers = await Promise.all(sockets.map((s) => control(s, 'worker.getStats')));
  const states = await Promise.all(pages.map(pageState));
  fs.writeFileSync(path.join(dir, 'why.json'), JSON.stringify(why, null, 1));
  fs.writeFileSync(path.join(dir, 'workers.json'), JSON.stringify(workers, null, 1));
  fs.writeFileSync(path.join(dir, 'pages.json'), JSON.stringify(states, null, 1));
  for (const l of logs) fs.copyFileSync(l, path.join(dir, path.basename(l)));
  return workers;
}

async function call(n, y4m) {
  const dir = path.join(ART, `call-${n}`);
  fs.mkdirSync(dir, { recursive: true });
  const ctl = path.join(tmp, `ctl-${n}`);
  const dlog = path.join(dir, 'sfu.log');
  const slog = path.join(dir, 'signaling.log');
  await start(sfuBin, ['--workers', '2', '--rtc-port', '0', '--listen-ip', IP, '--control', ctl, '--log', 'info,rtc_dtls=error'], dlog, /"ready"/);
  const { m } = await start(signalingBin, ['--listen', `${IP}:0`, '--daemon', ctl], slog, /open (http:\/\/\S+)/);
  const url = m[1].replace(/\/$/, '');
  const sockets = [0, 1].map((i) => path.join(ctl, `worker-${i}.sock`));
  const pages = [];
  for (let i = 0; i < 3; i += 1) {
    const ctx = await chromium.launchPersistentContext(path.join(tmp, `profile-${n}-${i}`), {
      executablePath: WRAPPERS[i],
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run', '--disable-dev-shm-usage', '--use-fake-device-for-media-stream',
        '--use-fake-ui-for-media-stream', '--disable-features=WebRtcHideLocalIpsWithMdns',
        '--autoplay-policy=no-user-gesture-required', `--use-file-for-fake-video-capture=${y4m}`,
        `--unsafely-treat-insecure-origin-as-secure=${url}`],
    });
    contexts.push(ctx);
    const page = await ctx.newPage();
    await page.goto(`${url}/r/soak${n}?name=P${i}`);
    await waitJoined(page, 30000);
    pages.push(page);
  }
  const ids = await Promise.all(pages.map((p) => ownId(p)));
  const fig = { call: n, stalls: 0, mediaSecs: 0, maxFrozenMs: 0, framesDecoded: 0 };
  // last[page][publisher] = { frames, at }: when its framesDecoded last grew.
  const last = pages.map(() => ({}));
  const started = Date.now();
  const end = started + MINUTES * 60000;
  let captured = 0;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, SAMPLE_MS)); // sampling period, not synchronisation
    const now = Date.now();
    const present = new Set(ids);
    const frozen = [];
    await Promise.all(pages.map(async (p, i) => {
      const s = await p.evaluate(() => window.sfuTest.inboundStats()).catch(() => ({}));
      for (const id of ids) {
        if (id === ids[i] || !present.has(id)) continue;
        const f = (s[id] && s[id].video && s[id].video.framesDecoded) || 0;
        const l = last[i][id];
        if (!l || f > l.frames) { last[i][id] = { frames: f, at: now }; continue; }
        // Only once media flowed (the first frames may take seconds to start).
        if (l.frames > 0 && now - l.at > STALL_MS) frozen.push({ page: i, publisher: id, frames: f, frozenMs: now - l.at });
      }
    }));
    for (const f of frozen) fig.maxFrozenMs = Math.max(fig.maxFrozenMs, f.frozenMs);
    if (frozen.length > 0 && captured < 5) {
      // A new stall: at most one capture per 10 s, five per call.
      fig.stalls += 1;
      captured += 1;
      const at = Math.round((now - started) / 1000);
      const w = await capture(path.join(dir, `stall-${at}s`), { atSecs: at, frozen }, pages, sockets, [dlog, slog]);
      console.log(`call ${n}: media stopped at ${at} s: ${JSON.stringify(frozen)}; packetLoop ${JSON.stringify(w.map((x) => x.data && x.data.packetLoop))}`);
      for (const f of frozen) last[f.page][f.publisher].at = now + 10000;
    }
  }
  fig.mediaSecs = Math.round((Date.now() - started) / 1000);
  const totals = await Promise.all(pages.map((p) => p.evaluate(() => window.sfuTest.inboundStats()).catch(() => ({}))));
  for (const t of totals) for (const v of Object.values(t)) fig.framesDecoded += (v.video && v.video.framesDecoded) || 0;
  await capture(path.join(dir, 'end'), { end: true }, pages, sockets, [dlog, slog]);
  await cleanup();
  return fig;
}

const y4m = path.join(tmp, 'noise-640x480.y4m');
writeNoiseY4m(y4m, { width: 640, height: 480, fps: 20, frames: 40 });
const figures = [];
let status = 0;
try {
  for (let n = 1; n <= CALLS; n += 1) {
    const f = await call(n, y4m);
    figures.push(f);
    console.log(`call ${n}: ${JSON.stringify(f)}`);
  }
} catch (e) {
  console.error(`call-soak: ${e.stack || e}`);
  status = 1;
} finally {
  await cleanup();
  fs.rmSync(tmp, { recursive: true, force: true });
}
const summary = {
  case: 'call_soak', calls: figures.length, minutesPerCall: MINUTES,
  mediaMinutes: Math.round(figures.reduce((a, f) => a + f.mediaSecs, 0) / 6) / 10,
  stalls: figures.reduce((a, f) => a + f.stalls, 0),
  maxFrozenMs: Math.max(0, ...figures.map((f) => f.maxFrozenMs)),
  framesDecoded: figures.reduce((a, f) => a + f.framesDecoded, 0),
};
fs.writeFileSync(path.join(ART, 'summary.json'), JSON.stringify({ summary, figures }, null, 1));
console.log(`reliability: ${JSON.stringify(summary)}`);
process.exit(status || (summary.stalls > 0 ? 2 : 0));
