// The room state: everything the page knows about the call, as plain data, and the one
// function that changes it. Every change goes through `reduce(state, action)` (via the
// store in store.js); views read the state and never write it. No DOM, no network here:
// unit-tested with `node --test` (e2e/unit).
//
// Media streams appear only as opaque values (`tracks`); peer connections and the camera
// are resources owned by media.js, not state.
import { appendMessages, isChatEntry } from './chat.js';

/**
 * Where the call stands: idle (not started or asked for a name), connecting (first
 * WebSocket), joining (WebSocket open, join sent), joined, reconnecting (the WebSocket
 * closed after a join: backing off), closed (could not reach the server at all), left.
 */
export const PHASES = ['idle', 'connecting', 'joining', 'joined', 'reconnecting', 'closed', 'left'];

export function initialState({ room = '', simulcast = true } = {}) {
  return {
    room,
    name: null,
    peerId: null,
    /** RTCConfiguration.iceServers from the last `joined` (credentials minted per join). */
    iceServers: [],
    phase: 'idle',
    /** Which part of the page shows: the name prompt, the call, or the "you left" notice. */
    screen: 'prompt',
    promptError: '',
    /** Joined at least once: later closes reconnect instead of asking for a name. */
    everJoined: false,
    /** The attempt number of the current reconnection, and reconnections made. */
    attempt: 0,
    reconnects: 0,
    /** The last `restart` epoch from the server (0 before any); offers carry it. */
    epoch: 0,
    restarts: 0,
    /** The camera and microphone stream (opaque here; media.js owns its tracks). */
    localStream: null,
    /** One's own screen share while sharing (opaque; media.js owns it). */
    localScreen: null,
    /** The chosen speaker (audio output device id; null: the default). */
    speaker: null,
    viewer: false,
    hasAudio: false,
    hasVideo: false,
    micMuted: false,
    camOff: false,
    /** Simulcast on this page (`?simulcast=0`: off; off too once the server refused it). */
    simulcast,
    /** Other participants: peerId -> {peerId, name, audioMuted, videoMuted}. */
    peers: new Map(),
    /** Consumers of the current receive-side offer: mid -> {mid, consumerId, producerId, peerId, kind}. */
    consumers: new Map(),
    /** What each participant's tiles play: peerId -> audio | video | screen -> {mid, stream}. */
    tracks: new Map(),
    /** Quality scores (0-10): peerId -> kind -> {consumerId, score, producerScore}. */
    scores: new Map(),
    /** One's own upload scores: kind -> score. */
    ownScores: {},
    /** One's own producers from the server's `answer`: producerId -> {producerId, kind, mid}. */
    producers: new Map(),
    /** Which of one's own simulcast encodings are sent: producerId -> {rid: active}. */
    sendEncodings: {},
    /** What this page asked for each consumer: consumerId -> {spatialLayer, paused}. */
    layerRequests: new Map(),
    /** From `layersChanged`: consumerId -> {spatialLayer, temporalLayer} (null: none). */
    layers: new Map(),
    /** Measured per tile of another participant (tileKeyOf): {consumerId, spatialLayer, temporalLayer, kbps, width, height}. */
    received: new Map(),
    /** The peer connections' connectionState: send / recv. */
    pcStates: {},
    transports: { send: {}, recv: {} },
    /** The media server's dominant speaker (`activeSpeaker`). */
    activeSpeaker: null,
    /** Errors shown to the person (server `error` messages, failures of the page). */
    errors: [],
    /** The message bar: {text, kind: 'error' | 'warning'} or null. */
    banner: null,
    /** Text chat: messages (oldest first), unread ones from others, and whether the panel is open. */
    chat: { messages: [], unread: 0, open: false },
    /** grid, or speaker (the participant last heard leads). */
    layout: 'grid',
    /** The tile key pinned to lead the layout (null: none). */
    pinned: null,
    /** The other participant last named the active speaker (leads the speaker view). */
    lastSpeaker: null,
    /** Tiles whose stats overlay is open (tile keys). */
    statsShown: new Set(),
    /** Short notices (joins, leaves, "you are muted"): [{id, text}], newest last. */
    notices: [],
    nextNoticeId: 1,
  };
}

