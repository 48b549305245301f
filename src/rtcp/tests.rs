//! Writers checked by parsing (and byte-comparing) with the `rtcp` crate; the parser
//! checked on packets the crate builds the way Chromium sends them.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rtcp::goodbye::Goodbye;
use rtcp::payload_feedbacks::full_intra_request::FirEntry;
use rtcp::source_description::{
    SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
};
use rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, RecvDelta, RunLengthChunk, StatusChunkTypeTcc, SymbolTypeTcc,
    TransportLayerCc,
};
use rtcp::transport_feedbacks::transport_layer_nack::NackPair;

use super::*;

type BoxedPacket = Box<dyn Packet + Send + Sync>;

fn crate_marshal(packets: Vec<BoxedPacket>) -> Vec<u8> {
    rtcp::packet::marshal(&packets)
        .expect("crate marshal")
        .to_vec()
}

fn crate_parse(buf: &[u8]) -> Vec<BoxedPacket> {
    rtcp::packet::unmarshal(&mut Bytes::copy_from_slice(buf)).expect("crate unmarshal")
}

fn only<T: 'static + Clone>(packets: &[BoxedPacket]) -> T {
    assert_eq!(packets.len(), 1);
    packets[0]
        .as_any()
        .downcast_ref::<T>()
        .expect("packet type")
        .clone()
}

fn parse(buf: &[u8]) -> Vec<Feedback> {
    let mut out = Vec::new();
    parse_compound(buf, &mut out).expect("parse_compound");
    out
}

fn block(i: u32) -> ReportBlock {
    ReportBlock {
        ssrc: 0x1000 + i,
        fraction_lost: i as u8,
        total_lost: 1000 * i,
        highest_seq: 0x0001_0000 + i,
        jitter: 7 * i,
        last_sr: 0xABCD_0000 + i,
        delay_since_last_sr: 65536 + i,
    }
}

fn crate_reception(b: &ReportBlock) -> ReceptionReport {
    ReceptionReport {
        ssrc: b.ssrc,
        fraction_lost: b.fraction_lost,
        total_lost: b.total_lost,
        last_sequence_number: b.highest_seq,
        jitter: b.jitter,
        last_sender_report: b.last_sr,
        delay: b.delay_since_last_sr,
    }
}

#[test]
fn pli_writer_matches_crate() {
    let mut out = Vec::new();
    write_pli(&mut out, 0x1111, 0x2222);
    let pli: PictureLossIndication = only(&crate_parse(&out));
    assert_eq!((pli.sender_ssrc, pli.media_ssrc), (0x1111, 0x2222));
    assert_eq!(out, crate_marshal(vec![Box::new(pli)]));
}

#[test]
fn fir_writer_matches_crate() {
    let mut out = Vec::new();
    write_fir(&mut out, 0x1111, 0x2222, 9);
    let fir: FullIntraRequest = only(&crate_parse(&out));
    assert_eq!(fir.sender_ssrc, 0x1111);
    assert_eq!(fir.media_ssrc, 0);
    assert_eq!(
        fir.fir,
        vec![FirEntry {
            ssrc: 0x2222,
            sequence_number: 9
        }]
    );
    assert_eq!(out, crate_marshal(vec![Box::new(fir)]));
    assert_eq!(
        parse(&out),
        vec![Feedback::Fir {
            sender_ssrc: 0x1111,
            media_ssrcs: vec![(0x2222, 9)]
        }]
    );
}

#[test]
fn sender_report_writer_matches_crate() {
    let mut out = Vec::new();
    let ntp = 0xE000_0000_8000_0000;
    write_sender_report(&mut out, 0x5555, ntp, 90_000, 10, 12_345);
    let sr: SenderReport = only(&crate_parse(&out));
    assert_eq!(sr.ssrc, 0x5555);
    assert_eq!(sr.ntp_time, ntp);
    assert_eq!(sr.rtp_time, 90_000);
    assert_eq!(sr.packet_count, 10);
    assert_eq!(sr.octet_count, 12_345);
    assert!(sr.reports.is_empty());
    assert_eq!(out, crate_marshal(vec![Box::new(sr)]));
}

