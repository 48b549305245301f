// Room page: two RTCPeerConnections per participant, like mediasoup's transports.
// - send: this browser offers its microphone and camera (sendonly), the server answers;
// - recv: the server offers one sendonly m-line per track of the others, this browser
//   answers; the server offers again whenever participants come and go.
// Simulcast: the camera goes out as three encodings (q, h, f: a quarter, half and full
// resolution), each with three temporal layers where the browser can; the server forwards
// to each participant the layer its tile needs, pauses what a hidden tile would show, and
// tells the publisher which encodings nobody needs (`setEncodings`). `?simulcast=0`
// publishes a single encoding.
// Nothing needs a reload: when the WebSocket closes (the server restarted) the page
// reconnects with backoff and joins again under the same name; when the media server
// restarted, the server sends `restart` and the page builds new peer connections.
// Names from the server are only ever shown with textContent.

const $ = (id) => document.getElementById(id);
const NAME_RE = /^[\p{L}\p{N}_.'-]+( [\p{L}\p{N}_.'-]+)*$/u;
const PC_CONFIG = { bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' };
// Reconnection backoff: 250 ms doubling up to 5 s, each with +-25 % jitter so that the
// pages of a restarted server do not all come back in the same instant.
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 5000;
// Join refusals worth retrying after a reconnection (the old session may linger on the
// server for a moment; the server may be busy); others need the person.
const RETRY_JOIN = new Set(['NameTaken', 'ServerError', 'RoomFull']);
// Quality indicator: the lowest 0-10 score that lights each of its bars.
const QUALITY_BARS = [1, 4, 7, 9];
// The camera's simulcast encodings, lowest first: for 720p 320x180, 640x360 and 1280x720.
// The bitrates suit those sizes. A smaller camera sends the top ones only (see
// simulcastLayers): for 640x480, h and f (320x240 and 640x480).
const CAMERA_ENCODINGS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1500000 },
];
// A smaller camera's lowest layer (320x240 for 640x480) is what a narrow downlink gets:
// its bitrate suits that size, and its base temporal layer (about 40 % of it) of two
// publishers, with their audio, fits a 400 kbit/s link.
const SMALL_CAMERA_LOW_BITRATE = 250000;
const TEMPORAL_MODE = 'L1T3';
// Before the server said which layer a tile receives: a tile up to this many CSS pixels
// high needs spatial layer 0, 1; higher ones layer 2.
const LAYER_HEIGHTS = [180, 360];
// A layer this much smaller than its tile still looks sharp enough (a little upscaling).
const LAYER_SLACK = 0.9;
// Tiles' width : height, and the gap between them (CSS pixels, as style.css).
const TILE_ASPECT = 4 / 3;
const TILE_GAP = 10;
// How often each tile's received layer and bitrate are measured.
const TILE_STATS_MS = 1000;

const params = new URLSearchParams(location.search);
const room = decodeURIComponent(location.pathname.split('/')[2] || '');

// Everything the page knows, also read by the end-to-end tests.
const state = {
  room,
  /** Random, set once per page load: a reload would change it. */
  pageId: Math.random().toString(36).slice(2),
  name: null,
  peerId: null,
  joined: false,
  /** RTCConfiguration.iceServers from the last `joined`. */
  iceServers: [],
  /** Joined at least once: later closes reconnect instead of asking for a name. */
  everJoined: false,
  left: false,
  ws: null,
  wsState: 'closed',
  /** WebSocket reconnections made, and the attempt number of the current one. */
  reconnects: 0,
  attempt: 0,
  reconnectTimer: null,
  /** The last `restart` epoch from the server (0 before any); offers carry it. */
  epoch: 0,
  restarts: 0,
  localStream: null,
  viewer: false,
  micMuted: false,
  camOff: false,
  sendPc: null,
  recvPc: null,
  /** Other participants: peerId -> {peerId, name, audioMuted, videoMuted}. */
  peers: new Map(),
  /** Consumers of the current receive-side offer: mid -> {mid, consumerId, producerId, peerId, kind}. */
  consumers: new Map(),
  /** Consumers closed by later offers, in order. */
  closedConsumers: [],
  offersAnswered: 0,
  transports: { send: {}, recv: {} },
  /**
   * Quality scores (0-10) from the server's `score` messages: peerId -> kind ->
   * {consumerId, score, producerScore} for tracks received; own: kind -> score.
   */
  scores: new Map(),
  ownScores: {},
  /** Simulcast on this page (`?simulcast=0`: off; off too once the server refused it). */
  simulcast: params.get('simulcast') !== '0',
  /** One's own producers from the server's `answer`: producerId -> {producerId, kind, mid}. */
  producers: new Map(),
  /** From `setEncodings`: producerId -> {rid: active}. */
  sendEncodings: {},
  /** What this page asked for each consumer: consumerId -> {spatialLayer, paused}. */
  layerRequests: new Map(),
  /** From `layersChanged`: consumerId -> {spatialLayer, temporalLayer} (null: none). */
  layers: new Map(),
  /** Measured per other participant's video: peerId -> {consumerId, spatialLayer, temporalLayer, kbps, width, height}. */
  received: new Map(),
  errors: [],
  /** The media server's dominant speaker (`activeSpeaker`), whose tile is highlighted. */
  activeSpeaker: null,
};
window.sfu = { state, inboundStats };

