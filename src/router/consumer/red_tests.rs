//! RED (RFC 2198) through a consumer's egress: unwrapped to the primary Opus block for
//! a subscriber without RED, malformed payloads dropped and counted, forwarded as it is
//! for one with RED. The sent datagrams are decrypted with the subscriber's context.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::tests::Subscriber;
use super::*;

const OPUS_PT: u8 = 111;
const RED_PT: u8 = 63;
/// The subscriber's numbers for them (a str0m peer's, say).
const SUB_OPUS_PT: u8 = 109;
const SUB_RED_PT: u8 = 120;
const AUDIO_LEVEL_ID: u8 = 1;

fn audio_consumer(red_unwrap: bool) -> Consumer {
    let pt_map = if red_unwrap {
        vec![(OPUS_PT, SUB_OPUS_PT)]
    } else {
        vec![(OPUS_PT, OPUS_PT), (RED_PT, SUB_RED_PT)]
    };
    Consumer::new(
        ConsumerParams {
            id: ConsumerId("a".into()),
            producer: 0,
            transport: 0,
            media_kind: MediaKind::Audio,
            ssrc: 0x0a0a_0001,
            rtx_ssrc: 0x0a0a_0002,
            stream: ConsumerStream {
                rtp_parameters: RtpParameters::default(),
                pt_map,
                ext_map: vec![(AUDIO_LEVEL_ID, AUDIO_LEVEL_ID)],
                clock_rate: 48_000,
                rtx_pt: None,
                twcc_id: None,
                playout_delay_id: None,
                red_unwrap: red_unwrap.then_some(RED_PT),
            },
            paused: false,
            producer_paused: false,
            producer_vp8: false,
            spatial_layers: 1,
            temporal_layers: 1,
            preferred_layers: None,
            follow: false,
            app_data: Value::Null,
        },
        &mut StdRng::seed_from_u64(3),
    )
}

/// A RED packet as Chromium sends it: the audio level extension, one redundant block
/// (the previous 20 ms frame, 5 bytes) and the primary frame; `padding` bytes of RTP
/// padding at the end.
fn red_packet(seq: u16, red_payload: &[u8], padding: u8) -> Vec<u8> {
    let mut p = vec![if padding > 0 { 0xb0 } else { 0x90 }, RED_PT];
    p.extend(seq.to_be_bytes());
    p.extend((u32::from(seq) * 960).to_be_bytes());
    p.extend(0x5eed_0002_u32.to_be_bytes());
    // RFC 8285 one-byte extension block: audio level, voice, -42 dBov.
    p.extend([0xbe, 0xde, 0x00, 0x01, AUDIO_LEVEL_ID << 4, 0x80 | 42, 0, 0]);
    p.extend(red_payload);
    if padding > 0 {
        p.extend(std::iter::repeat_n(0, usize::from(padding - 1)));
        p.push(padding);
    }
    p
}

const PRIMARY: [u8; 6] = [0x78, 1, 2, 3, 4, 5];

fn chromium_red_payload() -> Vec<u8> {
    let mut r = vec![0x80 | OPUS_PT, 0x0f, 0x00, 0x05, OPUS_PT];
    r.extend([0x78, 9, 9, 9, 9]);
    r.extend(PRIMARY);
    r
}

/// Sends `pkt` through the consumer's egress as a forwarded packet.
fn send(s: &mut Subscriber, c: &mut Consumer, pkt: &[u8]) {
    let hdr = RtpHeader::parse(pkt).expect("test packet parses");
    let how = Transmission::Forward {
        arrival: u32::from(hdr.sequence) * 960,
        keyframe: false,
        layer: 0,
        source: 0,
    };
    c.send_rtp(Instant::now(), &mut s.egress(), pkt, &hdr, how);
}

#[test]
fn red_is_unwrapped_to_its_primary_opus_block() {
    let mut c = audio_consumer(true);
    let mut s = Subscriber::new();
    send(&mut s, &mut c, &red_packet(7, &chromium_red_payload(), 0));
    send(&mut s, &mut c, &red_packet(8, &chromium_red_payload(), 4));
    let got = s.received();
    assert_eq!(got.len(), 2);
    for d in &got {
        let hdr = RtpHeader::parse(d).unwrap();
        assert_eq!(hdr.payload_type, SUB_OPUS_PT);
        assert_eq!(hdr.padding_len, 0, "the original's padding is not copied");
        assert_eq!(hdr.payload(d), PRIMARY);
        assert_eq!(
            crate::rtp::audio_level::read_audio_level(d, &hdr, AUDIO_LEVEL_ID),
            Some(crate::rtp::audio_level::AudioLevel {
                voice: true,
                attenuation: 42
            }),
            "header extensions are kept"
        );
    }
    let seqs: Vec<u16> = got
        .iter()
        .map(|d| RtpHeader::parse(d).unwrap().sequence)
        .collect();
    assert_eq!(seqs[1], seqs[0].wrapping_add(1));
    assert_eq!(s.drops, 0);
}

#[test]
fn plain_opus_passes_a_red_unwrapping_consumer_unchanged() {
    let mut c = audio_consumer(true);
    let mut s = Subscriber::new();
    let mut p = red_packet(1, &PRIMARY, 0);
    p[1] = OPUS_PT;
    send(&mut s, &mut c, &p);
    let got = s.received();
    assert_eq!(got.len(), 1);
    let hdr = RtpHeader::parse(&got[0]).unwrap();
    assert_eq!(
        (hdr.payload_type, hdr.payload(&got[0])),
        (SUB_OPUS_PT, &PRIMARY[..])
    );
}

#[test]
fn malformed_red_is_dropped_and_counted() {
    let mut c = audio_consumer(true);
    let mut s = Subscriber::new();
    // A redundant block longer than the payload; headers without the final one; a
    // primary block of a payload type the subscriber has not negotiated (not sent,
    // not malformed).
    send(
        &mut s,
        &mut c,
        &red_packet(1, &[0xef, 0x0f, 0x03, 0xff, 0x6f, 1], 0),
    );
    send(&mut s, &mut c, &red_packet(2, &[0xef, 0x0f, 0x00, 0x00], 0));
    send(&mut s, &mut c, &red_packet(3, &[0x00, 1, 2], 0));
    assert!(s.received().is_empty());
    assert_eq!(s.drops, 2);
    assert_eq!(s.worker_drops.get(DropReason::Malformed), 2);
}

#[test]
fn red_goes_as_it_is_to_a_subscriber_with_red() {
    let mut c = audio_consumer(false);
    let mut s = Subscriber::new();
    let payload = chromium_red_payload();
    send(&mut s, &mut c, &red_packet(1, &payload, 0));
    let got = s.received();
    assert_eq!(got.len(), 1);
    let hdr = RtpHeader::parse(&got[0]).unwrap();
    assert_eq!(hdr.payload_type, SUB_RED_PT);
    assert_eq!(hdr.payload(&got[0]), payload);
}
