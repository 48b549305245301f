// Quality on real networks (issue 13; e2e/run-lab.sh runs it): three Chromium
// participants, each in its own network namespace behind its own link (lib/netlab.mjs),
// publishing a camera-like noisy
// 640x480 clip as the web client does by default (VP8 simulcast, three encodings).
//
//  (a) One participant's downlink is 400 kbit/s. It still decodes every other
//      participant's video for at least 90 % of the seconds measured, at a lower
//      resolution; the two unconstrained participants receive each other's top layer; and
//      no publisher encodes more than one keyframe per 2 s on any encoding (a weak
//      subscriber must not make everyone send keyframes).
//  (b) Three unconstrained participants: one whose window (so its tiles) is made small
//      receives a lower layer; when every subscriber of a publisher shows it small, the
//      publisher stops sending its top encoding (dynacast), and sends it again when a
//      tile grows.
//  (c) One participant's link has 5 % loss and 50 ms delay each way. The video it
//      receives is frozen (Chromium's totalFreezesDuration) less than 3 % of the time.
//
// Seconds "decoding" are 1-s windows in which framesDecoded grew. All numbers are
// printed, so a failing run says by how much.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NetLab, canMakeNamespaces } from '../lib/netlab.mjs';
import { inbound, recordConsole, removeTmpDirs } from '../lib/browsers.mjs';
import { waitFor, waitForMedia } from '../lib/wait.mjs';
import { writeNoiseY4m } from '../lib/y4m.mjs';
import { ownId, pageErrors, waitJoined } from '../lib/page.mjs';

const MEASURE_S = 30;
const logs = [];
let dir;
let y4m;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-quality-'));
  y4m = path.join(dir, 'noise-640x480.y4m');
  // 20 fps, as a laptop camera; 2 s looped.
  writeNoiseY4m(y4m, { width: 640, height: 480, fps: 20, frames: 40 });
});

after(() => {
  removeTmpDirs();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  if (process.exitCode) for (const l of logs) console.error(l);
});

/** A call: the lab, the server, and one joined page per participant spec. */
async function call(label, specs) {
  const lab = new NetLab();
  const people = [];
  try {
    await lab.server();
    const room = `e2e-q-${label}-${process.pid}`;
    for (const spec of specs) {
      const client = lab.client(spec.name, spec.link);
      const ctx = await lab.chromium(client, ['--use-fake-device-for-media-stream',
        `--use-file-for-fake-video-capture=${y4m}`]);
      const page = await ctx.newPage();
      recordConsole(page, `${label}/${spec.name}`, logs);
      await page.goto(`${lab.url}/r/${room}?name=${spec.name}`);
      await waitJoined(page, 30000);
      const id = await ownId(page);
      people.push({ ...spec, ctx, page, id });
    }
  } catch (e) {
    await hangUp({ lab, people });
    throw e;
  }
  return { lab, people };
}

async function hangUp({ lab, people }) {
  for (const p of people) await p.ctx.close().catch(() => {});
  await lab.close();
}

/** What the page receives now, per publisher: decoded frames, size, freezes. */
function received(page) {
  return page.evaluate(async () => {
    const out = {};
    const pc = window.sfuTest.peerConnections().recv;
    if (!pc) return out;
    for (const tr of pc.getTransceivers()) {
      const c = tr.mid && window.sfuTest.consumer(tr.mid);
      if (!c || c.kind !== 'video') continue;
      for (const s of (await tr.receiver.getStats()).values()) {
        if (s.type !== 'inbound-rtp') continue;
        out[c.peerId] = {
          framesDecoded: s.framesDecoded || 0,
          height: s.frameHeight || 0,
          width: s.frameWidth || 0,
          freezeS: s.totalFreezesDuration || 0,
          keyFrames: s.keyFramesDecoded || 0,
          bytes: s.bytesReceived || 0,
          lost: s.packetsLost || 0,
          nacks: s.nackCount || 0,
          plis: s.pliCount || 0,
          // Mean jitter-buffer target over the frames emitted (ms).
          targetMs: s.jitterBufferEmittedCount
            ? Math.round((1000 * (s.jitterBufferTargetDelay || 0)) / s.jitterBufferEmittedCount) : 0,
        };
      }
    }
    return out;
  });
}