/** Notices shown at once; older ones go. */
export const MAX_NOTICES = 3;

function notice(s, text) {
  s.notices = [...s.notices, { id: s.nextNoticeId, text }].slice(-MAX_NOTICES);
  s.nextNoticeId += 1;
}

/** Forgets the peer connections' view of the call; the local camera and the peers stay. */
function resetMedia(s) {
  s.consumers = new Map();
  s.tracks = new Map();
  s.scores = new Map();
  s.ownScores = {};
  s.producers = new Map();
  s.sendEncodings = {};
  s.layerRequests = new Map();
  s.layers = new Map();
  s.received = new Map();
  s.pcStates = {};
  s.transports = { send: {}, recv: {} };
}

/** Out of the room until the next `joined`: no calls, no other participants. */
function resetCall(s) {
  resetMedia(s);
  s.peers = new Map();
  s.activeSpeaker = null;
}

const layerOf = (v) => (Number.isInteger(v) ? v : null);

/** Drops what a consumer closed by a new offer left behind. */
function dropConsumer(s, c) {
  s.layerRequests.delete(c.consumerId);
  s.layers.delete(c.consumerId);
  const key = tileKeyOf(c);
  const r = s.received.get(key);
  if (r && r.consumerId === c.consumerId) s.received.delete(key);
  const scores = s.scores.get(c.peerId);
  if (scores && scores[c.kind] && scores[c.kind].consumerId === c.consumerId) delete scores[c.kind];
  const tracks = s.tracks.get(c.peerId);
  const slot = slotOf(c);
  if (tracks && tracks[slot] && tracks[slot].mid === c.mid) delete tracks[slot];
}

/**
 * Applies `action` to `s` (in place) and returns `s`. Unknown actions change nothing.
 * Actions from the server carry its message's fields; malformed ones are ignored.
 */