// ---------------------------------------------------------------- UI helpers

function showBanner(text, kind = 'error') {
  const b = $('banner');
  b.textContent = text;
  b.className = `banner ${kind}`;
  b.hidden = false;
}

function hideBanner() {
  $('banner').hidden = true;
}

function setStatus() {
  let text;
  const pcs = [state.sendPc, state.recvPc].filter(Boolean).map((pc) => pc.connectionState);
  if (state.left) text = 'Left';
  else if (!state.ws) text = 'Not joined';
  else if (state.wsState !== 'open' && state.everJoined) text = 'Reconnecting…';
  else if (state.wsState !== 'open') text = state.wsState === 'connecting' ? 'Connecting…' : 'Disconnected';
  else if (!state.joined) text = 'Joining…';
  else if (pcs.includes('failed')) text = 'Media failed';
  else if (pcs.includes('disconnected')) text = 'Reconnecting…';
  else if (pcs.length && pcs.every((s) => s === 'connected')) text = 'Connected';
  else if (pcs.length) text = 'Connecting media…';
  else text = 'Connected (waiting for others)';
  const s = $('status');
  s.textContent = text;
  s.dataset.state = text;
}

const tiles = new Map(); // peerId -> tile

function tileFor(peerId, name, self = false) {
  let t = tiles.get(peerId);
  if (t) return t;
  const el = document.createElement('div');
  el.className = 'tile';
  el.dataset.peerId = peerId;
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.muted = true; // audio plays from its own element; muted video may always autoplay
  const avatar = document.createElement('div');
  avatar.className = 'avatar';
  avatar.textContent = (name || '?').slice(0, 1).toUpperCase();
  const audio = document.createElement('audio');
  audio.autoplay = true;
  const label = document.createElement('div');
  label.className = 'label';
  const nameEl = document.createElement('span');
  nameEl.className = 'name';
  nameEl.textContent = self ? `${name} (you)` : name;
  const badges = document.createElement('span');
  badges.className = 'badges';
  const quality = document.createElement('span');
  quality.className = 'quality';
  quality.setAttribute('role', 'img');
  quality.hidden = true;
  for (let i = 1; i <= QUALITY_BARS.length; i += 1) {
    const bar = document.createElement('span');
    bar.className = 'q-bar';
    quality.append(bar);
  }
  label.append(quality, nameEl, badges);
  const layer = document.createElement('div');
  layer.className = 'layer';
  el.append(video, avatar, audio, label, layer);
  if (self) el.classList.add('self');
  if (peerId === state.activeSpeaker) el.classList.add('speaking');
  $('grid').append(el);
  t = { el, video, audio, badges, avatar, quality, layer, self, height: null, onScreen: null };
  tiles.set(peerId, t);
  fitGrid();
  if (!self) watchTile(t);
  updateTile(peerId);
  return t;
}

function updateTile(peerId) {
  const t = tiles.get(peerId);
  if (!t) return;
  const p = t.self
    ? { audioMuted: state.micMuted || !hasTrack('audio'), videoMuted: state.camOff || !hasTrack('video') }
    : state.peers.get(peerId) || {};
  const hasVideo = Boolean(t.video.srcObject) && !p.videoMuted;
  t.el.classList.toggle('no-video', !hasVideo);
  const badges = [];
  if (p.audioMuted) badges.push('mic off');
  if (p.videoMuted) badges.push('camera off');
  t.badges.textContent = badges.join(' · ');
  updateQuality(peerId, t, p);
}

/**
 * The tile's quality indicator: for another participant, the worse of their upload
 * (producerScore) and this browser's download (score) over their unmuted tracks; for
 * one's own tile, the upload of one's unmuted tracks. Hidden until a score is known.
 */
function updateQuality(peerId, t, p) {
  let value = null;
  let detail = '';
  if (t.self) {
    for (const [kind, score] of Object.entries(state.ownScores)) {
      if ((kind === 'audio' && p.audioMuted) || (kind === 'video' && p.videoMuted)) continue;
      value = value === null ? score : Math.min(value, score);
    }
    detail = 'your upload';
  } else {
    let up = null;
    let down = null;
    for (const [kind, s] of Object.entries(state.scores.get(peerId) || {})) {
      if ((kind === 'audio' && p.audioMuted) || (kind === 'video' && p.videoMuted)) continue;
      up = up === null ? s.producerScore : Math.min(up, s.producerScore);
      down = down === null ? s.score : Math.min(down, s.score);
    }
    if (up !== null) {
      value = Math.min(up, down);
      detail = `their upload ${up}, your download ${down}`;
    }
  }
  t.quality.hidden = value === null;
  if (value === null) return;
  const lit = QUALITY_BARS.filter((min) => value >= min).length;
  t.quality.dataset.score = String(value);
  t.quality.dataset.level = value >= 7 ? 'good' : value >= 4 ? 'fair' : 'poor';
  [...t.quality.children].forEach((bar, i) => bar.classList.toggle('lit', i < lit));
  const text = `Connection quality ${value} of 10 (${detail})`;
  t.quality.setAttribute('aria-label', text);
  t.quality.title = text;
}