#[test]
fn receiver_report_writer_matches_crate() {
    // Empty RR.
    let mut out = Vec::new();
    write_receiver_report(&mut out, 0x77, &[]);
    let rr: ReceiverReport = only(&crate_parse(&out));
    assert_eq!((rr.ssrc, rr.reports.len()), (0x77, 0));

    // Two blocks, byte-identical to the crate's encoding.
    let blocks = [block(1), block(2)];
    let mut out = Vec::new();
    write_receiver_report(&mut out, 0x77, &blocks);
    let rr: ReceiverReport = only(&crate_parse(&out));
    let expected: Vec<_> = blocks.iter().map(crate_reception).collect();
    assert_eq!(rr.reports, expected);
    assert_eq!(out, crate_marshal(vec![Box::new(rr)]));

    // 40 blocks: split into 31 + 9, all round-trip through parse_compound.
    let blocks: Vec<_> = (0..40).map(block).collect();
    let mut out = Vec::new();
    write_receiver_report(&mut out, 0x77, &blocks);
    let packets = crate_parse(&out);
    assert_eq!(packets.len(), 2);
    let got = parse(&out);
    assert_eq!(
        got,
        vec![
            Feedback::ReceiverReport {
                ssrc: 0x77,
                reports: blocks[..31].to_vec()
            },
            Feedback::ReceiverReport {
                ssrc: 0x77,
                reports: blocks[31..].to_vec()
            },
        ]
    );
}

#[test]
fn total_lost_saturates_and_negative_reads_as_zero() {
    let mut b = block(3);
    b.total_lost = u32::MAX;
    let mut out = Vec::new();
    write_receiver_report(&mut out, 1, &[b]);
    let Feedback::ReceiverReport { reports, .. } = &parse(&out)[0] else {
        panic!("not an RR");
    };
    assert_eq!(reports[0].total_lost, 0x7F_FFFF);
    assert_eq!(reports[0].fraction_lost, 3);
    // -1 on the wire (0xFFFFFF).
    out[13..16].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
    let Feedback::ReceiverReport { reports, .. } = &parse(&out)[0] else {
        panic!("not an RR");
    };
    assert_eq!(reports[0].total_lost, 0);
}

#[test]
fn writers_append_into_one_compound() {
    let mut out = vec![];
    write_receiver_report(&mut out, 9, &[block(1)]);
    write_pli(&mut out, 9, 0x42);
    write_fir(&mut out, 9, 0x43, 1);
    write_sender_report(&mut out, 9, 1, 2, 3, 4);
    let got = parse(&out);
    assert_eq!(got.len(), 4);
    assert_eq!(
        got[1],
        Feedback::Pli {
            sender_ssrc: 9,
            media_ssrc: 0x42
        }
    );
    assert!(matches!(
        got[3],
        Feedback::SenderReport { octet_count: 4, .. }
    ));
    assert_eq!(crate_parse(&out).len(), 4);
}

fn chromium_remb() -> ReceiverEstimatedMaximumBitrate {
    ReceiverEstimatedMaximumBitrate {
        sender_ssrc: 1,
        bitrate: 1_500_000.0,
        ssrcs: vec![0xAAAA, 0xBBBB],
    }
}

fn chromium_rr() -> ReceiverReport {
    ReceiverReport {
        ssrc: 1,
        reports: vec![crate_reception(&block(5))],
        profile_extensions: Bytes::new(),
    }
}

#[test]
fn reduced_size_rr_plus_remb() {
    // Chromium's periodic feedback: RR followed by REMB, no SDES (RFC 5506).
    let buf = crate_marshal(vec![Box::new(chromium_rr()), Box::new(chromium_remb())]);
    assert_eq!(
        parse(&buf),
        vec![
            Feedback::ReceiverReport {
                ssrc: 1,
                reports: vec![block(5)]
            },
            Feedback::Remb {
                bitrate: 1_500_000.0,
                ssrcs: vec![0xAAAA, 0xBBBB]
            },
        ]
    );
}

