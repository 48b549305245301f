// Bandwidth feedback (issue 4) with a real Chromium publisher while another Chromium
// receives it:
//  (a) with transport-cc negotiated (the default), the publisher's sending rate rises
//      above 1.5 Mbit/s within 10 s of its transport connecting;
//  (b) with --no-bandwidth-feedback it does not: no transport-cc or REMB, so Chromium's
//      estimate comes from loss in receiver reports only and stays near its 300 kbit/s
//      start;
//  (c) the quality indicator shows a score on the publisher's tile at the receiver (and
//      on the publisher's own tile).
//
// Giving Chromium room to send: its built-in fake camera draws a nearly flat picture that
// VP8 codes in a few hundred kbit/s whatever it is allowed, so the publisher's camera is a
// synthetic Y4M of noisy frames (lib/y4m.mjs), 640x480 at 30 fps. Chromium caps VP8 by
// resolution (1.7 Mbit/s for 640x480 and down to 320x240 exclusive, 2.5 Mbit/s from
// 960x540 up), which leaves a 640x480 encoder only ~1.64 Mbit/s of target once audio
// is counted: too close to 1.5 for a loaded 2-core machine. The test raises the video
// sender's maxBitrate to 2.5 Mbit/s (Chromium's cap for 720p) in both runs, as an
// application may; a higher capture resolution would not help, since Chromium starts a
// 720p camera at 480x270 (its start bitrate is too low for more) and the noise keeps
// its quality scaler from going back up. The receiver is a viewer (no camera), to leave
// the two cores to the publisher's encoder and its decoder.
//
// Rates are from the publisher's own getStats(): outbound-rtp video (bytesSent +
// headerBytesSent, which includes padding probes; RTX is counted in the same stats) over
// 1-s windows, and the selected candidate pair's availableOutgoingBitrate (the send-side
// estimate that the feedback drives). Both are printed.
//
// Known failure of (a), a daemon issue: the worker takes one arrival time per recvmmsg
// batch, after the read, for its transport-cc feedback. When it reads late, a probe
// cluster Chromium sent over ~16 ms is reported as arrived within 2-5 ms; Chromium
// rejects the probe ("receive/send ratio too high" in its probe_bitrate_estimator log)
// and ramps up by AIMD instead, too slowly for 10 s. Seen in about one run of five on a
// busy 2-core machine; kernel receive timestamps per datagram would fix it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnServer, repo } from '../lib/server.mjs';
import { launchChromium, inbound, recordConsole, removeTmpDirs } from '../lib/browsers.mjs';
import { waitFor } from '../lib/wait.mjs';
import { writeNoiseY4m } from '../lib/y4m.mjs';
import { ownId, pageErrors, waitJoined } from '../lib/page.mjs';

const THRESHOLD_BPS = 1.5e6;
const WINDOW_MS = 10000;
const SAMPLE_MS = 250;
const MAX_BITRATE_BPS = 2.5e6;

let dir;
let y4m;
const logs = [];
const results = {};

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-bandwidth-'));
  y4m = path.join(dir, 'noise-640x480.y4m');
  // 2 s of frames, looped by Chromium: long enough that VP8's reference frames never
  // see a repeat.
  writeNoiseY4m(y4m, { width: 640, height: 480, fps: 30, frames: 60 });
});

after(() => {
  removeTmpDirs();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  if (process.exitCode) for (const l of logs) console.error(l);
});

/** The publisher's send-side numbers now (RTCStats timestamps are in ms). */
function sendStats(page) {
  return page.evaluate(async () => {
    const pc = window.sfuTest.peerConnections().send;
    if (!pc) return null;
    const out = { at: 0, bytes: 0, aob: null, target: null, width: 0, height: 0, fps: 0, limit: null };
    const stats = await pc.getStats();
    for (const s of stats.values()) {
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        out.at = s.timestamp;
        out.bytes = (s.bytesSent || 0) + (s.headerBytesSent || 0);
        out.target = s.targetBitrate ?? null;
        out.width = s.frameWidth || 0;
        out.height = s.frameHeight || 0;
        out.fps = s.framesPerSecond || 0;
        out.limit = s.qualityLimitationReason ?? null;
      }
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
        out.aob = s.availableOutgoingBitrate ?? null;
      }
    }
    return out;
  });
}

