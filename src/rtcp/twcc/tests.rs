//! Tests of the transport-cc recorder, writer and parser.
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, RecvDelta, RunLengthChunk, StatusChunkTypeTcc, StatusVectorChunk,
    SymbolSizeTypeTcc, SymbolTypeTcc, TransportLayerCc,
};

use super::*;

const MS: Duration = Duration::from_millis(1);

/// Parses with the `rtcp` crate: one `TransportLayerCc` per RTCP packet.
fn crate_parse(buf: &[u8]) -> Vec<TransportLayerCc> {
    rtcp::packet::unmarshal(&mut Bytes::copy_from_slice(buf))
        .expect("crate unmarshal")
        .iter()
        .map(|p| {
            p.as_any()
                .downcast_ref::<TransportLayerCc>()
                .expect("transport-cc")
                .clone()
        })
        .collect()
}

/// The crate's view flattened to `(seq, cumulative receive time in us)`.
fn crate_statuses(cc: &TransportLayerCc) -> Vec<(u16, Option<i64>)> {
    let count = usize::from(cc.packet_status_count);
    let mut out = Vec::new();
    let mut deltas = cc.recv_deltas.iter();
    let mut cum = 0;
    let mut seq = cc.base_sequence_number;
    for chunk in &cc.packet_chunks {
        let symbols = match chunk {
            PacketStatusChunk::RunLengthChunk(r) => {
                vec![r.packet_status_symbol; usize::from(r.run_length)]
            }
            PacketStatusChunk::StatusVectorChunk(v) => v.symbol_list.clone(),
        };
        for s in symbols {
            if out.len() == count {
                break;
            }
            match s {
                SymbolTypeTcc::PacketNotReceived => out.push((seq, None)),
                SymbolTypeTcc::PacketReceivedSmallDelta
                | SymbolTypeTcc::PacketReceivedLargeDelta => {
                    let d = deltas.next().expect("a delta per received packet");
                    assert_eq!(d.type_tcc_packet, s);
                    cum += d.delta;
                    out.push((seq, Some(cum)));
                }
                SymbolTypeTcc::PacketReceivedWithoutDelta => panic!("reserved symbol"),
            }
            seq = seq.wrapping_add(1);
        }
    }
    assert_eq!(out.len(), count, "chunks cover the status count");
    assert!(deltas.next().is_none(), "no extra deltas");
    out
}

/// Polls until nothing is due, one buffer per feedback packet.
fn drain(rec: &mut TwccRecorder, now: Instant) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    loop {
        let mut out = Vec::new();
        if !rec.poll_feedback(now, 0x1111, 0x2222, &mut out) {
            return packets;
        }
        assert!(out.len() <= MAX_FEEDBACK_LEN, "{} bytes", out.len());
        assert_eq!(out.len() % 4, 0);
        packets.push(out);
    }
}

/// Checks one feedback packet against what was received, with both parsers,
/// and returns the reported statuses with absolute receive times (us since the
/// recorder's epoch).
fn check(buf: &[u8], truth: &dyn Fn(u16) -> Option<u64>) -> Vec<(u16, Option<i64>)> {
    let ccs = crate_parse(buf);
    assert_eq!(ccs.len(), 1);
    let cc = &ccs[0];
    assert_eq!((cc.sender_ssrc, cc.media_ssrc), (0x1111, 0x2222));
    let statuses = crate_statuses(cc);
    let ours = TwccFeedback::parse(buf).expect("our parser");
    assert_eq!(ours.packets().collect::<Vec<_>>(), statuses);
    assert_eq!(ours.reference_time, cc.reference_time);
    assert_eq!(ours.fb_count, cc.fb_pkt_count);
    assert!(
        statuses.iter().any(|s| s.1.is_some()),
        "some packet received"
    );
    statuses
        .into_iter()
        .map(|(seq, cum)| {
            let Some(cum) = cum else {
                // Never claim a packet received that was not; a packet reported
                // lost really had not arrived.
                assert_eq!(truth(seq), None, "seq {seq} reported lost");
                return (seq, None);
            };
            let at = i64::from(cc.reference_time) * 64_000 + cum;
            let real = truth(seq).unwrap_or_else(|| panic!("seq {seq} not received"));
            // Quantized deltas accumulate without drift: within half a tick
            // (modulo the 24-bit reference time wrap).
            let wrap = (REFERENCE_MASK as i64 + 1) * 64_000;
            let err = (at - real as i64).rem_euclid(wrap);
            assert!(err <= 125 || wrap - err <= 125, "seq {seq}: {at} vs {real}");
            (seq, Some(at))
        })
        .collect()
}

