// Keyboard shortcuts of the room page: one key each, no modifier, never while typing.

export const SHORTCUTS = Object.freeze({
  m: 'mic',
  v: 'camera',
  s: 'share',
  c: 'chat',
  l: 'layout',
  f: 'fullscreen',
});

/**
 * The control a key press means, or null. `e`: {key, ctrlKey, metaKey, altKey, target
 * tag name (upper case) or null, whether the target is editable}.
 */
export function shortcutFor({ key, ctrlKey, metaKey, altKey, tagName, editable }) {
  if (ctrlKey || metaKey || altKey || editable) return null;
  if (tagName === 'INPUT' || tagName === 'TEXTAREA' || tagName === 'SELECT') return null;
  return SHORTCUTS[String(key).toLowerCase()] || null;
}