function removeTile(peerId) {
  const t = tiles.get(peerId);
  if (!t) return;
  t.video.srcObject = null;
  t.audio.srcObject = null;
  unwatchTile(t);
  t.el.remove();
  tiles.delete(peerId);
  fitGrid();
}

function hasTrack(kind) {
  return Boolean(state.localStream && state.localStream.getTracks().some((t) => t.kind === kind));
}

function playAudio(audio) {
  audio.play().catch(() => {
    // Autoplay policy: sound needs a click on this page first.
    $('sound').hidden = false;
  });
}

$('sound').addEventListener('click', () => {
  for (const t of tiles.values()) if (t.audio.srcObject) t.audio.play().catch(() => {});
  $('sound').hidden = true;
});

// ---------------------------------------------------------------- signaling

function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
}

function receiveCapabilities() {
  if (!window.RTCRtpReceiver || !RTCRtpReceiver.getCapabilities) return undefined;
  const codecs = [];
  const headerExtensions = [];
  for (const kind of ['audio', 'video']) {
    const caps = RTCRtpReceiver.getCapabilities(kind);
    if (!caps) continue;
    for (const c of caps.codecs) {
      const codec = { mimeType: c.mimeType, clockRate: c.clockRate };
      if (c.channels) codec.channels = c.channels;
      if (c.sdpFmtpLine) codec.sdpFmtpLine = c.sdpFmtpLine;
      codecs.push(codec);
    }
    for (const h of caps.headerExtensions) headerExtensions.push({ uri: h.uri });
  }
  return { codecs, headerExtensions };
}

async function getMedia() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return { stream: null, problem: 'Camera and microphone need a secure page (https or localhost): you joined as a viewer.' };
  }
  let firstError = null;
  for (const constraints of [{ audio: true, video: true }, { audio: true }, { video: true }]) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      let problem = null;
      if (!constraints.video) problem = 'No camera available: others hear you but do not see you.';
      else if (!constraints.audio) problem = 'No microphone available: others see you but do not hear you.';
      if (problem && firstError && firstError.name === 'NotAllowedError') problem = `Access was partly denied. ${problem}`;
      return { stream, problem };
    } catch (e) {
      firstError = firstError || e;
      if (e.name === 'NotAllowedError' || e.name === 'SecurityError') break;
    }
  }
  const denied = firstError && (firstError.name === 'NotAllowedError' || firstError.name === 'SecurityError');
  return {
    stream: null,
    problem: denied
      ? 'Camera and microphone access was denied: you joined as a viewer. Allow access and rejoin to be seen and heard.'
      : 'No camera or microphone found: you joined as a viewer.',
  };
}

async function start(name) {
  state.name = name;
  $('prompt').hidden = true;
  $('grid').hidden = false;
  $('controls').hidden = false;
  state.wsState = 'connecting';
  setStatus();
  const media = await getMedia();
  state.localStream = media.stream;
  state.viewer = !media.stream;
  if (media.problem) showBanner(media.problem, 'warning');
  $('mic').disabled = !hasTrack('audio');
  $('cam').disabled = !hasTrack('video');
  connect();
}

/** Opens the WebSocket and joins; on an unexpected close, reconnects with backoff. */
function connect() {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  state.ws = ws;
  state.wsState = 'connecting';
  setStatus();
  ws.onopen = () => {
    state.wsState = 'open';
    setStatus();
    const join = { type: 'join', room, name: state.name, rtpCapabilities: receiveCapabilities() };
    const token = params.get('token');
    if (token) join.token = token;
    send(join);
  };
  // Messages are handled one at a time, in order: each may await the browser.
  let chain = Promise.resolve();
  ws.onmessage = (ev) => {
    chain = chain
      .then(() => (state.ws === ws ? handle(JSON.parse(ev.data)) : undefined))
      .catch((e) => {
        // A peer connection closed under a handler by a reconnection: nothing is wrong.
        if (state.ws !== ws) return;
        state.errors.push({ code: 'ClientError', message: String(e) });
        showBanner(`Something went wrong: ${e}`);
      });
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    state.wsState = 'closed';
    state.joined = false;
    if (state.left) {
      setStatus();
      return;
    }
    if (!state.everJoined) {
      showBanner('Cannot reach the server. Reload the page to try again.');
      setStatus();
      return;
    }
    // The server went away (restart, network): keep the camera, drop the calls, come back.
    resetCall();
    showBanner('The connection to the server was lost. Reconnecting…', 'warning');
    setStatus();
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  if (state.reconnectTimer) return;
  const base = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** state.attempt);
  const delay = Math.round(base * (0.75 + Math.random() * 0.5));
  state.attempt += 1;
  state.reconnectTimer = setTimeout(() => {
    state.reconnectTimer = null;
    state.reconnects += 1;
    connect();
  }, delay);
}

