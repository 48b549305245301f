use std::time::Duration;

use super::*;
use crate::router::negotiate::EncodingStream;
use crate::rtp::rtx::write_rtx;

const SSRC: u32 = 0x2222_0002;
const RTX_SSRC: u32 = 0x2222_0003;

fn encoding(ssrc: Option<u32>, rtx_ssrc: Option<u32>, rid: Option<&str>) -> EncodingStream {
    EncodingStream {
        ssrc,
        rtx_ssrc,
        rid: rid.map(str::to_owned),
        temporal_layers: 3,
        max_bitrate: None,
    }
}

fn producer_with(encodings: Vec<EncodingStream>) -> Producer {
    producer_of(encodings, RtpParameters::default())
}

fn producer_of(encodings: Vec<EncodingStream>, rtp_parameters: RtpParameters) -> Producer {
    Producer::new(ProducerParams {
        id: ProducerId("p".into()),
        router: RouterId("r".into()),
        transport: 0,
        kind: MediaKind::Video,
        rtp_parameters,
        stream: ProducerStream {
            encodings,
            media_pts: vec![(96, 90_000)],
            keyframes: KeyframeCodec::Vp8,
            rtx_pts: vec![(97, 96)],
            nack: true,
            twcc_id: None,
            remb: false,
            stream_ids: StreamIdExtensions::default(),
        },
        paused: false,
        app_data: Value::Null,
    })
}

fn producer() -> Producer {
    producer_with(vec![encoding(Some(SSRC), Some(RTX_SSRC), None)])
}

fn packet_from(ssrc: u32, pt: u8, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend(seq.to_be_bytes());
    p.extend(9000_u32.to_be_bytes());
    p.extend(ssrc.to_be_bytes());
    // A VP8 descriptor (S=1) and a keyframe tag with the start code (RFC 6386 9.1).
    p.extend([0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x00]);
    p
}

fn packet(pt: u8, seq: u16) -> Vec<u8> {
    packet_from(SSRC, pt, seq)
}

fn receive_on(
    p: &mut Producer,
    now: Instant,
    mut buf: Vec<u8>,
    layer: u8,
    rtx: bool,
) -> Result<Option<Ingested>, DropReason> {
    let len = buf.len();
    let hdr = RtpHeader::parse(&buf).expect("test packet parses");
    p.receive_rtp(
        now,
        1_000_000,
        &mut buf,
        len,
        hdr,
        LayerStream { layer, rtx },
    )
}

fn receive(p: &mut Producer, buf: Vec<u8>) -> Result<Option<Ingested>, DropReason> {
    let rtx = RtpHeader::parse(&buf).is_ok_and(|h| h.ssrc == RTX_SSRC);
    receive_on(p, Instant::now(), buf, 0, rtx)
}

fn rtx_of(original: &[u8], rtx_ssrc: u32, osn_seq: u16) -> Vec<u8> {
    let hdr = RtpHeader::parse(original).expect("parses");
    let mut rtx = vec![0; original.len() + 2];
    let n = write_rtx(&mut rtx, original, &hdr, rtx_ssrc, 97, osn_seq).expect("RTX");
    rtx.truncate(n);
    rtx
}

/// The ingest: media forwarded (a keyframe noticed), RTX turned back into the
/// packet it repairs, a second copy dropped as a duplicate, an unknown payload type
/// a counted drop; everything received is buffered for retransmission.
#[test]
fn receive_rtp_unwraps_rtx_and_drops_duplicates() {
    let mut p = producer();
    let first = receive(&mut p, packet(96, 1)).expect("accepted");
    assert!(first.is_some_and(|i| i.keyframe && i.hdr.sequence == 1 && i.layer == 0));

    let original = packet(96, 2);
    let repaired = receive(&mut p, rtx_of(&original, RTX_SSRC, 500))
        .expect("accepted")
        .expect("forwarded");
    assert_eq!((repaired.hdr.ssrc, repaired.hdr.sequence), (SSRC, 2));
    assert_eq!(repaired.len, original.len());

    assert!(
        matches!(receive(&mut p, packet(96, 2)), Ok(None)),
        "a duplicate"
    );
    assert!(matches!(
        receive(&mut p, packet(100, 3)),
        Err(DropReason::UnknownSsrc)
    ));
    let stats = p.stats(Instant::now());
    assert_eq!(stats.rtx_packets_received, 1);
    assert_eq!(stats.duplicate_packets_received, 1);
    assert_eq!(stats.packets_received, 2);
    assert_eq!(stats.encodings.len(), 1);
    assert_eq!(stats.encodings[0].keyframes_received, 2);
    let buffer = p.retransmission_buffer(0).expect("video buffers");
    assert_eq!(buffer.get(Instant::now(), 2), Some(original.as_slice()));
}

/// A paused producer still ingests (stats, buffer, NACKs) but forwards nothing.
#[test]
fn paused_producer_ingests_without_forwarding() {
    let mut p = producer();
    assert!(p.set_paused(true));
    assert!(matches!(receive(&mut p, packet(96, 1)), Ok(None)));
    assert!(p.has_received());
    assert!(p
        .retransmission_buffer(0)
        .is_some_and(|b| b.get(Instant::now(), 1).is_some()));
}

