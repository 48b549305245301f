// WHEP (issue 14, "How it is shown"): a player we did not write plays a room's publisher.
// Chromium does only the WHEP HTTP exchange (a blank page of the server's origin, an
// RTCPeerConnection with recvonly transceivers, fetch POST of the offer): one player
// starts before the participant publishes (its tracks arrive later, unsignalled, in the
// player's m-lines), another after it (its answer names the SSRCs); both decode the
// participant's video and receive its audio; DELETE ends a session. aiortc, a second
// stack, plays the same participant under its own payload types (VP8 97, Opus 96: not
// the numbers the server offers pages), which the answer and the consumers keep.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { repo, spawnServer } from '../lib/server.mjs';
import { launchChromium, recordConsole, removeTmpDirs } from '../lib/browsers.mjs';
import { waitFor } from '../lib/wait.mjs';
import { waitJoined } from '../lib/page.mjs';

const PYTHON = process.env.SFU_E2E_PYTHON || path.join(repo, 'e2e', '.venv', 'bin', 'python');
const PLAYER = path.join(repo, 'e2e', 'tools', 'whep-aiortc.py');

const cleanups = [];
const logs = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  removeTmpDirs();
  if (process.exitCode) for (const l of logs) console.error(l);
});

/** Opens a WHEP session from `page` to `endpoint`: the POST's status, Location, answer. */
function startPlayer(page, endpoint) {
  return page.evaluate(async (url) => {
    const pc = new RTCPeerConnection();
    window.whepPc = pc;
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    await pc.setLocalDescription();
    // Non-trickle: the offer goes with its candidates.
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') resolve();
      pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
    });
    const r = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
    const answer = await r.text();
    if (r.status !== 201) return { status: r.status, answer };
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    return { status: r.status, location: r.headers.get('Location'), ssrcs: (answer.match(/a=ssrc:/g) || []).length };
  }, endpoint);
}

/** The player's inbound video and audio stats. */
function playerStats(page) {
  return page.evaluate(async () => {
    const out = { video: null, audio: null };
    const stats = await window.whepPc.getStats();
    for (const s of stats.values()) {
      if (s.type !== 'inbound-rtp') continue;
      const codec = s.codecId && stats.get(s.codecId);
      out[s.kind] = {
        framesDecoded: s.framesDecoded || 0,
        frameWidth: s.frameWidth || 0,
        packetsReceived: s.packetsReceived || 0,
        codec: codec ? codec.mimeType : null,
      };
    }
    return out;
  });
}

/** Starts the aiortc WHEP player; `next()` resolves its next JSON event line. */
function aiortcPlayer(url) {
  const child = spawn(PYTHON, [PLAYER, url], { stdio: ['pipe', 'pipe', 'inherit'] });
  cleanups.push(async () => child.kill('SIGKILL'));
  const queue = [];
  const waiting = [];
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    let ev;
    try { ev = JSON.parse(line); } catch { return; }
    const w = waiting.shift();
    if (w) w(ev); else queue.push(ev);
  });
  const next = (timeout = 45000) => (queue.length ? Promise.resolve(queue.shift()) : new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no event from the WHEP player in time')), timeout);
    waiting.push((ev) => { clearTimeout(timer); resolve(ev); });
  }));
  return { next, send: (line) => child.stdin.write(`${line}\n`) };
}

async function decoding(page, label) {
  return waitFor(`${label} decoding`, () => playerStats(page),
    (s) => s.video && s.video.framesDecoded > 20 && s.audio && s.audio.packetsReceived > 50, { timeout: 45000 });
}

test('Chromium players via WHEP alone decode a participant who publishes before or after they start; aiortc plays it under its own payload types; DELETE ends a session', async () => {
  const srv = await spawnServer();
  cleanups.push(async () => srv.stop());
  const room = `e2e-whep-${process.pid}`;
  const endpoint = `${srv.url}/whep/${room}/Ada`;

  const ctxPlayers = await launchChromium();
  cleanups.push(async () => ctxPlayers.close());
  const early = await ctxPlayers.newPage();
  recordConsole(early, 'early player', logs);
  await early.goto(`${srv.url}/`);
  const first = await startPlayer(early, endpoint);
  assert.equal(first.status, 201, JSON.stringify(first));
  assert.match(first.location, new RegExp(`/whep/${room}/session/[0-9a-f]+$`));
  assert.equal(first.ssrcs, 0, 'Ada has not published yet');

  const ctxAda = await launchChromium();
  cleanups.push(async () => ctxAda.close());
  const ada = await ctxAda.newPage();
  recordConsole(ada, 'Ada', logs);
  await ada.goto(`${srv.url}/r/${room}?name=Ada`);
  await waitJoined(ada, 20000);

  const e = await decoding(early, 'the early player');
  assert.equal(e.video.frameWidth, 640);
  assert.equal(e.audio.codec, 'audio/opus');
  console.log(`# the early WHEP player decodes Ada: ${e.video.framesDecoded} frames at ${e.video.frameWidth} px (${e.video.codec}), ${e.audio.packetsReceived} audio packets`);

  const late = await ctxPlayers.newPage();
  recordConsole(late, 'late player', logs);
  await late.goto(`${srv.url}/`);
  const second = await startPlayer(late, endpoint);
  assert.equal(second.status, 201, JSON.stringify(second));
  assert.ok(second.ssrcs > 0, 'the answer names the SSRCs of Ada\'s tracks');
  const l = await decoding(late, 'the late player');
  assert.equal(l.video.frameWidth, 640);
  console.log(`# the late WHEP player decodes Ada: ${l.video.framesDecoded} frames, ${l.audio.packetsReceived} audio packets`);

  const player = aiortcPlayer(endpoint);
  const answered = await player.next();
  assert.equal(answered.status, 201, JSON.stringify(answered));
  assert.notEqual(answered.payloadTypes['video/VP8'], 96, 'aiortc numbers VP8 differently from the server\'s table');
  const decoded = await player.next();
  assert.equal(decoded.event, 'decoded', JSON.stringify(decoded));
  assert.equal(decoded.width, 640);
  console.log(`# aiortc plays Ada with VP8 as ${answered.payloadTypes['video/VP8']}, Opus as ${answered.payloadTypes['audio/opus']}: ${decoded.videoFrames} frames at ${decoded.width}x${decoded.height}, ${decoded.audioFrames} audio frames`);
  player.send('delete');
  assert.equal((await player.next()).status, 200);

  const status = await early.evaluate(async (loc) => (await fetch(loc, { method: 'DELETE' })).status, first.location);
  assert.equal(status, 200);
  const again = await early.evaluate(async (loc) => (await fetch(loc, { method: 'DELETE' })).status, first.location);
  assert.equal(again, 404);
});