#[test]
fn reduced_size_single_packets() {
    let pli = crate_marshal(vec![Box::new(PictureLossIndication {
        sender_ssrc: 1,
        media_ssrc: 0xAAAA,
    })]);
    assert_eq!(
        parse(&pli),
        vec![Feedback::Pli {
            sender_ssrc: 1,
            media_ssrc: 0xAAAA
        }]
    );

    let nack = crate_marshal(vec![Box::new(TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: 0xAAAA,
        // 100, then 101 and 116 via the bitmap; 65535 across the wrap.
        nacks: vec![
            NackPair {
                packet_id: 100,
                lost_packets: 0x8001,
            },
            NackPair {
                packet_id: 65535,
                lost_packets: 0,
            },
        ],
    })]);
    assert_eq!(
        parse(&nack),
        vec![Feedback::Nack {
            sender_ssrc: 1,
            media_ssrc: 0xAAAA,
            lost: vec![100, 101, 116, 65535]
        }]
    );

    let tcc = crate_marshal(vec![Box::new(TransportLayerCc {
        sender_ssrc: 1,
        media_ssrc: 0xAAAA,
        base_sequence_number: 153,
        packet_status_count: 1,
        reference_time: 4_057_090,
        fb_pkt_count: 23,
        packet_chunks: vec![PacketStatusChunk::RunLengthChunk(RunLengthChunk {
            type_tcc: StatusChunkTypeTcc::RunLengthChunk,
            packet_status_symbol: SymbolTypeTcc::PacketReceivedSmallDelta,
            run_length: 1,
        })],
        recv_deltas: vec![RecvDelta {
            type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
            delta: 37_000,
        }],
    })]);
    assert_eq!(
        parse(&tcc),
        vec![Feedback::TransportCc(twcc::TwccFeedback {
            sender_ssrc: 1,
            media_ssrc: 0xAAAA,
            base_seq: 153,
            status_count: 1,
            reference_time: 4_057_090,
            fb_count: 23,
            received: vec![twcc::TwccArrival {
                seq: 153,
                arrival_us: 37_000
            }],
        })]
    );
}

#[test]
fn full_compound_sr_with_blocks_sdes_bye() {
    let sr = SenderReport {
        ssrc: 7,
        ntp_time: 0x1234_5678_9ABC_DEF0,
        rtp_time: 3000,
        packet_count: 5,
        octet_count: 600,
        reports: vec![crate_reception(&block(2))],
        profile_extensions: Bytes::new(),
    };
    let sdes = SourceDescription {
        chunks: vec![SourceDescriptionChunk {
            source: 7,
            items: vec![SourceDescriptionItem {
                sdes_type: SdesType::SdesCname,
                text: Bytes::from_static(b"cname"),
            }],
        }],
    };
    let bye = Goodbye {
        sources: vec![7],
        reason: Bytes::new(),
    };
    let buf = crate_marshal(vec![Box::new(sr), Box::new(sdes), Box::new(bye)]);
    assert_eq!(
        parse(&buf),
        vec![
            Feedback::SenderReport {
                ssrc: 7,
                ntp_time: 0x1234_5678_9ABC_DEF0,
                rtp_time: 3000,
                packet_count: 5,
                octet_count: 600
            },
            Feedback::ReceiverReport {
                ssrc: 7,
                reports: vec![block(2)]
            },
            Feedback::Other,
            Feedback::Other,
        ]
    );
}

#[test]
fn framing_errors_keep_earlier_packets() {
    let mut out = Vec::new();
    assert_eq!(parse_compound(&[], &mut out), Err(RtcpError::Empty));

    let mut buf = Vec::new();
    write_pli(&mut buf, 1, 2);
    let pli_len = buf.len();
    write_pli(&mut buf, 3, 4);
    buf.truncate(buf.len() - 1);
    assert_eq!(
        parse_compound(&buf, &mut out),
        Err(RtcpError::Truncated {
            offset: pli_len,
            needed: 12,
            available: 11
        })
    );
    assert_eq!(
        out,
        vec![Feedback::Pli {
            sender_ssrc: 1,
            media_ssrc: 2
        }]
    );

    let mut buf = Vec::new();
    write_pli(&mut buf, 1, 2);
    buf[0] &= 0x3F;
    assert_eq!(
        parse_compound(&buf, &mut Vec::new()),
        Err(RtcpError::BadVersion {
            offset: 0,
            version: 0
        })
    );
    assert_eq!(
        parse_compound(&[0x80, 0xC9], &mut Vec::new()),
        Err(RtcpError::Truncated {
            offset: 0,
            needed: 4,
            available: 2
        })
    );
}