export function reduce(s, action) {
  switch (action.type) {
    case 'start':
      s.name = action.name;
      s.screen = 'call';
      s.promptError = '';
      s.phase = 'connecting';
      s.banner = null;
      break;
    case 'localMedia':
      s.localStream = action.stream || null;
      s.hasAudio = Boolean(action.hasAudio);
      s.hasVideo = Boolean(action.hasVideo);
      s.viewer = !s.hasAudio && !s.hasVideo;
      s.banner = action.problem ? { text: action.problem, kind: 'warning' } : null;
      s.speaker = action.speaker || null;
      break;
    case 'askName':
      s.screen = 'prompt';
      s.phase = 'idle';
      s.promptError = action.error || '';
      break;
    case 'wsConnecting':
      s.phase = s.everJoined ? 'reconnecting' : 'connecting';
      break;
    case 'wsOpen':
      s.phase = 'joining';
      break;
    case 'wsClosed':
      if (s.phase === 'left') break;
      if (!s.everJoined) {
        s.phase = 'closed';
        s.banner = { text: 'Cannot reach the server. Reload the page to try again.', kind: 'error' };
        break;
      }
      // The server went away (restart, network): keep the camera, drop the calls, come back.
      resetCall(s);
      s.phase = 'reconnecting';
      s.banner = { text: 'The connection to the server was lost. Reconnecting…', kind: 'warning' };
      break;
    case 'reconnectScheduled':
      s.attempt += 1;
      break;
    case 'reconnect':
      s.reconnects += 1;
      break;
    case 'joined': {
      const rejoined = s.everJoined;
      s.phase = 'joined';
      s.everJoined = true;
      s.attempt = 0;
      s.epoch = 0;
      s.peerId = action.peerId;
      s.iceServers = Array.isArray(action.iceServers) ? action.iceServers : [];
      if (typeof action.name === 'string') s.name = action.name;
      if (rejoined) s.banner = null;
      s.peers = new Map();
      for (const p of Array.isArray(action.peers) ? action.peers : []) s.peers.set(p.peerId, { ...p });
      break;
    }
    case 'joinRefused':
      // Let the person fix the name (or see why joining failed).
      s.errors.push({ code: action.code, message: action.message });
      resetCall(s);
      s.localStream = null;
      s.phase = 'idle';
      s.screen = 'prompt';
      s.promptError = action.message || 'Joining failed';
      break;
    case 'peerJoined':
      if (action.peer && action.peer.peerId) {
        s.peers.set(action.peer.peerId, { ...action.peer });
        notice(s, `${action.peer.name} joined`);
      }
      break;
    case 'peerLeft': {
      const p = s.peers.get(action.peerId);
      if (p) notice(s, `${p.name} left`);
      if (s.lastSpeaker === action.peerId) s.lastSpeaker = null;
      if (s.pinned && s.pinned.startsWith(action.peerId)) s.pinned = null;
      s.peers.delete(action.peerId);
      s.scores.delete(action.peerId);
      s.received.delete(action.peerId);
      s.received.delete(`${action.peerId}${SCREEN_SUFFIX}`);
      s.tracks.delete(action.peerId);
      if (s.activeSpeaker === action.peerId) s.activeSpeaker = null;
      break;
    }
    case 'muteChanged': {
      const p = s.peers.get(action.peerId);
      if (p) p[action.kind === 'audio' ? 'audioMuted' : 'videoMuted'] = Boolean(action.muted);
      break;
    }
    case 'localMute':
      if (action.kind === 'audio') s.micMuted = Boolean(action.muted);
      else s.camOff = Boolean(action.muted);
      break;
    case 'transportState':
      if (action.direction === 'send' || action.direction === 'recv') Object.assign(s.transports[action.direction], action);
      break;
    case 'pcState':
      if (action.state === null) delete s.pcStates[action.direction];
      else s.pcStates[action.direction] = action.state;
      break;
    case 'score': {
      const score = Number(action.score);
      if (!Number.isFinite(score) || (action.kind !== 'audio' && action.kind !== 'video')) break;
      if (action.consumerId === undefined) {
        if (action.peerId === s.peerId) s.ownScores[action.kind] = score;
      } else if (!isScreenConsumer(s, action.consumerId)) {
        // (The quality bars are the camera tile's: a screen share's score is not shown.)
        const scores = s.scores.get(action.peerId) || {};
        scores[action.kind] = { consumerId: action.consumerId, score, producerScore: Number(action.producerScore) || 0 };
        s.scores.set(action.peerId, scores);
      }
      break;
    }
    case 'layersChanged': {
      const layers = { spatialLayer: layerOf(action.spatialLayer), temporalLayer: layerOf(action.temporalLayer) };
      s.layers.set(action.consumerId, layers);
      const c = consumerById(s, action.consumerId);
      const r = s.received.get(c ? tileKeyOf(c) : action.peerId);
      if (r && r.consumerId === action.consumerId) Object.assign(r, layers);
      break;
    }
    case 'received': {
      const layers = s.layers.get(action.consumerId) || { spatialLayer: null, temporalLayer: null };
      s.received.set(action.key || action.peerId, {
        consumerId: action.consumerId, ...layers, kbps: action.kbps, width: action.width, height: action.height,
        fps: action.fps, lossPct: action.lossPct, rttMs: action.rttMs,
      });
      break;
    }
    case 'offer': {
      const next = new Map((Array.isArray(action.consumers) ? action.consumers : []).map((c) => [c.mid, c]));
      for (const [mid, c] of s.consumers) if (!next.has(mid)) dropConsumer(s, c);
      s.consumers = next;
      break;
    }
    case 'track': {
      const tracks = s.tracks.get(action.peerId) || {};
      tracks[action.slot || action.kind] = { mid: action.mid, stream: action.stream };
      s.tracks.set(action.peerId, tracks);
      break;
    }
    case 'producers':
      for (const p of Array.isArray(action.producers) ? action.producers : []) s.producers.set(p.producerId, p);
      break;
    case 'sendEncodings':
      s.sendEncodings[action.producerId] = action.active;
      break;
    case 'layerRequested':
      s.layerRequests.set(action.consumerId, { ...(s.layerRequests.get(action.consumerId) || {}), ...action.request });
      break;
    case 'activeSpeaker':
      s.activeSpeaker = action.peerId || null;
      if (s.activeSpeaker && s.activeSpeaker !== s.peerId && s.peers.has(s.activeSpeaker)) s.lastSpeaker = s.activeSpeaker;
      break;
    case 'layout':
      s.layout = action.layout === 'speaker' ? 'speaker' : 'grid';
      break;
    case 'pin':
      s.pinned = s.pinned === action.key ? null : action.key || null;
      break;
    case 'toggleStats': {
      const shown = new Set(s.statsShown);
      if (shown.has(action.key)) shown.delete(action.key);
      else shown.add(action.key);
      s.statsShown = shown;
      break;
    }
    case 'notice':
      notice(s, action.text);
      break;
    case 'dismissNotice':
      s.notices = s.notices.filter((n) => n.id !== action.id);
      break;
    case 'restart':
      // The media server restarted: new peer connections (media.js), same participants.
      s.restarts += 1;
      s.epoch = Number.isInteger(action.epoch) ? action.epoch : s.epoch;
      resetMedia(s);
      break;
    case 'screenShare':
      s.localScreen = action.stream || null;
      break;
    case 'simulcastRefused':
      s.simulcast = false;
      break;
    case 'error':
      s.errors.push({ code: action.code, message: action.message });
      s.banner = { text: action.code === 'ClientError' ? `Something went wrong: ${action.message}` : `${action.message} (${action.code})`, kind: 'error' };
      break;
    case 'chatMessage':
      if (!isChatEntry(action)) break;
      s.chat = {
        ...s.chat,
        messages: appendMessages(s.chat.messages, [action]),
        unread: !s.chat.open && action.peerId !== s.peerId ? s.chat.unread + 1 : s.chat.unread,
      };
      break;
    case 'chatHistory':
      // After a (re)join: the room's history replaces what the page had.
      s.chat = { ...s.chat, messages: appendMessages([], Array.isArray(action.messages) ? action.messages : []) };
      break;
    case 'chatOpen':
      s.chat = { ...s.chat, open: Boolean(action.open), unread: action.open ? 0 : s.chat.unread };
      break;
    case 'banner':
      s.banner = action.text ? { text: action.text, kind: action.kind || 'error' } : null;
      break;
    case 'left':
      resetCall(s);
      s.phase = 'left';
      s.screen = 'left';
      s.banner = null;
      break;
    default:
      break;
  }
  return s;
}

