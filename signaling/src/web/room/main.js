// Room page entry point: wires the store (state.js), the WebSocket (signaling.js), the
// peer connections (media.js) and the view (view.js), and says what each server message
// does. Nothing needs a reload: when the WebSocket closes (the server restarted) the page
// reconnects with backoff and joins again under the same name; when the media server
// restarted, the server sends `restart` and the page builds new peer connections.
import { RETRY_JOIN, TILE_STATS_MS } from './config.js';
import { createStore } from './store.js';
import { tileConsumer, isJoined } from './state.js';
import { layerForHeight } from './layout.js';
import { normalizeName, isValidName } from './names.js';
import { SignalingClient } from './signaling.js';
import { Media, getMedia, receiveCapabilities } from './media.js';
import { RoomView } from './view.js';
import { installTestHook } from './testhook.js';
import { PreJoin } from './prejoin.js';
import { loadPrefs, problemText } from './devices.js';
import { shortcutFor } from './keys.js';
import { AudioLevel } from './levels.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const room = decodeURIComponent(location.pathname.split('/')[2] || '');

const store = createStore({ room, simulcast: params.get('simulcast') !== '0' });
const { state } = store;
const client = new SignalingClient(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`, {
  onOpen,
  onMessage: handle,
  onError: (e) => store.dispatch({ type: 'error', code: 'ClientError', message: String(e) }),
  onClose,
});
const send = (msg) => client.send(msg);
const media = new Media(store, send);
const view = new RoomView({
  onTileGeometry: syncTile,
  onPin: (key) => store.dispatch({ type: 'pin', key }),
  onStats: (key) => store.dispatch({ type: 'toggleStats', key }),
});
store.subscribe((s) => view.render(s));
installTestHook({ store, media });
const prefs = loadPrefs(localStorage);
const prejoin = new PreJoin(prefs, localStorage);

// ---------------------------------------------------------------- joining

/**
 * Joins as `name` with the devices `acquire()` resolves to: {stream, problem, micMuted,
 * camOff, speaker} (from the pre-join screen, or the remembered devices for a link with
 * a name).
 */
async function start(name, acquire) {
  store.dispatch({ type: 'start', name });
  const { stream, problem, micMuted, camOff, speaker } = await acquire();
  media.localStream = stream;
  store.dispatch({ type: 'localMedia', stream, problem: problemText(problem, true), speaker,
    hasAudio: media.hasTrack('audio'), hasVideo: media.hasTrack('video') });
  if (micMuted) setMuted('audio', true);
  if (camOff) setMuted('video', true);
  watchMutedSpeech(stream);
  client.connect();
}

function onOpen() {
  store.dispatch({ type: 'wsOpen' });
  const join = { type: 'join', room, name: state.name, rtpCapabilities: receiveCapabilities() };
  const token = params.get('token');
  if (token) join.token = token;
  send(join);
}

function onClose() {
  media.closePeerConnections();
  store.dispatch({ type: 'wsClosed' });
  if (state.phase === 'reconnecting' && client.scheduleReconnect(state.attempt, () => {
    store.dispatch({ type: 'reconnect' });
    store.dispatch({ type: 'wsConnecting' });
  })) {
    store.dispatch({ type: 'reconnectScheduled' });
  }
}

async function onJoined(msg) {
  store.dispatch({ type: 'joined', peerId: msg.peerId, name: msg.name, peers: msg.peers, iceServers: msg.iceServers });
  // The server knows nothing of mutes made before (re)joining.
  if (state.micMuted) send({ type: 'mute', kind: 'audio', muted: true });
  if (state.camOff) send({ type: 'mute', kind: 'video', muted: true });
  if (media.localStream) await media.publish();
  await media.publishScreen();
}

/** The media server restarted: new peer connections, publish again, answer new offers. */
async function onRestart(msg) {
  media.closePeerConnections();
  store.dispatch({ type: 'restart', epoch: msg.epoch });
  if (media.localStream) await media.publish();
  await media.publishScreen();
}

function onLeft() {
  stopSpeechWatch();
  media.stopScreen();
  media.closePeerConnections();
  media.stopLocal();
  store.dispatch({ type: 'left' });
  client.closeQuietly();
}

function onError(msg) {
  if (msg.inReplyTo === 'offer' && msg.code === 'Unsupported' && state.simulcast && media.sendPc) {
    // A server without simulcast: publish a single encoding instead.
    console.warn(`simulcast refused (${msg.message}): publishing one encoding`);
    store.dispatch({ type: 'simulcastRefused' });
    return media.localStream ? media.publish() : undefined;
  }
  if ((msg.inReplyTo === 'preferredLayers' || msg.inReplyTo === 'pauseConsumer') && msg.code === 'NotFound') {
    // The consumer closed while the request was on its way: nothing to do.
    console.debug(`${msg.inReplyTo}: ${msg.message}`);
    return undefined;
  }
  if (!isJoined(state) && msg.inReplyTo === 'join' && state.everJoined && RETRY_JOIN.has(msg.code)) {
    // Rejoining after a reconnection: try again shortly (closing reconnects).
    client.close();
    return undefined;
  }
  if (!isJoined(state) && msg.inReplyTo === 'join') {
    client.closeQuietly();
    stopSpeechWatch();
    media.stopScreen();
    media.closePeerConnections();
    media.stopLocal();
    media.localStream = null;
    store.dispatch({ type: 'joinRefused', code: msg.code, message: msg.message });
    $('name-input').value = state.name || '';
    prejoin.open();
    return undefined;
  }
  store.dispatch({ type: 'error', code: msg.code, message: msg.message });
  return undefined;
}

async function handle(msg) {
  switch (msg.type) {
    case 'joined': return onJoined(msg);
    case 'answer': return media.onAnswer(msg);
    case 'offer':
      await media.onOffer(msg);
      // New consumers get their tile's layer and visibility at once.
      for (const key of view.tileKeys()) syncTile(key);
      return undefined;
    case 'peerJoined':
    case 'peerLeft':
    case 'muteChanged':
    case 'transportState':
    case 'score':
    case 'activeSpeaker':
    case 'chatMessage':
    case 'chatHistory':
      store.dispatch(msg);
      return undefined;
    case 'layersChanged':
      store.dispatch(msg);
      for (const key of view.tileKeys()) syncTile(key);
      return undefined;
    case 'producerAdded':
    case 'producerRemoved':
      return undefined; // the next offer shows (or drops) the track
    case 'setEncodings': return media.onSetEncodings(msg);
    case 'restart': return onRestart(msg);
    case 'left': return onLeft();
    case 'error': return onError(msg);
    default: return undefined;
  }
}

// ---------------------------------------------------------------- layers per tile

/**
 * Tells the server what the tile of `peerId` needs, when that changed: the spatial layer
 * its size needs (`preferredLayers`), and whether it is seen at all (`pauseConsumer`: a
 * tile off-screen, or the whole page hidden, receives nothing). This is the subscriber's
 * own pause, apart from the publisher turning its camera off.
 */
function syncTile(key) {
  const geometry = view.tileGeometry(key);
  const c = geometry && isJoined(state) ? tileConsumer(state, key) : null;
  if (!c) return;
  const req = state.layerRequests.get(c.consumerId) || {};
  const r = state.received.get(key);
  const spatialLayer = layerForHeight(geometry.height, state.layers.get(c.consumerId),
    r && r.consumerId === c.consumerId ? r.height : 0);
  const request = {};
  if (req.spatialLayer !== spatialLayer) {
    send({ type: 'preferredLayers', consumerId: c.consumerId, spatialLayer });
    request.spatialLayer = spatialLayer;
  }
  const paused = document.visibilityState === 'hidden' || geometry.onScreen === false;
  if (Boolean(req.paused) !== paused) {
    send({ type: 'pauseConsumer', consumerId: c.consumerId, paused });
    request.paused = paused;
  }
  if (Object.keys(request).length) store.dispatch({ type: 'layerRequested', consumerId: c.consumerId, request });
}

document.addEventListener('visibilitychange', () => {
  for (const key of view.tileKeys()) syncTile(key);
});

setInterval(async () => {
  if (!isJoined(state)) return;
  await media.measureReceived();
  for (const key of view.tileKeys()) syncTile(key);
}, TILE_STATS_MS);

// ---------------------------------------------------------------- controls

function setMuted(kind, muted) {
  media.enableTracks(kind, !muted);
  store.dispatch({ type: 'localMute', kind, muted });
  send({ type: 'mute', kind, muted });
}

$('mic').addEventListener('click', () => setMuted('audio', !state.micMuted));
$('cam').addEventListener('click', () => setMuted('video', !state.camOff));
$('leave').addEventListener('click', () => send({ type: 'leave' }));
$('rejoin').addEventListener('click', () => location.reload());

function openChat(open) {
  store.dispatch({ type: 'chatOpen', open });
  if (open) $('chat-input').focus();
  else $('chat-toggle').focus();
}

/** Starts or stops sharing the screen. */
async function toggleScreen() {
  if (media.screenStream) {
    media.stopScreen();
    return;
  }
  if (!isJoined(state)) return;
  try {
    await media.startScreen();
  } catch (e) {
    store.dispatch({ type: 'error', code: 'ClientError', message: `screen sharing failed: ${e.message || e}` });
  }
}

media.onScreenEnded = () => media.stopScreen();

function toggleLayout() {
  store.dispatch({ type: 'layout', layout: state.layout === 'speaker' ? 'grid' : 'speaker' });
}

function toggleFullscreen() {
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  else document.documentElement.requestFullscreen().catch(() => {});
}

$('layout').addEventListener('click', toggleLayout);
$('fullscreen').addEventListener('click', toggleFullscreen);
document.addEventListener('fullscreenchange', () => {
  $('fullscreen').textContent = document.fullscreenElement ? 'Exit full screen' : 'Full screen';
});

// Keyboard shortcuts (keys.js), during the call only.
document.addEventListener('keydown', (e) => {
  if (state.screen !== 'call' || e.repeat) return;
  const t = e.target;
  const what = shortcutFor({
    key: e.key, ctrlKey: e.ctrlKey, metaKey: e.metaKey, altKey: e.altKey,
    tagName: t && t.tagName ? t.tagName : null, editable: Boolean(t && t.isContentEditable),
  });
  if (!what) return;
  e.preventDefault();
  if (what === 'mic' && !$('mic').disabled) setMuted('audio', !state.micMuted);
  else if (what === 'camera' && !$('cam').disabled) setMuted('video', !state.camOff);
  else if (what === 'share' && !$('share').hidden) toggleScreen();
  else if (what === 'chat') openChat(!state.chat.open);
  else if (what === 'layout') toggleLayout();
  else if (what === 'fullscreen') toggleFullscreen();
});

// Notices stay a few seconds each.
const NOTICE_MS = 5000;
const noticeTimers = new Set();
store.subscribe((s) => {
  for (const n of s.notices) {
    if (noticeTimers.has(n.id)) continue;
    noticeTimers.add(n.id);
    setTimeout(() => {
      noticeTimers.delete(n.id);
      store.dispatch({ type: 'dismissNotice', id: n.id });
    }, NOTICE_MS);
  }
});

/**
 * "You are muted": the microphone hears sound (a level above SPEECH_LEVEL in at least two
 * of the last second's five samples: speech has pauses) while muted; at most once per
 * MUTED_NOTICE_MS. Measured on a clone of the track, which stays enabled while the sent
 * one is muted.
 */
const SPEECH_LEVEL = 0.02;
const MUTED_NOTICE_MS = 15000;
let stopSpeechWatch = () => {};
function watchMutedSpeech(stream) {
  stopSpeechWatch();
  const track = stream && stream.getAudioTracks()[0];
  if (!track) return;
  const clone = track.clone();
  clone.enabled = true;
  const meter = new AudioLevel();
  meter.attach(new MediaStream([clone]));
  const recent = [];
  let lastNotice = -Infinity;
  const timer = setInterval(() => {
    recent.push(meter.level() > SPEECH_LEVEL);
    if (recent.length > 5) recent.shift();
    const speaking = recent.filter(Boolean).length >= 2;
    if (speaking && state.micMuted && isJoined(state) && performance.now() - lastNotice > MUTED_NOTICE_MS) {
      lastNotice = performance.now();
      store.dispatch({ type: 'notice', text: 'You are muted: press M or the Mute button to speak' });
    }
  }, 200);
  stopSpeechWatch = () => {
    clearInterval(timer);
    meter.detach();
    clone.stop();
    stopSpeechWatch = () => {};
  };
}
$('share').addEventListener('click', toggleScreen);

$('chat-toggle').addEventListener('click', () => openChat(!state.chat.open));
$('chat-close').addEventListener('click', () => openChat(false));
$('chat-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('chat-input').value.trim();
  if (!text || !isJoined(state)) return;
  send({ type: 'chat', text });
  $('chat-input').value = '';
});

$('prompt').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = normalizeName($('name-input').value);
  if (!isValidName(name)) {
    store.dispatch({ type: 'askName', error: 'Use letters, digits, spaces and - _ . \' only, up to 32 characters.' });
    return;
  }
  params.set('name', name);
  history.replaceState(null, '', `${location.pathname}?${params}`);
  start(name, () => prejoin.take(name));
});

// ---------------------------------------------------------------- start

$('room-title').textContent = room;
document.title = `${room} – Video chat`;
view.render(state);
const given = normalizeName(params.get('name'));
if (given && isValidName(given)) {
  // A link with a name joins at once, with the remembered devices.
  start(given, async () => ({ ...(await getMedia(prefs)), speaker: prefs.speaker }));
} else {
  store.dispatch({ type: 'askName', error: given ? 'That name cannot be used: letters, digits, spaces and - _ . \' only, up to 32 characters.' : '' });
  $('name-input').focus();
  prejoin.open();
}
