// WHIP (issue 14, "How it is shown"): aiortc, a WebRTC stack we did not write, publishes
// test video and audio into a room with POST /whip/<room> and its join token as bearer
// token; a Chromium participant of the room decodes the video and receives the audio;
// DELETE removes the tile; a missing or bad token is refused with 401.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { repo, spawnServer, signalingBin, metricsToken } from '../lib/server.mjs';
import { launchChromium, recordConsole, removeTmpDirs } from '../lib/browsers.mjs';
import { waitFor, waitForMedia, waitForGrowth } from '../lib/wait.mjs';
import { waitJoined } from '../lib/page.mjs';

const PYTHON = process.env.SFU_E2E_PYTHON || path.join(repo, 'e2e', '.venv', 'bin', 'python');
const CLIENT = path.join(repo, 'e2e', 'tools', 'whip-aiortc.py');
const SECRET = 'e2e whip secret';

const cleanups = [];
const logs = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  removeTmpDirs();
  if (process.exitCode) for (const l of logs) console.error(l);
});

function token(room, name) {
  return execFileSync(signalingBin, ['token', '--secret', SECRET, '--room', room, '--name', name, '--ttl', '600'])
    .toString().trim();
}

/** Starts the aiortc WHIP client; `next()` resolves its next JSON event line. */
function whipClient(url, tokenValue, codec = 'vp8') {
  const args = [CLIENT, url, '--codec', codec];
  if (tokenValue !== undefined) args.push('--token', tokenValue);
  const child = spawn(PYTHON, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  cleanups.push(async () => child.kill('SIGKILL'));
  const queue = [];
  const waiting = [];
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    let ev;
    try { ev = JSON.parse(line); } catch { return; }
    const w = waiting.shift();
    if (w) w(ev); else queue.push(ev);
  });
  const next = (timeout = 30000) => (queue.length ? Promise.resolve(queue.shift()) : new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no event from the WHIP client in time')), timeout);
    waiting.push((ev) => { clearTimeout(timer); resolve(ev); });
  }));
  return { child, next, send: (line) => child.stdin.write(`${line}\n`) };
}

async function whipPeerId(srv, room, name) {
  const stats = await waitFor(`${name} in the room`, async () => {
    const r = await fetch(`${srv.url}/api/rooms/${room}`, { headers: { Authorization: `Bearer ${metricsToken}` } });
    return r.status === 200 ? r.json() : null;
  }, (s) => s && s.peers.some((p) => p.name === name && p.producers === 2));
  return stats.peers.find((p) => p.name === name).peerId;
}

test('aiortc publishes with WHIP (VP8, then H264); Chromium decodes it; DELETE removes its tile; bad tokens get 401', async () => {
  const srv = await spawnServer(['--auth-secret', SECRET]);
  cleanups.push(async () => srv.stop());
  const room = `e2e-whip-${process.pid}`;
  const endpoint = `${srv.url}/whip/${room}`;

  const ctx = await launchChromium();
  cleanups.push(async () => ctx.close());
  const page = await ctx.newPage();
  recordConsole(page, 'Ada', logs);
  await page.goto(`${srv.url}/r/${room}?name=Ada&token=${encodeURIComponent(token(room, 'Ada'))}`);
  await waitJoined(page, 20000);

  // Refused: no token, a token signed with another secret, a token for another room.
  const wrongSecret = execFileSync(signalingBin, ['token', '--secret', 'not it', '--room', room, '--name', 'obs']).toString().trim();
  for (const [label, t] of [['missing', undefined], ['wrong secret', wrongSecret], ['other room', token('elsewhere', 'obs')]]) {
    const c = whipClient(endpoint, t);
    const ev = await c.next();
    assert.equal(ev.event, 'refused', label);
    assert.equal(ev.status, 401, `${label}: ${ev.body}`);
    assert.equal(ev.wwwAuthenticate, 'Bearer', label);
  }

  const obs = whipClient(endpoint, token(room, 'aiortc'));
  const created = await obs.next();
  assert.equal(created.event, 'answered', JSON.stringify(created));
  assert.equal(created.status, 201);
  assert.match(created.location, new RegExp(`/whip/${room}/session/[0-9a-f]+$`));

  const whipId = await whipPeerId(srv, room, 'aiortc');

  const first = await waitForMedia(page, [whipId], 'the WHIP publisher\'s media', 45000);
  const grown = await waitForGrowth(page, first, 'the WHIP publisher\'s media growth');
  const v = grown[whipId].video;
  const a = grown[whipId].audio;
  assert.equal(v.frameWidth, 640);
  assert.equal(v.codec, 'video/VP8');
  assert.equal(a.codec, 'audio/opus');
  const tiles = await page.locator('.tile .name').allTextContents();
  assert.ok(tiles.some((t) => t.includes('aiortc')), JSON.stringify(tiles));
  console.log(`# Chromium decodes the aiortc WHIP publisher: ${v.framesDecoded} frames at ${v.frameWidth}x${v.frameHeight}, ${a.packetsReceived} audio packets`);

  obs.send('delete');
  const deleted = await obs.next();
  assert.equal(deleted.status, 200);
  await waitFor('the WHIP tile to go', () => page.locator('.tile .name').allTextContents(),
    (names) => !names.some((t) => t.includes('aiortc')), { timeout: 15000 });

  // H264 alone, as OBS with x264 offers it: published as H264, decoded by Chromium.
  const h264 = whipClient(endpoint, token(room, 'aiortc264'), 'h264');
  assert.equal((await h264.next()).status, 201);
  const h264Id = await whipPeerId(srv, room, 'aiortc264');
  const h = (await waitForMedia(page, [h264Id], 'the H264 WHIP publisher\'s media', 45000))[h264Id];
  assert.equal(h.video.codec, 'video/H264');
  assert.ok(h.video.frameWidth > 0);
  console.log(`# Chromium decodes the aiortc H264 WHIP publisher: ${h.video.framesDecoded} frames at ${h.video.frameWidth}x${h.video.frameHeight}`);
  h264.send('delete');
  assert.equal((await h264.next()).status, 200);
});

