// Media: the camera and microphone, and two RTCPeerConnections, like mediasoup's transports.
// - send: this browser offers its microphone and camera (sendonly), the server answers;
// - recv: the server offers one sendonly m-line per track of the others, this browser
//   answers; the server offers again whenever participants come and go.
// Simulcast: the camera goes out as up to three encodings (q, h, f: a quarter, half and
// full resolution), each with three temporal layers where the browser can; the server
// forwards to each participant the layer its tile needs, pauses what a hidden tile would
// show, and tells the publisher which encodings nobody needs (`setEncodings`).
// `?simulcast=0` publishes a single encoding.
// The peer connections are resources, not state: what they show goes to the store.
import { PC_CONFIG } from './config.js';
import { mediaAttempts } from './devices.js';
import { simulcastLayers, cameraEncodingTries, temporalLayersSupported, offerEncodings, applyActive, SCREEN_ENCODING } from './encodings.js';
import { tileKeyOf, slotOf } from './state.js';

/** The browser's receive capabilities, as the join message carries them. */
export function receiveCapabilities() {
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

/**
 * Camera and microphone (the chosen devices, see devices.js), or as much of them as there
 * is: {stream, problem}, where problem is null when both came, else {code, partlyDenied}
 * (devices.js problemText says it in words).
 */
export async function getMedia(prefs) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return { stream: null, problem: { code: 'insecure' } };
  }
  let firstError = null;
  for (const constraints of mediaAttempts(prefs)) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      let problem = null;
      if (!constraints.video) problem = { code: 'noCamera' };
      else if (!constraints.audio) problem = { code: 'noMicrophone' };
      if (problem) problem.partlyDenied = Boolean(firstError && firstError.name === 'NotAllowedError');
      return { stream, problem };
    } catch (e) {
      firstError = firstError || e;
      if (e.name === 'NotAllowedError' || e.name === 'SecurityError') break;
      // A chosen device that is gone: any other will do.
      if (e.name === 'OverconstrainedError') firstError = null;
    }
  }
  const denied = firstError && (firstError.name === 'NotAllowedError' || firstError.name === 'SecurityError');
  return { stream: null, problem: { code: denied ? 'denied' : 'none' } };
}

/** The devices the browser lists (labels only once access was granted). */
export async function listDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return [];
  try {
    return await navigator.mediaDevices.enumerateDevices();
  } catch {
    return [];
  }
}

export class Media {
  /** `store`: the room store; `send(msg)`: to the server. */
  constructor(store, send) {
    this.store = store;
    this.send = send;
    this.localStream = null;
    this.sendPc = null;
    this.recvPc = null;
    /** The screen share: its stream and its own send connection (a transport of its own on the server). */
    this.screenStream = null;
    this.screenPc = null;
    /** consumerId -> {bytes, at}: the last measurement of each received video. */
    this.lastBytes = new Map();
  }

  hasTrack(kind) {
    return Boolean(this.localStream && this.localStream.getTracks().some((t) => t.kind === kind));
  }

  /** Mutes (or unmutes) the local tracks of `kind`: they send silence or black. */
  enableTracks(kind, enabled) {
    for (const t of this.localStream ? this.localStream.getTracks() : []) if (t.kind === kind) t.enabled = enabled;
  }

  stopLocal() {
    for (const t of this.localStream ? this.localStream.getTracks() : []) t.stop();
  }

  watch(pc, direction) {
    pc.onconnectionstatechange = () => {
      const current = { send: this.sendPc, recv: this.recvPc, screen: this.screenPc }[direction];
      if (current === pc) this.store.dispatch({ type: 'pcState', direction, state: pc.connectionState });
    };
  }

  /** Closes both peer connections; the local camera stays. */
  /** The peer connections' configuration: the operator's STUN/TURN servers included. */
  pcConfig() {
    return { ...PC_CONFIG, iceServers: this.store.state.iceServers };
  }

  closePeerConnections() {
    for (const pc of [this.sendPc, this.recvPc, this.screenPc]) if (pc) pc.close();
    this.sendPc = null;
    this.recvPc = null;
    this.screenPc = null;
    this.lastBytes.clear();
  }