#[test]
fn packet_rejected_by_crate_becomes_other() {
    // A REMB announcing 5 SSRCs but carrying 2: the crate would panic on it, we skip
    // it and keep parsing the PLI after it.
    let mut buf = crate_marshal(vec![Box::new(chromium_remb())]);
    buf[16] = 5;
    write_pli(&mut buf, 1, 2);
    assert_eq!(
        parse(&buf),
        vec![
            Feedback::Other,
            Feedback::Pli {
                sender_ssrc: 1,
                media_ssrc: 2
            }
        ]
    );
    // An application-layer feedback (PSFB FMT=15) that is not REMB.
    let mut buf = crate_marshal(vec![Box::new(chromium_remb())]);
    buf[12..16].copy_from_slice(b"GOOG");
    assert_eq!(parse(&buf), vec![Feedback::Other]);
}

#[test]
fn oversized_transport_cc_status_count_is_not_handed_to_crate() {
    // packet_status_count 65535 and enough one-bit status vector chunks (14
    // statuses each) to run the crate's u16 counter past 65535, which panics in
    // debug builds. Our own parser takes it: 65535 packets, all lost.
    let chunks: usize = 4700;
    let body_len = 16 + 2 * chunks;
    let words = body_len.div_ceil(4);
    let mut buf = vec![0x80 | FMT_AFB, PT_RTPFB];
    buf.extend_from_slice(&(words as u16).to_be_bytes());
    buf.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 1, 0xFF, 0xFF, 0, 0, 1, 0]);
    for _ in 0..chunks {
        buf.extend_from_slice(&[0x80, 0x00]);
    }
    buf.resize(4 + words * 4, 0);
    let all_lost = |status_count| {
        vec![Feedback::TransportCc(twcc::TwccFeedback {
            sender_ssrc: 1,
            media_ssrc: 2,
            base_seq: 1,
            status_count,
            reference_time: 1,
            fb_count: 0,
            received: vec![],
        })]
    };
    assert_eq!(parse(&buf), all_lost(65535));
    buf[14..16].copy_from_slice(&[0, 14]);
    assert_eq!(parse(&buf), all_lost(14));
}

#[test]
fn rtp_rtcp_demux() {
    // RFC 5761 4: RTCP SR/RR/RTPFB/PSFB.
    for pt in [200u8, 201, 205, 206] {
        assert!(is_rtcp(&[0x80, pt, 0, 1]));
    }
    // RTP with and without the marker bit for dynamic payload types.
    for b1 in [96u8, 111, 96 | 0x80, 111 | 0x80, 127 | 0x80, 0] {
        assert!(!is_rtcp(&[0x80, b1, 0, 1]), "{b1}");
    }
    assert!(!is_rtcp(&[0x80]));
    assert!(!is_rtcp(&[]));
}

#[test]
fn ntp_conversion() {
    assert_eq!(system_time_to_ntp(UNIX_EPOCH), NTP_UNIX_OFFSET << 32);
    let half = UNIX_EPOCH + Duration::from_millis(1500);
    assert_eq!(
        system_time_to_ntp(half),
        ((NTP_UNIX_OFFSET + 1) << 32) | 0x8000_0000
    );
    let before = UNIX_EPOCH - Duration::from_millis(500);
    assert_eq!(
        system_time_to_ntp(before),
        ((NTP_UNIX_OFFSET - 1) << 32) | 0x8000_0000
    );
    // 2036-02-07T06:28:16Z is the start of NTP era 1: the seconds field wraps.
    let era1 = UNIX_EPOCH + Duration::from_secs((1 << 32) - NTP_UNIX_OFFSET);
    assert_eq!(system_time_to_ntp(era1), 0);
    // Before 1900: clamps to 0 instead of panicking.
    if let Some(t) = UNIX_EPOCH.checked_sub(Duration::from_secs(NTP_UNIX_OFFSET + 10)) {
        assert_eq!(system_time_to_ntp(t), 0);
    }
}

