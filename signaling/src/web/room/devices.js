// Device choices: which camera, microphone and speaker to use, remembered in
// localStorage, and the getUserMedia constraints they make. No DOM here.

const STORAGE_KEY = 'sfu.devices';
const KINDS = { camera: 'videoinput', microphone: 'audioinput', speaker: 'audiooutput' };

/** The remembered choices: {camera, microphone, speaker, name} (ids; null when none). */
export function loadPrefs(storage) {
  let saved;
  try {
    saved = JSON.parse(storage.getItem(STORAGE_KEY) || '{}') || {};
  } catch {
    saved = {};
  }
  const str = (v) => (typeof v === 'string' && v.length <= 256 ? v : null);
  return { camera: str(saved.camera), microphone: str(saved.microphone), speaker: str(saved.speaker), name: str(saved.name) };
}

/** Remembers `prefs` (storage may refuse: private windows, quota; that only loses the memory). */
export function savePrefs(storage, prefs) {
  try {
    storage.setItem(STORAGE_KEY, JSON.stringify(prefs));
  } catch {
    // nothing to do: the choice still applies to this page
  }
}

/**
 * The getUserMedia constraint sets to try, in order: the chosen devices (`exact`: Chromium
 * does not honour an `ideal` deviceId), then any camera and microphone, then either alone.
 * A remembered device that is gone fails the first and the next one finds another.
 */
export function mediaAttempts({ camera, microphone } = {}) {
  const any = [{ audio: true, video: true }, { audio: true }, { video: true }];
  if (!camera && !microphone) return any;
  return [{
    audio: microphone ? { deviceId: { exact: microphone } } : true,
    video: camera ? { deviceId: { exact: camera } } : true,
  }, ...any];
}

/**
 * The options of one device list (`which`: camera, microphone or speaker) from
 * enumerateDevices(): [{id, label}], labelled "Camera 2" where the browser gives no label.
 */
export function deviceChoices(devices, which) {
  const kind = KINDS[which];
  const noun = which[0].toUpperCase() + which.slice(1);
  const out = [];
  for (const d of devices || []) {
    if (d.kind !== kind || !d.deviceId || out.some((o) => o.id === d.deviceId)) continue;
    out.push({ id: d.deviceId, label: d.label || `${noun} ${out.length + 1}` });
  }
  return out;
}

/** Which option to select: the one in use, else the remembered one, else the first. */
export function chosen(options, inUse, remembered) {
  for (const id of [inUse, remembered]) if (id && options.some((o) => o.id === id)) return id;
  return options.length ? options[0].id : null;
}

/**
 * What to tell the person about their devices, before joining (`joined` false) or in the
 * call: `problem` from media.js getMedia ({code, partlyDenied}), or null when all is well.
 */
export function problemText(problem, joined) {
  if (!problem) return null;
  const viewer = joined ? 'you joined as a viewer' : 'you will join as a viewer';
  switch (problem.code) {
    case 'insecure': return `Camera and microphone need a secure page (https or localhost): ${viewer}.`;
    case 'denied': return `Camera and microphone access was denied: ${viewer}. Allow access and ${joined ? 'rejoin' : 'reload'} to be seen and heard.`;
    case 'none': return `No camera or microphone found: ${viewer}.`;
    case 'noCamera': return `${problem.partlyDenied ? 'Access was partly denied. ' : ''}No camera available: others hear you but do not see you.`;
    case 'noMicrophone': return `${problem.partlyDenied ? 'Access was partly denied. ' : ''}No microphone available: others see you but do not hear you.`;
    default: return null;
  }
}