test('Chromium doing only the WHIP HTTP exchange publishes simulcast; another Chromium decodes it; DELETE ends it', async () => {
  const srv = await spawnServer();
  cleanups.push(async () => srv.stop());
  const room = `e2e-whip-sc-${process.pid}`;

  const ctxViewer = await launchChromium();
  cleanups.push(async () => ctxViewer.close());
  const viewer = await ctxViewer.newPage();
  recordConsole(viewer, 'viewer', logs);
  await viewer.goto(`${srv.url}/r/${room}?name=Viewer`);
  await waitJoined(viewer, 20000);

  // The publisher: a page of the server's origin that runs WHIP by hand (not room.js).
  const ctxPub = await launchChromium();
  cleanups.push(async () => ctxPub.close());
  const pub = await ctxPub.newPage();
  recordConsole(pub, 'whip-chromium', logs);
  await pub.goto(`${srv.url}/`);
  const created = await pub.evaluate(async (endpoint) => {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    const pc = new RTCPeerConnection();
    window.whipPc = pc;
    pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly' });
    pc.addTransceiver(stream.getVideoTracks()[0], {
      direction: 'sendonly',
      sendEncodings: [{ rid: 'h', scaleResolutionDownBy: 2 }, { rid: 'f' }],
    });
    await pc.setLocalDescription();
    // Non-trickle WHIP: the offer goes with its candidates.
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') resolve();
      pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
    });
    const r = await fetch(endpoint, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
    const answer = await r.text();
    if (r.status !== 201) return { status: r.status, answer };
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    return { status: r.status, location: r.headers.get('Location'), simulcast: /a=simulcast:recv h;f/.test(answer) };
  }, `${srv.url}/whip/${room}?name=Chromium%20WHIP`);
  assert.equal(created.status, 201, JSON.stringify(created));
  assert.ok(created.simulcast, 'the answer accepts both simulcast encodings');

  const pubId = await waitFor('the WHIP participant', async () => {
    const r = await fetch(`${srv.url}/api/rooms/${room}`, { headers: { Authorization: `Bearer ${metricsToken}` } });
    const s = r.status === 200 ? await r.json() : null;
    const p = s && s.peers.find((x) => x.name === 'Chromium WHIP' && x.producers === 2);
    return p ? p.peerId : null;
  }, Boolean);
  const got = await waitForMedia(viewer, [pubId], 'the Chromium WHIP publisher\'s media', 45000);
  assert.ok(got[pubId].video.frameWidth > 0);
  // Both encodings arrive at the server (outbound stats of the publisher per rid).
  const sent = await waitFor('both encodings sending', () => pub.evaluate(async () => {
    const out = {};
    for (const s of (await window.whipPc.getStats()).values()) {
      if (s.type === 'outbound-rtp' && s.kind === 'video') out[s.rid] = s.framesEncoded || 0;
    }
    return out;
  }), (o) => o.h > 0 && o.f > 0);
  console.log(`# viewer decodes the Chromium WHIP publisher at ${got[pubId].video.frameWidth}x${got[pubId].video.frameHeight}; frames encoded per rid ${JSON.stringify(sent)}`);

  const status = await pub.evaluate(async (loc) => (await fetch(loc, { method: 'DELETE' })).status, created.location);
  assert.equal(status, 200);
  await waitFor('the WHIP tile to go', () => viewer.locator('.tile .name').allTextContents(),
    (names) => !names.some((t) => t.includes('Chromium WHIP')), { timeout: 15000 });
});
