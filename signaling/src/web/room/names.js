// Participant names as the server accepts them (signaling/src/names.rs).
import { NAME_RE, NAME_MAX_CHARS } from './config.js';

/** The name as typed, with surrounding and repeated spaces folded. */
export function normalizeName(raw) {
  return String(raw || '').trim().replace(/\s+/g, ' ');
}

/** Whether the server would take `name`. */
export function isValidName(name) {
  return NAME_RE.test(name) && [...name].length <= NAME_MAX_CHARS;
}