fn simulcast() -> Producer {
    producer_with(vec![
        encoding(None, None, Some("q")),
        encoding(None, None, Some("h")),
        encoding(None, None, Some("f")),
    ])
}

/// Each encoding has its own sequence space, NACK generator, retransmission buffer
/// and statistics: the same sequence number on two layers is no duplicate, and a
/// gap on one layer is that layer's NACK only.
#[test]
fn encodings_keep_their_own_stream_state() {
    let mut p = simulcast();
    assert_eq!((p.spatial_layers(), p.temporal_layers()), (3, 3));
    assert_eq!(p.layer_of_rid(b"h"), Some(1));
    assert!(p.awaits_ssrcs());
    for (layer, ssrc) in [(0, 10), (1, 11), (2, 12)] {
        assert!(p.latch(layer, ssrc, false));
        assert!(p.latch(layer, ssrc + 100, true));
    }
    assert!(!p.awaits_ssrcs());
    assert!(!p.latch(1, 99, false), "a second SSRC for a learnt rid");
    assert_eq!(p.layer_ssrc(1), Some(11));

    let t0 = Instant::now();
    for layer in 0..3u8 {
        let ssrc = 10 + u32::from(layer);
        let got = receive_on(&mut p, t0, packet_from(ssrc, 96, 1), layer, false)
            .expect("accepted")
            .expect("forwarded");
        assert_eq!(got.layer, layer);
    }
    // Layer 2 loses sequence number 2.
    receive_on(&mut p, t0, packet_from(12, 96, 3), 2, false).expect("accepted");
    let later = t0 + Duration::from_millis(100);
    assert!(p.nack_due(2, later));
    assert!(!p.nack_due(0, later) && !p.nack_due(1, later));
    let mut lost = Vec::new();
    p.poll_nacks(2, later, &mut lost);
    assert_eq!(lost, [2]);

    // Its RTX repairs layer 2, not another.
    let repaired = receive_on(
        &mut p,
        later,
        rtx_of(&packet_from(12, 96, 2), 112, 7),
        2,
        true,
    )
    .expect("accepted")
    .expect("forwarded");
    assert_eq!(
        (repaired.hdr.ssrc, repaired.hdr.sequence, repaired.layer),
        (12, 2, 2)
    );
    assert!(p
        .retransmission_buffer(2)
        .is_some_and(|b| b.get(later, 2).is_some()));
    assert!(p
        .retransmission_buffer(1)
        .is_some_and(|b| b.get(later, 2).is_none()));

    let stats = p.stats(later);
    assert_eq!(stats.packets_received, 5);
    let per_layer: Vec<u64> = stats.encodings.iter().map(|e| e.packets_received).collect();
    assert_eq!(per_layer, [1, 1, 3]);
    assert_eq!(stats.encodings[2].rtx_packets_received, 1);
    assert_eq!(stats.encodings[1].rid.as_deref(), Some("h"));
    assert!(p.layer_active(2, later) && p.layer_bitrate(2, later) > 0);
    assert!(!p.layer_active(2, later + ACTIVE_WINDOW));
}

/// Keyframe requests are per encoding: asking for layer 1 right after layer 0 goes out
/// at once, a second one for layer 0 is served by the request on its way, repeated if
/// no keyframe of layer 0 arrives; a keyframe of layer 0 answers it.
#[test]
fn keyframe_requests_are_per_encoding() {
    let mut p = simulcast();
    assert!(p.latch(0, 10, false));
    let t0 = Instant::now();
    assert!(p.want_keyframe(t0, 0, KeyframeNeed::Start));
    assert!(p.want_keyframe(t0, 1, KeyframeNeed::Repair));
    assert!(!p.want_keyframe(t0, 0, KeyframeNeed::Start));
    assert_eq!(p.poll_timeout(), Some(t0 + KEYFRAME_REPEAT_FIRST));
    let repeat = t0 + KEYFRAME_REPEAT_FIRST;
    assert!(p.keyframe_request_due(0, repeat) && p.keyframe_request_due(1, repeat));
    // Layer 0 is sent (active), so its repeat goes out; nobody waits for layer 1's.
    let mut delta = packet_from(10, 96, 1);
    delta[13] |= 0x01; // the VP8 frame tag's P bit: an interframe
    receive_on(&mut p, repeat, delta, 0, false).expect("accepted");
    assert!(p.poll_keyframe_request(0, repeat, true));
    assert!(!p.poll_keyframe_request(1, repeat, false));
    receive_on(&mut p, repeat, packet_from(10, 96, 2), 0, false).expect("accepted");
    assert_eq!(p.poll_timeout(), None, "answered, and layer 1 forgotten");
    assert_eq!(p.stats(repeat).encodings[0].key_frame_requests_sent, 2);
    assert!(
        !p.want_keyframe(t0, 7, KeyframeNeed::Start),
        "no such layer"
    );
}

