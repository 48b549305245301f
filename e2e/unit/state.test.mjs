// The room state's reducer (signaling/src/web/room/state.js): what each action does to it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initialState, reduce, videoConsumer } from '../../signaling/src/web/room/state.js';

const web = (...actions) => actions.reduce((s, a) => reduce(s, a), initialState({ room: 'r' }));
const joined = (peers = []) => web({ type: 'start', name: 'Ada' }, { type: 'wsOpen' },
  { type: 'joined', peerId: 'a', name: 'Ada', peers });
const bob = { peerId: 'b', name: 'Bob', audioMuted: false, videoMuted: false };
const bobsVideo = { mid: '1', consumerId: 'c1', producerId: 'p1', peerId: 'b', kind: 'video' };
const bobsAudio = { mid: '0', consumerId: 'c0', producerId: 'p0', peerId: 'b', kind: 'audio' };

test('joining: prompt, then the call with the participants already there', () => {
  const s = initialState({ room: 'r' });
  assert.equal(s.screen, 'prompt');
  reduce(s, { type: 'start', name: 'Ada' });
  assert.deepEqual([s.screen, s.phase], ['call', 'connecting']);
  reduce(s, { type: 'localMedia', stream: null, problem: 'denied', hasAudio: false, hasVideo: false });
  assert.equal(s.viewer, true);
  assert.deepEqual(s.banner, { text: 'denied', kind: 'warning' });
  reduce(s, { type: 'wsOpen' });
  reduce(s, { type: 'joined', peerId: 'a', name: 'Ada', peers: [bob] });
  assert.deepEqual([s.phase, s.peerId, s.everJoined], ['joined', 'a', true]);
  assert.deepEqual([...s.peers.keys()], ['b']);
  // The banner about devices stays on a first join.
  assert.equal(s.banner.text, 'denied');
});

test('a refused join goes back to the prompt with the reason', () => {
  const s = web({ type: 'start', name: 'Ada' }, { type: 'wsOpen' },
    { type: 'joinRefused', code: 'NameTaken', message: 'Ada is already in this room' });
  assert.deepEqual([s.screen, s.phase, s.promptError], ['prompt', 'idle', 'Ada is already in this room']);
  assert.deepEqual(s.errors, [{ code: 'NameTaken', message: 'Ada is already in this room' }]);
});

test('the WebSocket closing before any join says so; after a join it reconnects and forgets the call', () => {
  const never = web({ type: 'start', name: 'Ada' }, { type: 'wsClosed' });
  assert.equal(never.phase, 'closed');
  assert.match(never.banner.text, /Cannot reach/);

  const s = joined([bob]);
  reduce(s, { type: 'offer', consumers: [bobsVideo] });
  reduce(s, { type: 'wsClosed' });
  assert.equal(s.phase, 'reconnecting');
  assert.equal(s.peers.size, 0);
  assert.equal(s.consumers.size, 0);
  reduce(s, { type: 'reconnectScheduled' });
  reduce(s, { type: 'reconnect' });
  reduce(s, { type: 'wsConnecting' });
  assert.deepEqual([s.attempt, s.reconnects, s.phase], [1, 1, 'reconnecting']);
  reduce(s, { type: 'joined', peerId: 'a2', peers: [] });
  assert.deepEqual([s.attempt, s.peerId, s.banner], [0, 'a2', null]);
});