#[test]
fn consecutive_packets_one_feedback() {
    let t0 = Instant::now();
    let mut rec = TwccRecorder::new();
    assert_eq!(rec.poll_timeout(), None);
    for i in 0..10u16 {
        // 1 ms apart, plus 150 us of jitter on every other packet.
        let jitter = Duration::from_micros(if i % 2 == 1 { 150 } else { 0 });
        rec.on_packet(100 + i, t0 + MS * u32::from(i) + jitter);
    }
    // Due one interval after the first packet.
    assert_eq!(rec.poll_timeout(), Some(t0 + FEEDBACK_INTERVAL));
    assert!(drain(&mut rec, t0 + 20 * MS).is_empty(), "not due yet");
    let fb = drain(&mut rec, t0 + FEEDBACK_INTERVAL);
    assert_eq!(fb.len(), 1);
    let cc = &crate_parse(&fb[0])[0];
    assert_eq!(cc.base_sequence_number, 100);
    assert_eq!(cc.packet_status_count, 10);
    assert_eq!(cc.reference_time, 0);
    assert_eq!(cc.fb_pkt_count, 0);
    // 10 small deltas: one run-length chunk. The first is 0 (the first packet
    // is the time base's zero); then 1150 us rounds to 5 ticks (1250) and the
    // next is measured from that quantized time: 2000 - 1250 = 750.
    assert_eq!(
        cc.packet_chunks,
        vec![PacketStatusChunk::RunLengthChunk(RunLengthChunk {
            type_tcc: StatusChunkTypeTcc::RunLengthChunk,
            packet_status_symbol: SymbolTypeTcc::PacketReceivedSmallDelta,
            run_length: 10,
        })]
    );
    let deltas: Vec<i64> = cc.recv_deltas.iter().map(|d| d.delta).collect();
    assert_eq!(
        deltas,
        [0, 1250, 750, 1250, 750, 1250, 750, 1250, 750, 1250]
    );
    assert_eq!(rec.poll_timeout(), None, "everything reported");
    // The next feedback counts on and starts after the last reported packet.
    rec.on_packet(110, t0 + 60 * MS);
    let fb = drain(&mut rec, t0 + 100 * MS);
    let cc = &crate_parse(&fb[0])[0];
    assert_eq!((cc.base_sequence_number, cc.packet_status_count), (110, 1));
    assert_eq!(cc.fb_pkt_count, 1);
    // 60 ms is in the first 64 ms reference tick: delta 60 ms, a small one.
    assert_eq!(cc.recv_deltas[0].delta, 60_000);
    assert_eq!(rec.stats().feedback_sent, 2);
}

#[test]
fn sequence_number_wraps() {
    let t0 = Instant::now();
    let mut rec = TwccRecorder::new();
    let mut truth = std::collections::HashMap::new();
    for i in 0..20u16 {
        let seq = 65_530u16.wrapping_add(i);
        rec.on_packet(seq, t0 + MS * u32::from(i));
        truth.insert(seq, u64::from(i) * 1000);
    }
    let fb = drain(&mut rec, t0 + 50 * MS);
    let got = check(&fb[0], &|s| truth.get(&s).copied());
    let seqs: Vec<u16> = got.iter().map(|s| s.0).collect();
    let want: Vec<u16> = (0..20u16).map(|i| 65_530u16.wrapping_add(i)).collect();
    assert_eq!(seqs, want);
}

#[test]
fn reference_time_wraps_at_24_bits() {
    let t0 = Instant::now();
    let wrap = Duration::from_micros((REFERENCE_MASK + 1) * REFERENCE_TICK_US);
    let mut rec = TwccRecorder::new();
    rec.on_packet(1, t0);
    let fb = drain(&mut rec, t0 + FEEDBACK_INTERVAL);
    assert_eq!(crate_parse(&fb[0])[0].reference_time, 0);
    // ~12.4 days later, just before and just after the wrap.
    let before = t0 + wrap - 10 * MS;
    rec.on_packet(2, before);
    let fb = drain(&mut rec, before);
    let cc = &crate_parse(&fb[0])[0];
    assert_eq!(cc.reference_time, 0xFF_FFFF);
    assert_eq!(cc.recv_deltas[0].delta, 54_000);
    let after = t0 + wrap + 70 * MS;
    rec.on_packet(3, after);
    let fb = drain(&mut rec, after);
    let cc = &crate_parse(&fb[0])[0];
    assert_eq!(cc.reference_time, 1, "wrapped to 0 and one more 64 ms tick");
    assert_eq!(cc.recv_deltas[0].delta, 6_000);
}

