// The page's DOM: status line, banner, which screen shows, the controls' labels and the
// tiles. `render(state)` brings the DOM in line with the room state and may run on every
// change (it only touches what differs). Names from the server are only ever shown with
// textContent. The view measures tiles (ResizeObserver, IntersectionObserver) and reports
// them through `onTileGeometry(peerId)`; what that means for the call is main.js's.
import { QUALITY_BARS, TILE_GAP } from './config.js';
import { gridColumns, featuredTile } from './layout.js';
import { tileQuality, statusText, receivedText, statsLines } from './quality.js';
import { formatTime } from './chat.js';
import { SCREEN_SUFFIX } from './state.js';

const $ = (id) => document.getElementById(id);
/** The keys of one's own camera and screen tiles (others' are state.js tileKeyOf). */
export const SELF_KEY = 'self';
export const SELF_SCREEN_KEY = `self${SCREEN_SUFFIX}`;

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function setSrc(el, stream) {
  if (el.srcObject === stream) return false;
  el.srcObject = stream;
  return true;
}

export class RoomView {
  /**
   * `onTileGeometry(key)`: a tile's size or visibility changed (key: state.js tileKeyOf);
   * `onPin(key)`, `onStats(key)`: the tile's pin or stats button was pressed (the own
   * camera tile's key is SELF_KEY).
   */
  constructor({ onTileGeometry, onPin, onStats }) {
    this.grid = $('grid');
    this.onTileGeometry = onTileGeometry;
    this.onPin = onPin;
    this.onStats = onStats;
    /** Tile key (state.js tileKeyOf) -> tile of another participant's camera or screen;
     * the own tiles apart (the own id changes on rejoin). */
    this.tiles = new Map();
    this.selfTile = null;
    this.selfScreenTile = null;
    /** The chat messages shown: the state's array and how many of it are in the DOM. */
    this.chatShown = { messages: null, count: 0 };
    this.resizeObserver = new ResizeObserver((entries) => {
      for (const e of entries) {
        const t = this.tiles.get(e.target.dataset.key);
        if (!t || t.el !== e.target) continue;
        t.height = e.contentRect.height;
        this.onTileGeometry(e.target.dataset.key);
      }
    });
    this.intersectionObserver = new IntersectionObserver((entries) => {
      for (const e of entries) {
        const t = this.tiles.get(e.target.dataset.key);
        if (!t || t.el !== e.target) continue;
        t.onScreen = e.isIntersecting;
        this.onTileGeometry(e.target.dataset.key);
      }
    });
    new ResizeObserver(() => this.fitGrid()).observe(this.grid);
    $('sound').addEventListener('click', () => {
      for (const t of this.allTiles()) if (t.audio.srcObject) t.audio.play().catch(() => {});
      $('sound').hidden = true;
    });
  }

  allTiles() {
    return [this.selfTile, this.selfScreenTile, ...this.tiles.values()].filter(Boolean);
  }

  /** A tile's measured height (CSS pixels) and whether it is on screen (null: not known yet). */
  tileGeometry(key) {
    const t = this.tiles.get(key);
    if (!t) return null;
    return { height: t.height === null ? t.el.clientHeight : t.height, onScreen: t.onScreen };
  }

  /** The keys of the other participants' tiles shown. */
  tileKeys() {
    return [...this.tiles.keys()];
  }

  render(s) {
    $('prompt').hidden = s.screen !== 'prompt';
    $('grid').hidden = s.screen !== 'call';
    $('controls').hidden = s.screen !== 'call';
    $('left').hidden = s.screen !== 'left';
    setText($('prompt-error'), s.promptError);
    this.renderStatus(s);
    this.renderBanner(s);
    this.renderControls(s);
    this.renderTiles(s);
    this.renderLayout(s);
    this.renderChat(s);
    this.renderNotices(s);
  }

