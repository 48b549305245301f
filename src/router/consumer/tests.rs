//! The consumer's egress, sans-IO: packets through `Consumer::send_rtp` into a send batch,
//! read back from their plaintext RTP headers (SRTP does not encrypt the header).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::batch::SendBatch;
use crate::bwe::{BweConfig, Pacer, PlayoutDelayLimits, RetransmitBudget, SendSideEstimator};
use crate::rtp::extension::{find_extension, read_extension_u16};
use crate::rtp::Vp8Descriptor;
use crate::srtp::{contexts_from_keying_material, SrtpContext, SrtpProfile};
use crate::stats::DropCounters;

const PRODUCER_PT: u8 = 96;
const CONSUMER_PT: u8 = 100;
const RTX_PT: u8 = 101;
const TWCC_ID: u8 = 5;
const PLAYOUT_DELAY_ID: u8 = 6;
const SSRC: u32 = 0x0c0c_0001;
const RTX_SSRC: u32 = 0x0c0c_0002;
const DEST: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 5000);

fn consumer(media_kind: MediaKind, producer_vp8: bool, rtx: bool) -> Consumer {
    Consumer::new(
        ConsumerParams {
            id: ConsumerId("c".into()),
            producer: 0,
            transport: 0,
            media_kind,
            ssrc: SSRC,
            rtx_ssrc: RTX_SSRC,
            stream: ConsumerStream {
                rtp_parameters: RtpParameters::default(),
                pt_map: vec![(PRODUCER_PT, CONSUMER_PT)],
                ext_map: Vec::new(),
                clock_rate: 90_000,
                rtx_pt: rtx.then_some(RTX_PT),
                twcc_id: Some(TWCC_ID),
                playout_delay_id: (media_kind == MediaKind::Video).then_some(PLAYOUT_DELAY_ID),
                red_unwrap: None,
            },
            paused: false,
            producer_paused: false,
            producer_vp8,
            spatial_layers: 1,
            temporal_layers: 1,
            preferred_layers: None,
            follow: false,
            app_data: Value::Null,
        },
        &mut StdRng::seed_from_u64(1),
    )
}

/// A producer packet without header extensions.
fn packet(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, PRODUCER_PT];
    p.extend(seq.to_be_bytes());
    p.extend((u32::from(seq) * 3000).to_be_bytes());
    p.extend(0x5eed_0001_u32.to_be_bytes());
    p.extend([0xab; 100]);
    p
}

/// A subscriber transport's egress state, owned for a test, and the subscriber's own
/// SRTP context to read what it was sent (also used by `red_tests`).
pub(super) struct Subscriber {
    srtp: SrtpContext,
    peer: SrtpContext,
    transport_seq: u16,
    bwe: SendSideEstimator,
    rtx_budget: RetransmitBudget,
    pacer: Pacer,
    /// The playout delay the transport asks for (`bwe::playout`).
    pub(super) playout_delay: Option<PlayoutDelayLimits>,
    rtp_out: Traffic,
    pub(super) drops: u64,
    worker_rtp_out: Traffic,
    pub(super) worker_drops: DropCounters,
    out: SendBatch,
}

impl Subscriber {
    pub(super) fn new() -> Self {
        Self::with_estimate(BweConfig::default().start_bps)
    }

    /// A subscriber whose transport's estimate starts at `bps`.
    pub(super) fn with_estimate(bps: u64) -> Self {
        let profile = SrtpProfile::AeadAes128Gcm;
        let material = vec![7; profile.keying_material_len()];
        let (srtp, _) = contexts_from_keying_material(profile, &material, false)
            .expect("SRTP contexts from test keying material");
        let (_, peer) = contexts_from_keying_material(profile, &material, true)
            .expect("SRTP contexts from test keying material");
        Self {
            srtp,
            peer,
            transport_seq: 0,
            bwe: SendSideEstimator::new(BweConfig {
                start_bps: bps,
                ..BweConfig::default()
            }),
            rtx_budget: RetransmitBudget::default(),
            pacer: Pacer::new(),
            playout_delay: None,
            rtp_out: Traffic::default(),
            drops: 0,
            worker_rtp_out: Traffic::default(),
            worker_drops: DropCounters::default(),
            out: SendBatch::new(),
        }
    }

