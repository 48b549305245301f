// The room page's pure helpers: layout, quality, encodings, names, backoff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gridColumns, layerForHeight } from '../../signaling/src/web/room/layout.js';
import { tileQuality, statusText, receivedText } from '../../signaling/src/web/room/quality.js';
import { simulcastLayers, cameraEncodingTries, temporalLayersSupported, offerEncodings, applyActive } from '../../signaling/src/web/room/encodings.js';
import { normalizeName, isValidName } from '../../signaling/src/web/room/names.js';
import { reconnectDelay } from '../../signaling/src/web/room/backoff.js';

test('grid: the column count that makes tiles largest', () => {
  assert.equal(gridColumns(0, 800, 600), null);
  assert.equal(gridColumns(3, 0, 600), null);
  // One tile in a wide box: one column, as high as the box allows (4:3).
  assert.deepEqual(gridColumns(1, 1200, 600, 10, 4 / 3), { cols: 1, tileWidth: 800 });
  // Four tiles in a 4:3 box: 2 x 2.
  assert.equal(gridColumns(4, 800, 600, 10, 4 / 3).cols, 2);
  // Four tiles in a very wide box: one row.
  assert.equal(gridColumns(4, 3000, 400, 10, 4 / 3).cols, 4);
  // A phone held upright: one column.
  assert.equal(gridColumns(3, 370, 700, 10, 4 / 3).cols, 1);
  // Never smaller than 40 px, however many.
  assert.equal(gridColumns(50, 100, 100).tileWidth, 40);
});

test('layers: fixed heights before any layer is received, then from the received height', () => {
  assert.equal(layerForHeight(120), 0);
  assert.equal(layerForHeight(180), 0);
  assert.equal(layerForHeight(300), 1);
  assert.equal(layerForHeight(700), 2);
  // Layer 1 arrives 240 rows high: layer 0 is 120, layer 2 would be 480.
  const now = { spatialLayer: 1, temporalLayer: 2 };
  assert.equal(layerForHeight(120, now, 240), 0);
  assert.equal(layerForHeight(250, now, 240), 1, 'a little upscaling is fine (LAYER_SLACK)');
  assert.equal(layerForHeight(400, now, 240), 2);
  assert.equal(layerForHeight(100000, now, 240), 5, 'bounded above the top; the server clamps');
  assert.equal(layerForHeight(120, { spatialLayer: null }, 240), 0);
});

test('quality: the worse of upload and download over unmuted tracks', () => {
  assert.equal(tileQuality({ self: false, scores: {} }), null);
  const q = tileQuality({ self: false, scores: { audio: { score: 10, producerScore: 9 }, video: { score: 5, producerScore: 10 } } });
  assert.deepEqual(q, { value: 5, lit: 2, level: 'fair', label: 'Connection quality 5 of 10 (their upload 9, your download 5)' });
  // A muted camera's poor score does not count.
  const muted = tileQuality({ self: false, videoMuted: true, scores: { audio: { score: 10, producerScore: 9 }, video: { score: 1, producerScore: 1 } } });
  assert.equal(muted.value, 9);
  assert.equal(muted.level, 'good');
  const own = tileQuality({ self: true, scores: { audio: 2, video: 8 } });
  assert.deepEqual([own.value, own.level, own.lit], [2, 'poor', 1]);
  assert.equal(tileQuality({ self: true, audioMuted: true, videoMuted: true, scores: { audio: 2, video: 8 } }), null);
});

test('status line', () => {
  assert.equal(statusText('idle', []), 'Not joined');
  assert.equal(statusText('reconnecting', ['connected']), 'Reconnecting…');
  assert.equal(statusText('joined', []), 'Connected (waiting for others)');
  assert.equal(statusText('joined', ['connected', 'connecting']), 'Connecting media…');
  assert.equal(statusText('joined', ['connected', 'connected']), 'Connected');
  assert.equal(statusText('joined', ['connected', 'disconnected']), 'Reconnecting…');
  assert.equal(statusText('joined', ['failed', 'disconnected']), 'Media failed');
});