/** Closes both peer connections and forgets the tracks shown; the local camera stays. */
function closePeerConnections() {
  for (const pc of [state.sendPc, state.recvPc]) if (pc) pc.close();
  state.sendPc = null;
  state.recvPc = null;
  state.consumers = new Map();
  state.transports = { send: {}, recv: {} };
  state.scores.clear();
  state.ownScores = {};
  state.producers.clear();
  state.sendEncodings = {};
  state.layerRequests.clear();
  state.layers.clear();
  state.received.clear();
  for (const [id, t] of tiles) {
    if (t.self) continue;
    t.video.srcObject = null;
    t.audio.srcObject = null;
    updateTile(id);
  }
}

/** Out of the room until the next `joined`: no calls, no other participants. */
function resetCall() {
  closePeerConnections();
  for (const [id, t] of [...tiles]) if (!t.self) removeTile(id);
  state.peers.clear();
}

async function handle(msg) {
  switch (msg.type) {
    case 'joined': return onJoined(msg);
    case 'answer': return onAnswer(msg);
    case 'offer': return onOffer(msg);
    case 'peerJoined':
      state.peers.set(msg.peer.peerId, msg.peer);
      tileFor(msg.peer.peerId, msg.peer.name);
      return undefined;
    case 'peerLeft':
      state.peers.delete(msg.peerId);
      state.scores.delete(msg.peerId);
      state.received.delete(msg.peerId);
      removeTile(msg.peerId);
      return undefined;
    case 'producerAdded':
    case 'producerRemoved':
      return undefined; // the next offer shows (or drops) the track
    case 'muteChanged': {
      const p = state.peers.get(msg.peerId);
      if (p) p[msg.kind === 'audio' ? 'audioMuted' : 'videoMuted'] = msg.muted;
      updateTile(msg.peerId);
      return undefined;
    }
    case 'transportState':
      Object.assign(state.transports[msg.direction], msg);
      setStatus();
      return undefined;
    case 'score': return onScore(msg);
    case 'layersChanged': return onLayersChanged(msg);
    case 'setEncodings': return onSetEncodings(msg);
    case 'activeSpeaker': return onActiveSpeaker(msg);
    case 'restart': return onRestart(msg);
    case 'left': return onLeft();
    case 'error': return onError(msg);
    default: return undefined;
  }
}

/** A track's quality changed (or is first known): keep it, redraw the tile. */
function onScore(msg) {
  const score = Number(msg.score);
  if (!Number.isFinite(score) || (msg.kind !== 'audio' && msg.kind !== 'video')) return;
  if (msg.consumerId === undefined) {
    if (msg.peerId !== state.peerId) return;
    state.ownScores[msg.kind] = score;
  } else {
    const scores = state.scores.get(msg.peerId) || {};
    scores[msg.kind] = { consumerId: msg.consumerId, score, producerScore: Number(msg.producerScore) || 0 };
    state.scores.set(msg.peerId, scores);
  }
  updateTile(msg.peerId);
}

function onError(msg) {
  if (msg.inReplyTo === 'offer' && msg.code === 'Unsupported' && state.simulcast && state.sendPc) {
    // A server without simulcast: publish a single encoding instead.
    console.warn(`simulcast refused (${msg.message}): publishing one encoding`);
    state.simulcast = false;
    state.sendPc.close();
    state.sendPc = null;
    return state.localStream ? publish() : undefined;
  }
  if ((msg.inReplyTo === 'preferredLayers' || msg.inReplyTo === 'pauseConsumer') && msg.code === 'NotFound') {
    // The consumer closed while the request was on its way: nothing to do.
    console.debug(`${msg.inReplyTo}: ${msg.message}`);
    return undefined;
  }
  if (!state.joined && msg.inReplyTo === 'join' && state.everJoined && RETRY_JOIN.has(msg.code)) {
    // Rejoining after a reconnection: try again shortly (closing reconnects).
    state.ws.close();
    return;
  }
  state.errors.push(msg);
  if (!state.joined && msg.inReplyTo === 'join') {
    // Let the person fix the name (or see why joining failed).
    state.ws.onclose = null;
    state.ws.close();
    state.wsState = 'closed';
    $('grid').hidden = true;
    $('controls').hidden = true;
    $('grid').replaceChildren();
    tiles.clear();
    if (state.localStream) for (const t of state.localStream.getTracks()) t.stop();
    $('prompt').hidden = false;
    $('prompt-error').textContent = msg.message;
    $('name-input').value = state.name || '';
    setStatus();
    return;
  }
  showBanner(`${msg.message} (${msg.code})`);
}

