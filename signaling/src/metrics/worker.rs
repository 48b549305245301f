//! One worker's `worker.getStats` answer (docs/PROTOCOL.md) as metric samples. Read
//! field by field and leniently: a field the daemon does not (yet) report is left out,
//! never an error, and nothing in the answer can make a scrape fail.

use serde_json::Value;

use super::exposition::{Exposition, HistogramValue};

fn uint(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// `camelCase` → `snake_case`, for label values in the usual Prometheus style.
fn snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Counters reported as lifetime totals: (field, metric, help).
const COUNTERS: [(&str, &str, &str); 33] = [
    (
        "rtpPacketsReceived",
        "sfu_worker_rtp_packets_received_total",
        "RTP packets received from publishers.",
    ),
    (
        "rtpBytesReceived",
        "sfu_worker_rtp_bytes_received_total",
        "RTP bytes received from publishers.",
    ),
    (
        "rtpPacketsSent",
        "sfu_worker_rtp_packets_sent_total",
        "RTP packets sent to subscribers.",
    ),
    (
        "rtpBytesSent",
        "sfu_worker_rtp_bytes_sent_total",
        "RTP bytes sent to subscribers.",
    ),
    (
        "transportsCreated",
        "sfu_worker_transports_created_total",
        "WebRTC transports created.",
    ),
    (
        "dtlsFailures",
        "sfu_worker_dtls_failures_total",
        "DTLS handshakes that failed (including fingerprint mismatches).",
    ),
    (
        "pliReceived",
        "sfu_worker_pli_received_total",
        "Picture loss indications received from subscribers.",
    ),
    (
        "firReceived",
        "sfu_worker_fir_received_total",
        "Full intra requests received from subscribers.",
    ),
    (
        "nackReceived",
        "sfu_worker_nack_received_total",
        "Generic NACKs received from subscribers.",
    ),
    (
        "keyFrameRequestsSent",
        "sfu_worker_keyframe_requests_sent_total",
        "Keyframe requests (PLI or FIR) sent to publishers.",
    ),
    (
        "udpDatagramsSent",
        "sfu_worker_udp_datagrams_sent_total",
        "UDP datagrams the kernel accepted from the worker.",
    ),
    (
        "udpSendCalls",
        "sfu_worker_udp_send_calls_total",
        "Send system calls the worker made (sendmmsg, and sends after EAGAIN).",
    ),
    (
        "udpGsoDatagrams",
        "sfu_worker_udp_gso_datagrams_total",
        "UDP datagrams sent inside GSO super-datagrams.",
    ),
    (
        "udpSendErrors",
        "sfu_worker_udp_send_errors_total",
        "UDP datagrams the kernel refused.",
    ),
    (
        "udpReceiveBatches",
        "sfu_worker_udp_receive_batches_total",
        "Receive batches (recvmmsg calls that returned datagrams).",
    ),
    (
        "udpDatagramsReceived",
        "sfu_worker_udp_datagrams_received_total",
        "UDP datagrams received, of every kind.",
    ),
    (
        "controlClientsDropped",
        "sfu_worker_control_clients_dropped_total",
        "Control connections disconnected for not reading their responses.",
    ),
    (
        "tcpConnectionsAccepted",
        "sfu_worker_tcp_connections_accepted_total",
        "ICE-TCP connections accepted.",
    ),
    (
        "tcpConnectionsRefused",
        "sfu_worker_tcp_connections_refused_total",
        "ICE-TCP connections refused over the per-worker bounds.",
    ),
    (
        "tcpConnectionsTimedOut",
        "sfu_worker_tcp_connections_timed_out_total",
        "ICE-TCP connections closed unauthenticated too long, or idle.",
    ),
    (
        "tcpFramingErrors",
        "sfu_worker_tcp_framing_errors_total",
        "ICE-TCP connections closed for a bad RFC 4571 frame length.",
    ),
    (
        "tcpFramesReceived",
        "sfu_worker_tcp_frames_received_total",
        "RFC 4571 frames received over ICE-TCP.",
    ),
    (
        "tcpFramesSent",
        "sfu_worker_tcp_frames_sent_total",
        "RFC 4571 frames queued to ICE-TCP connections.",
    ),
    (
        "tcpSendDropped",
        "sfu_worker_tcp_send_dropped_total",
        "Frames for ICE-TCP connections dropped (queue full or connection gone).",
    ),
    (
        "probeClustersStarted",
        "sfu_worker_probe_clusters_total",
        "Bandwidth probe clusters started before moving subscribers up.",
    ),
    (
        "probeClustersSucceeded",
        "sfu_worker_probe_clusters_succeeded_total",
        "Bandwidth probe clusters whose measured rate confirmed their target.",
    ),
    (
        "probeClustersAborted",
        "sfu_worker_probe_clusters_aborted_total",
        "Bandwidth probe clusters ended early because the path congested under them.",
    ),
    (
        "probePaddingPackets",
        "sfu_worker_probe_padding_packets_total",
        "Padding packets sent for bandwidth probes.",
    ),
    (
        "probePaddingBytes",
        "sfu_worker_probe_padding_bytes_total",
        "Padding bytes (on the wire) sent for bandwidth probes.",
    ),
    (
        "retransmissionsOverBudget",
        "sfu_worker_retransmissions_over_budget_total",
        "Retransmissions refused because they exceeded the subscriber's retransmission budget.",
    ),
    (
        "keyFrameRequestsRepeated",
        "sfu_worker_keyframe_requests_repeated_total",
        "Keyframe requests sent again because no keyframe answered the last one.",
    ),
    (
        "dominantSpeakerChanges",
        "sfu_worker_dominant_speaker_changes_total",
        "Changes of a router's dominant speaker.",
    ),
    (
        "redPacketsUnwrapped",
        "sfu_worker_red_packets_unwrapped_total",
        "RED audio packets sent as their primary Opus block to subscribers without RED.",
    ),
];

/// Layer switches of simulcast consumers, by dimension: (field, label value).
const LAYER_SWITCHES: [(&str, &str); 2] = [
    ("spatialLayerSwitches", "spatial"),
    ("temporalLayerSwitches", "temporal"),
];

/// Gauges from the `load` object: (field, metric, help).
const LOAD: [(&str, &str, &str); 5] = [
    (
        "routers",
        "sfu_worker_routers",
        "Routers (rooms) on the worker.",
    ),
    (
        "transports",
        "sfu_worker_transports",
        "WebRTC transports on the worker.",
    ),
    (
        "producers",
        "sfu_worker_producers",
        "Producers (incoming tracks).",
    ),
    (
        "consumers",
        "sfu_worker_consumers",
        "Consumers (outgoing tracks).",
    ),
    (
        "load",
        "sfu_worker_load",
        "Placement load of the worker (producers + consumers).",
    ),
];

/// Writes worker `index`'s samples; `stats` is None when it did not answer.
pub(super) fn write(e: &mut Exposition, index: usize, stats: Option<&Value>) {
    let worker = index.to_string();
    let l = [("worker", worker.as_str())];
    e.gauge(
        "sfu_worker_up",
        "1 if the worker answered worker.getStats in this scrape.",
        &l,
        u64::from(stats.is_some()),
    );
    let Some(s) = stats else {
        return;
    };
    if let Some(load) = s.get("load") {
        for (field, name, help) in LOAD {
            if let Some(v) = uint(load, field) {
                e.gauge(name, help, &l, v);
            }
        }
    }
    for (field, name, help) in COUNTERS {
        if let Some(v) = uint(s, field) {
            e.counter(name, help, &l, v);
        }
    }
    if let Some(v) = uint(s, "packetsLost") {
        e.gauge(
            "sfu_worker_packets_lost",
            "Packets lost from publishers (RFC 3550 cumulative loss of the current producers).",
            &l,
            v,
        );
    }
    if let Some(v) = uint(s, "consumersLimitedByBandwidth") {
        e.gauge(
            "sfu_worker_consumers_limited_by_bandwidth",
            "Active simulcast consumers held below their preferred layers by their bandwidth allocation.",
            &l,
            v,
        );
    }
    for (field, layer) in LAYER_SWITCHES {
        if let Some(v) = uint(s, field) {
            e.counter(
                "sfu_worker_layer_switches_total",
                "Switches of the layer simulcast consumers forward, by layer (spatial: another encoding; temporal: within one).",
                &[("worker", worker.as_str()), ("layer", layer)],
                v,
            );
        }
    }
    if let Some(Value::Object(dropped)) = s.get("dropped") {
        for (class, v) in dropped {
            if let Some(v) = v.as_u64() {
                let class = snake(class);
                e.counter(
                    "sfu_worker_dropped_packets_total",
                    "Datagrams the worker discarded, by class (malformed, srtp_auth, ...).",
                    &[("worker", worker.as_str()), ("class", class.as_str())],
                    v,
                );
            }
        }
    }
    if let Some(h) = s.get("forwardingLatency").and_then(latency) {
        e.histogram(
            "sfu_worker_forwarding_latency_seconds",
            "Time from receiving a datagram to submitting each datagram forwarded for it.",
            &l,
            h,
        );
    }
}

/// The daemon's latency histogram (microseconds by default) in seconds.
fn latency(v: &Value) -> Option<HistogramValue> {
    // Divided (not multiplied by 1e-6): the result is then the nearest float to the
    // exact value, so 5 us prints as 0.000005.
    let per_second = match v.get("unit").and_then(Value::as_str).unwrap_or("us") {
        "s" => 1.0,
        "ms" => 1e3,
        "us" => 1e6,
        "ns" => 1e9,
        _ => return None,
    };
    let count = uint(v, "count")?;
    let sum = v.get("sum").and_then(Value::as_f64).unwrap_or(0.0) / per_second;
    let mut buckets: Vec<(f64, u64)> = v
        .get("buckets")
        .and_then(Value::as_array)
        .map(|b| {
            b.iter()
                .filter_map(|b| Some((b.get("le")?.as_f64()? / per_second, uint(b, "count")?)))
                .filter(|(le, _)| le.is_finite())
                .collect()
        })
        .unwrap_or_default();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets.dedup_by(|a, b| a.0 == b.0);
    Some(HistogramValue {
        buckets,
        sum,
        count,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_full_answer() {
        let stats = json!({
            "type": "worker", "worker": 0, "rtpPacketsReceived": 10, "rtpBytesReceived": 1000,
            "rtpPacketsSent": 20, "rtpBytesSent": 2000,
            "dropped": {"malformed": 1, "srtpAuth": 2},
            "load": {"routers": 1, "transports": 4, "producers": 2, "consumers": 2, "load": 4},
            "forwardingLatency": {"unit": "us", "count": 20, "sum": 200,
                                  "buckets": [{"le": 10, "count": 15}, {"le": 5, "count": 8}]},
            "dtlsFailures": 0, "nackReceived": 3, "packetsLost": 7,
            "spatialLayerSwitches": 4, "temporalLayerSwitches": 9, "probeClustersStarted": 5,
            "probeClustersSucceeded": 3, "probeClustersAborted": 1, "probePaddingPackets": 40, "probePaddingBytes": 48000,
            "retransmissionsOverBudget": 12, "keyFrameRequestsRepeated": 2,
            "dominantSpeakerChanges": 6, "consumersLimitedByBandwidth": 1,
            "redPacketsUnwrapped": 8
        });
        let mut e = Exposition::new();
        write(&mut e, 0, Some(&stats));
        write(&mut e, 1, None);
        let text = e.render();
        for line in [
            "sfu_worker_up{worker=\"0\"} 1\n",
            "sfu_worker_up{worker=\"1\"} 0\n",
            "sfu_worker_consumers{worker=\"0\"} 2\n",
            "sfu_worker_rtp_bytes_sent_total{worker=\"0\"} 2000\n",
            "sfu_worker_dropped_packets_total{worker=\"0\",class=\"srtp_auth\"} 2\n",
            "sfu_worker_nack_received_total{worker=\"0\"} 3\n",
            "sfu_worker_packets_lost{worker=\"0\"} 7\n",
            "sfu_worker_layer_switches_total{worker=\"0\",layer=\"spatial\"} 4\n",
            "sfu_worker_layer_switches_total{worker=\"0\",layer=\"temporal\"} 9\n",
            "sfu_worker_probe_clusters_total{worker=\"0\"} 5\n",
            "sfu_worker_probe_clusters_succeeded_total{worker=\"0\"} 3\n",
            "sfu_worker_probe_clusters_aborted_total{worker=\"0\"} 1\n",
            "sfu_worker_probe_padding_packets_total{worker=\"0\"} 40\n",
            "sfu_worker_probe_padding_bytes_total{worker=\"0\"} 48000\n",
            "sfu_worker_retransmissions_over_budget_total{worker=\"0\"} 12\n",
            "sfu_worker_keyframe_requests_repeated_total{worker=\"0\"} 2\n",
            "sfu_worker_dominant_speaker_changes_total{worker=\"0\"} 6\n",
            "sfu_worker_consumers_limited_by_bandwidth{worker=\"0\"} 1\n",
            "sfu_worker_red_packets_unwrapped_total{worker=\"0\"} 8\n",
            "# TYPE sfu_worker_layer_switches_total counter\n",
            "# TYPE sfu_worker_consumers_limited_by_bandwidth gauge\n",
            "sfu_worker_forwarding_latency_seconds_bucket{worker=\"0\",le=\"0.000005\"} 8\n",
            "sfu_worker_forwarding_latency_seconds_bucket{worker=\"0\",le=\"0.00001\"} 15\n",
            "sfu_worker_forwarding_latency_seconds_bucket{worker=\"0\",le=\"+Inf\"} 20\n",
            "sfu_worker_forwarding_latency_seconds_sum{worker=\"0\"} 0.0002\n",
            "sfu_worker_forwarding_latency_seconds_count{worker=\"0\"} 20\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("pli_received"), "absent fields are left out");
    }

    #[test]
    fn garbage_is_skipped_not_fatal() {
        for stats in [
            json!(null),
            json!([1, 2]),
            json!({"rtpPacketsReceived": -1, "dropped": {"x": "y"}, "load": 3,
                   "forwardingLatency": {"unit": "fortnights", "count": 1}}),
            json!({"forwardingLatency": {"count": 5, "buckets": [{"le": "x"}, {"le": 1e308, "count": 9}]}}),
        ] {
            let mut e = Exposition::new();
            write(&mut e, 0, Some(&stats));
            let text = e.render();
            assert!(text.contains("sfu_worker_up{worker=\"0\"} 1\n"), "{text}");
        }
    }
}
