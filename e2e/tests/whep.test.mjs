// WHEP (issue 14, "How it is shown"): a player we did not write plays a room's publisher.
// Chromium does only the WHEP HTTP exchange (a blank page of the server's origin, an
// RTCPeerConnection with recvonly transceivers, fetch POST of the offer): one player
// starts before the participant publishes (its tracks arrive later, unsignalled, in the
// player's m-lines), another after it (its answer names the SSRCs); both decode the
// participant's video and receive its audio; DELETE ends a session.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnServer } from '../lib/server.mjs';
import { launchChromium, recordConsole, removeTmpDirs } from '../lib/browsers.mjs';
import { waitFor } from '../lib/wait.mjs';

const cleanups = [];
const logs = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  removeTmpDirs();
  if (process.exitCode) for (const l of logs) console.error(l);
});

/** Opens a WHEP session from `page` to `endpoint`: the POST's status, Location, answer. */
function startPlayer(page, endpoint) {
  return page.evaluate(async (endpoint) => {
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
    const r = await fetch(endpoint, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
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

async function decoding(page, label) {
  return waitFor(`${label} decoding`, () => playerStats(page),
    (s) => s.video && s.video.framesDecoded > 20 && s.audio && s.audio.packetsReceived > 50, { timeout: 45000 });
}

test('Chromium players via WHEP alone decode a participant who publishes before or after they start; DELETE ends one', async () => {
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
  await ada.waitForFunction(() => window.sfu.state.joined, null, { timeout: 20000 });

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

  const status = await early.evaluate(async (loc) => (await fetch(loc, { method: 'DELETE' })).status, first.location);
  assert.equal(status, 200);
  const again = await early.evaluate(async (loc) => (await fetch(loc, { method: 'DELETE' })).status, first.location);
  assert.equal(again, 404);
});
