// WHEP following the active speaker (issue 14): `POST /whep/<room>` with no participant
// named. Two Chromium pages publish over WHIP by hand, 640x480 and 320x240, each with a
// WebAudio tone it can silence (gain 0); a third Chromium does only the WHEP HTTP
// exchange. The player first plays the first publisher; when the second one talks (and
// the first is silent) its decoded frame size becomes the second one's, in the same
// tracks; when the first talks again it goes back.
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

/** A page of the server's origin publishing over WHIP: camera at `width`, a tone it can mute. */
async function publisher(srv, room, name, width) {
  const ctx = await launchChromium();
  cleanups.push(async () => ctx.close());
  const page = await ctx.newPage();
  recordConsole(page, name, logs);
  await page.goto(`${srv.url}/`);
  const created = await page.evaluate(async ({ endpoint, w }) => {
    const camera = await navigator.mediaDevices.getUserMedia({ video: { width: w, height: (w * 3) / 4 } });
    // A continuous tone, loud or silent: what the active-speaker observer hears.
    const audio = new AudioContext();
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    gain.gain.value = 0;
    const out = audio.createMediaStreamDestination();
    tone.connect(gain).connect(out);
    tone.start();
    window.speak = (on) => { gain.gain.value = on ? 0.8 : 0; };
    const pc = new RTCPeerConnection();
    pc.addTransceiver(out.stream.getAudioTracks()[0], { direction: 'sendonly' });
    pc.addTransceiver(camera.getVideoTracks()[0], { direction: 'sendonly' });
    await pc.setLocalDescription();
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') resolve();
      pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
    });
    const r = await fetch(endpoint, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
    const answer = await r.text();
    if (r.status !== 201) return { status: r.status, answer };
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    return { status: r.status };
  }, { endpoint: `${srv.url}/whip/${room}?name=${name}`, w: width });
  assert.equal(created.status, 201, JSON.stringify(created));
  return page;
}

/** The WHEP player's decoded video: frames and width, audio packets. */
function playerStats(page) {
  return page.evaluate(async () => {
    const out = { framesDecoded: 0, frameWidth: 0, audioPackets: 0, videoStreams: 0 };
    for (const s of (await window.whepPc.getStats()).values()) {
      if (s.type !== 'inbound-rtp') continue;
      if (s.kind === 'video') {
        out.videoStreams += 1;
        out.framesDecoded = s.framesDecoded || 0;
        out.frameWidth = s.frameWidth || 0;
      } else {
        out.audioPackets = s.packetsReceived || 0;
      }
    }
    return out;
  });
}

test('a WHEP player of the room follows the active speaker: its decoded frame size changes when the speaker does', async () => {
  const srv = await spawnServer();
  cleanups.push(async () => srv.stop());
  const room = `e2e-whep-speaker-${process.pid}`;
  const ada = await publisher(srv, room, 'Ada', 640);
  const bob = await publisher(srv, room, 'Bob', 320);

  const ctx = await launchChromium();
  cleanups.push(async () => ctx.close());
  const player = await ctx.newPage();
  recordConsole(player, 'player', logs);
  await player.goto(`${srv.url}/`);
  const started = await player.evaluate(async (endpoint) => {
    const pc = new RTCPeerConnection();
    window.whepPc = pc;
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    await pc.setLocalDescription();
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') resolve();
      pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
    });
    const r = await fetch(endpoint, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
    const answer = await r.text();
    if (r.status !== 201) return { status: r.status, answer };
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    return { status: r.status, location: r.headers.get('Location') };
  }, `${srv.url}/whep/${room}`);
  assert.equal(started.status, 201, JSON.stringify(started));

  // Nobody spoke yet: the first publisher is played.
  const first = await waitFor('the player decoding Ada', () => playerStats(player),
    (s) => s.framesDecoded > 20 && s.frameWidth === 640 && s.audioPackets > 50, { timeout: 45000 });
  await bob.evaluate(() => window.speak(true));
  const second = await waitFor('the player decoding Bob', () => playerStats(player),
    (s) => s.frameWidth === 320 && s.framesDecoded > first.framesDecoded + 10, { timeout: 30000 });
  await bob.evaluate(() => window.speak(false));
  await ada.evaluate(() => window.speak(true));
  const third = await waitFor('the player decoding Ada again', () => playerStats(player),
    (s) => s.frameWidth === 640 && s.framesDecoded > second.framesDecoded + 10, { timeout: 30000 });
  assert.equal(third.videoStreams, 1, 'one video track throughout');
  console.log(`# the speaker player decoded Ada at 640 px, Bob at 320 px when he spoke, Ada again: ${third.framesDecoded} frames, ${third.audioPackets} audio packets in one session`);

  const status = await player.evaluate(async (loc) => (await fetch(loc, { method: 'DELETE' })).status, started.location);
  assert.equal(status, 200);
});