#[test]
fn late_packet_is_reported_lost_then_received() {
    let t0 = Instant::now();
    let mut rec = TwccRecorder::new();
    let mut truth = std::collections::HashMap::new();
    for seq in (1..=10u16).filter(|&s| s != 5) {
        rec.on_packet(seq, t0 + MS * u32::from(seq));
        truth.insert(seq, u64::from(seq) * 1000 - 1000);
    }
    let fb = drain(&mut rec, t0 + 55 * MS);
    let got = check(&fb[0], &|s| truth.get(&s).copied());
    assert_eq!(got.len(), 10);
    assert_eq!(got[4], (5, None));
    // 5 arrives late: the next feedback starts from it and covers 6..=10 again.
    rec.on_packet(5, t0 + 60 * MS);
    truth.insert(5, 59_000);
    let fb = drain(&mut rec, t0 + 105 * MS);
    let got = check(&fb[0], &|s| truth.get(&s).copied());
    let seqs: Vec<u16> = got.iter().map(|s| s.0).collect();
    assert_eq!(seqs, [5, 6, 7, 8, 9, 10]);
    assert!(got.iter().all(|s| s.1.is_some()));
}

#[test]
fn reordering_within_a_feedback_uses_negative_deltas() {
    let t0 = Instant::now();
    let mut rec = TwccRecorder::new();
    let order = [1u16, 2, 4, 3, 5, 7, 6];
    let mut truth = std::collections::HashMap::new();
    for (i, &seq) in order.iter().enumerate() {
        let at = 2000 * i as u64;
        rec.on_packet(seq, t0 + Duration::from_micros(at));
        truth.insert(seq, at);
    }
    let fb = drain(&mut rec, t0 + 50 * MS);
    check(&fb[0], &|s| truth.get(&s).copied());
    let cc = &crate_parse(&fb[0])[0];
    let large: Vec<i64> = cc
        .recv_deltas
        .iter()
        .filter(|d| d.type_tcc_packet == SymbolTypeTcc::PacketReceivedLargeDelta)
        .map(|d| d.delta)
        .collect();
    // 3 after 4, 6 after 7: each 2 ms earlier than the previous in seq order.
    assert_eq!(large, [-2000, -2000]);
}

#[test]
fn big_gaps_use_run_length_chunks() {
    let t0 = Instant::now();
    let mut rec = TwccRecorder::new();
    rec.on_packet(1, t0);
    rec.on_packet(3000, t0 + MS);
    rec.on_packet(3001, t0 + 2 * MS);
    let fb = drain(&mut rec, t0 + 50 * MS);
    let truth = |s: u16| match s {
        1 => Some(0),
        3000 => Some(1000),
        3001 => Some(2000),
        _ => None,
    };
    let got = check(&fb[0], &truth);
    assert_eq!(got.len(), 3001);
    let cc = &crate_parse(&fb[0])[0];
    assert!(cc.packet_chunks.iter().any(|c| matches!(c,
        PacketStatusChunk::RunLengthChunk(r)
            if r.packet_status_symbol == SymbolTypeTcc::PacketNotReceived
                && r.run_length >= 2900)));
    assert!(fb[0].len() < 40, "{} bytes", fb[0].len());

    // A jump past the history: the forgotten range is not reported at all.
    rec.on_packet(3001 + 5000, t0 + 60 * MS);
    let fb = drain(&mut rec, t0 + 100 * MS);
    let cc = &crate_parse(&fb[0])[0];
    assert_eq!((cc.base_sequence_number, cc.packet_status_count), (8001, 1));
    // A jump within the history is reported as lost packets.
    rec.on_packet(8001 + 1000, t0 + 110 * MS);
    let fb = drain(&mut rec, t0 + 150 * MS);
    let cc = &crate_parse(&fb[0])[0];
    assert_eq!(
        (cc.base_sequence_number, cc.packet_status_count),
        (8002, 1000)
    );
}

