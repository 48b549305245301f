// Chat helpers: the client's own bound on kept messages and how times are shown.
// Texts are only ever shown with textContent (view.js).

/** Messages the page keeps (the server sends at most 100 history + what comes). */
export const CHAT_KEEP = 200;
/** The server's limit on a text (protocol.rs CHAT_MAX_CHARS). */
export const CHAT_MAX_CHARS = 1000;

/** Whether a server chat entry has the fields the page shows. */
export function isChatEntry(m) {
  return Boolean(m) && typeof m.peerId === 'string' && typeof m.name === 'string'
    && typeof m.text === 'string' && Number.isFinite(m.at);
}

/** `list` with `entries` appended, the oldest dropped beyond CHAT_KEEP (a new array). */
export function appendMessages(list, entries) {
  const next = list.concat(entries.filter(isChatEntry).map(({ peerId, name, text, at }) => ({ peerId, name, text, at })));
  return next.length > CHAT_KEEP ? next.slice(next.length - CHAT_KEEP) : next;
}

/** A message's time as hours and minutes (24 h), in the page's time zone. */
export function formatTime(at, timeZone) {
  const d = new Date(at);
  return d.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', hour12: false, timeZone });
}
