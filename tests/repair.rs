//! Loss repair through the daemon with str0m peers and an impairment shim: 5% loss on
//! the publisher's path and 5% on the subscriber's. The daemon NACKs the publisher (which
//! answers with RTX), keeps a retransmission buffer and answers the subscriber's NACKs
//! with RTX of its own.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use str0m::format::Codec;
use str0m::media::MediaKind;
use str0m::rtp::RtpWrite;

const RTX_SSRC: u32 = 0x2222_0003;

#[test]
fn five_percent_loss_each_way_is_repaired() {
    let daemon = Daemon::start(1);
    let mut ctl = daemon.control(0);
    let router = ctl.create_router();
    let mut room = Room { ctl, router };
    let (mut publisher, mut sub) = (Peer::new(), Peer::new());
    let tp = room.transport(&mut publisher);
    let ts = room.transport(&mut sub);
    let mut ctl = room.ctl;

    let (pv, vp8) = produce_vp8_with_rtx(&mut ctl, &mut publisher, &tp);

    let (sub_vp8, sub_rtx) = (sub.pt(Codec::Vp8), {
        let p = sub
            .rtc
            .codec_config()
            .iter()
            .find(|p| p.spec().codec == Codec::Vp8)
            .cloned()
            .unwrap();
        *p.resend().unwrap()
    });
    let caps = json!({ "codecs": [
        { "kind": "video", "mimeType": "video/VP8", "preferredPayloadType": sub_vp8, "clockRate": 90000, "rtcpFeedback": nack_fb() },
        { "kind": "video", "mimeType": "video/rtx", "preferredPayloadType": sub_rtx, "clockRate": 90000, "parameters": { "apt": sub_vp8 } }] });
    let (_, cv, ssrc, _) = consume_vp8_with_rtx(&mut ctl, &mut sub, &ts, &pv, caps);
    wait_connected(&mut [&mut publisher, &mut sub]);
    wait_dtls_connected(&mut ctl, &tp);
    wait_dtls_connected(&mut ctl, &ts);

    // 600 video packets at 100 packets/s, keyframe first and every 100.
    const N: u32 = 600;
    let mut sent_at = Vec::new();
    let start = Instant::now();
    for i in 0..N {
        let due = start + Duration::from_millis(u64::from(i) * 10);
        drive_all(&mut [&mut publisher, &mut sub], due, |_| false);
        if i == 1 {
            // Impairment starts once the first keyframe is through. Lost before the
            // first packet the daemon sees, it could not be NACKed (nothing says it was
            // sent) and this publisher ignores PLI: the subscriber would wait a second
            // for the next one, and about one run in twenty failed for it.
            publisher.loss_out = 0.05;
            sub.loss_in = 0.05;
        }
        let now = Instant::now();
        sent_at.push(now);
        let mut api = publisher.rtc.direct_api();
        let stream = api.stream_tx(&VIDEO_SSRC.into()).unwrap();
        let w = RtpWrite::new(
            vp8.into(),
            (10_000 + u64::from(i)).into(),
            i * 900,
            now,
            vp8_payload(i, i % 100 == 0),
        );
        stream.write_rtp(w.nackable(true));
    }
    drive_all(
        &mut [&mut publisher, &mut sub],
        Instant::now() + Duration::from_secs(2),
        |_| false,
    );

    // First arrival of each packet, by its payload index.
    let mut arrived: BTreeMap<u32, Instant> = BTreeMap::new();
    let mut arrivals = Vec::new();
    for e in &sub.events {
        if let str0m::Event::RtpPacket(p) = e {
            if *p.header.ssrc == ssrc && p.payload.len() >= 11 {
                let i =
                    u32::from_be_bytes([p.payload[7], p.payload[8], p.payload[9], p.payload[10]]);
                arrivals.push((i, p.timestamp));
            }
        }
    }
    for (i, t) in arrivals {
        arrived.entry(i).or_insert(t);
    }
    let got = arrived.len();
    let p = ctl.ok("producer.getStats", Some(&pv), json!(null));
    let c = ctl.ok("consumer.getStats", Some(&cv), json!(null));
    assert!(
        got * 1000 >= N as usize * 995,
        "subscriber got {got} of {N} video packets; producer {p}; consumer {c}"
    );
    eprintln!("repair: got {got} of {N}; producer {p}; consumer {c}");
    assert!(
        p["nackCount"].as_u64().unwrap() > 0,
        "no NACK toward the publisher: {p}"
    );
    assert!(
        p["rtxPacketsReceived"].as_u64().unwrap() > 0,
        "no RTX from the publisher: {p}"
    );
    assert!(
        c["retransmittedPacketsSent"].as_u64().unwrap() > 0,
        "no retransmission to the subscriber: {c}"
    );

    // No gap in decoding longer than 500 ms: packet i is decodable once it and all
    // before it have arrived; that moment must never trail its sending by 500 ms.
    let mut decodable = start;
    let mut worst = Duration::ZERO;
    for (i, sent) in sent_at.iter().enumerate() {
        let Some(at) = arrived.get(&(i as u32)) else {
            continue;
        };
        decodable = decodable.max(*at);
        worst = worst.max(decodable.saturating_duration_since(*sent));
    }
    assert!(
        worst < Duration::from_millis(500),
        "a packet became decodable {worst:?} after it was sent"
    );
}

const TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
/// The subscriber's transport-wide-cc extension id (str0m's default map has it at 3).
const SUB_TWCC_ID: u8 = 3;

/// The transport-wide sequence number of a (S)RTP datagram, read from its plaintext
/// header (RFC 8285 one-byte form; SRTP leaves the header unencrypted).
fn transport_wide_seq(d: &[u8]) -> Option<u16> {
    if d.len() < 12 || d[0] & 0x10 == 0 {
        return None;
    }
    let at = 12 + 4 * usize::from(d[0] & 0x0f);
    let block = d.get(at..at + 4)?;
    if block[..2] != [0xBE, 0xDE] {
        return None;
    }
    let words = usize::from(u16::from_be_bytes([block[2], block[3]]));
    let elements = d.get(at + 4..at + 4 + words * 4)?;
    let mut i = 0;
    while let Some(&b) = elements.get(i) {
        let (id, len) = (b >> 4, usize::from(b & 0x0f) + 1);
        match id {
            0 => i += 1,
            15 => return None,
            _ if id == SUB_TWCC_ID && len == 2 => {
                let v = elements.get(i + 1..i + 3)?;
                return Some(u16::from_be_bytes([v[0], v[1]]));
            }
            _ => i += 1 + len,
        }
    }
    None
}

/// Regression test (issue 11): the egress pipeline was written twice, and the
/// retransmission copy lacked two steps of the forwarding one. A retransmission toward a
/// subscriber that negotiated transport-cc must carry that transport's own
/// transport-wide sequence number, continuing the numbering of the forwarded packets
/// (no gap, no duplicate), and be recorded by the transport's send-side estimator like
/// every other RTP packet it sends. Before the fix the RTX packets carried no number at
/// all and `transportCcPacketsSent` fell short of `rtpPacketsSent`.
#[test]
fn retransmission_carries_the_subscribers_transport_wide_sequence() {
    let daemon = Daemon::start(1);
    let mut ctl = daemon.control(0);
    let router = ctl.ok("router.create", None, json!({}))["routerId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut room = Room { ctl, router };
    let (mut publisher, mut sub) = (Peer::new(), Peer::new());
    let tp = room.transport(&mut publisher);
    let ts = room.transport(&mut sub);
    let mut ctl = room.ctl;
    sub.rtc.direct_api().enable_twcc_feedback();

    // The publisher sends no transport-wide numbers the daemon knows of: every number
    // the subscriber sees is the daemon's own.
    let (pv, vp8) = produce_vp8_with_rtx(&mut ctl, &mut publisher, &tp);

    let sub_vp8 = sub.pt(Codec::Vp8);
    let sub_rtx = *sub
        .rtc
        .codec_config()
        .iter()
        .find(|p| p.spec().codec == Codec::Vp8)
        .and_then(|p| p.resend())
        .unwrap();
    let sub_fb = json!([{ "type": "nack" }, { "type": "nack", "parameter": "pli" }, { "type": "transport-cc" }]);
    let caps = json!({
        "codecs": [
            { "kind": "video", "mimeType": "video/VP8", "preferredPayloadType": sub_vp8, "clockRate": 90000, "rtcpFeedback": sub_fb },
            { "kind": "video", "mimeType": "video/rtx", "preferredPayloadType": sub_rtx, "clockRate": 90000, "parameters": { "apt": sub_vp8 } }],
        "headerExtensions": [{ "kind": "video", "uri": TWCC, "preferredId": SUB_TWCC_ID }] });
    let (c, cv, _, rtx_ssrc) = consume_vp8_with_rtx(&mut ctl, &mut sub, &ts, &pv, caps);
    assert_eq!(
        c["rtpParameters"]["headerExtensions"][0]["uri"], TWCC,
        "{c}"
    );
    wait_connected(&mut [&mut publisher, &mut sub]);
    wait_dtls_connected(&mut ctl, &tp);
    wait_dtls_connected(&mut ctl, &ts);

    // Loss on the subscriber's side only: the daemon gets every packet and answers the
    // subscriber's NACKs from its buffer.
    sub.loss_in = 0.05;
    sub.record_srtp_in = true;
    const N: u32 = 300;
    let start = Instant::now();
    for i in 0..N {
        let due = start + Duration::from_millis(u64::from(i) * 10);
        drive_all(&mut [&mut publisher, &mut sub], due, |_| false);
        send(
            &mut publisher,
            VIDEO_SSRC,
            vp8,
            10_000 + u64::from(i),
            i * 900,
            vp8_payload(i, i % 100 == 0),
        );
    }
    drive_all(
        &mut [&mut publisher, &mut sub],
        Instant::now() + Duration::from_secs(2),
        |_| false,
    );
    // Without loss the last NACKs are answered for good and nothing more is sent; what
    // was in flight when the stats were taken arrives within the last drive.
    sub.loss_in = 0.0;
    drive_all(
        &mut [&mut publisher, &mut sub],
        Instant::now() + Duration::from_secs(1),
        |_| false,
    );
    let t = ctl.ok("transport.getStats", Some(&ts), json!(null));
    drive_all(
        &mut [&mut publisher, &mut sub],
        Instant::now() + Duration::from_millis(200),
        |_| false,
    );

    let c = ctl.ok("consumer.getStats", Some(&cv), json!(null));
    let retransmitted = c["retransmittedPacketsSent"].as_u64().unwrap();
    assert!(
        retransmitted > 0,
        "no retransmission to the subscriber: {c}"
    );

    // On the wire: every RTP datagram toward the subscriber, RTX included, carries a
    // transport-wide number, and together they number one sequence without a gap or a
    // duplicate (loopback delivers everything the daemon sent).
    let mut numbers = Vec::new();
    let mut rtx_numbers = Vec::new();
    for d in &sub.received_srtp {
        let ssrc_of = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
        let n = transport_wide_seq(d).unwrap_or_else(|| {
            let stream = if ssrc_of == rtx_ssrc { "RTX" } else { "media" };
            panic!("{stream} RTP to the subscriber without a transport-wide number")
        });
        if ssrc_of == rtx_ssrc {
            rtx_numbers.push(n);
        }
        numbers.push(n);
    }
    assert!(
        !rtx_numbers.is_empty(),
        "no RTX datagram seen by the subscriber"
    );
    // str0m took the RTX packets, number and all: it repaired packets with them.
    let repaired = sub
        .events
        .iter()
        .filter(|e| {
            matches!(e, str0m::Event::RtpPacket(p)
                if p.header.ext_vals.transport_cc.is_some_and(|n| rtx_numbers.contains(&n)))
        })
        .count();
    assert!(repaired > 0, "the subscriber repaired nothing from RTX");
    let sent = numbers.len();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(
        numbers.len(),
        sent,
        "a transport-wide number was used twice"
    );
    let (first, last) = (numbers[0], numbers[sent - 1]);
    assert_eq!(
        usize::from(last - first) + 1,
        sent,
        "gaps in the transport-wide numbers {first}..={last}"
    );

    // In the daemon: the estimator has a record of every RTP packet the transport sent.
    assert_eq!(
        t["transportCcPacketsSent"], t["rtpPacketsSent"],
        "the send-side estimator missed packets: {t}"
    );
    assert_eq!(t["rtpPacketsSent"].as_u64().unwrap(), sent as u64, "{t}");
    eprintln!(
        "{sent} RTP packets ({} RTX, {repaired} repaired) numbered {first}..={last}; {t}",
        rtx_numbers.len()
    );
}

/// Publishes VP8 from `publisher` on transport `tp` with RTX (RFC 4588) and NACK/PLI
/// feedback; returns the producer id and the VP8 payload type.
fn produce_vp8_with_rtx(ctl: &mut Control, publisher: &mut Peer, tp: &str) -> (String, u8) {
    let vp8 = publisher.pt(Codec::Vp8);
    let rtx = *publisher
        .rtc
        .codec_config()
        .iter()
        .find(|p| p.spec().codec == Codec::Vp8)
        .and_then(|p| p.resend())
        .expect("str0m offers RTX for VP8");
    {
        let mut api = publisher.rtc.direct_api();
        api.declare_media("v".into(), MediaKind::Video);
        api.declare_stream_tx(VIDEO_SSRC.into(), Some(RTX_SSRC.into()), "v".into(), None);
    }
    let pv = ctl.ok(
        "transport.produce",
        Some(tp),
        json!({ "kind": "video", "rtpParameters": {
            "mid": "v",
            "codecs": [
                { "mimeType": "video/VP8", "payloadType": vp8, "clockRate": 90000, "rtcpFeedback": nack_fb() },
                { "mimeType": "video/rtx", "payloadType": rtx, "clockRate": 90000, "parameters": { "apt": vp8 } }],
            "encodings": [{ "ssrc": VIDEO_SSRC, "rtx": { "ssrc": RTX_SSRC } }] } }),
    )["producerId"]
        .as_str()
        .unwrap()
        .to_owned();
    (pv, vp8)
}

/// The feedback both sides negotiate for video: NACK and PLI.
fn nack_fb() -> serde_json::Value {
    json!([{ "type": "nack" }, { "type": "nack", "parameter": "pli" }])
}

/// Consumes producer `pv` on the subscriber's transport `ts` with `caps` (VP8 with RTX)
/// and has the subscriber expect the stream; returns the response, the consumer id and
/// its media and RTX SSRCs.
fn consume_vp8_with_rtx(
    ctl: &mut Control,
    sub: &mut Peer,
    ts: &str,
    pv: &str,
    caps: serde_json::Value,
) -> (serde_json::Value, String, u32, u32) {
    let c = ctl.ok(
        "transport.consume",
        Some(ts),
        json!({ "producerId": pv, "rtpCapabilities": caps }),
    );
    let cv = c["consumerId"].as_str().unwrap().to_owned();
    let ssrc = c["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap() as u32;
    let rtx_ssrc = c["rtpParameters"]["encodings"][0]["rtx"]["ssrc"]
        .as_u64()
        .expect("consumer negotiated RTX") as u32;
    {
        let mut api = sub.rtc.direct_api();
        api.declare_media("v".into(), MediaKind::Video);
        api.expect_stream_rx(ssrc.into(), Some(rtx_ssrc.into()), "v".into(), None);
    }
    (c, cv, ssrc, rtx_ssrc)
}