#[test]
fn large_deltas_and_split_on_overflow() {
    let t0 = Instant::now();
    let mut rec = TwccRecorder::new();
    // 100 ms apart: large (2-byte) deltas.
    rec.on_packet(1, t0);
    rec.on_packet(2, t0 + 100 * MS);
    rec.on_packet(3, t0 + 200 * MS);
    let fb = drain(&mut rec, t0 + 200 * MS);
    let cc = &crate_parse(&fb[0])[0];
    let deltas: Vec<_> = cc
        .recv_deltas
        .iter()
        .map(|d| (d.type_tcc_packet, d.delta))
        .collect();
    assert_eq!(
        deltas,
        [
            (SymbolTypeTcc::PacketReceivedSmallDelta, 0),
            (SymbolTypeTcc::PacketReceivedLargeDelta, 100_000),
            (SymbolTypeTcc::PacketReceivedLargeDelta, 100_000),
        ]
    );
    // A late packet 10 s after its neighbours: more than a 16-bit delta holds, so
    // the feedback is split and the second one has its own reference time.
    rec.on_packet(5, t0 + 300 * MS);
    rec.on_packet(4, t0 + 10_300 * MS);
    let fb = drain(&mut rec, t0 + 10_300 * MS);
    let truth = |s: u16| match s {
        4 => Some(10_300_000),
        5 => Some(300_000),
        _ => None,
    };
    assert_eq!(fb.len(), 2);
    let first = check(&fb[0], &truth);
    let second = check(&fb[1], &truth);
    assert_eq!(first.iter().map(|s| s.0).collect::<Vec<_>>(), [4]);
    assert_eq!(second.iter().map(|s| s.0).collect::<Vec<_>>(), [5]);
}

#[test]
fn many_packets_are_split_and_force_early_feedback() {
    let t0 = Instant::now();
    let mut rec = TwccRecorder::new();
    let mut truth = std::collections::HashMap::new();
    let n = 3000u16;
    for i in 0..n {
        // Alternating small and large deltas, with some losses, so that every
        // chunk type appears and deltas take space.
        if i % 17 == 3 {
            continue;
        }
        let at = u64::from(i) * 1000 + if i % 2 == 1 { 70_000 } else { 0 };
        rec.on_packet(i, t0 + Duration::from_micros(at));
        truth.insert(i, at);
    }
    // Far more than FORCE_FEEDBACK_PACKETS: due without waiting for the interval.
    assert!(rec.poll_timeout().is_some_and(|t| t <= t0 + 100 * MS));
    let fb = drain(&mut rec, t0 + 3100 * MS);
    assert!(fb.len() > 3, "{} packets", fb.len());
    let mut seen = Vec::new();
    for (i, p) in fb.iter().enumerate() {
        assert_eq!(crate_parse(p)[0].fb_pkt_count, i as u8);
        seen.extend(
            check(p, &|s| truth.get(&s).copied())
                .into_iter()
                .map(|s| s.0),
        );
    }
    assert_eq!(seen, (0..n).collect::<Vec<_>>(), "contiguous, each once");
    let kinds: Vec<_> = fb
        .iter()
        .flat_map(|p| crate_parse(p)[0].packet_chunks.clone())
        .map(|c| match c {
            PacketStatusChunk::RunLengthChunk(_) => 0,
            PacketStatusChunk::StatusVectorChunk(v) => 1 + v.symbol_size as u8,
        })
        .collect();
    assert!(kinds.contains(&2), "two-bit vectors");
}

#[test]
fn duplicates_and_too_old_are_ignored() {
    let t0 = Instant::now();
    let mut rec = TwccRecorder::new();
    rec.on_packet(10_000, t0);
    rec.on_packet(10_000, t0 + 5 * MS);
    rec.on_packet(10_001, t0 + MS);
    rec.on_packet(10_000 + HISTORY as u16, t0 + 2 * MS);
    rec.on_packet(10_000, t0 + 3 * MS);
    let s = rec.stats();
    assert_eq!((s.received, s.duplicates, s.too_old), (3, 1, 1));
    // The duplicate kept the first arrival time.
    let fb = drain(&mut rec, t0 + 50 * MS);
    let got = check(&fb[0], &|s| match s {
        10_001 => Some(1000),
        x if x == 10_000 + HISTORY as u16 => Some(2000),
        _ => None,
    });
    assert_eq!(got.first().map(|s| s.0), Some(10_001));
}