/// RTX of an encoding whose media SSRC is not known yet cannot be turned back into
/// a media packet: nothing is forwarded.
#[test]
fn rtx_before_its_media_ssrc_is_not_forwarded() {
    let mut p = simulcast();
    assert!(p.latch(0, 300, true));
    let rtx = rtx_of(&packet_from(10, 96, 2), 300, 1);
    assert!(matches!(
        receive_on(&mut p, Instant::now(), rtx, 0, true),
        Ok(None)
    ));
    assert_eq!(p.stats(Instant::now()).encodings[0].rtx_packets_received, 1);
}

/// Sender reports and receiver report blocks are per encoding: each layer keeps its
/// own NTP/RTP mapping, and our receiver report has a block for each layer that
/// received, under that layer's SSRC.
#[test]
fn sender_reports_and_report_blocks_are_per_encoding() {
    let mut p = simulcast();
    assert!(p.latch(0, 10, false) && p.latch(2, 12, false));
    let t0 = Instant::now();
    p.on_sender_report(2, 0x1234_0000_0000_0000, 9000, t0);
    assert_eq!(p.last_sr(2), Some((0x1234_0000_0000_0000, 9000, t0)));
    assert_eq!((p.last_sr(0), p.last_sr(1)), (None, None));

    for (layer, ssrc) in [(0, 10), (2, 12)] {
        receive_on(&mut p, t0, packet_from(ssrc, 96, 1), layer, false).expect("accepted");
    }
    let mut blocks = Vec::new();
    p.report(t0 + Duration::from_secs(1), &mut blocks);
    let ssrcs: Vec<u32> = blocks.iter().map(|b| b.ssrc).collect();
    assert_eq!(ssrcs, [10, 12], "layer 1 received nothing");
}

/// A publisher that accepts only FIR gets one, and each repeat of an unanswered request
/// is a new command (RFC 5104 4.3.1.1 sequence number one higher): libwebrtc ignores a
/// FIR whose number it has seen, so a repeat under the old number would not bring the
/// keyframe that was lost.
#[test]
fn a_repeated_fir_is_a_new_command() {
    let fir_only = serde_json::from_value(serde_json::json!({
        "codecs": [{"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000,
                    "rtcpFeedback": [{"type": "ccm", "parameter": "fir"}]}]
    }))
    .expect("parameters");
    let mut p = producer_of(vec![encoding(Some(SSRC), Some(RTX_SSRC), None)], fir_only);
    let t0 = Instant::now();
    assert!(p.want_keyframe(t0, 0, KeyframeNeed::Start));
    assert_eq!(p.keyframe_request_form(0), (true, 1));
    let repeat = t0 + KEYFRAME_REPEAT_FIRST;
    receive_on(&mut p, repeat, packet_from(SSRC, 96, 1), 0, false).expect("accepted");
    assert_eq!(
        p.poll_timeout(),
        None,
        "the packet was a keyframe: answered"
    );
    assert!(p.want_keyframe(repeat + KEYFRAME_REQUEST_INTERVAL, 0, KeyframeNeed::Repair));
    let later = repeat + KEYFRAME_REQUEST_INTERVAL + KEYFRAME_REPEAT_FIRST;
    assert!(p.keyframe_request_due(0, later));
    let mut delta = packet_from(SSRC, 96, 2);
    delta[13] |= 0x01;
    receive_on(&mut p, later, delta, 0, false).expect("accepted");
    assert!(p.poll_keyframe_request(0, later, true));
    assert_eq!(
        p.keyframe_request_form(0),
        (true, 3),
        "the repeat's own number"
    );
}

/// Frames are counted by new RTP timestamps: packets of one frame, late packets of an
/// older frame and repaired ones count once; a stream restarted far behind counts on.
#[test]
fn an_encoding_counts_frames_by_new_timestamps() {
    let t0 = Instant::now();
    let mut e = Encoding::new(encoding(Some(SSRC), None, None), true, false, true);
    let mut seq = 0u16;
    let mut at = |e: &mut Encoding, ms: u64, ts: u32| {
        seq = seq.wrapping_add(1);
        e.on_packet(t0 + Duration::from_millis(ms), seq, ts, 0, &[0u8; 100]);
    };
    // 20 frames a second, three packets each, one late packet of the frame before.
    for f in 0..20u32 {
        let ms = u64::from(f) * 50;
        for _ in 0..3 {
            at(&mut e, ms, 1_000_000 + f * 4500);
        }
        if f > 0 {
            at(&mut e, ms, 1_000_000 + (f - 1) * 4500);
        }
    }
    assert_eq!(e.frame_rate(t0 + Duration::from_millis(999)), 20);
    // Restarted 10 s of clock behind: its frames count.
    for f in 0..20u32 {
        at(&mut e, 1000 + u64::from(f) * 50, 100_000 + f * 4500);
    }
    assert_eq!(e.frame_rate(t0 + Duration::from_millis(1999)), 20);
}