test('a later offer drops what its closed consumers left behind, and only that', () => {
  const s = joined([bob]);
  reduce(s, { type: 'offer', consumers: [bobsAudio, bobsVideo] });
  reduce(s, { type: 'track', peerId: 'b', kind: 'video', mid: '1', stream: 'V' });
  reduce(s, { type: 'track', peerId: 'b', kind: 'audio', mid: '0', stream: 'A' });
  reduce(s, { type: 'score', peerId: 'b', kind: 'video', consumerId: 'c1', score: 9, producerScore: 10 });
  reduce(s, { type: 'layersChanged', peerId: 'b', consumerId: 'c1', spatialLayer: 1, temporalLayer: 2 });
  reduce(s, { type: 'received', peerId: 'b', consumerId: 'c1', kbps: 300, width: 640, height: 480, fps: 30, lossPct: 0, rttMs: 2 });
  reduce(s, { type: 'layerRequested', consumerId: 'c1', request: { spatialLayer: 1 } });
  assert.deepEqual(s.received.get('b'), { consumerId: 'c1', spatialLayer: 1, temporalLayer: 2, kbps: 300, width: 640, height: 480, fps: 30, lossPct: 0, rttMs: 2 });
  assert.equal(videoConsumer(s, 'b'), bobsVideo);

  // Bob turned his camera off for good: the next offer has his audio only.
  reduce(s, { type: 'offer', consumers: [bobsAudio] });
  assert.equal(s.tracks.get('b').video, undefined);
  assert.equal(s.tracks.get('b').audio.stream, 'A');
  assert.equal(s.scores.get('b').video, undefined);
  assert.equal(s.received.has('b'), false);
  assert.equal(s.layerRequests.has('c1'), false);
  assert.equal(s.layers.has('c1'), false);
  assert.equal(videoConsumer(s, 'b'), null);
});

test('scores: others by consumer, one\'s own by kind; malformed ones change nothing', () => {
  const s = joined([bob]);
  reduce(s, { type: 'score', peerId: 'a', kind: 'video', score: 8 });
  reduce(s, { type: 'score', peerId: 'x', kind: 'audio', score: 3 });
  reduce(s, { type: 'score', peerId: 'b', kind: 'audio', consumerId: 'c0', score: 'much', producerScore: 10 });
  reduce(s, { type: 'score', peerId: 'b', kind: 'screen', consumerId: 'c0', score: 5 });
  assert.deepEqual(s.ownScores, { video: 8 });
  assert.equal(s.scores.size, 0);
});

test('peers come, mute and go; the active speaker leaving clears it', () => {
  const s = joined();
  reduce(s, { type: 'peerJoined', peer: bob });
  reduce(s, { type: 'muteChanged', peerId: 'b', kind: 'audio', muted: true });
  assert.equal(s.peers.get('b').audioMuted, true);
  reduce(s, { type: 'activeSpeaker', peerId: 'b' });
  reduce(s, { type: 'peerLeft', peerId: 'b' });
  assert.equal(s.peers.size, 0);
  assert.equal(s.activeSpeaker, null);
  reduce(s, { type: 'peerJoined' });
  assert.equal(s.peers.size, 0, 'a peerJoined without a peer is ignored');
});

test('a media server restart keeps the participants and drops the media state', () => {
  const s = joined([bob]);
  reduce(s, { type: 'offer', consumers: [bobsVideo] });
  reduce(s, { type: 'producers', producers: [{ producerId: 'p9', kind: 'video', mid: '1' }] });
  reduce(s, { type: 'restart', epoch: 3 });
  assert.deepEqual([s.restarts, s.epoch, s.peers.size, s.consumers.size, s.producers.size], [1, 3, 1, 0, 0]);
  reduce(s, { type: 'restart', epoch: 'x' });
  assert.equal(s.epoch, 3);
});

test('leaving ends the call; errors are kept and shown', () => {
  const s = joined([bob]);
  reduce(s, { type: 'error', code: 'NotFound', message: 'no such consumer' });
  assert.deepEqual(s.banner, { text: 'no such consumer (NotFound)', kind: 'error' });
  reduce(s, { type: 'left' });
  assert.deepEqual([s.phase, s.screen, s.peers.size, s.banner], ['left', 'left', 0, null]);
  reduce(s, { type: 'wsClosed' });
  assert.equal(s.phase, 'left', 'a close after leaving does not reconnect');
  assert.equal(s.errors.length, 1);
});