/// Random loss, reordering, duplicates and jitter over many feedback rounds:
/// both parsers agree, nothing lost is claimed received, times are exact to half
/// a tick, and every received packet is reported received at least once.
#[test]
fn randomized_against_the_crate() {
    let t0 = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut rec = TwccRecorder::new();
    let mut truth: std::collections::HashMap<u16, u64> = Default::default();
    let mut reported: std::collections::HashSet<u16> = Default::default();
    let mut held: Vec<u16> = Vec::new();
    let mut now_us = 0u64;
    let mut seq = 60_000u16;
    let mut fb_count = 0u8;
    // The first packet fixes the epoch at t0, which `truth` counts from.
    rec.on_packet(seq.wrapping_sub(1), t0);
    truth.insert(seq.wrapping_sub(1), 0);
    for _ in 0..20_000 {
        now_us += rng.gen_range(0..3000);
        let now = t0 + Duration::from_micros(now_us);
        if rng.gen_bool(0.05) {
            held.push(seq);
        } else if !rng.gen_bool(0.05) {
            rec.on_packet(seq, now);
            truth.entry(seq).or_insert(now_us);
        }
        if rng.gen_bool(0.02) {
            rec.on_packet(seq, now);
            truth.entry(seq).or_insert(now_us);
        }
        if !held.is_empty() && rng.gen_bool(0.2) {
            let s = held.swap_remove(0);
            rec.on_packet(s, now);
            truth.entry(s).or_insert(now_us);
        }
        seq = seq.wrapping_add(1);
        for p in drain(&mut rec, now) {
            assert_eq!(crate_parse(&p)[0].fb_pkt_count, fb_count);
            fb_count = fb_count.wrapping_add(1);
            for (s, at) in check(&p, &|s| truth.get(&s).copied()) {
                if at.is_some() {
                    reported.insert(s);
                }
            }
        }
    }
    for p in drain(
        &mut rec,
        t0 + Duration::from_micros(now_us) + FEEDBACK_INTERVAL,
    ) {
        for (s, at) in check(&p, &|s| truth.get(&s).copied()) {
            if at.is_some() {
                reported.insert(s);
            }
        }
    }
    let missing: Vec<_> = truth.keys().filter(|s| !reported.contains(s)).collect();
    assert!(missing.is_empty(), "never reported: {missing:?}");
}

#[test]
fn parses_crate_built_feedback() {
    // Chromium-like: a two-bit vector with a negative large delta, a run of
    // losses, a one-bit vector.
    let cc = TransportLayerCc {
        sender_ssrc: 1,
        media_ssrc: 2,
        base_sequence_number: 65_534,
        packet_status_count: 7 + 20 + 14,
        reference_time: 0xAB_CDEF,
        fb_pkt_count: 200,
        packet_chunks: vec![
            PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
                type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
                symbol_size: SymbolSizeTypeTcc::TwoBit,
                symbol_list: vec![
                    SymbolTypeTcc::PacketReceivedSmallDelta,
                    SymbolTypeTcc::PacketReceivedLargeDelta,
                    SymbolTypeTcc::PacketNotReceived,
                    SymbolTypeTcc::PacketReceivedSmallDelta,
                    SymbolTypeTcc::PacketNotReceived,
                    SymbolTypeTcc::PacketNotReceived,
                    SymbolTypeTcc::PacketReceivedLargeDelta,
                ],
            }),
            PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                packet_status_symbol: SymbolTypeTcc::PacketNotReceived,
                run_length: 20,
            }),
            PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
                type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
                symbol_size: SymbolSizeTypeTcc::OneBit,
                symbol_list: (0..14)
                    .map(|i| {
                        if i % 3 == 0 {
                            SymbolTypeTcc::PacketReceivedSmallDelta
                        } else {
                            SymbolTypeTcc::PacketNotReceived
                        }
                    })
                    .collect(),
            }),
        ],
        recv_deltas: [
            (SymbolTypeTcc::PacketReceivedSmallDelta, 63_750),
            (SymbolTypeTcc::PacketReceivedLargeDelta, -8_192_000),
            (SymbolTypeTcc::PacketReceivedSmallDelta, 0),
            (SymbolTypeTcc::PacketReceivedLargeDelta, 8_191_750),
        ]
        .into_iter()
        .chain((0..5).map(|_| (SymbolTypeTcc::PacketReceivedSmallDelta, 250)))
        .map(|(type_tcc_packet, delta)| RecvDelta {
            type_tcc_packet,
            delta,
        })
        .collect(),
    };
    let buf = rtcp::packet::marshal(&[
        Box::new(cc.clone()) as Box<dyn rtcp::packet::Packet + Send + Sync>
    ])
    .expect("marshal");
    let fb = TwccFeedback::parse(&buf).expect("parse");
    assert_eq!(fb.packets().collect::<Vec<_>>(), crate_statuses(&cc));
    assert_eq!(fb.packets().len(), 41);
    assert_eq!((fb.sender_ssrc, fb.media_ssrc), (1, 2));
    assert_eq!((fb.reference_time, fb.fb_count), (0xAB_CDEF, 200));
    assert_eq!(fb.reference_us(), 0xAB_CDEF * 64_000);
    assert_eq!(
        fb.received.iter().take(4).copied().collect::<Vec<_>>(),
        [
            TwccArrival {
                seq: 65_534,
                arrival_us: 63_750
            },
            TwccArrival {
                seq: 65_535,
                arrival_us: 63_750 - 8_192_000
            },
            TwccArrival {
                seq: 1,
                arrival_us: 63_750 - 8_192_000
            },
            TwccArrival {
                seq: 4,
                arrival_us: 63_750 - 250
            },
        ]
    );
}