/** What the page's camera sends now, per encoding (rid): keyframes, bytes, size. */
function sent(page) {
  return page.evaluate(async () => {
    const out = {};
    const pc = window.sfuTest.peerConnections().send;
    if (!pc) return out;
    for (const s of (await pc.getStats()).values()) {
      if (s.type !== 'outbound-rtp' || s.kind !== 'video') continue;
      out[s.rid || '-'] = {
        keyFrames: s.keyFramesEncoded || 0,
        bytes: s.bytesSent || 0,
        height: s.frameHeight || 0,
        active: s.active !== false,
        frames: s.framesEncoded || 0,
        limit: s.qualityLimitationReason || 'none',
      };
    }
    return out;
  });
}

/**
 * Samples every page once a second for `seconds`; returns per page the series of
 * `received` and `sent` snapshots.
 */
async function sample(people, seconds) {
  const series = new Map(people.map((p) => [p.name, []]));
  const start = Date.now();
  for (let i = 0; i <= seconds; i += 1) {
    for (const p of people) {
      series.get(p.name).push({ t: Date.now() - start, recv: await received(p.page), sent: await sent(p.page) });
    }
    const next = start + (i + 1) * 1000;
    // Paced sampling, not synchronisation: the assertions hold on whatever was sampled.
    await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
  }
  return series;
}

/** Share of 1-s windows in which frames of `from` were decoded, from a page's series. */
function decodingShare(series, from) {
  let windows = 0;
  let decoding = 0;
  for (let i = 1; i < series.length; i += 1) {
    const a = series[i - 1].recv[from];
    const b = series[i].recv[from];
    windows += 1;
    if (a && b && b.framesDecoded > a.framesDecoded) decoding += 1;
  }
  return windows ? decoding / windows : 0;
}

/**
 * Per second: the height received, the frames decoded in it, when the picture froze in it
 * for how many ms, and the packets lost, NACKs and PLIs the page counted in it when any
 * ("240:7 240:2/450,L3N2P1 ..."); the jitter buffer's mean target delay at the end.
 */
function timeline(series, from) {
  const out = [];
  const zero = { framesDecoded: 0, freezeS: 0, lost: 0, nacks: 0, plis: 0, height: 0 };
  for (let i = 1; i < series.length; i += 1) {
    const a = { ...zero, ...series[i - 1].recv[from] };
    const b = { ...zero, ...series[i].recv[from] };
    const frozenMs = Math.round(1000 * (b.freezeS - a.freezeS));
    const repair = [['L', b.lost - a.lost], ['N', b.nacks - a.nacks], ['P', b.plis - a.plis]]
      .filter(([, n]) => n > 0).map(([k, n]) => `${k}${n}`).join('');
    out.push(`${b.height}:${b.framesDecoded - a.framesDecoded}${frozenMs > 0 ? `/${frozenMs}` : ''}${repair ? `,${repair}` : ''}`);
  }
  const last = series.length ? series[series.length - 1].recv[from] : null;
  if (last && last.targetMs) out.push(`(jitter buffer target ${last.targetMs} ms)`);
  return out.join(' ');
}

/**
 * Per second, what a publisher's camera encoded per encoding: "h:20 f:19(cpu) ..." (frames
 * encoded in the second, and why the encoder limits itself when it does).
 */
function sendTimeline(series) {
  const out = [];
  for (let i = 1; i < series.length; i += 1) {
    const a = series[i - 1].sent;
    const b = series[i].sent;
    out.push(Object.keys(b).sort().map((rid) => {
      const n = b[rid].frames - ((a[rid] || {}).frames || 0);
      return `${rid}:${n}${b[rid].limit !== 'none' ? `(${b[rid].limit})` : ''}`;
    }).join(','));
  }
  return out.join(' ');
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : 0;
}