async function onJoined(msg) {
  const rejoined = state.everJoined;
  state.joined = true;
  state.everJoined = true;
  state.attempt = 0;
  state.epoch = 0;
  // A new participant id after a reconnection: the own tile moves to it.
  for (const [id, t] of [...tiles]) {
    if (t.self && id !== msg.peerId) {
      tiles.delete(id);
      t.el.dataset.peerId = msg.peerId;
      tiles.set(msg.peerId, t);
    }
  }
  state.peerId = msg.peerId;
  // The operator's STUN/TURN servers, credentials minted for this join.
  state.iceServers = msg.iceServers || [];
  if (rejoined) hideBanner();
  setStatus();
  document.title = `${room} – Video chat`;
  const self = tileFor(msg.peerId, msg.name, true);
  if (state.localStream) {
    self.video.srcObject = state.localStream;
    updateTile(msg.peerId);
  }
  for (const p of msg.peers) {
    state.peers.set(p.peerId, p);
    tileFor(p.peerId, p.name);
  }
  // The server knows nothing of mutes made before (re)joining.
  if (state.micMuted) send({ type: 'mute', kind: 'audio', muted: true });
  if (state.camOff) send({ type: 'mute', kind: 'video', muted: true });
  if (state.localStream) await publish();
}

/** The media server restarted: new peer connections, publish again, answer new offers. */
async function onRestart(msg) {
  state.restarts += 1;
  state.epoch = msg.epoch;
  closePeerConnections();
  setStatus();
  if (state.localStream) await publish();
}

async function publish() {
  const pc = new RTCPeerConnection({ ...PC_CONFIG, iceServers: state.iceServers });
  state.sendPc = pc;
  pc.onconnectionstatechange = setStatus;
  for (const track of state.localStream.getTracks()) {
    addSendTransceiver(pc, track, { direction: 'sendonly', streams: [state.localStream] });
  }
  await pc.setLocalDescription(await pc.createOffer());
  // A restart may have come while the browser worked: this connection is stale then.
  if (state.sendPc !== pc) return;
  const msg = { type: 'offer', sdp: pc.localDescription.sdp, epoch: state.epoch };
  // SDP has no bitrates or scales: the server learns them here, by mid.
  const encodings = {};
  for (const tr of pc.getTransceivers()) {
    const list = simulcastEncodings(tr);
    if (list && tr.mid) encodings[tr.mid] = list;
  }
  if (Object.keys(encodings).length) msg.encodings = encodings;
  send(msg);
}

/**
 * Whether to ask for temporal layers (L1T3): unless the browser lists VP8's scalability
 * modes without it. (Chromium lists none yet takes L1T3; a browser that refuses it makes
 * addTransceiver throw, and the page tries again without.)
 */
function temporalLayersSupported() {
  const caps = window.RTCRtpSender && RTCRtpSender.getCapabilities && RTCRtpSender.getCapabilities('video');
  const vp8 = caps && caps.codecs.find((c) => /\/vp8$/i.test(c.mimeType));
  return !vp8 || !Array.isArray(vp8.scalabilityModes) || vp8.scalabilityModes.includes(TEMPORAL_MODE);
}

/**
 * How many simulcast layers a camera of this size gets: what Chromium's encoder sends at
 * most (3 from 960x540 on, 2 from 480x270, else 1; it drops the top layers beyond that, so
 * asking for more would lose the full-size picture). Unknown size: all.
 */
function simulcastLayers(track) {
  const { width = 0, height = 0 } = track.getSettings ? track.getSettings() : {};
  const pixels = width * height;
  if (!pixels || pixels >= 960 * 540) return CAMERA_ENCODINGS.length;
  return pixels >= 480 * 270 ? 2 : 1;
}

/** The camera as simulcast (with temporal layers where supported), falling back step by step. */
function addSendTransceiver(pc, track, init) {
  const layers = track.kind === 'video' && state.simulcast ? simulcastLayers(track) : 1;
  if (layers > 1) {
    const encodings = CAMERA_ENCODINGS.slice(CAMERA_ENCODINGS.length - layers).map((e, i) =>
      (layers < CAMERA_ENCODINGS.length && i === 0 ? { ...e, maxBitrate: SMALL_CAMERA_LOW_BITRATE } : e));
    const tries = temporalLayersSupported()
      ? [encodings.map((e) => ({ ...e, scalabilityMode: TEMPORAL_MODE })), encodings]
      : [encodings];
    for (const sendEncodings of tries) {
      try {
        return pc.addTransceiver(track, { ...init, sendEncodings: sendEncodings.map((e) => ({ ...e })) });
      } catch (e) {
        console.warn(`simulcast encodings refused by the browser: ${e}`);
      }
    }
  }
  return pc.addTransceiver(track, init);
}

/** A transceiver's simulcast encodings as the offer message describes them, or null. */
function simulcastEncodings(tr) {
  const encs = tr.sender.getParameters().encodings || [];
  if (encs.length < 2 || !encs.every((e) => typeof e.rid === 'string')) return null;
  return encs.map((e) => {
    const out = { rid: e.rid };
    if (Number.isFinite(e.maxBitrate) && e.maxBitrate > 0) out.maxBitrate = Math.round(e.maxBitrate);
    if (Number.isFinite(e.scaleResolutionDownBy) && e.scaleResolutionDownBy >= 1) out.scaleResolutionDownBy = e.scaleResolutionDownBy;
    if (e.scalabilityMode === TEMPORAL_MODE) out.scalabilityMode = e.scalabilityMode;
    return out;
  });
}