    pub(super) fn egress(&mut self) -> Egress<'_> {
        Egress {
            path: Some((DEST, &mut self.srtp)),
            transport_seq: &mut self.transport_seq,
            bwe: Some(&mut self.bwe),
            rtx_budget: &mut self.rtx_budget,
            pacer: &mut self.pacer,
            playout_delay: self.playout_delay,
            transport_rtp_out: &mut self.rtp_out,
            transport_drops: &mut self.drops,
            worker_rtp_out: &mut self.worker_rtp_out,
            worker_drops: &mut self.worker_drops,
            out: &mut self.out,
        }
    }

    /// Sends what the pacer held back (these tests are about what is sent, not when).
    fn flush_pacer(&mut self) {
        let later = Instant::now() + Duration::from_secs(3600);
        while let Some(p) = self.pacer.pop(later, 100_000_000_000) {
            self.out.push(p.dest, &p.data);
        }
    }

    /// Every datagram sent, decrypted as the subscriber reads it.
    pub(super) fn received(&mut self) -> Vec<Vec<u8>> {
        self.flush_pacer();
        let sent: Vec<Vec<u8>> = self.out.iter().map(|(_, d)| d.to_vec()).collect();
        sent.into_iter()
            .map(|mut d| {
                let n = self.peer.unprotect_rtp(&mut d).expect("decrypts");
                d.truncate(n);
                d
            })
            .collect()
    }

    /// (SSRC, sequence number, transport-wide number) of every datagram sent.
    fn sent(&mut self) -> Vec<(u32, u16, Option<u16>)> {
        self.flush_pacer();
        self.out
            .iter()
            .map(|(_, d)| {
                let hdr = RtpHeader::parse(d).expect("an RTP header");
                let twcc = read_extension_u16(d, &hdr, TWCC_ID);
                (hdr.ssrc, hdr.sequence, twcc)
            })
            .collect()
    }
}

fn forward(c: &mut Consumer, s: &mut Subscriber, now: Instant, seq: u16, keyframe: bool) {
    let pkt = packet(seq);
    let hdr = RtpHeader::parse(&pkt).expect("test packet parses");
    let how = Transmission::Forward {
        arrival: u32::from(seq) * 3000,
        keyframe,
        layer: 0,
        source: 0,
    };
    c.send_rtp(now, &mut s.egress(), &pkt, &hdr, how);
}

/// Regression test (issue 11): a retransmission continues the subscriber transport's
/// transport-wide numbering of the forwarded packets and is recorded by its estimator.
#[test]
fn retransmission_gets_the_transports_next_transport_wide_number() {
    let now = Instant::now();
    let mut c = consumer(MediaKind::Video, false, true);
    let mut s = Subscriber::new();
    let mut buffer = RetransmissionBuffer::default();
    for seq in 1..=3 {
        buffer.insert(now, seq, &packet(seq));
        forward(&mut c, &mut s, now, seq, false);
    }
    let forwarded = s.sent();
    let (_, second, _) = forwarded[1];
    c.retransmit(now, |_| Some(&buffer), &[second], &mut s.egress());

    let sent = s.sent();
    assert_eq!(sent.len(), 4, "{sent:?}");
    let numbers: Vec<Option<u16>> = sent.iter().map(|(_, _, n)| *n).collect();
    assert_eq!(numbers, [Some(0), Some(1), Some(2), Some(3)]);
    assert_eq!(sent[3].0, RTX_SSRC, "resent on the RTX stream");
    assert_eq!(s.bwe.stats().packets_sent, 4);
    assert_eq!(s.rtp_out.packets, 4);
    assert_eq!(c.stats().retransmitted_packets_sent, 1);
    assert_eq!(
        c.traffic().packets,
        3,
        "retransmissions are not forwarded packets"
    );
}

/// Without RTX the packet is resent as it was first sent, numbered like any other.
#[test]
fn retransmission_without_rtx_resends_the_packet_under_a_new_transport_number() {
    let now = Instant::now();
    let mut c = consumer(MediaKind::Video, false, false);
    let mut s = Subscriber::new();
    let mut buffer = RetransmissionBuffer::default();
    buffer.insert(now, 1, &packet(1));
    forward(&mut c, &mut s, now, 1, false);
    let (_, seq, _) = s.sent()[0];
    c.retransmit(now, |_| Some(&buffer), &[seq], &mut s.egress());
    // A second NACK within the RTT is not answered again.
    c.retransmit(
        now + Duration::from_millis(1),
        |_| Some(&buffer),
        &[seq],
        &mut s.egress(),
    );
    assert_eq!(
        s.sent(),
        [(SSRC, seq, Some(0)), (SSRC, seq, Some(1))],
        "same stream and sequence number, the next transport-wide number"
    );
}