/// Random bytes and mutated valid compounds must never panic (the `rtcp` crate
/// included, which is why `crate_can_parse` exists).
#[test]
fn random_garbage_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xC0FFEE);
    let mut seeds = vec![
        crate_marshal(vec![Box::new(chromium_rr()), Box::new(chromium_remb())]),
        crate_marshal(vec![Box::new(TransportLayerCc {
            sender_ssrc: 1,
            media_ssrc: 2,
            base_sequence_number: 1,
            packet_status_count: 1,
            reference_time: 1,
            fb_pkt_count: 1,
            packet_chunks: vec![PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                packet_status_symbol: SymbolTypeTcc::PacketReceivedSmallDelta,
                run_length: 1,
            })],
            recv_deltas: vec![RecvDelta {
                type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
                delta: 250,
            }],
        })]),
    ];
    let mut b = Vec::new();
    write_receiver_report(&mut b, 1, &[block(1), block(2)]);
    write_fir(&mut b, 1, 2, 3);
    write_sender_report(&mut b, 1, 2, 3, 4, 5);
    seeds.push(b);
    let mut b = Vec::new();
    write_pli(&mut b, 1, 2);
    seeds.push(b);

    let mut out = Vec::new();
    for i in 0..100_000u32 {
        let buf: Vec<u8> = if i % 3 == 0 {
            // Random packets with a valid-looking header so the crate gets them.
            let words = rng.gen_range(0..12u16);
            let mut b = vec![
                0x80 | rng.gen_range(0..32u8) | if rng.gen() { 0x20 } else { 0 },
                rng.gen_range(192..=208),
            ];
            b.extend_from_slice(&words.to_be_bytes());
            b.extend((0..words * 4).map(|_| rng.gen::<u8>()));
            b
        } else if i % 3 == 1 {
            let mut b = seeds[rng.gen_range(0..seeds.len())].clone();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..b.len());
                b[at] = rng.gen();
            }
            b
        } else {
            (0..rng.gen_range(0..40)).map(|_| rng.gen()).collect()
        };
        out.clear();
        let _ = parse_compound(&buf, &mut out);
        let _ = is_rtcp(&buf);
    }
}

/// The sequence numbers a NACK packet asks for, expanded by the `rtcp` crate.
fn crate_nack_set(buf: &[u8]) -> (TransportLayerNack, std::collections::BTreeSet<u16>) {
    let nack: TransportLayerNack = only(&crate_parse(buf));
    let set = nack.nacks.iter().flat_map(|p| p.packet_list()).collect();
    (nack, set)
}

#[test]
fn nack_writer_matches_crate_for_sorted_input() {
    // Contiguous run: one FCI entry covers PID + 16.
    let lost: Vec<u16> = (1000..1017).collect();
    let mut out = Vec::new();
    write_nack(&mut out, 0x1111, 0x2222, &lost);
    let expected = TransportLayerNack {
        sender_ssrc: 0x1111,
        media_ssrc: 0x2222,
        nacks: rtcp::transport_feedbacks::transport_layer_nack::nack_pairs_from_sequence_numbers(
            &lost,
        ),
    };
    assert_eq!(expected.nacks.len(), 1);
    assert_eq!(out, crate_marshal(vec![Box::new(expected)]));

    // Scattered, sorted, no wrap: the crate's own packing gives identical bytes.
    let lost = [5u16, 6, 21, 22, 23, 40, 41, 100, 117, 118, 300];
    out.clear();
    write_nack(&mut out, 1, 2, &lost);
    let expected = TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: 2,
        nacks: rtcp::transport_feedbacks::transport_layer_nack::nack_pairs_from_sequence_numbers(
            &lost,
        ),
    };
    assert_eq!(out, crate_marshal(vec![Box::new(expected)]));
    assert_eq!(
        parse(&out),
        vec![Feedback::Nack {
            sender_ssrc: 1,
            media_ssrc: 2,
            lost: lost.to_vec()
        }]
    );
}