async function onAnswer(msg) {
  if (!state.sendPc) return;
  const pc = state.sendPc;
  for (const p of msg.producers || []) state.producers.set(p.producerId, p);
  await pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
  for (const p of msg.producers || []) {
    const tr = pc.getTransceivers().find((x) => x.mid === p.mid);
    const encs = tr ? tr.sender.getParameters().encodings || [] : [];
    if (encs.length > 1) state.sendEncodings[p.producerId] = Object.fromEntries(encs.map((e) => [e.rid, e.active !== false]));
  }
  showOwnEncodings();
}

/** Dynacast: the server says which of one's own encodings anyone needs. */
async function onSetEncodings(msg) {
  const p = state.producers.get(msg.producerId);
  const pc = state.sendPc;
  if (!p || !pc || !Array.isArray(msg.encodings)) return;
  const tr = pc.getTransceivers().find((x) => x.mid === p.mid);
  if (!tr) return;
  const params = tr.sender.getParameters();
  let changed = false;
  for (const e of params.encodings || []) {
    const want = msg.encodings.find((x) => x.rid === e.rid);
    if (want && e.active !== Boolean(want.active)) {
      e.active = Boolean(want.active);
      changed = true;
    }
  }
  if (changed) await tr.sender.setParameters(params);
  state.sendEncodings[msg.producerId] = Object.fromEntries((params.encodings || []).map((e) => [e.rid, e.active]));
  showOwnEncodings();
}

function recvPc() {
  if (state.recvPc) return state.recvPc;
  const pc = new RTCPeerConnection({ ...PC_CONFIG, iceServers: state.iceServers });
  state.recvPc = pc;
  pc.onconnectionstatechange = setStatus;
  pc.ontrack = (ev) => {
    const c = state.consumers.get(ev.transceiver.mid);
    const peerId = c ? c.peerId : ev.streams[0] && ev.streams[0].id;
    const peer = state.peers.get(peerId);
    if (!peerId || !peer) return;
    const t = tileFor(peerId, peer.name);
    const stream = new MediaStream([ev.track]);
    if (ev.track.kind === 'video') {
      t.video.srcObject = stream;
      t.video.play().catch(() => {});
    } else {
      t.audio.srcObject = stream;
      playAudio(t.audio);
    }
    updateTile(peerId);
  };
  return pc;
}

async function onOffer(msg) {
  const pc = recvPc();
  const next = new Map(msg.consumers.map((c) => [c.mid, c]));
  for (const [mid, c] of state.consumers) {
    if (!next.has(mid)) {
      state.closedConsumers.push(c);
      state.layerRequests.delete(c.consumerId);
      state.layers.delete(c.consumerId);
      const r = state.received.get(c.peerId);
      if (r && r.consumerId === c.consumerId) {
        state.received.delete(c.peerId);
        showReceived(c.peerId);
      }
      const scores = state.scores.get(c.peerId);
      if (scores && scores[c.kind] && scores[c.kind].consumerId === c.consumerId) {
        delete scores[c.kind];
        updateTile(c.peerId);
      }
      const t = tiles.get(c.peerId);
      const el = t && (c.kind === 'video' ? t.video : t.audio);
      const track = el && el.srcObject && el.srcObject.getTracks()[0];
      const tr = pc.getTransceivers().find((x) => x.mid === mid);
      if (el && tr && track === tr.receiver.track) {
        el.srcObject = null;
        updateTile(c.peerId);
      }
    }
  }
  state.consumers = next;
  await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
  await pc.setLocalDescription(await pc.createAnswer());
  send({ type: 'answer', offerId: msg.offerId, sdp: pc.localDescription.sdp });
  state.offersAnswered += 1;
  // New consumers get their tile's layer and visibility at once.
  for (const peerId of tiles.keys()) syncTile(peerId);
}

function closeMedia() {
  closePeerConnections();
  if (state.localStream) for (const t of state.localStream.getTracks()) t.stop();
  for (const id of [...tiles.keys()]) removeTile(id);
  state.peers.clear();
}

function onLeft() {
  state.left = true;
  state.joined = false;
  closeMedia();
  state.ws.close();
  $('grid').hidden = true;
  $('controls').hidden = true;
  $('left').hidden = false;
  hideBanner();
  setStatus();
}

// ---------------------------------------------------------------- layers per tile

const resizeObserver = new ResizeObserver((entries) => {
  for (const e of entries) {
    const t = tiles.get(e.target.dataset.peerId);
    if (!t || t.el !== e.target) continue;
    t.height = e.contentRect.height;
    syncTile(e.target.dataset.peerId);
  }
});

const intersectionObserver = new IntersectionObserver((entries) => {
  for (const e of entries) {
    const t = tiles.get(e.target.dataset.peerId);
    if (!t || t.el !== e.target) continue;
    t.onScreen = e.isIntersecting;
    syncTile(e.target.dataset.peerId);
  }
});

document.addEventListener('visibilitychange', () => {
  for (const peerId of tiles.keys()) syncTile(peerId);
});

function watchTile(t) {
  resizeObserver.observe(t.el);
  intersectionObserver.observe(t.el);
}

function unwatchTile(t) {
  resizeObserver.unobserve(t.el);
  intersectionObserver.unobserve(t.el);
}

