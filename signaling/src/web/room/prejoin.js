// The pre-join screen: camera preview, microphone level, name, device choices
// (remembered, devices.js) and joining with the microphone or camera off; says clearly when
// access is denied or there is no device (then one joins as a viewer). The stream shown
// here is the one the call sends: joining does not ask for the devices again.
import { deviceChoices, chosen, savePrefs, problemText } from './devices.js';
import { getMedia, listDevices } from './media.js';
import { AudioLevel } from './levels.js';

const $ = (id) => document.getElementById(id);
const SELECTS = { camera: 'camera-select', microphone: 'mic-select', speaker: 'speaker-select' };

export class PreJoin {
  /** `prefs`: the remembered choices (devices.js loadPrefs), kept up to date here. */
  constructor(prefs, storage) {
    this.prefs = prefs;
    this.storage = storage;
    this.stream = null;
    this.problem = null;
    this.meter = new AudioLevel();
    this.meterTimer = null;
    /** Bumped by every open/change: a slower earlier getUserMedia must not win. */
    this.generation = 0;
    /** The latest acquire() still on its way (joining waits for it). */
    this.pending = null;
    for (const [which, id] of Object.entries(SELECTS)) {
      $(id).addEventListener('change', () => this.choose(which, $(id).value));
    }
    $('prompt').addEventListener('click', () => AudioLevel.resume());
  }

  /** Shows the preview with the remembered devices. */
  async open() {
    $('name-input').value = $('name-input').value || this.prefs.name || '';
    await this.refresh();
  }

  /** Starts the chosen devices again; joining waits for the latest start to finish. */
  refresh() {
    const started = this.acquire().catch((e) => console.warn(`pre-join: ${e}`));
    this.pending = started;
    return started.finally(() => {
      if (this.pending === started) this.pending = null;
    });
  }

  async acquire() {
    const generation = (this.generation += 1);
    this.release();
    $('device-status').textContent = 'Starting camera and microphone…';
    const { stream, problem } = await getMedia(this.prefs);
    if (generation !== this.generation) {
      for (const t of stream ? stream.getTracks() : []) t.stop();
      return;
    }
    this.stream = stream;
    this.problem = problem;
    $('preview').srcObject = stream && stream.getVideoTracks().length ? stream : null;
    $('preview-box').classList.toggle('no-video', !(stream && stream.getVideoTracks().length));
    $('device-status').textContent = problemText(problem, false) || '';
    $('join').textContent = stream ? 'Join' : 'Join as viewer';
    $('join-muted').disabled = !(stream && stream.getAudioTracks().length);
    $('join-camera-off').disabled = !(stream && stream.getVideoTracks().length);
    this.meter.attach(stream);
    this.meterTimer = setInterval(() => { $('mic-level').value = this.meter.level(); }, 100);
    await this.fillSelects();
  }

  async fillSelects() {
    const devices = await listDevices();
    const inUse = {
      camera: this.trackDevice('video'),
      microphone: this.trackDevice('audio'),
      speaker: this.prefs.speaker,
    };
    for (const [which, id] of Object.entries(SELECTS)) {
      const select = $(id);
      const options = deviceChoices(devices, which);
      // Speakers can only be chosen where the browser can route audio (setSinkId).
      const usable = which !== 'speaker' || 'setSinkId' in HTMLMediaElement.prototype;
      select.closest('.device').hidden = !usable || options.length === 0;
      select.replaceChildren(...options.map((o) => {
        const opt = document.createElement('option');
        opt.value = o.id;
        opt.textContent = o.label;
        return opt;
      }));
      const pick = chosen(options, inUse[which], this.prefs[which]);
      if (pick) select.value = pick;
    }
  }

  trackDevice(kind) {
    const t = this.stream && this.stream.getTracks().find((x) => x.kind === kind);
    const settings = t && t.getSettings ? t.getSettings() : {};
    return settings.deviceId || null;
  }

  async choose(which, id) {
    this.prefs[which] = id;
    savePrefs(this.storage, this.prefs);
    if (which !== 'speaker') await this.refresh();
  }

  release() {
    clearInterval(this.meterTimer);
    this.meterTimer = null;
    this.meter.detach();
    for (const t of this.stream ? this.stream.getTracks() : []) t.stop();
    this.stream = null;
    $('preview').srcObject = null;
  }

  /**
   * Joining as `name`: hands over the stream and the choices (the screen lets go of it):
   * {stream, problem, micMuted, camOff, speaker}. Someone who clicks Join before the camera
   * has started joins with it once it has, not without it.
   */
  async take(name) {
    while (this.pending) await this.pending;
    this.generation += 1;
    this.prefs.name = name;
    savePrefs(this.storage, this.prefs);
    const out = {
      stream: this.stream,
      problem: this.problem,
      micMuted: $('join-muted').checked && !$('join-muted').disabled,
      camOff: $('join-camera-off').checked && !$('join-camera-off').disabled,
      speaker: this.prefs.speaker,
    };
    clearInterval(this.meterTimer);
    this.meter.detach();
    this.stream = null;
    $('preview').srcObject = null;
    return out;
  }
}