  /** Offers the local tracks on a new send connection. */
  async publish() {
    if (this.sendPc) this.sendPc.close();
    const pc = new RTCPeerConnection(this.pcConfig());
    this.sendPc = pc;
    this.watch(pc, 'send');
    for (const track of this.localStream.getTracks()) {
      this.addSendTransceiver(pc, track, { direction: 'sendonly', streams: [this.localStream] });
    }
    await pc.setLocalDescription(await pc.createOffer());
    // A restart may have come while the browser worked: this connection is stale then.
    if (this.sendPc !== pc) return;
    const msg = { type: 'offer', sdp: pc.localDescription.sdp, epoch: this.store.state.epoch };
    // SDP has no bitrates or scales: the server learns them here, by mid.
    const encodings = {};
    for (const tr of pc.getTransceivers()) {
      const list = offerEncodings(tr.sender.getParameters().encodings);
      if (list && tr.mid) encodings[tr.mid] = list;
    }
    if (Object.keys(encodings).length) msg.encodings = encodings;
    this.send(msg);
  }

  /** The camera as simulcast (with temporal layers where supported), falling back step by step. */
  addSendTransceiver(pc, track, init) {
    let layers = 1;
    if (track.kind === 'video' && this.store.state.simulcast) {
      const { width, height } = track.getSettings ? track.getSettings() : {};
      layers = simulcastLayers(width, height);
    }
    const caps = window.RTCRtpSender && RTCRtpSender.getCapabilities && RTCRtpSender.getCapabilities('video');
    for (const sendEncodings of cameraEncodingTries(layers, temporalLayersSupported(caps && caps.codecs))) {
      try {
        return pc.addTransceiver(track, { ...init, sendEncodings });
      } catch (e) {
        console.warn(`simulcast encodings refused by the browser: ${e}`);
      }
    }
    return pc.addTransceiver(track, init);
  }

