// Speaker view, pin, shortcuts, the stats overlay and notices (layout.js, keys.js,
// quality.js, state.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { featuredTile } from '../../signaling/src/web/room/layout.js';
import { shortcutFor } from '../../signaling/src/web/room/keys.js';
import { statsLines } from '../../signaling/src/web/room/quality.js';
import { initialState, reduce, MAX_NOTICES } from '../../signaling/src/web/room/state.js';

const keys = ['self', 'a', 'b', 'b/screen'];

test('featured tile: pinned, then a screen share, then in speaker view the last speaker', () => {
  assert.equal(featuredTile({ layout: 'grid', keys: ['self', 'a'] }), null);
  assert.equal(featuredTile({ layout: 'grid', keys, screens: ['b/screen'] }), 'b/screen');
  assert.equal(featuredTile({ layout: 'grid', keys, screens: ['b/screen'], pinned: 'a' }), 'a');
  assert.equal(featuredTile({ layout: 'grid', keys, pinned: 'gone' }), null);
  const speaker = { layout: 'speaker', keys: ['self', 'a', 'b'], selfKey: 'self' };
  assert.equal(featuredTile({ ...speaker, speaker: 'b' }), 'b');
  assert.equal(featuredTile({ ...speaker, speaker: 'self' }), 'a', 'never oneself: the first other');
  assert.equal(featuredTile({ ...speaker, speaker: null }), 'a');
  assert.equal(featuredTile({ ...speaker, keys: ['self'] }), null);
});

test('the last speaker is another participant; pin toggles; stats per tile', () => {
  const s = initialState();
  reduce(s, { type: 'joined', peerId: 'me', peers: [{ peerId: 'a', name: 'A' }, { peerId: 'b', name: 'B' }] });
  reduce(s, { type: 'activeSpeaker', peerId: 'a' });
  reduce(s, { type: 'activeSpeaker', peerId: 'me' });
  assert.equal(s.lastSpeaker, 'a', 'speaking oneself keeps the last other speaker');
  reduce(s, { type: 'activeSpeaker', peerId: 'b' });
  assert.equal(s.lastSpeaker, 'b');
  reduce(s, { type: 'pin', key: 'a' });
  assert.equal(s.pinned, 'a');
  reduce(s, { type: 'pin', key: 'a' });
  assert.equal(s.pinned, null);
  reduce(s, { type: 'pin', key: 'b/screen' });
  reduce(s, { type: 'peerLeft', peerId: 'b' });
  assert.deepEqual([s.pinned, s.lastSpeaker], [null, null], 'a participant who left is neither pinned nor speaker');
  reduce(s, { type: 'toggleStats', key: 'a' });
  assert.ok(s.statsShown.has('a'));
  reduce(s, { type: 'toggleStats', key: 'a' });
  assert.equal(s.statsShown.size, 0);
  reduce(s, { type: 'layout', layout: 'speaker' });
  assert.equal(s.layout, 'speaker');
  reduce(s, { type: 'layout', layout: 'mosaic' });
  assert.equal(s.layout, 'grid');
});

test('joins and leaves make notices, a few at a time', () => {
  const s = initialState();
  reduce(s, { type: 'joined', peerId: 'me', peers: [{ peerId: 'a', name: 'Ann' }] });
  assert.deepEqual(s.notices, [], 'no notices for who was already there');
  reduce(s, { type: 'peerJoined', peer: { peerId: 'b', name: 'Bob' } });
  reduce(s, { type: 'peerLeft', peerId: 'a' });
  assert.deepEqual(s.notices.map((n) => n.text), ['Bob joined', 'Ann left']);
  reduce(s, { type: 'dismissNotice', id: s.notices[0].id });
  assert.deepEqual(s.notices.map((n) => n.text), ['Ann left']);
  for (let i = 0; i < 5; i += 1) reduce(s, { type: 'notice', text: `n${i}` });
  assert.equal(s.notices.length, MAX_NOTICES);
  assert.equal(s.notices[MAX_NOTICES - 1].text, 'n4');
});

test('shortcuts: single keys, not while typing or with modifiers', () => {
  const k = (key, more = {}) => shortcutFor({ key, ctrlKey: false, metaKey: false, altKey: false, tagName: 'BODY', editable: false, ...more });
  assert.equal(k('m'), 'mic');
  assert.equal(k('M'), 'mic');
  assert.equal(k('v'), 'camera');
  assert.equal(k('s'), 'share');
  assert.equal(k('c'), 'chat');
  assert.equal(k('x'), null);
  assert.equal(k('m', { tagName: 'INPUT' }), null);
  assert.equal(k('m', { editable: true }), null);
  assert.equal(k('c', { ctrlKey: true }), null, 'Ctrl+C copies');
});

test('stats overlay lines', () => {
  assert.deepEqual(statsLines(null), ['No video received']);
  assert.deepEqual(statsLines({ kbps: 812, width: 640, height: 480, fps: 29.6, lossPct: 0.25, rttMs: 12.4, spatialLayer: 1, temporalLayer: 2 }),
    ['Bitrate 812 kbit/s', 'Resolution 640×480', 'Frame rate 30 fps', 'Loss 0.3 %', 'RTT 12 ms', 'Layer S1T2']);
  assert.deepEqual(statsLines({ kbps: null, width: 0, height: 0 }), ['Bitrate –', 'Resolution –', 'Frame rate –', 'Loss –', 'RTT –']);
});