#[test]
fn nack_writer_packs_across_the_wrap() {
    let lost = [65534u16, 65535, 0, 1, 15, 16, 40];
    let mut out = Vec::new();
    write_nack(&mut out, 7, 8, &lost);
    let (nack, set) = crate_nack_set(&out);
    assert_eq!(set, lost.iter().copied().collect());
    // 65534 covers up to 14 (bit 15 = 14); 15 and 16 start the second, 40 the third.
    let pairs: Vec<(u16, u16)> = nack
        .nacks
        .iter()
        .map(|p| (p.packet_id, p.lost_packets))
        .collect();
    assert_eq!(pairs, vec![(65534, 0b111), (15, 0b1), (40, 0)]);
    // Same result whatever the order, duplicates included.
    for order in [
        vec![40u16, 0, 65535, 16, 1, 65534, 15],
        vec![1, 1, 65534, 40, 15, 65535, 0, 16, 40],
    ] {
        let mut other = Vec::new();
        write_nack(&mut other, 7, 8, &order);
        assert_eq!(other, out, "{order:?}");
    }
}

#[test]
fn nack_writer_edge_cases() {
    let mut out = vec![0xAB];
    write_nack(&mut out, 1, 2, &[]);
    assert_eq!(out, vec![0xAB], "empty list writes nothing");
    out.clear();
    write_nack(&mut out, 1, 2, &[9, 9, 9]);
    assert_eq!(out.len(), 16);
    assert_eq!(crate_nack_set(&out).1, [9].into_iter().collect());
    // Appends after other packets, as one compound.
    let mut out = Vec::new();
    write_pli(&mut out, 1, 2);
    write_nack(&mut out, 1, 2, &[3, 4]);
    assert_eq!(
        parse(&out),
        vec![
            Feedback::Pli {
                sender_ssrc: 1,
                media_ssrc: 2
            },
            Feedback::Nack {
                sender_ssrc: 1,
                media_ssrc: 2,
                lost: vec![3, 4]
            }
        ]
    );
    // Every sequence number at once: covered, in the fewest possible entries.
    let all: Vec<u16> = (0..=u16::MAX).rev().collect();
    out.clear();
    write_nack(&mut out, 1, 2, &all);
    let (nack, set) = crate_nack_set(&out);
    assert_eq!(set.len(), 65536);
    assert_eq!(nack.nacks.len(), 65536usize.div_ceil(17));
}

/// Fewest FCI entries for a set whose span is under 2^15: greedy from the oldest.
fn optimal_entries(set: &std::collections::BTreeSet<u16>, oldest: u16) -> usize {
    let mut rel: Vec<u32> = set
        .iter()
        .map(|s| u32::from(s.wrapping_sub(oldest)))
        .collect();
    rel.sort_unstable();
    let mut n = 0;
    let mut covered_to: Option<u32> = None;
    for r in rel {
        if covered_to.is_none_or(|c| r > c) {
            n += 1;
            covered_to = Some(r + 16);
        }
    }
    n
}

#[test]
fn nack_writer_random_sets_round_trip_through_crate() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(4585);
    let mut out = Vec::new();
    for _ in 0..3_000 {
        let base: u16 = rng.gen();
        let span = rng.gen_range(1..2000u16);
        let n = rng.gen_range(1..300);
        let mut lost: Vec<u16> = (0..n)
            .map(|_| base.wrapping_add(rng.gen_range(0..span)))
            .collect();
        let set: std::collections::BTreeSet<u16> = lost.iter().copied().collect();
        let oldest = lost
            .iter()
            .min_by_key(|s| s.wrapping_sub(base))
            .copied()
            .unwrap_or(base);
        if rng.gen() {
            lost.sort_unstable_by_key(|s| s.wrapping_sub(base));
        }
        out.clear();
        write_nack(&mut out, 0xA, 0xB, &lost);
        let (nack, got) = crate_nack_set(&out);
        assert_eq!(got, set);
        assert_eq!(nack.nacks.len(), optimal_entries(&set, oldest));
        let Feedback::Nack { lost: parsed, .. } = &parse(&out)[0] else {
            panic!("not a NACK");
        };
        assert_eq!(
            parsed
                .iter()
                .copied()
                .collect::<std::collections::BTreeSet<_>>(),
            set
        );
    }
}
