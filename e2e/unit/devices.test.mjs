// Device choices (signaling/src/web/room/devices.js): remembered, turned into constraints
// and options, and the words for what went wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadPrefs, savePrefs, mediaAttempts, deviceChoices, chosen, problemText } from '../../signaling/src/web/room/devices.js';

function memoryStorage(initial = {}) {
  const m = new Map(Object.entries(initial));
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), map: m };
}

test('choices are remembered and read back; garbage reads as nothing', () => {
  const st = memoryStorage();
  assert.deepEqual(loadPrefs(st), { camera: null, microphone: null, speaker: null, name: null });
  savePrefs(st, { camera: 'cam2', microphone: 'mic1', speaker: null, name: 'Ann' });
  assert.deepEqual(loadPrefs(st), { camera: 'cam2', microphone: 'mic1', speaker: null, name: 'Ann' });
  for (const junk of ['{', 'null', '5', '{"camera": 7, "name": ["x"]}', JSON.stringify({ camera: 'x'.repeat(300) })]) {
    assert.deepEqual(loadPrefs(memoryStorage({ 'sfu.devices': junk })), { camera: null, microphone: null, speaker: null, name: null }, junk);
  }
  // A storage that refuses (private window, quota) loses the memory, nothing else.
  savePrefs({ setItem: () => { throw new Error('QuotaExceededError'); } }, { camera: 'x' });
});

test('constraints: the chosen devices exactly, then any, then either alone', () => {
  assert.deepEqual(mediaAttempts({}), [{ audio: true, video: true }, { audio: true }, { video: true }]);
  assert.deepEqual(mediaAttempts({ camera: 'c', microphone: null }),
    [{ audio: true, video: { deviceId: { exact: 'c' } } }, { audio: true, video: true }, { audio: true }, { video: true }]);
});

test('options per kind, labelled when the browser hides labels, without duplicates', () => {
  const devices = [
    { kind: 'videoinput', deviceId: 'c1', label: 'Front' },
    { kind: 'videoinput', deviceId: 'c2', label: '' },
    { kind: 'videoinput', deviceId: 'c2', label: '' },
    { kind: 'audioinput', deviceId: 'm1', label: 'Mic' },
    { kind: 'audiooutput', deviceId: '', label: '' },
  ];
  assert.deepEqual(deviceChoices(devices, 'camera'), [{ id: 'c1', label: 'Front' }, { id: 'c2', label: 'Camera 2' }]);
  assert.deepEqual(deviceChoices(devices, 'microphone'), [{ id: 'm1', label: 'Mic' }]);
  assert.deepEqual(deviceChoices(devices, 'speaker'), []);
  assert.deepEqual(deviceChoices(undefined, 'camera'), []);
});

test('selected option: in use, then remembered, then first', () => {
  const options = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];
  assert.equal(chosen(options, 'c', 'b'), 'c');
  assert.equal(chosen(options, 'gone', 'b'), 'b');
  assert.equal(chosen(options, null, 'gone'), 'a');
  assert.equal(chosen([], 'a', 'b'), null);
});

test('problems in words, before and after joining', () => {
  assert.equal(problemText(null, true), null);
  assert.match(problemText({ code: 'denied' }, false), /denied: you will join as a viewer/);
  assert.match(problemText({ code: 'denied' }, true), /denied: you joined as a viewer\. Allow access and rejoin/);
  assert.match(problemText({ code: 'none' }, true), /No camera or microphone found/);
  assert.equal(problemText({ code: 'noCamera', partlyDenied: true }, true), 'Access was partly denied. No camera available: others hear you but do not see you.');
  assert.match(problemText({ code: 'insecure' }, false), /secure page/);
});