/** Tile keys of screen shares: the sharer's peerId with this suffix (ids are hex). */
export const SCREEN_SUFFIX = '/screen';

/** The tile a consumer shows on: its participant's (camera), or their screen share's. */
export function tileKeyOf(c) {
  return c.source === 'screen' ? `${c.peerId}${SCREEN_SUFFIX}` : c.peerId;
}

/** Where a consumer's track plays in `tracks`: audio, video (camera) or screen. */
export function slotOf(c) {
  return c.source === 'screen' ? 'screen' : c.kind;
}

function consumerById(s, consumerId) {
  for (const c of s.consumers.values()) if (c.consumerId === consumerId) return c;
  return null;
}

function isScreenConsumer(s, consumerId) {
  const c = consumerById(s, consumerId);
  return Boolean(c && c.source === 'screen');
}

/** The video consumer showing the tile `key` (tileKeyOf), if any. */
export function tileConsumer(s, key) {
  for (const c of s.consumers.values()) if (c.kind === 'video' && tileKeyOf(c) === key) return c;
  return null;
}

/** The camera consumer of `peerId`, if any. */
export function videoConsumer(s, peerId) {
  return tileConsumer(s, peerId);
}

/** Whether the call is up (joined to the room on an open WebSocket). */
export function isJoined(s) {
  return s.phase === 'joined';
}