#[test]
fn malformed_feedback_is_rejected() {
    let t0 = Instant::now();
    let mut rec = TwccRecorder::new();
    rec.on_packet(1, t0);
    rec.on_packet(3, t0 + MS);
    let good = drain(&mut rec, t0 + 50 * MS).remove(0);
    assert!(TwccFeedback::parse(&good).is_some());
    // Status count 0 (libwebrtc rejects it too).
    let mut b = good.clone();
    b[14..16].copy_from_slice(&[0, 0]);
    assert_eq!(TwccFeedback::parse(&b), None);
    // Reserved symbol 3 in a two-bit vector.
    let mut b = good.clone();
    b[20..22].copy_from_slice(&[0xFF, 0xFF]);
    assert_eq!(TwccFeedback::parse(&b), None);
    // More statuses than the chunks cover.
    let mut b = good.clone();
    b[14..16].copy_from_slice(&[0x10, 0]);
    assert_eq!(TwccFeedback::parse(&b), None);
    // Deltas cut off by the padding count.
    let mut b = good.clone();
    b[0] |= 0x20;
    let last = b.len() - 1;
    b[last] = (b.len() - 21) as u8;
    assert_eq!(TwccFeedback::parse(&b), None);
    // Padding count 0, or longer than the packet.
    b[last] = 0;
    assert_eq!(TwccFeedback::parse(&b), None);
    b[last] = 200;
    assert_eq!(TwccFeedback::parse(&b), None);
    // Wrong type, short.
    assert_eq!(TwccFeedback::parse(&good[..19]), None);
    let mut b = good.clone();
    b[1] = 206;
    assert_eq!(TwccFeedback::parse(&b), None);
}

#[test]
fn garbage_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7CC);
    let t0 = Instant::now();
    let mut rec = TwccRecorder::new();
    for i in 0..300u16 {
        rec.on_packet(i.wrapping_mul(7) % 50, t0 + MS * u32::from(i));
    }
    let seeds = drain(&mut rec, t0 + Duration::from_secs(1));
    assert!(!seeds.is_empty());
    for i in 0..100_000u32 {
        let buf: Vec<u8> = if i % 2 == 0 {
            let mut b = seeds[rng.gen_range(0..seeds.len())].clone();
            for _ in 0..rng.gen_range(1..6) {
                let at = rng.gen_range(0..b.len());
                b[at] = rng.gen();
            }
            b.truncate(rng.gen_range(0..=b.len()));
            b
        } else {
            let mut b = vec![0x80 | FMT_TCC | if rng.gen() { 0x20 } else { 0 }, PT_RTPFB];
            b.extend((0..rng.gen_range(0..60)).map(|_| rng.gen::<u8>()));
            b
        };
        if let Some(fb) = TwccFeedback::parse(&buf) {
            assert!(fb.received.len() <= usize::from(fb.status_count));
            assert_eq!(fb.packets().count(), usize::from(fb.status_count));
        }
    }
    // The recorder under random sequence numbers and times.
    let mut rec = TwccRecorder::new();
    let mut out = Vec::new();
    let mut now = t0;
    for _ in 0..50_000 {
        now += Duration::from_micros(rng.gen_range(0..20_000));
        let at = now - Duration::from_micros(rng.gen_range(0..5_000));
        rec.on_packet(rng.gen(), at);
        out.clear();
        while rec.poll_feedback(now, 1, 2, &mut out) {
            assert!(TwccFeedback::parse(&out).is_some());
            out.clear();
        }
    }
}
