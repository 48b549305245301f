// Restarts during a two-party Chromium call (issue 7), with a daemon and a signaling
// process of this suite's own, as systemd runs them (`sfu-signaling --daemon DIR`):
// 1. the media daemon is SIGKILLed and started again: both pages decode video again on
//    new peer connections within 5 s, without a reload;
// 2. the signaling process gets SIGTERM (exit 0 within 2 s) and is started again on the
//    same port: both pages reconnect their WebSocket, rejoin and decode again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnDaemon, spawnServer } from '../lib/server.mjs';
import { launchChromium, inbound, recordConsole, removeTmpDirs } from '../lib/browsers.mjs';
import { waitFor, waitForMedia, waitForGrowth } from '../lib/wait.mjs';
import { ownId, pageErrors, waitJoined } from '../lib/page.mjs';

const names = ['Ada', 'Bob'];
const room = `e2e-resilience-${process.pid}`;
let dir;
let daemon;
let srv;
const contexts = [];
const pages = {};
const loads = { Ada: 0, Bob: 0 };
const logs = [];

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-sfu-control-'));
  daemon = await spawnDaemon(dir);
  srv = await spawnServer(['--daemon', dir]);
  for (const n of names) {
    const ctx = await launchChromium();
    contexts.push(ctx);
    const page = await ctx.newPage();
    recordConsole(page, n, logs);
    page.on('load', () => { loads[n] += 1; });
    await page.goto(`${srv.url}/r/${room}?name=${n}`);
    await waitJoined(page, 20000);
    pages[n] = page;
  }
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  if (srv) await srv.stop();
  if (daemon) {
    daemon.child.kill('SIGTERM');
    await daemon.exited;
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  removeTmpDirs();
  if (process.exitCode) for (const l of logs) console.error(l);
});

const other = (n) => names.find((x) => x !== n);
const peerIds = async () => Object.fromEntries(await Promise.all(names.map(async (n) => [n, await ownId(pages[n])])));
const pageIds = async () => Object.fromEntries(await Promise.all(names.map(async (n) => [n, await pages[n].evaluate(() => window.sfuTest.pageId)])));

/** Waits until page `n` decodes the other's video on a consumer not in `oldConsumers`. */
function decodingAgain(n, ids, oldConsumers, since, timeout) {
  return waitFor(`${n} decoding again`, async () => {
    const s = await inbound(pages[n]);
    const st = await pages[n].evaluate(() => window.sfuTest.counters());
    return { ...st, video: s[ids[other(n)]] && s[ids[other(n)]].video, at: Date.now() - since };
  }, (v) => v.video && !oldConsumers.has(v.video.consumerId) && v.video.framesDecoded > 0 && v.video.frameWidth > 0,
  { timeout, interval: 50 });
}

async function consumersNow(ids) {
  const out = new Set();
  for (const n of names) {
    const s = await inbound(pages[n]);
    out.add(s[ids[other(n)]].video.consumerId);
  }
  return out;
}

test('the media daemon is killed and restarted: both pages decode again within 5 s, no reload', async () => {
  const ids = await peerIds();
  const pageIdsBefore = await pageIds();
  await Promise.all(names.map((n) => waitForMedia(pages[n], [ids[other(n)]], `${n}'s media`)));
  const old = await consumersNow(ids);

  const killedAt = Date.now();
  daemon.child.kill('SIGKILL');
  await daemon.exited;
  daemon = await spawnDaemon(dir);
  const restartedAt = Date.now();
  const again = await Promise.all(names.map((n) => decodingAgain(n, ids, old, restartedAt, 5000)));
  const report = Object.fromEntries(names.map((n, i) => [n, {
    msAfterRestart: again[i].at, msAfterKill: again[i].at + (restartedAt - killedAt),
    framesDecoded: again[i].video.framesDecoded, frameWidth: again[i].video.frameWidth, restarts: again[i].restarts,
  }]));
  console.log(`# daemon SIGKILLed, restarted ${restartedAt - killedAt} ms later; video decoded again: ${JSON.stringify(report)}`);
  assert.ok(again.every((a) => a.at < 5000), 'within 5 s of the restart');
  // And keeps decoding.
  await Promise.all(names.map(async (n) => waitForGrowth(pages[n], await inbound(pages[n]), `${n}'s media after the restart`)));

  assert.deepEqual(await pageIds(), pageIdsBefore, 'no reload: the pages kept their state');
  assert.deepEqual(loads, { Ada: 1, Bob: 1 }, 'each page loaded once');
  assert.deepEqual(await peerIds(), ids, 'same participants, still in the room');
  for (const n of names) assert.deepEqual(await pageErrors(pages[n]), [], `${n}'s errors`);
});

test('the signaling process restarts: pages reconnect, rejoin and decode again, no reload', async () => {
  const idsBefore = await peerIds();
  const pageIdsBefore = await pageIds();
  const port = new URL(srv.url).port;
  const stopped = await srv.stop();
  srv = null;
  console.log(`# signaling SIGTERM with two participants: exit code ${stopped.code} after ${stopped.ms} ms`);
  assert.equal(stopped.code, 0, `exit 0 (signal ${stopped.signal})`);
  assert.ok(stopped.ms < 2000, `stopped in ${stopped.ms} ms`);
  // The pages saw the server go ("Reconnecting…") before it is back.
  await Promise.all(names.map((n) => waitJoined(pages[n], 5000, { joined: false })));

  const startedAt = Date.now();
  srv = await spawnServer(['--daemon', dir], { listen: `127.0.0.1:${port}` });
  const serving = Date.now() - startedAt;
  await Promise.all(names.map((n) => waitJoined(pages[n], 10000)));
  const ids = await peerIds();
  for (const n of names) assert.notEqual(ids[n], idsBefore[n], 'a new session');
  const again = await Promise.all(names.map((n) => decodingAgain(n, ids, new Set(), startedAt, 10000)));
  const reconnects = await Promise.all(names.map((n) => pages[n].evaluate(() => window.sfuTest.counters().reconnects)));
  console.log(`# signaling restarted (serving after ${serving} ms); video decoded again after ${again.map((a) => a.at).join(' / ')} ms; WebSocket reconnections: ${reconnects.join(' / ')}`);
  assert.ok(reconnects.every((r) => r >= 1));

  assert.deepEqual(await pageIds(), pageIdsBefore, 'no reload');
  assert.deepEqual(loads, { Ada: 1, Bob: 1 }, 'each page loaded once');
  for (const n of names) {
    assert.deepEqual(await pageErrors(pages[n]), [], `${n}'s errors`);
    const tiles = await pages[n].locator('.tile .name').allTextContents();
    assert.deepEqual(tiles.map((t) => t.replace(' (you)', '')).sort(), [...names].sort(), `${n}'s tiles`);
  }
});