  /** Which tile leads (layout.js featuredTile), each tile's pin and stats. */
  renderLayout(s) {
    const keys = [...this.tiles.keys()];
    if (this.selfTile) keys.unshift(SELF_KEY);
    const screens = keys.filter((k) => k.endsWith(SCREEN_SUFFIX));
    if (this.selfScreenTile) {
      keys.unshift(SELF_SCREEN_KEY);
      screens.unshift(SELF_SCREEN_KEY);
    }
    const main = featuredTile({ layout: s.layout, keys, screens, pinned: s.pinned, speaker: s.lastSpeaker, selfKey: SELF_KEY });
    const featured = main !== null && keys.length > 1;
    const wasFeatured = this.grid.classList.contains('featured');
    this.grid.classList.toggle('featured', featured);
    let moved = wasFeatured !== featured;
    for (const [key, t] of this.keyedTiles()) {
      const isMain = featured && key === main;
      if (t.el.classList.contains('main') !== isMain) moved = true;
      t.el.classList.toggle('main', isMain);
      const pinned = s.pinned === key;
      t.pin.setAttribute('aria-pressed', String(pinned));
      setText(t.pin, pinned ? 'Unpin' : 'Pin');
      t.pin.setAttribute('aria-label', `${pinned ? 'Unpin' : 'Pin'} ${t.label}`);
      const statsOpen = s.statsShown.has(key);
      t.statsButton.setAttribute('aria-pressed', String(statsOpen));
      t.stats.hidden = !statsOpen;
      if (statsOpen) {
        const lines = statsLines(s.received.get(key));
        if (t.stats.textContent !== lines.join('')) {
          t.stats.replaceChildren(...lines.map((l) => {
            const d = document.createElement('div');
            d.textContent = l;
            return d;
          }));
        }
      }
    }
    $('layout').textContent = s.layout === 'speaker' ? 'Grid view' : 'Speaker view';
    $('layout').setAttribute('aria-pressed', String(s.layout === 'speaker'));
    if (moved) this.fitGrid();
  }

  /** [key, tile] of every tile, the own ones under SELF_KEY / SELF_SCREEN_KEY. */
  keyedTiles() {
    const out = [...this.tiles];
    if (this.selfTile) out.push([SELF_KEY, this.selfTile]);
    if (this.selfScreenTile) out.push([SELF_SCREEN_KEY, this.selfScreenTile]);
    return out;
  }

  /** Joins, leaves and "you are muted", each for a few seconds (main.js dismisses them). */
  renderNotices(s) {
    const box = $('notices');
    const ids = s.notices.map((n) => String(n.id));
    const shown = [...box.children].map((c) => c.dataset.id);
    if (ids.join() === shown.join()) return;
    box.replaceChildren(...s.notices.map((n) => {
      const d = document.createElement('div');
      d.className = 'notice';
      d.dataset.id = String(n.id);
      d.textContent = n.text;
      return d;
    }));
  }

  /** The chat panel, its log (appended to, or redrawn after a history) and the unread badge. */
  renderChat(s) {
    const open = s.screen === 'call' && s.chat.open;
    const panel = $('chat');
    if (panel.hidden === open) {
      panel.hidden = !open;
      this.fitGrid();
    }
    $('chat-toggle').setAttribute('aria-expanded', String(open));
    $('chat-toggle').setAttribute('aria-label', s.chat.unread ? `Chat, ${s.chat.unread} unread` : 'Chat');
    const unread = $('chat-unread');
    unread.hidden = s.chat.unread === 0;
    setText(unread, String(s.chat.unread));
    unread.setAttribute('aria-label', `${s.chat.unread} unread`);
    const log = $('chat-log');
    const { messages } = s.chat;
    const shown = this.chatShown;
    // appendMessages makes a new array each time: redraw unless it only grew at the end.
    const grew = shown.messages !== null && messages.length >= shown.count
      && shown.count > 0 && messages[shown.count - 1] === shown.messages[shown.count - 1];
    if (!grew) {
      log.replaceChildren();
      shown.count = 0;
    }
    const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
    for (const m of messages.slice(shown.count)) log.append(this.chatItem(m, m.peerId === s.peerId));
    while (log.children.length > messages.length) log.firstElementChild.remove();
    shown.messages = messages;
    shown.count = messages.length;
    if (stick) log.scrollTop = log.scrollHeight;
  }

  chatItem(m, self) {
    const li = document.createElement('li');
    if (self) li.className = 'self';
    const meta = document.createElement('div');
    meta.className = 'chat-meta';
    const name = document.createElement('span');
    name.className = 'chat-name';
    name.textContent = self ? `${m.name} (you)` : m.name;
    const time = document.createElement('time');
    time.dateTime = new Date(m.at).toISOString();
    time.textContent = formatTime(m.at);
    meta.append(name, time);
    const text = document.createElement('p');
    text.className = 'chat-text';
    text.textContent = m.text;
    li.append(meta, text);
    return li;
  }

  renderStatus(s) {
    const pcs = Object.values(s.pcStates);
    const text = statusText(s.phase, pcs);
    const el = $('status');
    setText(el, text);
    el.dataset.state = text;
    // For scripts and tests: where the call stands, as state.js PHASES names it.
    el.dataset.phase = s.phase;
  }

  renderBanner(s) {
    const b = $('banner');
    b.hidden = !s.banner;
    if (!s.banner) return;
    setText(b, s.banner.text);
    b.className = `banner ${s.banner.kind}`;
  }

