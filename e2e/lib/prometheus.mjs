// A strict reader of the Prometheus text exposition format 0.0.4, independent of the
// server's writer: throws on anything a Prometheus server would reject (or that breaks
// the format's rules: one TYPE per family before its samples, families contiguous,
// histograms cumulative with a +Inf bucket equal to _count).

import { metricsToken } from './server.mjs';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(v, line) {
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  if (v === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) throw new Error(`bad value in ${JSON.stringify(line)}`);
  return Number(v);
}

function parseLabels(s, line) {
  // s starts after '{'; returns [labels, rest after '}'].
  const labels = {};
  let i = 0;
  for (;;) {
    if (s[i] === '}') return [labels, s.slice(i + 1)];
    const eq = s.indexOf('="', i);
    if (eq < 0) throw new Error(`bad labels in ${JSON.stringify(line)}`);
    const name = s.slice(i, eq);
    if (!LABEL.test(name) || name in labels) throw new Error(`bad label name ${name} in ${JSON.stringify(line)}`);
    let j = eq + 2;
    let value = '';
    for (;;) {
      const c = s[j];
      if (c === undefined) throw new Error(`unterminated label value in ${JSON.stringify(line)}`);
      if (c === '\\') {
        const n = s[j + 1];
        if (n === 'n') value += '\n';
        else if (n === '\\' || n === '"') value += n;
        else throw new Error(`bad escape in ${JSON.stringify(line)}`);
        j += 2;
      } else if (c === '"') {
        j += 1;
        break;
      } else {
        value += c;
        j += 1;
      }
    }
    labels[name] = value;
    if (s[j] === ',') j += 1;
    i = j;
  }
}

/** Parses the text; returns { families: Map(name -> {type, help, samples: [{name, labels, value}]}) }. */
export function parsePrometheus(text) {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a line feed');
  const families = new Map();
  let current = null;
  const closed = new Set();
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
      if (!m) continue; // other comments are allowed
      const [, kw, name, rest = ''] = m;
      if (!NAME.test(name)) throw new Error(`bad metric name in ${JSON.stringify(line)}`);
      if (closed.has(name)) throw new Error(`family ${name} is not contiguous`);
      let f = families.get(name);
      if (!f) {
        f = { type: 'untyped', help: '', samples: [], typed: false };
        families.set(name, f);
      }
      if (current && current !== name) closed.add(current);
      current = name;
      if (kw === 'TYPE') {
        if (f.typed) throw new Error(`TYPE twice for ${name}`);
        if (f.samples.length) throw new Error(`TYPE after samples for ${name}`);
        if (!TYPES.has(rest)) throw new Error(`bad type in ${JSON.stringify(line)}`);
        f.type = rest;
        f.typed = true;
      } else {
        f.help = rest;
      }
      continue;
    }
    if (line.trim() === '') throw new Error('empty line in the exposition');
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(.*)$/.exec(line);
    if (!m) throw new Error(`bad sample line ${JSON.stringify(line)}`);
    const [, name] = m;
    let rest = m[2];
    let labels = {};
    if (rest.startsWith('{')) [labels, rest] = parseLabels(rest.slice(1), line);
    const parts = rest.trim().split(' ');
    if (!rest.startsWith(' ') || parts.length < 1 || parts.length > 2) throw new Error(`bad sample line ${JSON.stringify(line)}`);
    const value = parseValue(parts[0], line);
    const f = families.get(current);
    const ok = f && (name === current || (f.type === 'histogram' && [`${current}_bucket`, `${current}_sum`, `${current}_count`].includes(name)));
    if (!ok) throw new Error(`sample ${name} outside its family (current: ${current})`);
    if (f.type === 'counter' && !(value >= 0)) throw new Error(`negative counter ${JSON.stringify(line)}`);
    f.samples.push({ name, labels, value });
  }
  for (const [name, f] of families) {
    if (f.type !== 'histogram') continue;
    const series = new Map();
    for (const s of f.samples.filter((x) => x.name === `${name}_bucket`)) {
      if (!('le' in s.labels)) throw new Error(`${name}_bucket without le`);
      const { le, ...rest } = s.labels;
      const key = JSON.stringify(rest);
      if (!series.has(key)) series.set(key, []);
      series.get(key).push([parseValue(le, le), s.value]);
    }
    for (const [key, buckets] of series) {
      for (let i = 1; i < buckets.length; i++) {
        if (!(buckets[i][0] > buckets[i - 1][0]) || buckets[i][1] < buckets[i - 1][1]) {
          throw new Error(`${name}${key}: buckets not cumulative: ${JSON.stringify(buckets)}`);
        }
      }
      const last = buckets[buckets.length - 1];
      if (last[0] !== Infinity) throw new Error(`${name}${key}: no +Inf bucket`);
      const count = f.samples.find((x) => x.name === `${name}_count` && JSON.stringify(x.labels) === key);
      const sum = f.samples.find((x) => x.name === `${name}_sum` && JSON.stringify(x.labels) === key);
      if (!count || !sum) throw new Error(`${name}${key}: _sum or _count missing`);
      if (count.value !== last[1]) throw new Error(`${name}${key}: +Inf bucket ${last[1]} != _count ${count.value}`);
    }
  }
  return { families };
}

/** Sum of the samples called `name` whose labels include `match`. */
export function total(parsed, name, match = {}) {
  let sum = 0;
  for (const f of parsed.families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)) sum += s.value;
    }
  }
  return sum;
}

/** Fetches and parses /metrics (with the servers' metrics_token); checks the content type. */
export async function scrape(baseUrl) {
  const r = await fetch(`${baseUrl}/metrics`, { headers: { Authorization: `Bearer ${metricsToken}` } });
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  const type = r.headers.get('content-type');
  if (type !== 'text/plain; version=0.0.4; charset=utf-8') throw new Error(`/metrics content type ${type}`);
  const text = await r.text();
  return { text, parsed: parsePrometheus(text) };
}