/** The daemon's adaptive-quality counters, summed over workers, for the printed report. */
function adaptation(lab) {
  const sums = {};
  const names = /^sfu_worker_(layer_switches_total|probe_clusters_total|probe_clusters_succeeded_total|probe_clusters_aborted_total|retransmissions_over_budget_total|consumers_limited_by_bandwidth|keyframe_requests_sent_total|keyframe_requests_repeated_total|red_packets_unwrapped_total)(\{[^}]*\})? (\S+)$/;
  for (const line of lab.metrics().split('\n')) {
    const m = names.exec(line);
    if (!m) continue;
    const layer = /layer="(\w+)"/.exec(m[2] || '');
    const key = layer ? `${m[1]}[${layer[1]}]` : m[1];
    sums[key] = (sums[key] || 0) + Number(m[3]);
  }
  return sums;
}

test('quality: a 400 kbit/s subscriber sees everyone at a lower layer; the others get the top layer; no keyframe storm',
  { skip: !canMakeNamespaces() && 'needs root for network namespaces', timeout: 240000 }, async () => {
    const c = await call('narrow', [
      { name: 'Ann' }, { name: 'Bob' }, { name: 'Cat', link: { downKbit: 400 } },
    ]);
    try {
      const [ann, bob, cat] = c.people;
      for (const p of [ann, bob]) {
        await waitForMedia(p.page, c.people.filter((o) => o !== p).map((o) => o.id), `${p.name} media`, 45000);
      }
      // Let the estimates settle (the narrow subscriber's first seconds probe the link).
      await waitFor('Cat decoding both', () => inbound(cat.page), (s) => [ann, bob].every((o) => s[o.id]
        && s[o.id].video && s[o.id].video.framesDecoded > 40), { timeout: 45000 });
      const series = await sample(c.people, MEASURE_S);
      const report = {};
      for (const from of [ann, bob]) {
        const s = series.get('Cat');
        report[`Cat<-${from.name}`] = {
          decodingShare: decodingShare(s, from.id),
          medianHeight: median(s.map((x) => (x.recv[from.id] || {}).height || 0)),
          timeline: timeline(s, from.id),
        };
      }
      report['Ann<-Bob'] = { medianHeight: median(series.get('Ann').map((x) => (x.recv[bob.id] || {}).height || 0)) };
      report['Bob<-Ann'] = { medianHeight: median(series.get('Bob').map((x) => (x.recv[ann.id] || {}).height || 0)) };
      for (const p of c.people) {
        const s = series.get(p.name);
        const first = s[0].sent;
        const last = s[s.length - 1].sent;
        const seconds = (s[s.length - 1].t - s[0].t) / 1000;
        report[`${p.name} keyframes/s`] = Object.fromEntries(Object.keys(last).map((rid) =>
          [rid, (last[rid].keyFrames - ((first[rid] || {}).keyFrames || 0)) / seconds]));
      }
      console.log('quality (a):', JSON.stringify(report), 'daemon:', JSON.stringify(adaptation(c.lab)));
      for (const from of [ann, bob]) {
        const r = report[`Cat<-${from.name}`];
        assert.ok(r.decodingShare >= 0.9, `Cat decodes ${from.name} ${(100 * r.decodingShare).toFixed(0)} % of the time`);
        assert.ok(r.medianHeight > 0 && r.medianHeight < 480, `Cat receives ${from.name} at ${r.medianHeight} rows`);
      }
      assert.equal(report['Ann<-Bob'].medianHeight, 480, 'Ann receives Bob\'s top layer');
      assert.equal(report['Bob<-Ann'].medianHeight, 480, 'Bob receives Ann\'s top layer');
      for (const p of c.people) {
        for (const [rid, rate] of Object.entries(report[`${p.name} keyframes/s`])) {
          assert.ok(rate < 0.5, `${p.name} encoding ${rid}: ${rate.toFixed(2)} keyframes/s`);
        }
      }

      for (const p of c.people) assert.deepEqual(await pageErrors(p.page), [], `${p.name}: page errors`);
    } finally {
      await hangUp(c);
    }
  });

