// /metrics during a two-party Chromium call (issue 7): the exposition parses strictly as
// Prometheus text, and the counters move between two scrapes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor, waitForMedia } from '../lib/wait.mjs';
import { chromiumSuite } from '../lib/suite.mjs';
import { scrape, total } from '../lib/prometheus.mjs';
import { ownId } from '../lib/page.mjs';

const suite = chromiumSuite();
const { open } = suite;

const COUNTERS = [
  'sfu_worker_rtp_packets_received_total',
  'sfu_worker_rtp_bytes_received_total',
  'sfu_worker_rtp_packets_sent_total',
  'sfu_worker_rtp_bytes_sent_total',
  'sfu_worker_forwarding_latency_seconds_count',
];

function summary(parsed) {
  const s = Object.fromEntries(COUNTERS.map((n) => [n, total(parsed, n)]));
  for (const n of ['sfu_worker_consumers', 'sfu_worker_producers', 'sfu_worker_transports', 'sfu_signaling_peers',
    'sfu_signaling_rooms', 'sfu_worker_forwarding_latency_seconds_sum']) s[n] = total(parsed, n);
  return s;
}

test('metrics move during a call and parse as Prometheus text', async () => {
  const room = `e2e-metrics-${process.pid}`;
  const ada = await open(room, 'Ada');
  const bob = await open(room, 'Bob');
  const adaId = await ownId(ada);
  const bobId = await ownId(bob);
  await Promise.all([waitForMedia(ada, [bobId], "Ada's media"), waitForMedia(bob, [adaId], "Bob's media")]);

  const first = await scrape(suite.srv.url);
  const s1 = summary(first.parsed);
  const workers = first.parsed.families.get('sfu_worker_up').samples;
  assert.ok(workers.length >= 1 && workers.every((w) => w.value === 1), `every worker answers: ${JSON.stringify(workers)}`);
  assert.ok(s1.sfu_worker_consumers >= 4, `consumers: ${s1.sfu_worker_consumers}`);
  assert.ok(s1.sfu_worker_producers >= 4 && s1.sfu_signaling_peers >= 2 && s1.sfu_signaling_rooms >= 1, JSON.stringify(s1));
  for (const name of ['sfu_worker_dropped_packets_total', 'sfu_worker_nack_received_total', 'sfu_worker_pli_received_total',
    'sfu_worker_dtls_failures_total', 'sfu_worker_packets_lost', 'sfu_worker_load']) {
    if (!first.parsed.families.has(name)) console.log(`# note: ${name} not reported by this daemon`);
  }
  assert.equal(first.parsed.families.get('sfu_worker_forwarding_latency_seconds').type, 'histogram');

  // Poll (no fixed sleep) until every counter moved.
  const second = await waitFor('metrics to move', () => scrape(suite.srv.url), (r) => {
    const s2 = summary(r.parsed);
    return COUNTERS.every((n) => s2[n] > s1[n]);
  }, { timeout: 10000, interval: 250 });
  const s2 = summary(second.parsed);
  assert.ok(s2.sfu_worker_forwarding_latency_seconds_sum >= s1.sfu_worker_forwarding_latency_seconds_sum);
  const moved = Object.fromEntries(COUNTERS.map((n) => [n, s2[n] - s1[n]]));
  console.log(`# /metrics: ${second.text.split('\n').length} lines; between two scrapes: ${JSON.stringify(moved)}`);
  console.log(`# consumers ${s2.sfu_worker_consumers}, producers ${s2.sfu_worker_producers}, transports ${s2.sfu_worker_transports}`);
});