test('received badge', () => {
  assert.equal(receivedText(null), '');
  assert.equal(receivedText({ spatialLayer: 1, temporalLayer: 2, height: 480, kbps: 300 }), 'S1T2 · 480p · 300 kbit/s');
  assert.equal(receivedText({ spatialLayer: 0, temporalLayer: null, height: 0, kbps: null }), 'S0');
});

test('simulcast: layers by camera size, encodings with and without temporal layers', () => {
  assert.equal(simulcastLayers(1280, 720), 3);
  assert.equal(simulcastLayers(640, 480), 2);
  assert.equal(simulcastLayers(320, 240), 1);
  assert.equal(simulcastLayers(), 3, 'unknown size: all');
  assert.deepEqual(cameraEncodingTries(1, true), []);
  const [withTemporal, without] = cameraEncodingTries(2, true);
  assert.deepEqual(withTemporal.map((e) => [e.rid, e.maxBitrate, e.scalabilityMode]), [['h', 250000, 'L1T3'], ['f', 1500000, 'L1T3']]);
  assert.deepEqual(without.map((e) => e.scalabilityMode), [undefined, undefined]);
  assert.equal(cameraEncodingTries(3, false).length, 1);
  assert.equal(cameraEncodingTries(3, false)[0][0].maxBitrate, 150000);
  assert.equal(temporalLayersSupported(undefined), true);
  assert.equal(temporalLayersSupported([{ mimeType: 'video/VP8' }]), true);
  assert.equal(temporalLayersSupported([{ mimeType: 'video/VP8', scalabilityModes: ['L1T1'] }]), false);
});

test('offer encodings: only well-formed simulcast encodings, cleaned', () => {
  assert.equal(offerEncodings([{ rid: 'f' }]), null);
  assert.equal(offerEncodings([{}, {}]), null);
  assert.deepEqual(offerEncodings([
    { rid: 'h', maxBitrate: 250000.4, scaleResolutionDownBy: 2, scalabilityMode: 'L1T3', active: true },
    { rid: 'f', maxBitrate: -1, scaleResolutionDownBy: 0.5, scalabilityMode: 'L3T3' },
  ]), [{ rid: 'h', maxBitrate: 250000, scaleResolutionDownBy: 2, scalabilityMode: 'L1T3' }, { rid: 'f' }]);
});

test('dynacast: setEncodings switches only what differs', () => {
  const encs = [{ rid: 'h', active: true }, { rid: 'f', active: true }];
  assert.equal(applyActive(encs, [{ rid: 'f', active: false }, { rid: 'x', active: false }]), true);
  assert.deepEqual(encs, [{ rid: 'h', active: true }, { rid: 'f', active: false }]);
  assert.equal(applyActive(encs, [{ rid: 'f', active: false }]), false);
});

test('names', () => {
  assert.equal(normalizeName('  Ada   Lovelace '), 'Ada Lovelace');
  assert.equal(normalizeName(null), '');
  assert.ok(isValidName('Ada Lovelace'));
  assert.ok(isValidName("O'Brien-2"));
  assert.ok(isValidName('Zoë'));
  assert.ok(!isValidName('<b>Viv</b>'));
  assert.ok(!isValidName(''));
  assert.ok(!isValidName('x'.repeat(33)));
});

test('reconnect backoff doubles to 5 s with +-25 % jitter', () => {
  assert.equal(reconnectDelay(0, () => 0.5), 250);
  assert.equal(reconnectDelay(1, () => 0.5), 500);
  assert.equal(reconnectDelay(10, () => 0.5), 5000);
  assert.equal(reconnectDelay(1000, () => 0.5), 5000);
  assert.equal(reconnectDelay(0, () => 0), 188);
  assert.ok(reconnectDelay(0, () => 0.999999) <= 313);
});