test('quality: a small tile receives a lower layer; an encoding no tile needs stops and comes back',
  { skip: !canMakeNamespaces() && 'needs root for network namespaces', timeout: 240000 }, async () => {
    const c = await call('tiles', [{ name: 'Ann' }, { name: 'Bob' }, { name: 'Cat' }]);
    try {
      const [ann, bob, cat] = c.people;
      for (const p of c.people) {
        await waitForMedia(p.page, c.people.filter((o) => o !== p).map((o) => o.id), `${p.name} media`, 45000);
      }
      // Small tiles: Ann's window shrinks, so her tiles do; she gets a lower layer.
      await ann.page.setViewportSize({ width: 360, height: 240 });
      await waitFor('Ann receives Bob at a lower layer', () => received(ann.page),
        (r) => r[bob.id] && r[bob.id].height > 0 && r[bob.id].height < 480, { timeout: 20000 });
      // Cat's tiles are small too: nobody needs Bob's top encoding, so he stops sending it.
      await cat.page.setViewportSize({ width: 360, height: 240 });
      // Bob's top encoding is the last of his page's simulcast encodings (lowest first);
      // once off, Chromium reports it inactive and stops counting its bytes.
      const top = async () => {
        const a = await sent(bob.page);
        await new Promise((r) => setTimeout(r, 1000));
        const b = await sent(bob.page);
        const rid = ['f', 'h', 'q'].find((r) => r in b);
        return { rid, bytesPerS: b[rid] && a[rid] ? b[rid].bytes - a[rid].bytes : null, active: b[rid] && b[rid].active };
      };
      await waitFor('Bob stops sending his top encoding', top, (t) => t.rid === 'f' && (t.active === false || t.bytesPerS === 0),
        { timeout: 30000, interval: 0 });
      await ann.page.setViewportSize({ width: 1280, height: 800 });
      await waitFor('Ann receives Bob\'s top layer again', () => received(ann.page),
        (r) => r[bob.id] && r[bob.id].height === 480, { timeout: 30000 });
      for (const p of c.people) assert.deepEqual(await pageErrors(p.page), [], `${p.name}: page errors`);
    } finally {
      await hangUp(c);
    }
  });

test('quality: with 5 % loss and 50 ms delay on one link, what it receives is frozen < 3 % of the time',
  { skip: !canMakeNamespaces() && 'needs root for network namespaces', timeout: 240000 }, async () => {
    // Two participants: Dan behind the lossy link, Ann unimpaired. A third would only add
    // its encoder and two decoders to these two cores, and on this machine the browsers'
    // own stalls then freeze unimpaired receivers too (measured: 2-20 % of the time with
    // three), which measures the machine, not the link.
    const c = await call('lossy', [{ name: 'Ann' }, { name: 'Dan', link: { delayMs: 50, lossPct: 5 } }]);
    try {
      const [ann, dan] = c.people;
      await waitForMedia(dan.page, [ann.id], 'Dan media', 45000);
      await waitForMedia(ann.page, [dan.id], 'Ann media', 45000);
      const series = await sample(c.people, MEASURE_S);
      const report = {};
      for (const [to, from] of [[dan, ann], [ann, dan]]) {
        const s = series.get(to.name);
        const a = s[0].recv[from.id] || { freezeS: 0 };
        const b = s[s.length - 1].recv[from.id] || { freezeS: 0 };
        const seconds = (s[s.length - 1].t - s[0].t) / 1000;
        report[`${to.name}<-${from.name}`] = { frozenShare: (b.freezeS - a.freezeS) / seconds, decodingShare: decodingShare(s, from.id),
          medianHeight: median(s.map((x) => (x.recv[from.id] || {}).height || 0)), timeline: timeline(s, from.id) };
      }
      // What the cameras encoded each second: a stall there freezes every receiver.
      for (const p of c.people) report[`${p.name} sends`] = sendTimeline(series.get(p.name));
      console.log('quality (c):', JSON.stringify(report), 'daemon:', JSON.stringify(adaptation(c.lab)));
      const r = report['Dan<-Ann'];
      assert.ok(r.frozenShare < 0.03, `Dan's picture of Ann frozen ${(100 * r.frozenShare).toFixed(1)} % of the time`);
      assert.ok(r.decodingShare >= 0.9, `Dan decodes Ann ${(100 * r.decodingShare).toFixed(0)} % of the time`);
    } finally {
      await hangUp(c);
    }
  });