  /**
   * Shares a screen: asks the browser for one (it shows its own picker), then publishes it.
   * Resolves to false when the person cancelled.
   */
  async startScreen() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia) throw new Error('this browser cannot share a screen');
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { max: SCREEN_ENCODING.maxFramerate } }, audio: false });
    } catch (e) {
      if (e.name === 'NotAllowedError' || e.name === 'AbortError') return false;
      throw e;
    }
    const [track] = stream.getVideoTracks();
    // Text and detail: keep the resolution, drop frames when short of bits.
    if ('contentHint' in track) track.contentHint = 'detail';
    // The browser's own "Stop sharing" ends the track.
    track.addEventListener('ended', () => this.onScreenEnded && this.onScreenEnded());
    this.screenStream = stream;
    this.store.dispatch({ type: 'screenShare', stream });
    await this.publishScreen();
    return true;
  }

  /** Offers the screen share on its own send connection (again after a restart). */
  async publishScreen() {
    if (!this.screenStream) return;
    if (this.screenPc) this.screenPc.close();
    const pc = new RTCPeerConnection(this.pcConfig());
    this.screenPc = pc;
    this.watch(pc, 'screen');
    const [track] = this.screenStream.getVideoTracks();
    const tr = pc.addTransceiver(track, { direction: 'sendonly', streams: [this.screenStream], sendEncodings: [{ ...SCREEN_ENCODING }] });
    const params = tr.sender.getParameters();
    params.degradationPreference = 'maintain-resolution';
    await tr.sender.setParameters(params).catch(() => {});
    await pc.setLocalDescription(await pc.createOffer());
    if (this.screenPc !== pc) return;
    this.send({ type: 'offer', sdp: pc.localDescription.sdp, epoch: this.store.state.epoch, source: 'screen' });
  }

  /** Stops sharing: tells the server, closes the connection, stops the capture. */
  stopScreen() {
    if (!this.screenStream) return;
    this.send({ type: 'stopScreen' });
    if (this.screenPc) this.screenPc.close();
    this.screenPc = null;
    for (const t of this.screenStream.getTracks()) t.stop();
    this.screenStream = null;
    this.store.dispatch({ type: 'pcState', direction: 'screen', state: null });
    this.store.dispatch({ type: 'screenShare', stream: null });
  }

  /** The server's answer to one of our offers (camera or screen), with the producers it made. */
  async onAnswer(msg) {
    const screen = (msg.producers || []).some((p) => p.source === 'screen');
    const pc = screen ? this.screenPc : this.sendPc;
    if (!pc) return;
    this.store.dispatch({ type: 'producers', producers: msg.producers });
    await pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
    for (const p of msg.producers || []) {
      const tr = pc.getTransceivers().find((x) => x.mid === p.mid);
      const encs = tr ? tr.sender.getParameters().encodings || [] : [];
      if (encs.length > 1) {
        this.store.dispatch({ type: 'sendEncodings', producerId: p.producerId, active: Object.fromEntries(encs.map((e) => [e.rid, e.active !== false])) });
      }
    }
  }

  /** Dynacast: the server says which of one's own encodings anyone needs. */
  async onSetEncodings(msg) {
    const p = this.store.state.producers.get(msg.producerId);
    const pc = this.sendPc;
    if (!p || !pc || !Array.isArray(msg.encodings)) return;
    const tr = pc.getTransceivers().find((x) => x.mid === p.mid);
    if (!tr) return;
    const params = tr.sender.getParameters();
    if (applyActive(params.encodings || [], msg.encodings)) await tr.sender.setParameters(params);
    this.store.dispatch({ type: 'sendEncodings', producerId: msg.producerId, active: Object.fromEntries((params.encodings || []).map((e) => [e.rid, e.active])) });
  }

  recvConnection() {
    if (this.recvPc) return this.recvPc;
    const pc = new RTCPeerConnection(this.pcConfig());
    this.recvPc = pc;
    this.watch(pc, 'recv');
    pc.ontrack = (ev) => {
      const { state } = this.store;
      const c = state.consumers.get(ev.transceiver.mid);
      const peerId = c ? c.peerId : ev.streams[0] && ev.streams[0].id;
      if (!peerId || !state.peers.has(peerId)) return;
      this.store.dispatch({ type: 'track', peerId, kind: ev.track.kind, slot: c ? slotOf(c) : ev.track.kind, mid: ev.transceiver.mid, stream: new MediaStream([ev.track]) });
    };
    return pc;
  }

  /** The server's offer of the others' tracks: answer it. */
  async onOffer(msg) {
    const pc = this.recvConnection();
    this.store.dispatch({ type: 'offer', consumers: msg.consumers });
    await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    this.send({ type: 'answer', offerId: msg.offerId, sdp: pc.localDescription.sdp });
  }

  /** Measures each received video (bytes and frame height from inbound-rtp) into the store. */
  async measureReceived() {
    const pc = this.recvPc;
    if (!pc) return;
    const { state } = this.store;
    // The round trip of the receive connection's selected candidate pair (shared by its tiles).
    let rttMs = null;
    try {
      for (const s of (await pc.getStats()).values()) {
        if (s.type === 'candidate-pair' && s.nominated && Number.isFinite(s.currentRoundTripTime)) rttMs = s.currentRoundTripTime * 1000;
      }
    } catch {
      rttMs = null;
    }
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
        const prev = this.lastBytes.get(c.consumerId);
        const bytes = s.bytesReceived || 0;
        const lost = s.packetsLost || 0;
        const got = s.packetsReceived || 0;
        this.lastBytes.set(c.consumerId, { bytes, at: s.timestamp, lost, got });
        // Known from the second measurement on: over the last second.
        const kbps = prev && s.timestamp > prev.at ? Math.max(0, Math.round((8 * (bytes - prev.bytes)) / (s.timestamp - prev.at))) : null;
        const sent = prev ? (got - prev.got) + (lost - prev.lost) : 0;
        const lossPct = sent > 0 ? Math.max(0, (100 * (lost - prev.lost)) / sent) : null;
        this.store.dispatch({
          type: 'received', key: tileKeyOf(c), peerId: c.peerId, consumerId: c.consumerId, kbps,
          width: s.frameWidth || 0, height: s.frameHeight || 0, fps: s.framesPerSecond, lossPct, rttMs,
        });
      }
    }
    const live = new Set([...state.consumers.values()].map((c) => c.consumerId));
    for (const id of this.lastBytes.keys()) if (!live.has(id)) this.lastBytes.delete(id);
  }

  /**
   * Per other participant: the inbound-rtp stats of each kind, from the receive side
   * (the test hook's inboundStats, see testhook.js).
   */
  async inboundStats() {
    const out = {};
    const pc = this.recvPc;
    if (!pc) return out;
    const { state } = this.store;
    for (const tr of pc.getTransceivers()) {
      const c = tr.mid && state.consumers.get(tr.mid);
      if (!c) continue;
      const report = await tr.receiver.getStats();
      for (const s of report.values()) {
        if (s.type !== 'inbound-rtp') continue;
        const codec = s.codecId && report.get(s.codecId);
        out[c.peerId] = out[c.peerId] || {};
        out[c.peerId][slotOf(c)] = {
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
}