  renderControls(s) {
    const mic = $('mic');
    const cam = $('cam');
    setText(mic, s.micMuted ? 'Unmute' : 'Mute');
    setText(cam, s.camOff ? 'Camera on' : 'Camera off');
    mic.setAttribute('aria-pressed', String(s.micMuted));
    cam.setAttribute('aria-pressed', String(s.camOff));
    mic.disabled = !s.hasAudio;
    cam.disabled = !s.hasVideo;
    const share = $('share');
    const sharing = Boolean(s.localScreen);
    setText(share, sharing ? 'Stop sharing' : 'Share screen');
    share.setAttribute('aria-pressed', String(sharing));
    // Phones and some browsers cannot share a screen at all.
    share.hidden = !(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
  }

  renderTiles(s) {
    const inCall = s.screen === 'call';
    let changed = false;
    // Own tile: from the first join on; it keeps its element when the id changes.
    if (inCall && s.peerId) {
      if (!this.selfTile) {
        this.selfTile = this.createTile(s.name, true, false, SELF_KEY);
        changed = true;
      }
      this.selfTile.el.dataset.peerId = s.peerId;
      this.renderSelf(s, this.selfTile);
    } else if (!inCall && this.selfTile) {
      this.dropTile(this.selfTile);
      this.selfTile = null;
      changed = true;
    }
    // One's own screen share, as the others see it (not mirrored).
    if (inCall && s.localScreen && s.peerId) {
      if (!this.selfScreenTile) {
        this.selfScreenTile = this.createTile(`${s.name} (your screen)`, false, true, SELF_SCREEN_KEY);
        this.selfScreenTile.el.classList.add('self-screen');
        changed = true;
      }
      this.selfScreenTile.el.dataset.peerId = s.peerId;
      setSrc(this.selfScreenTile.video, s.localScreen);
    } else if (this.selfScreenTile) {
      this.dropTile(this.selfScreenTile);
      this.selfScreenTile = null;
      changed = true;
    }
    // Others: a camera tile per participant, and a screen tile while one shares.
    const wanted = new Map();
    if (inCall) {
      for (const [peerId, p] of s.peers) {
        wanted.set(peerId, { peerId, p, screen: false });
        const tracks = s.tracks.get(peerId);
        if (tracks && tracks.screen) wanted.set(`${peerId}${SCREEN_SUFFIX}`, { peerId, p, screen: true });
      }
    }
    for (const [key, t] of [...this.tiles]) {
      if (!wanted.has(key)) {
        this.dropTile(t);
        this.tiles.delete(key);
        changed = true;
      }
    }
    for (const [key, { peerId, p, screen }] of wanted) {
      let t = this.tiles.get(key);
      if (!t) {
        t = this.createTile(screen ? `${p.name} (screen)` : p.name, false, screen, key);
        t.el.dataset.peerId = peerId;
        this.tiles.set(key, t);
        this.resizeObserver.observe(t.el);
        this.intersectionObserver.observe(t.el);
        changed = true;
      }
      if (screen) this.renderScreen(s, key, peerId, t);
      else this.renderPeer(s, peerId, p, t);
    }
    if (changed) this.fitGrid();
  }

  /** Another participant's screen share: the video and what is received of it. */
  renderScreen(s, key, peerId, t) {
    const tracks = s.tracks.get(peerId) || {};
    const stream = tracks.screen ? tracks.screen.stream : null;
    if (setSrc(t.video, stream) && stream) t.video.play().catch(() => {});
    t.el.classList.toggle('no-video', !stream);
    setText(t.layer, receivedText(s.received.get(key)));
    t.layer.title = 'Height and bitrate received';
  }

  createTile(name, self, screen, key) {
    const el = document.createElement('div');
    el.className = `tile${self ? ' self' : ''}${screen ? ' screen' : ''}`;
    el.dataset.key = key;
    const tileLabel = screen ? `screen of ${name}` : (self ? `${name} (you)` : name);
    el.setAttribute('role', 'group');
    el.setAttribute('aria-label', tileLabel);
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
    for (let i = 0; i < QUALITY_BARS.length; i += 1) {
      const bar = document.createElement('span');
      bar.className = 'q-bar';
      quality.append(bar);
    }
    label.append(quality, nameEl, badges);
    const layer = document.createElement('div');
    layer.className = 'layer';
    const actions = document.createElement('div');
    actions.className = 'tile-actions';
    const pin = document.createElement('button');
    pin.type = 'button';
    pin.className = 'tile-btn pin';
    pin.addEventListener('click', () => this.onPin(key));
    const statsButton = document.createElement('button');
    statsButton.type = 'button';
    statsButton.className = 'tile-btn stats-toggle';
    statsButton.textContent = 'Stats';
    statsButton.setAttribute('aria-label', `Connection stats of ${tileLabel}`);
    statsButton.addEventListener('click', () => this.onStats(key));
    // One's own tiles receive nothing to measure.
    statsButton.hidden = self || key === SELF_SCREEN_KEY;
    actions.append(statsButton, pin);
    const stats = document.createElement('div');
    stats.className = 'stats';
    stats.hidden = true;
    el.append(video, avatar, audio, label, layer, actions, stats);
    // Screen shares come first (and lead the layout: layout.js featuredTile).
    if (screen) this.grid.prepend(el);
    else this.grid.append(el);
    return { el, video, audio, badges, avatar, quality, layer, pin, statsButton, stats, label: tileLabel, height: null, onScreen: null };
  }

  dropTile(t) {
    t.video.srcObject = null;
    t.audio.srcObject = null;
    this.resizeObserver.unobserve(t.el);
    this.intersectionObserver.unobserve(t.el);
    t.el.remove();
  }

  renderSelf(s, t) {
    const audioMuted = s.micMuted || !s.hasAudio;
    const videoMuted = s.camOff || !s.hasVideo;
    setSrc(t.video, s.localStream || null);
    this.renderCommon(t, { hasVideo: Boolean(s.localStream) && !videoMuted, audioMuted, videoMuted, speaking: s.activeSpeaker === s.peerId });
    this.renderQuality(t, tileQuality({ self: true, scores: s.ownScores, audioMuted, videoMuted }));
    // Which camera encodings go out (dynacast turns unneeded ones off).
    const video = [...s.producers.values()].find((p) => p.kind === 'video');
    const active = video && s.sendEncodings[video.producerId];
    setText(t.layer, active ? `sending ${Object.entries(active).filter(([, on]) => on).map(([rid]) => rid).join(' ')}` : '');
    t.layer.title = 'Camera encodings sent';
  }

  renderPeer(s, peerId, p, t) {
    const tracks = s.tracks.get(peerId) || {};
    const videoStream = tracks.video ? tracks.video.stream : null;
    if (setSrc(t.video, videoStream) && videoStream) t.video.play().catch(() => {});
    const audioStream = tracks.audio ? tracks.audio.stream : null;
    if (s.speaker && t.audio.setSinkId && t.sinkId !== s.speaker) {
      t.sinkId = s.speaker;
      t.audio.setSinkId(s.speaker).catch(() => {});
    }
    if (setSrc(t.audio, audioStream) && audioStream) {
      t.audio.play().catch(() => {
        // Autoplay policy: sound needs a click on this page first.
        $('sound').hidden = false;
      });
    }
    this.renderCommon(t, { hasVideo: Boolean(videoStream) && !p.videoMuted, audioMuted: p.audioMuted, videoMuted: p.videoMuted, speaking: s.activeSpeaker === peerId });
    this.renderQuality(t, tileQuality({ self: false, scores: s.scores.get(peerId), audioMuted: p.audioMuted, videoMuted: p.videoMuted }));
    setText(t.layer, receivedText(s.received.get(peerId)));
    t.layer.title = 'Layer, height and bitrate received';
  }

  renderCommon(t, { hasVideo, audioMuted, videoMuted, speaking }) {
    t.el.classList.toggle('no-video', !hasVideo);
    t.el.classList.toggle('speaking', speaking);
    const badges = [];
    if (audioMuted) badges.push('mic off');
    if (videoMuted) badges.push('camera off');
    setText(t.badges, badges.join(' · '));
  }

  renderQuality(t, q) {
    t.quality.hidden = q === null;
    if (q === null) return;
    t.quality.dataset.score = String(q.value);
    t.quality.dataset.level = q.level;
    [...t.quality.children].forEach((bar, i) => bar.classList.toggle('lit', i < q.lit));
    t.quality.setAttribute('aria-label', q.label);
    t.quality.title = q.label;
  }

  /** Lays the tiles out to fill the grid without scrolling (layout.js gridColumns). */
  fitGrid() {
    if (this.grid.classList.contains('featured')) {
      this.grid.style.gridTemplateColumns = '';
      return;
    }
    const fit = gridColumns(this.grid.children.length, this.grid.clientWidth - 2 * TILE_GAP, this.grid.clientHeight - 2 * TILE_GAP);
    if (fit) this.grid.style.gridTemplateColumns = `repeat(${fit.cols}, ${fit.tileWidth}px)`;
  }
}
