// The mediasoup baseline's control process (benches/src/targets/mediasoup.rs starts it in
// the target namespace, pinned to the target core): one mediasoup worker, one router per
// room, one WebRtcTransport per session, Opus and VP8 producers and consumers signalled
// like our daemon's (same payload types and RTCP feedback, no header extensions).
//
// Requests arrive one JSON object per line on stdin, each answered by one line on stdout:
//   { "id": 1, "method": "publisher", "room": 0, "index": 0, "fingerprint": "AB:..",
//     "audioSsrc": 1, "videoSsrc": 2, "videoRtxSsrc": 3, "feedback": false }
//   { "id": 2, "method": "subscriber", "room": 0, "fingerprint": "AB:..",
//     "publishers": [0], "feedback": false }
// With "feedback" (the feedback scenarios), video negotiates generic NACK, publishers RTX
// and subscribers transport-cc, as sfu-loadgen's sfu target does.
//   -> { "id": 1, "ok": { "ufrag": "..", "pwd": "..", "ip": "10.99.0.1", "port": 40000 } }
//   -> { "id": 1, "error": "..." }
// The first line written is { "ready": true, "pid": WORKER_PID, "version": ".." }.
//
// Environment: SFU_MEDIASOUP_CACHE (where scripts/install-mediasoup.sh put the build),
// SERVER_IP (the address transports listen on).
'use strict';

const os = require('os');
const path = require('path');
const readline = require('readline');

const cache = process.env.SFU_MEDIASOUP_CACHE || path.join(os.homedir(), '.cache', 'sfu-mediasoup');
process.env.MEDIASOUP_WORKER_BIN = path.join(cache, 'bin', 'mediasoup-worker');
const mediasoup = require(path.join(cache, 'node', 'node_modules', 'mediasoup'));

const serverIp = process.env.SERVER_IP || '127.0.0.1';
const AUDIO_PT = 111;
const VIDEO_PT = 96;
const RTX_PT = 97;
const TWCC_URI = 'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01';
const TWCC_ID = 3;

function videoFeedback(feedback) {
  const fb = [{ type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }];
  if (feedback) fb.push({ type: 'nack', parameter: '' }, { type: 'transport-cc', parameter: '' });
  return fb;
}

function audioFeedback(feedback) {
  return feedback ? [{ type: 'transport-cc', parameter: '' }] : [];
}

// What a subscriber can receive. No RTX for subscribers: retransmissions come on the
// original SSRC, which the generator counts as the packet's arrival.
function capabilities(feedback) {
  return {
    codecs: [
      { kind: 'audio', mimeType: 'audio/opus', preferredPayloadType: AUDIO_PT, clockRate: 48000, channels: 2, rtcpFeedback: audioFeedback(feedback) },
      { kind: 'video', mimeType: 'video/VP8', preferredPayloadType: VIDEO_PT, clockRate: 90000, rtcpFeedback: videoFeedback(feedback) },
    ],
    headerExtensions: feedback
      ? ['audio', 'video'].map((kind) => ({ kind, uri: TWCC_URI, preferredId: TWCC_ID, direction: 'sendrecv' }))
      : [],
  };
}

function produceParameters(kind, mid, m) {
  const codecs = kind === 'audio'
    ? [{ mimeType: 'audio/opus', payloadType: AUDIO_PT, clockRate: 48000, channels: 2, rtcpFeedback: [] }]
    : [{ mimeType: 'video/VP8', payloadType: VIDEO_PT, clockRate: 90000, rtcpFeedback: videoFeedback(m.feedback) }];
  const encoding = { ssrc: kind === 'audio' ? m.audioSsrc : m.videoSsrc };
  if (kind === 'video' && m.feedback) {
    codecs.push({ mimeType: 'video/rtx', payloadType: RTX_PT, clockRate: 90000, parameters: { apt: VIDEO_PT }, rtcpFeedback: [] });
    encoding.rtx = { ssrc: m.videoRtxSsrc };
  }
  return {
    mid: String(mid),
    codecs,
    headerExtensions: [],
    encodings: [encoding],
    rtcp: { cname: 'loadgen', reducedSize: true },
  };
}

async function main() {
  // MEDIASOUP_LOG_LEVEL=debug (with DEBUG='mediasoup*') shows the worker's own logs.
  const worker = await mediasoup.createWorker({
    logLevel: process.env.MEDIASOUP_LOG_LEVEL || 'warn',
    logTags: ['info', 'ice', 'dtls', 'srtp', 'rtp'],
    rtcMinPort: 20000,
    rtcMaxPort: 59999,
  });
  worker.on('died', () => {
    process.stderr.write('mediasoup worker died\n');
    process.exit(1);
  });
  const routers = new Map();
  // Producers per global publisher index: { audio, video }.
  const producers = new Map();

  async function router(room) {
    if (!routers.has(room)) {
      routers.set(room, worker.createRouter({
        mediaCodecs: capabilities(true).codecs.map(({ rtcpFeedback, ...codec }) => codec),
      }));
    }
    return routers.get(room);
  }

  async function transport(room, fingerprint) {
    const r = await router(room);
    const t = await r.createWebRtcTransport({
      listenInfos: [{ protocol: 'udp', ip: serverIp }],
      enableUdp: true,
      enableTcp: false,
    });
    // The generator is the DTLS client, as with our daemon.
    await t.connect({
      dtlsParameters: { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: fingerprint }] },
    });
    const c = t.iceCandidates[0];
    return {
      t,
      remote: { ufrag: t.iceParameters.usernameFragment, pwd: t.iceParameters.password, ip: c.address || c.ip, port: c.port },
    };
  }

  const methods = {
    async publisher(m) {
      const { t, remote } = await transport(m.room, m.fingerprint);
      const audio = await t.produce({ kind: 'audio', rtpParameters: produceParameters('audio', 0, m) });
      const video = await t.produce({ kind: 'video', rtpParameters: produceParameters('video', 1, m) });
      producers.set(m.index, { audio, video });
      return remote;
    },
    async subscriber(m) {
      const { t, remote } = await transport(m.room, m.fingerprint);
      const caps = capabilities(m.feedback);
      for (const p of m.publishers) {
        const prod = producers.get(p);
        if (!prod) throw new Error(`unknown publisher ${p}`);
        for (const producer of [prod.audio, prod.video]) {
          await t.consume({ producerId: producer.id, rtpCapabilities: caps, paused: false });
        }
      }
      return remote;
    },
  };

  process.stdout.write(`${JSON.stringify({ ready: true, pid: worker.pid, version: mediasoup.version })}\n`);
  const rl = readline.createInterface({ input: process.stdin });
  // One request at a time, in order: the generator waits for each answer.
  for await (const line of rl) {
    let m;
    try {
      m = JSON.parse(line);
    } catch (e) {
      process.stdout.write(`${JSON.stringify({ id: null, error: `bad JSON: ${e.message}` })}\n`);
      continue;
    }
    try {
      const f = methods[m.method];
      if (!f) throw new Error(`unknown method ${m.method}`);
      const ok = await f(m);
      process.stdout.write(`${JSON.stringify({ id: m.id, ok })}\n`);
    } catch (e) {
      process.stdout.write(`${JSON.stringify({ id: m.id, error: String(e && e.message ? e.message : e) })}\n`);
    }
  }
  worker.close();
}

main().catch((e) => {
  process.stderr.write(`mediasoup control: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