/** The video consumer showing `peerId`, if any. */
function videoConsumer(peerId) {
  for (const c of state.consumers.values()) if (c.peerId === peerId && c.kind === 'video') return c;
  return null;
}

/**
 * The spatial layer a tile this many CSS pixels high needs. Once a layer is received,
 * from its height: each layer below is half as high (as the web client publishes), so the
 * lowest layer at least about as high as the tile is chosen (the server clamps a layer
 * above the top to the top). Before that, fixed heights (LAYER_HEIGHTS).
 */
function layerForHeight(height, c) {
  const now = c && state.layers.get(c.consumerId);
  const r = c && state.received.get(c.peerId);
  if (now && now.spatialLayer !== null && r && r.consumerId === c.consumerId && r.height > 0) {
    const want = height * LAYER_SLACK;
    let layer = 0;
    while (layer < now.spatialLayer + 4 && r.height * 2 ** (layer - now.spatialLayer) < want) layer += 1;
    return layer;
  }
  const i = LAYER_HEIGHTS.findIndex((h) => height <= h);
  return i === -1 ? LAYER_HEIGHTS.length : i;
}

/**
 * Lays the tiles out to fill the grid without scrolling: the column count that makes
 * them largest at TILE_ASPECT. A smaller window makes smaller tiles (which then ask for
 * lower layers) rather than tiles out of sight.
 */
function fitGrid() {
  const grid = $('grid');
  const n = grid.children.length;
  const width = grid.clientWidth - 2 * TILE_GAP;
  const height = grid.clientHeight - 2 * TILE_GAP;
  if (!n || width <= 0 || height <= 0) return;
  let best = { cols: 1, tile: 0 };
  for (let cols = 1; cols <= n; cols += 1) {
    const rows = Math.ceil(n / cols);
    const w = Math.min((width - (cols - 1) * TILE_GAP) / cols, ((height - (rows - 1) * TILE_GAP) / rows) * TILE_ASPECT);
    if (w > best.tile) best = { cols, tile: w };
  }
  const px = `${Math.max(40, Math.floor(best.tile))}px`;
  grid.style.gridTemplateColumns = `repeat(${best.cols}, ${px})`;
}

new ResizeObserver(fitGrid).observe($('grid'));

/**
 * Tells the server what the tile of `peerId` needs, when that changed: the spatial layer
 * its size needs (`preferredLayers`), and whether it is seen at all (`pauseConsumer`: a
 * tile off-screen, or the whole page hidden, receives nothing). This is the subscriber's
 * own pause, apart from the publisher turning its camera off.
 */
function syncTile(peerId) {
  const t = tiles.get(peerId);
  const c = t && !t.self && state.joined ? videoConsumer(peerId) : null;
  if (!c) return;
  const req = state.layerRequests.get(c.consumerId) || {};
  const spatialLayer = layerForHeight(t.height === null ? t.el.clientHeight : t.height, c);
  if (req.spatialLayer !== spatialLayer) {
    send({ type: 'preferredLayers', consumerId: c.consumerId, spatialLayer });
    req.spatialLayer = spatialLayer;
  }
  const paused = document.visibilityState === 'hidden' || t.onScreen === false;
  if (Boolean(req.paused) !== paused) {
    send({ type: 'pauseConsumer', consumerId: c.consumerId, paused });
    req.paused = paused;
  }
  state.layerRequests.set(c.consumerId, req);
}

/** The server's word on the layers a consumer of this page forwards. */
function onLayersChanged(msg) {
  const layer = (v) => (Number.isInteger(v) ? v : null);
  state.layers.set(msg.consumerId, { spatialLayer: layer(msg.spatialLayer), temporalLayer: layer(msg.temporalLayer) });
  const r = state.received.get(msg.peerId);
  if (r && r.consumerId === msg.consumerId) {
    Object.assign(r, state.layers.get(msg.consumerId));
    showReceived(msg.peerId);
  }
  syncTile(msg.peerId);
}

/** On another participant's tile: the layer received, its height and bitrate. */
function showReceived(peerId) {
  const t = tiles.get(peerId);
  const r = state.received.get(peerId);
  if (!t || t.self) return;
  if (!r) {
    t.layer.textContent = '';
    return;
  }
  const parts = [];
  if (r.spatialLayer !== null && r.spatialLayer !== undefined) {
    parts.push(r.temporalLayer === null || r.temporalLayer === undefined ? `S${r.spatialLayer}` : `S${r.spatialLayer}T${r.temporalLayer}`);
  }
  if (r.height) parts.push(`${r.height}p`);
  if (r.kbps !== null) parts.push(`${r.kbps} kbit/s`);
  t.layer.textContent = parts.join(' · ');
  t.layer.title = 'Layer, height and bitrate received';
}

/** On one's own tile: which camera encodings go out (dynacast turns unneeded ones off). */
function showOwnEncodings() {
  const t = tiles.get(state.peerId);
  if (!t) return;
  const video = [...state.producers.values()].find((p) => p.kind === 'video');
  const active = video && state.sendEncodings[video.producerId];
  t.layer.textContent = active ? `sending ${Object.entries(active).filter(([, on]) => on).map(([rid]) => rid).join(' ')}` : '';
  t.layer.title = 'Camera encodings sent';
}