/**
 * One call on its own server: a viewer, then a publisher with the noise camera. Samples
 * the publisher for WINDOW_MS from its send transport connecting; returns the peaks, the
 * per-second series and what the viewer decoded.
 */
async function measure(label, serverArgs) {
  const srv = await spawnServer(serverArgs);
  const contexts = [];
  try {
    const room = `e2e-bw-${label}-${process.pid}`;
    const viewerCtx = await launchChromium();
    contexts.push(viewerCtx);
    const viewer = await viewerCtx.newPage();
    recordConsole(viewer, `${label}/viewer`, logs);
    // A viewer: as if the person had denied camera and microphone.
    await viewer.addInitScript(() => {
      navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('denied', 'NotAllowedError'));
    });
    await viewer.goto(`${srv.url}/r/${room}?name=Viewer`);
    await waitJoined(viewer, 20000);

    const pubCtx = await launchChromium(['--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${y4m}`]);
    contexts.push(pubCtx);
    const pub = await pubCtx.newPage();
    recordConsole(pub, `${label}/publisher`, logs);
    // One encoding: this measures the estimate ramping one stream up (simulcast splits it).
    await pub.goto(`${srv.url}/r/${room}?name=Pub&simulcast=0`);
    await waitJoined(pub, 20000);
    const pubId = await ownId(pub);
    await pub.waitForFunction(() => window.sfuTest.peerConnections().send && window.sfuTest.peerConnections().send.connectionState === 'connected',
      null, { timeout: 20000, polling: 50 });
    await pub.evaluate(async (max) => {
      const sender = window.sfuTest.peerConnections().send.getSenders().find((x) => x.track && x.track.kind === 'video');
      const params = sender.getParameters();
      params.encodings[0].maxBitrate = max;
      await sender.setParameters(params);
    }, MAX_BITRATE_BPS);

    // From the connection on: sample the sender, and keep a second-by-second record.
    const start = Date.now();
    const samples = [];
    let decodedAtStart = null;
    for (;;) {
      const s = await sendStats(pub);
      if (s && s.at) samples.push({ ...s, t: Date.now() - start });
      if (decodedAtStart === null) {
        const v = (await inbound(viewer))[pubId];
        if (v && v.video) decodedAtStart = v.video.framesDecoded;
      }
      if (Date.now() - start >= WINDOW_MS) break;
      await new Promise((r) => setTimeout(r, SAMPLE_MS));
    }
    // The viewer received and decoded the publisher's video meanwhile (and still does).
    const seen = await waitFor(`${label}: viewer decoding the publisher`, () => inbound(viewer),
      (st) => st[pubId] && st[pubId].video && st[pubId].video.framesDecoded > (decodedAtStart || 0) + 30,
      { timeout: 10000 });

    // Rates over 1-s windows (each sample against the first one at least 1 s older).
    const series = [];
    let j = 0;
    for (const s of samples) {
      while (j < samples.length && s.at - samples[j].at >= 1000) j += 1;
      const base = j > 0 ? samples[j - 1] : null;
      if (!base || s.at - base.at < 1000) continue;
      series.push({
        t: s.t,
        mediaBps: (8 * (s.bytes - base.bytes) * 1000) / (s.at - base.at),
        aobBps: s.aob,
        targetBps: s.target,
        res: `${s.width}x${s.height}@${Math.round(s.fps)}`,
        limit: s.limit,
      });
    }
    const peak = (key) => Math.max(0, ...series.map((x) => x[key] || 0));
    const firstAbove = (key) => {
      const x = series.find((e) => (e[key] || 0) > THRESHOLD_BPS);
      return x ? x.t : null;
    };

    // (c) The quality indicator: on the viewer's tile of the publisher, a score once the
    // publisher's media has been scored (producerScore known), and on the own tile.
    const quality = await waitFor(`${label}: quality indicator on the viewer's tile of the publisher`, () => viewer.evaluate((id) => {
      const q = document.querySelector(`.tile[data-peer-id="${id}"] .quality`);
      return q && !q.hidden ? { score: q.dataset.score, label: q.getAttribute('aria-label'), title: q.title,
        lit: q.querySelectorAll('.q-bar.lit').length } : null;
    }, pubId), (q) => q && Number(q.score) > 0, { timeout: 10000 });
    const own = await waitFor(`${label}: quality indicator on the publisher's own tile`, () => pub.evaluate((id) => {
      const q = document.querySelector(`.tile[data-peer-id="${id}"] .quality`);
      return q && !q.hidden ? { score: q.dataset.score, label: q.getAttribute('aria-label') } : null;
    }, pubId), (q) => q !== null, { timeout: 10000 });

    fs.mkdirSync(path.join(repo, 'e2e', 'artifacts'), { recursive: true });
    await viewer.screenshot({ path: path.join(repo, 'e2e', 'artifacts', `quality-${label}.png`) });

    for (const p of [viewer, pub]) assert.deepEqual(await pageErrors(p), [], `${label}: page errors`);
    return {
      peakMediaBps: peak('mediaBps'),
      peakAobBps: peak('aobBps'),
      peakTargetBps: peak('targetBps'),
      mediaAboveAtMs: firstAbove('mediaBps'),
      aobAboveAtMs: firstAbove('aobBps'),
      series,
      framesDecoded: seen[pubId].video.framesDecoded,
      frameWidth: seen[pubId].video.frameWidth,
      quality,
      own,
    };
  } finally {
    for (const c of contexts) await c.close().catch(() => {});
    await srv.stop();
  }
}

const mbps = (v) => (v === null || v === undefined ? '-' : (v / 1e6).toFixed(2));

function report(label, r) {
  console.log(`# ${label}: peak sent ${mbps(r.peakMediaBps)} Mbit/s (above 1.5 at ${r.mediaAboveAtMs ?? '-'} ms), `
    + `peak estimate ${mbps(r.peakAobBps)} Mbit/s (above 1.5 at ${r.aobAboveAtMs ?? '-'} ms), peak encoder target `
    + `${mbps(r.peakTargetBps)} Mbit/s; viewer decoded ${r.framesDecoded} frames at ${r.frameWidth}px`);
  console.log(`#   per second: ${r.series.filter((_, i) => i % 4 === 3).map((x) => `${(x.t / 1000).toFixed(1)}s `
    + `${mbps(x.mediaBps)}/${mbps(x.aobBps)} ${x.res}${x.limit && x.limit !== 'none' ? ` (${x.limit})` : ''}`).join(', ')}`);
  console.log(`#   viewer's tile of the publisher: "${r.quality.label}" (${r.quality.lit} bars); publisher's own tile: "${r.own.label}"`);
}

test('with bandwidth feedback the publisher sends above 1.5 Mbit/s within 10 s', async () => {
  const r = await measure('feedback', []);
  results.on = r;
  report('feedback on', r);
  assert.ok(r.peakMediaBps > THRESHOLD_BPS,
    `sent at most ${mbps(r.peakMediaBps)} Mbit/s in 10 s (estimate ${mbps(r.peakAobBps)}): ${JSON.stringify(r.series)}`);
});

test('without bandwidth feedback it stays near its start bitrate', async () => {
  const r = await measure('no-feedback', ['--no-bandwidth-feedback']);
  results.off = r;
  report('feedback off', r);
  assert.ok(r.peakMediaBps < THRESHOLD_BPS && (r.peakAobBps || 0) < THRESHOLD_BPS,
    `reached ${mbps(r.peakMediaBps)} Mbit/s (estimate ${mbps(r.peakAobBps)}) without feedback: ${JSON.stringify(r.series)}`);
  if (results.on) {
    console.log(`# on vs off: peak sent ${mbps(results.on.peakMediaBps)} vs ${mbps(r.peakMediaBps)} Mbit/s, `
      + `peak estimate ${mbps(results.on.peakAobBps)} vs ${mbps(r.peakAobBps)} Mbit/s`);
  }
});
