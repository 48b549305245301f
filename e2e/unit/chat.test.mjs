// Chat in the room state (state.js) and its helpers (chat.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initialState, reduce } from '../../signaling/src/web/room/state.js';
import { appendMessages, formatTime, isChatEntry, CHAT_KEEP } from '../../signaling/src/web/room/chat.js';

const msg = (peerId, text, at = 1765090000000) => ({ type: 'chatMessage', peerId, name: peerId.toUpperCase(), text, at });

test('messages from others count as unread until the panel opens; one\'s own never', () => {
  const s = initialState();
  reduce(s, { type: 'joined', peerId: 'a', peers: [] });
  reduce(s, msg('b', 'hi'));
  reduce(s, msg('a', 'hello'));
  reduce(s, msg('b', 'how are you?'));
  assert.equal(s.chat.unread, 2);
  assert.deepEqual(s.chat.messages.map((m) => m.text), ['hi', 'hello', 'how are you?']);
  reduce(s, { type: 'chatOpen', open: true });
  assert.equal(s.chat.unread, 0);
  reduce(s, msg('b', 'fine'));
  assert.equal(s.chat.unread, 0, 'read as it comes while open');
  reduce(s, { type: 'chatOpen', open: false });
  reduce(s, { ...msg('b', 'x'), text: 7 });
  assert.equal(s.chat.unread, 0, 'a malformed message is dropped');
  assert.equal(s.chat.messages.length, 4);
});

test('history after a (re)join replaces what the page had', () => {
  const s = initialState();
  reduce(s, msg('b', 'old'));
  reduce(s, { type: 'chatHistory', messages: [msg('b', 'one'), msg('c', 'two'), { bogus: true }] });
  assert.deepEqual(s.chat.messages.map((m) => m.text), ['one', 'two']);
  reduce(s, { type: 'chatHistory', messages: 'nope' });
  assert.deepEqual(s.chat.messages, []);
});

test('the page keeps at most CHAT_KEEP messages, the latest', () => {
  let list = [];
  for (let i = 0; i < CHAT_KEEP + 5; i += 1) list = appendMessages(list, [msg('b', `m${i}`)]);
  assert.equal(list.length, CHAT_KEEP);
  assert.equal(list[0].text, 'm5');
  assert.equal(isChatEntry({ peerId: 'p', name: 'n', text: 't', at: NaN }), false);
  // Only the fields shown are kept (nothing else a server might add).
  assert.deepEqual(Object.keys(appendMessages([], [{ ...msg('b', 't'), html: '<b>' }])[0]).sort(), ['at', 'name', 'peerId', 'text']);
});

test('times show as hours and minutes', () => {
  assert.equal(formatTime(Date.UTC(2026, 11, 7, 9, 5), 'UTC'), '09:05');
});