/** Measures each received video: bytes and frame height from inbound-rtp. */
const lastBytes = new Map(); // consumerId -> {bytes, at}
setInterval(async () => {
  const pc = state.recvPc;
  if (!state.joined || !pc) return;
  for (const tr of pc.getTransceivers()) {
    const c = tr.mid && state.consumers.get(tr.mid);
    if (!c || c.kind !== 'video') continue;
    let report;
    try {
      report = await tr.receiver.getStats();
    } catch {
      continue;
    }
    for (const s of report.values()) {
      if (s.type !== 'inbound-rtp') continue;
      const prev = lastBytes.get(c.consumerId);
      const bytes = s.bytesReceived || 0;
      lastBytes.set(c.consumerId, { bytes, at: s.timestamp });
      // Known from the second measurement on.
      const kbps = prev && s.timestamp > prev.at ? Math.max(0, Math.round((8 * (bytes - prev.bytes)) / (s.timestamp - prev.at))) : null;
      const layers = state.layers.get(c.consumerId) || { spatialLayer: null, temporalLayer: null };
      state.received.set(c.peerId, {
        consumerId: c.consumerId, ...layers, kbps, width: s.frameWidth || 0, height: s.frameHeight || 0,
      });
      showReceived(c.peerId);
      syncTile(c.peerId);
    }
  }
  for (const id of lastBytes.keys()) {
    if (![...state.consumers.values()].some((c) => c.consumerId === id)) lastBytes.delete(id);
  }
}, TILE_STATS_MS);

// ---------------------------------------------------------------- controls

function setMuted(kind, muted) {
  for (const t of state.localStream ? state.localStream.getTracks() : []) {
    if (t.kind === kind) t.enabled = !muted;
  }
  if (kind === 'audio') state.micMuted = muted;
  else state.camOff = muted;
  $('mic').textContent = state.micMuted ? 'Unmute' : 'Mute';
  $('cam').textContent = state.camOff ? 'Camera on' : 'Camera off';
  $('mic').setAttribute('aria-pressed', String(state.micMuted));
  $('cam').setAttribute('aria-pressed', String(state.camOff));
  send({ type: 'mute', kind, muted });
  updateTile(state.peerId);
}

$('mic').addEventListener('click', () => setMuted('audio', !state.micMuted));
$('cam').addEventListener('click', () => setMuted('video', !state.camOff));
$('leave').addEventListener('click', () => send({ type: 'leave' }));
$('rejoin').addEventListener('click', () => location.reload());

// ---------------------------------------------------------------- receive stats

/**
 * Per other participant: the inbound-rtp stats of each kind, from the receive side
 * (`window.sfu.inboundStats`, read by the browser tests).
 */
async function inboundStats() {
  const out = {};
  const pc = state.recvPc;
  if (!pc) return out;
  for (const tr of pc.getTransceivers()) {
    const c = tr.mid && state.consumers.get(tr.mid);
    if (!c) continue;
    const report = await tr.receiver.getStats();
    for (const s of report.values()) {
      if (s.type !== 'inbound-rtp') continue;
      const codec = s.codecId && report.get(s.codecId);
      out[c.peerId] = out[c.peerId] || {};
      out[c.peerId][c.kind] = {
        mid: tr.mid,
        consumerId: c.consumerId,
        packetsReceived: s.packetsReceived || 0,
        framesDecoded: s.framesDecoded || 0,
        frameWidth: s.frameWidth || 0,
        frameHeight: s.frameHeight || 0,
        audioLevel: s.audioLevel || 0,
        codec: codec ? codec.mimeType : undefined,
      };
    }
  }
  return out;
}

// ---------------------------------------------------------------- active speaker

/**
 * `activeSpeaker`: the participant the media server hears as the dominant speaker (from
 * the audio levels every browser sends); its tile is highlighted until another one is.
 */
function onActiveSpeaker(msg) {
  state.activeSpeaker = msg.peerId;
  for (const [peerId, t] of tiles) t.el.classList.toggle('speaking', peerId === msg.peerId);
}

// ---------------------------------------------------------------- start

$('room-title').textContent = room;
document.title = `${room} – Video chat`;
setStatus();
const given = (params.get('name') || '').trim();
if (given && NAME_RE.test(given) && [...given].length <= 32) {
  start(given);
} else {
  $('prompt').hidden = false;
  if (given) $('prompt-error').textContent = 'That name cannot be used: letters, digits, spaces and - _ . \' only, up to 32 characters.';
  $('name-input').focus();
}
$('prompt').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = $('name-input').value.trim().replace(/\s+/g, ' ');
  if (!NAME_RE.test(name) || [...name].length > 32) {
    $('prompt-error').textContent = 'Use letters, digits, spaces and - _ . \' only, up to 32 characters.';
    return;
  }
  params.set('name', name);
  history.replaceState(null, '', `${location.pathname}?${params}`);
  $('prompt-error').textContent = '';
  state.left = false;
  state.joined = false;
  start(name);
});