/// A VP8 video consumer starts on a keyframe, and after a resume waits for one again,
/// continuing its sequence without a gap.
#[test]
fn simple_consumer_starts_and_resumes_on_a_keyframe() {
    let now = Instant::now();
    let mut c = consumer(MediaKind::Video, true, true);
    let mut s = Subscriber::new();
    forward(&mut c, &mut s, now, 1, false);
    assert!(s.sent().is_empty(), "nothing before the first keyframe");
    forward(&mut c, &mut s, now, 2, true);
    forward(&mut c, &mut s, now, 3, false);
    assert!(c.set_paused(true));
    forward(&mut c, &mut s, now, 4, true);
    assert!(c.set_paused(false));
    assert!(!c.set_paused(false), "resuming twice changes nothing");
    forward(&mut c, &mut s, now, 5, false);
    forward(&mut c, &mut s, now, 6, true);
    let seqs: Vec<u16> = s.sent().iter().map(|(_, seq, _)| *seq).collect();
    assert_eq!(seqs.len(), 3, "{seqs:?}");
    assert_eq!(seqs[1], seqs[0].wrapping_add(1));
    assert_eq!(seqs[2], seqs[1].wrapping_add(1), "no gap across the pause");
}

/// Probe padding goes out on the RTX stream, continuing the transport-wide numbering
/// and recorded by the estimator, so the subscriber's feedback measures it.
#[test]
fn probe_padding_is_rtx_padding_numbered_and_recorded_like_media() {
    let now = Instant::now();
    let mut c = consumer(MediaKind::Video, false, true);
    let mut s = Subscriber::new();
    assert!(
        !c.can_pad(),
        "nothing forwarded yet: no timestamp to pad with"
    );
    forward(&mut c, &mut s, now, 1, false);
    assert!(c.can_pad());
    let sent = c.send_padding(now, &mut s.egress(), 1000);
    assert!((1000..1400).contains(&sent.bytes), "{sent:?}");
    assert_eq!(sent.packets, 4, "{sent:?}");
    let packets = s.sent();
    assert_eq!(packets.len(), 5, "{packets:?}");
    for (i, (ssrc, _, twcc)) in packets.iter().enumerate().skip(1) {
        assert_eq!(*ssrc, RTX_SSRC);
        assert_eq!(*twcc, Some(i as u16));
    }
    let rtx_seqs: Vec<u16> = packets[1..].iter().map(|p| p.1).collect();
    assert!(rtx_seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    assert_eq!(s.bwe.stats().packets_sent, 5);
    assert_eq!(c.traffic().packets, 1, "padding is not media");

    let mut plain = consumer(MediaKind::Video, false, false);
    forward(&mut plain, &mut s, now, 1, false);
    assert!(!plain.can_pad(), "no RTX stream to pad on");
}

/// Regression test (issue 13: 6.85 Mbit/s of retransmissions into a 400 kbit/s link):
/// a NACK storm is answered only within the transport's retransmission budget, the
/// rest counted.
#[test]
fn retransmissions_beyond_the_budget_are_not_sent_and_counted() {
    let now = Instant::now();
    let mut c = consumer(MediaKind::Video, false, true);
    let mut s = Subscriber::with_estimate(400_000);
    let mut buffer = RetransmissionBuffer::default();
    let mut lost = Vec::new();
    for seq in 1..=300 {
        buffer.insert(now, seq, &packet(seq));
        forward(&mut c, &mut s, now, seq, false);
    }
    for (_, seq, _) in s.sent() {
        lost.push(seq);
    }
    let before = s.sent().len();
    c.retransmit(now, |_| Some(&buffer), &lost, &mut s.egress());
    let resent = s.sent().len() - before;
    // 400 kbps estimate: 1 s of 200 kbps = 25 KB, ~223 packets of 112 bytes.
    assert!((210..=235).contains(&resent), "{resent}");
    assert_eq!(s.rtx_budget.denied(), (300 - resent) as u64);
}

/// A simulcast consumer of a two-layer VP8 producer.
fn simulcast_consumer() -> Consumer {
    let mut rtp_parameters = RtpParameters::default();
    rtp_parameters.encodings.push(Default::default());
    rtp_parameters
        .codecs
        .push(crate::channel::params::RtpCodecParameters {
            mime_type: "video/VP8".into(),
            payload_type: CONSUMER_PT,
            clock_rate: 90_000,
            channels: None,
            parameters: Default::default(),
            rtcp_feedback: Vec::new(),
        });
    Consumer::new(
        ConsumerParams {
            id: ConsumerId("s".into()),
            producer: 0,
            transport: 0,
            media_kind: MediaKind::Video,
            ssrc: SSRC,
            rtx_ssrc: RTX_SSRC,
            stream: ConsumerStream {
                rtp_parameters,
                pt_map: vec![(PRODUCER_PT, CONSUMER_PT)],
                ext_map: Vec::new(),
                clock_rate: 90_000,
                rtx_pt: None,
                twcc_id: None,
                playout_delay_id: None,
                red_unwrap: None,
            },
            paused: false,
            producer_paused: false,
            producer_vp8: true,
            spatial_layers: 2,
            temporal_layers: 1,
            preferred_layers: Some((1, None)),
            follow: false,
            app_data: Value::Null,
        },
        &mut StdRng::seed_from_u64(2),
    )
}

/// A packet of layer `layer` with a VP8 descriptor (15-bit PictureID `pid`, TL0PICIDX
/// `tl0`), starting a keyframe or not.
fn vp8_packet(layer: u8, seq: u16, pid: u16, tl0: u8, keyframe: bool) -> Vec<u8> {
    let mut p = vec![0x80, PRODUCER_PT];
    p.extend(seq.to_be_bytes());
    p.extend((u32::from(pid) * 3000).to_be_bytes());
    p.extend((0x5eed_0100 + u32::from(layer)).to_be_bytes());
    let [hi, lo] = pid.to_be_bytes();
    p.extend([0x90, 0xc0, 0x80 | hi, lo, tl0]);
    if keyframe {
        p.extend([0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]);
    } else {
        p.extend([0x31, 0x02, 0x00, 0x11, 0x22, 0x33]);
    }
    p.extend([layer; 50]);
    p
}

/// The egress of a simulcast consumer: the policy decides before the copy (other
/// layers cost nothing), the VP8 descriptor is rewritten in the copy, the stream the
/// subscriber decrypts is continuous across the switch, and its NACK is answered from
/// the right layer's buffer with the same bytes.
#[test]
fn simulcast_egress_rewrites_the_descriptor_and_resends_from_the_layers_buffer() {
    let now = Instant::now();
    let mut c = simulcast_consumer();
    assert_eq!(c.kind().wire(), ConsumerType::Simulcast);
    assert_eq!(
        c.rtp_parameters().encodings[0].scalability_mode.as_deref(),
        Some("L2T1")
    );
    assert_eq!(c.take_keyframe_request(), Some(1));
    let mut s = Subscriber::new();
    let mut buffers = [
        RetransmissionBuffer::default(),
        RetransmissionBuffer::default(),
    ];
    let mut send = |c: &mut Consumer, s: &mut Subscriber, layer: u8, seq, pid, tl0, key| {
        let pkt = vp8_packet(layer, seq, pid, tl0, key);
        buffers[usize::from(layer)].insert(now, seq, &pkt);
        let hdr = RtpHeader::parse(&pkt).expect("test packet parses");
        let how = Transmission::Forward {
            arrival: u32::from(pid) * 3000,
            keyframe: key,
            layer,
            source: 0,
        };
        c.send_rtp(now, &mut s.egress(), &pkt, &hdr, how);
    };
    // Layer 0 starts (below the target), layer 1 takes over at its keyframe.
    send(&mut c, &mut s, 1, 500, 9000, 40, false);
    send(&mut c, &mut s, 0, 100, 20, 7, true);
    send(&mut c, &mut s, 1, 501, 9001, 41, false);
    send(&mut c, &mut s, 0, 101, 21, 8, false);
    send(&mut c, &mut s, 1, 502, 9002, 42, true);
    send(&mut c, &mut s, 0, 102, 22, 9, false);
    send(&mut c, &mut s, 1, 503, 9003, 43, false);
    assert_eq!(s.out.len(), 4, "layer 0 twice, then layer 1 twice");
    assert_eq!(
        c.take_layers_change(),
        Some(Some(ConsumerLayers {
            spatial_layer: 1,
            temporal_layer: 0
        }))
    );

    let profile = SrtpProfile::AeadAes128Gcm;
    let material = vec![7; profile.keying_material_len()];
    // A fresh context per datagram: the retransmission reuses its SRTP index.
    let decrypt = |d: &[u8]| {
        let (_, mut subscriber) =
            contexts_from_keying_material(profile, &material, true).expect("subscriber contexts");
        let mut buf = d.to_vec();
        let n = subscriber.unprotect_rtp(&mut buf).expect("decrypts");
        buf.truncate(n);
        let hdr = RtpHeader::parse(&buf).expect("RTP");
        let desc = Vp8Descriptor::parse(hdr.payload(&buf)).expect("VP8");
        let pid = desc.picture_id.map(|p| p.value);
        (
            hdr.sequence,
            pid,
            desc.tl0_pic_idx,
            hdr.payload(&buf)[desc.len + 6],
        )
    };
    let got: Vec<_> = s.out.iter().map(|(_, d)| decrypt(d)).collect();
    let (seq0, pid0, tl0) = (got[0].0, got[0].1.expect("pid"), got[0].2.expect("tl0"));
    let expect: Vec<_> = (0..4u16)
        .map(|i| {
            let layer = u8::from(i >= 2);
            (
                seq0.wrapping_add(i),
                Some(pid0 + i),
                Some(tl0.wrapping_add(i as u8)),
                layer,
            )
        })
        .collect();
    assert_eq!(got, expect);

    // The subscriber lost the first layer-1 packet: resent from layer 1's buffer, as
    // first sent (its own sequence number and rewritten descriptor).
    let lost = seq0.wrapping_add(2);
    let sent_before = s.out.len();
    c.retransmit(
        now,
        |l| buffers.get(usize::from(l)),
        &[lost],
        &mut s.egress(),
    );
    let again: Vec<_> = s
        .out
        .iter()
        .skip(sent_before)
        .map(|(_, d)| decrypt(d))
        .collect();
    assert_eq!(again, [expect[2]]);
}

/// While the transport asks for a playout delay, every video packet it sends carries it,
/// forwarded and retransmitted, beside the transport-wide sequence number; without one
/// nothing is added.
#[test]
fn video_carries_the_transports_playout_delay_while_it_asks_for_one() {
    let now = Instant::now();
    let mut c = consumer(MediaKind::Video, false, true);
    let mut s = Subscriber::new();
    let mut buffer = RetransmissionBuffer::default();
    buffer.insert(now, 1, &packet(1));
    forward(&mut c, &mut s, now, 1, false);
    let limits = PlayoutDelayLimits {
        min_ms: 360,
        max_ms: 10_000,
    };
    s.playout_delay = Some(limits);
    buffer.insert(now, 2, &packet(2));
    forward(&mut c, &mut s, now, 2, false);
    let (_, second, _) = s.sent()[1];
    c.retransmit(now, |_| Some(&buffer), &[second], &mut s.egress());
    let got = s.received();
    assert_eq!(got.len(), 3);
    let delay = |p: &[u8]| {
        let h = RtpHeader::parse(p).expect("parses");
        (
            find_extension(p, &h, PLAYOUT_DELAY_ID).map(<[u8]>::to_vec),
            read_extension_u16(p, &h, TWCC_ID),
            p.len() - h.header_len,
        )
    };
    let bytes = limits.to_bytes().to_vec();
    assert_eq!(delay(&got[0]), (None, Some(0), 100));
    assert_eq!(delay(&got[1]), (Some(bytes.clone()), Some(1), 100));
    // The RTX packet: its original sequence number, then the payload.
    assert_eq!(delay(&got[2]), (Some(bytes), Some(2), 102));
    assert!(got[2].ends_with(&[0xab; 100]));
}

/// A producer whose uplink is lossy asks its subscribers for a playout delay too: each
/// consumer writes the larger of its producer's and its transport's.
#[test]
fn video_carries_the_larger_of_the_uplinks_and_the_transports_playout_delay() {
    let now = Instant::now();
    let mut c = consumer(MediaKind::Video, false, true);
    let mut s = Subscriber::new();
    let limits = |min_ms| PlayoutDelayLimits {
        min_ms,
        max_ms: 10_000,
    };
    c.set_upstream_playout(Some(limits(250)));
    forward(&mut c, &mut s, now, 1, false);
    s.playout_delay = Some(limits(360));
    forward(&mut c, &mut s, now, 2, false);
    c.set_upstream_playout(Some(limits(400)));
    forward(&mut c, &mut s, now, 3, false);
    c.set_upstream_playout(None);
    s.playout_delay = None;
    forward(&mut c, &mut s, now, 4, false);
    let written: Vec<Option<Vec<u8>>> = s
        .received()
        .iter()
        .map(|p| {
            let h = RtpHeader::parse(p).expect("parses");
            find_extension(p, &h, PLAYOUT_DELAY_ID).map(<[u8]>::to_vec)
        })
        .collect();
    let bytes = |ms| Some(limits(ms).to_bytes().to_vec());
    assert_eq!(written, [bytes(250), bytes(360), bytes(400), None]);
}
