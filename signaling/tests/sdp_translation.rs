//! SDP translation against offers captured from the real browsers of this machine
//! (Chromium 156 and Firefox ESR 153, see e2e/tools/capture-fixtures.mjs).

mod common;

use std::io::Cursor;

use sdp::SessionDescription;
use serde_json::json;
use sfu_control::params::{
    DtlsFingerprint, DtlsParameters, DtlsRole, IceCandidate, IceParameters, MediaKind,
    RtpParameters,
};
use sfu_control::responses::TransportCreated;
use sfu_signaling::config::VideoCodec;
use sfu_signaling::sdp::answer::answer_send_offer;
use sfu_signaling::sdp::capabilities::{receive_capabilities, BrowserCapabilities, Negotiation};
use sfu_signaling::sdp::offer::{build_recv_offer, read_recv_answer, OfferedMedia};
use sfu_signaling::sdp::parse::{parse, Direction};
use sfu_signaling::sdp::simulcast::EncodingHint;
use sfu_signaling::sdp::SdpError;

use common::fixture;

const FP: &str = "95:3D:20:CF:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:8E:FD";

fn transport() -> TransportCreated {
    TransportCreated {
        transport_id: "3c9e7a1f00d2b6c4".into(),
        ice_role: sfu_control::responses::IceRole::Controlled,
        ice_state: sfu_control::params::IceState::New,
        dtls_state: sfu_control::params::DtlsState::New,
        ice_parameters: IceParameters {
            username_fragment: "k3Jd9aP0qLx2mVbN".into(),
            password: "Zc8r1WnQ4uTy7oPa2sDf6gHj9kLz3xCv".into(),
            ice_lite: true,
        },
        ice_candidates: vec![
            IceCandidate {
                foundation: "udpcandidate".into(),
                priority: 2130706431,
                ip: "127.0.0.1".into(),
                address: "127.0.0.1".into(),
                protocol: "udp".into(),
                port: 40000,
                kind: "host".into(),
                tcp_type: None,
            },
            IceCandidate {
                foundation: "tcpcandidate".into(),
                priority: 2124414975,
                ip: "127.0.0.1".into(),
                address: "127.0.0.1".into(),
                protocol: "tcp".into(),
                port: 40000,
                kind: "host".into(),
                tcp_type: Some("passive".into()),
            },
        ],
        dtls_parameters: DtlsParameters {
            role: sfu_control::params::DtlsRole::Auto,
            fingerprints: vec![DtlsFingerprint {
                algorithm: "sha-256".into(),
                value: FP.into(),
            }],
        },
    }
}

const TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// The server's default negotiation (bandwidth feedback on) with `video_codec`.
fn policy(video_codec: VideoCodec) -> Negotiation {
    Negotiation {
        video_codec,
        bandwidth_feedback: true,
    }
}

/// The same with bandwidth feedback turned off (`--no-bandwidth-feedback`).
fn no_feedback() -> Negotiation {
    Negotiation {
        bandwidth_feedback: false,
        ..policy(VideoCodec::Vp8)
    }
}

/// Parses our output with the `sdp` crate itself and returns (session attrs, media attrs).
fn reparse(text: &str) -> SessionDescription {
    assert!(
        text.ends_with("\r\n") && !text.contains("\n\n"),
        "CRLF lines: {text:?}"
    );
    SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes())).expect("our SDP parses")
}

fn attrs(m: &sdp::MediaDescription, key: &str) -> Vec<String> {
    m.attributes
        .iter()
        .filter(|a| a.key == key)
        .map(|a| a.value.clone().unwrap_or_default())
        .collect()
}

/// Checks the transport-level rules of any description we produce.
fn check_transport_rules(sd: &SessionDescription, setup: &str) {
    assert!(
        sd.attributes.iter().any(|a| a.key == "ice-lite"),
        "ice-lite"
    );
    let bundle = sd.attribute("group").expect("a=group:BUNDLE");
    assert!(bundle.starts_with("BUNDLE "), "{bundle}");
    for m in &sd.media_descriptions {
        if m.media_name.port.value == 0 {
            continue;
        }
        assert_eq!(m.media_name.protos.join("/"), "UDP/TLS/RTP/SAVPF");
        assert_eq!(m.media_name.port.value, 40000, "the worker's port");
        let c = m.connection_information.as_ref().unwrap();
        assert_eq!(c.address.as_ref().unwrap().address, "127.0.0.1");
        assert_eq!(
            attrs(m, "candidate"),
            vec![
                "udpcandidate 1 udp 2130706431 127.0.0.1 40000 typ host",
                "tcpcandidate 1 tcp 2124414975 127.0.0.1 40000 typ host tcptype passive"
            ]
        );
        assert!(m.has_attribute("end-of-candidates"));
        assert_eq!(attrs(m, "fingerprint"), vec![format!("sha-256 {FP}")]);
        assert_eq!(attrs(m, "setup"), vec![setup.to_owned()]);
        assert_eq!(attrs(m, "ice-ufrag"), vec!["k3Jd9aP0qLx2mVbN"]);
        assert_eq!(
            attrs(m, "ice-pwd"),
            vec!["Zc8r1WnQ4uTy7oPa2sDf6gHj9kLz3xCv"]
        );
        assert!(m.has_attribute("rtcp-mux"));
        let mid = attrs(m, "mid").pop().unwrap();
        assert!(bundle.split(' ').any(|x| x == mid), "mid {mid} in {bundle}");
        // Only feedback the daemon acts on (docs/PROTOCOL.md, transport.produce/consume).
        for fb in attrs(m, "rtcp-fb") {
            let (_, what) = fb.split_once(' ').unwrap();
            assert!(
                ["nack", "nack pli", "ccm fir", "transport-cc", "goog-remb"].contains(&what),
                "rtcp-fb {fb}"
            );
        }
        // BUNDLE: one id per extension URI across m-lines (RFC 8843 section 9.2).
        for e in attrs(m, "extmap") {
            let (id, uri) = e.split_once(' ').unwrap();
            for other in &sd.media_descriptions {
                for o in attrs(other, "extmap") {
                    let (oid, ouri) = o.split_once(' ').unwrap();
                    assert_eq!(id == oid, uri == ouri, "{e} vs {o}");
                }
            }
        }
    }
}

#[test]
fn chromium_offer_is_answered() {
    let offer = parse(&fixture("chromium-send-offer.sdp")).unwrap();
    let a = answer_send_offer(
        &offer,
        &transport(),
        &policy(VideoCodec::Vp8),
        42,
        &Default::default(),
    )
    .unwrap();
    let sd = reparse(&a.sdp);
    check_transport_rules(&sd, "passive");
    assert_eq!(sd.attribute("group").unwrap(), "BUNDLE 0 1");
    let [audio, video] = sd.media_descriptions.as_slice() else {
        panic!("two m-lines")
    };
    // RED (RFC 2198) first, as Chromium needs to send it, then Opus.
    assert_eq!(audio.media_name.formats, vec!["63", "111"]);
    assert_eq!(
        attrs(audio, "rtpmap"),
        vec!["63 red/48000/2", "111 opus/48000/2"]
    );
    assert_eq!(
        attrs(audio, "fmtp"),
        vec!["63 111/111", "111 minptime=10;useinbandfec=1"]
    );
    assert!(audio.has_attribute("recvonly"));
    assert_eq!(
        attrs(audio, "extmap"),
        vec![
            "1 urn:ietf:params:rtp-hdrext:ssrc-audio-level".to_owned(),
            format!("3 {TWCC}"),
            "4 urn:ietf:params:rtp-hdrext:sdes:mid".to_owned()
        ]
    );
    assert_eq!(attrs(audio, "rtcp-fb"), vec!["111 transport-cc"]);
    // VP8 with its RTX codec, and all the feedback the daemon acts on, in Chromium's order.
    assert_eq!(video.media_name.formats, vec!["96", "97"]);
    assert_eq!(attrs(video, "rtpmap"), vec!["96 VP8/90000", "97 rtx/90000"]);
    assert_eq!(attrs(video, "fmtp"), vec!["97 apt=96"]);
    assert_eq!(
        attrs(video, "rtcp-fb"),
        vec![
            "96 goog-remb",
            "96 transport-cc",
            "96 ccm fir",
            "96 nack",
            "96 nack pli"
        ]
    );
    assert_eq!(
        attrs(video, "extmap"),
        vec![
            "13 urn:3gpp:video-orientation".to_owned(),
            format!("3 {TWCC}"),
            "4 urn:ietf:params:rtp-hdrext:sdes:mid".to_owned()
        ]
    );
    // The browser's DTLS identity and role.
    assert_eq!(a.dtls.role, DtlsRole::Client);
    assert_eq!(a.dtls.fingerprints[0].algorithm, "sha-256");
    assert!(a.dtls.fingerprints[0].value.starts_with("32:54:92:94"));
    // The producers: the browser's payload types, SSRCs and RTX.
    let p: Vec<_> = a
        .producers
        .iter()
        .map(|p| serde_json::to_value(p.rtp_parameters.clone()).unwrap())
        .collect();
    assert_eq!(a.producers[0].kind, MediaKind::Audio);
    assert_eq!(
        p[0],
        json!({"mid": "0", "codecs": [
                {"mimeType": "audio/red", "payloadType": 63, "clockRate": 48000, "channels": 2,
                 "parameters": {}, "rtcpFeedback": []},
                {"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2,
                "parameters": {"minptime": 10, "useinbandfec": 1}, "rtcpFeedback": [{"type": "transport-cc"}]}],
               "headerExtensions": [
                   {"uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "id": 1, "encrypt": false, "parameters": {}},
                   {"uri": TWCC, "id": 3, "encrypt": false, "parameters": {}},
                   {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4, "encrypt": false, "parameters": {}}],
               "encodings": [{"ssrc": 3917254782u32}],
               "rtcp": {"cname": "xNA/nDzptVLRrCNm", "reducedSize": true, "mux": true}})
    );
    assert_eq!(a.producers[1].kind, MediaKind::Video);
    assert_eq!(
        p[1]["codecs"],
        json!([{"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000, "parameters": {},
                "rtcpFeedback": [{"type": "goog-remb"}, {"type": "transport-cc"}, {"type": "ccm", "parameter": "fir"},
                                 {"type": "nack"}, {"type": "nack", "parameter": "pli"}]},
               {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000, "parameters": {"apt": 96},
                "rtcpFeedback": []}])
    );
    assert_eq!(
        p[1]["encodings"],
        json!([{"ssrc": 488086808u32, "rtx": {"ssrc": 3113114770u32}}]),
        "the FID group: media SSRC, then RTX SSRC"
    );
    assert!(p[1]["headerExtensions"]
        .as_array()
        .unwrap()
        .contains(&json!({"uri": TWCC, "id": 3, "encrypt": false, "parameters": {}})));
}

#[test]
fn without_bandwidth_feedback_publishers_get_no_transport_cc_or_remb() {
    for name in ["chromium-send-offer.sdp", "firefox-send-offer.sdp"] {
        let offer = parse(&fixture(name)).unwrap();
        let a = answer_send_offer(
            &offer,
            &transport(),
            &no_feedback(),
            42,
            &Default::default(),
        )
        .unwrap();
        check_transport_rules(&reparse(&a.sdp), "passive");
        assert!(
            !a.sdp.contains("transport-cc")
                && !a.sdp.contains("goog-remb")
                && !a.sdp.contains(TWCC),
            "{name}: {}",
            a.sdp
        );
        for p in &a.producers {
            let rtp = &p.rtp_parameters;
            assert!(
                rtp.header_extensions.iter().all(|e| e.uri != TWCC),
                "{name}"
            );
            for c in &rtp.codecs {
                assert!(
                    c.rtcp_feedback
                        .iter()
                        .all(|f| f.kind != "transport-cc" && f.kind != "goog-remb"),
                    "{name}: {c:?}"
                );
            }
        }
        // Loss repair stays: NACK and RTX.
        let video = &a.producers[1].rtp_parameters;
        assert!(video.codecs[0]
            .rtcp_feedback
            .iter()
            .any(|f| f.kind == "nack" && f.parameter.is_empty()));
        assert_eq!(video.codecs[1].mime_type, "video/rtx", "{name}");
        assert!(video.encodings[0].rtx.is_some(), "{name}");
    }
}

#[test]
fn rtx_needs_an_fid_group_and_a_matching_apt() {
    let chromium = fixture("chromium-send-offer.sdp");
    let answer = |sdp: &str| {
        let d = parse(sdp).unwrap();
        answer_send_offer(
            &d,
            &transport(),
            &policy(VideoCodec::Vp8),
            1,
            &Default::default(),
        )
        .unwrap()
    };
    // No FID group: the RTX SSRC is unknown, so RTX is not negotiated (plain NACK stays).
    let no_fid: String = chromium
        .lines()
        .filter(|l| !l.starts_with("a=ssrc-group:FID") && !l.starts_with("a=ssrc:3113114770"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let a = answer(&no_fid);
    let video = &a.producers[1].rtp_parameters;
    assert_eq!(video.codecs.len(), 1);
    assert_eq!(video.encodings[0].rtx, None);
    assert!(!a.sdp.contains("rtx/90000"), "{}", a.sdp);
    // An FID group naming the media SSRC twice is no RTX stream.
    let same = chromium.replace(
        "a=ssrc-group:FID 488086808 3113114770",
        "a=ssrc-group:FID 488086808 488086808",
    );
    assert_eq!(
        answer(&same).producers[1].rtp_parameters.encodings[0].rtx,
        None
    );
    // An rtx codec repairing another payload type is not taken.
    let other_apt = chromium.replace("a=fmtp:97 apt=96", "a=fmtp:97 apt=98");
    let a = answer(&other_apt);
    assert_eq!(a.producers[1].rtp_parameters.codecs.len(), 1);
    assert_eq!(a.producers[1].rtp_parameters.encodings[0].rtx, None);
}

const EXT_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const EXT_RID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
const EXT_RRID: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";

/// The web client's camera encodings (web/room/config.js), by mid.
fn page_encodings(mid: &str) -> std::collections::BTreeMap<String, Vec<EncodingHint>> {
    let hints = serde_json::from_value(json!([
        {"rid": "q", "scaleResolutionDownBy": 4, "maxBitrate": 150000, "scalabilityMode": "L1T3"},
        {"rid": "h", "scaleResolutionDownBy": 2, "maxBitrate": 500000, "scalabilityMode": "L1T3"},
        {"rid": "f", "scaleResolutionDownBy": 1, "maxBitrate": 1500000, "scalabilityMode": "L1T3"}
    ]))
    .unwrap();
    [(mid.to_owned(), hints)].into_iter().collect()
}

#[test]
fn chromium_simulcast_offer_is_answered_with_rids_and_encodings() {
    let offer = parse(&fixture("chromium-simulcast-offer.sdp")).unwrap();
    for codec in [VideoCodec::Vp8, VideoCodec::H264] {
        let a = answer_send_offer(
            &offer,
            &transport(),
            &policy(codec),
            42,
            &page_encodings("1"),
        )
        .unwrap();
        let sd = reparse(&a.sdp);
        check_transport_rules(&sd, "passive");
        let video = &sd.media_descriptions[1];
        assert_eq!(attrs(video, "rid"), ["q recv", "h recv", "f recv"]);
        assert_eq!(attrs(video, "simulcast"), ["recv q;h;f"]);
        let ext: Vec<String> = attrs(video, "extmap");
        for uri in [EXT_MID, EXT_RID, EXT_RRID] {
            assert!(ext.iter().any(|e| e.ends_with(uri)), "{uri} in {ext:?}");
        }
        let p = &a.producers[1].rtp_parameters;
        assert_eq!(p.mid.as_deref(), Some("1"));
        // RTX is negotiated without an SSRC: the daemon knows it by its repaired RID.
        assert_eq!(p.codecs.len(), 2, "{codec:?}: media + rtx");
        assert_eq!(p.codecs[1].mime_type, "video/rtx");
        let expected = match codec {
            VideoCodec::H264 => "video/H264",
            _ => "video/VP8",
        };
        assert_eq!(p.codecs[0].mime_type, expected);
        let rids: Vec<_> = p
            .encodings
            .iter()
            .map(|e| e.rid.as_deref().unwrap())
            .collect();
        assert_eq!(rids, ["q", "h", "f"]);
        assert!(p
            .encodings
            .iter()
            .all(|e| e.ssrc.is_none() && e.rtx.is_none()));
        assert_eq!(p.encodings[0].scale_resolution_down_by, Some(4.0));
        assert_eq!(p.encodings[2].max_bitrate, Some(1_500_000));
        assert_eq!(p.encodings[1].scalability_mode.as_deref(), Some("L1T3"));
        assert!(
            p.rtcp.cname.is_some(),
            "the audio m-line's CNAME is the connection's"
        );
        // The audio track is untouched: no rid extensions, one SSRC.
        let audio = &a.producers[0].rtp_parameters;
        assert!(audio.encodings[0].ssrc.is_some());
        assert!(!audio.header_extensions.iter().any(|e| e.uri == EXT_RID));
    }
    // The produce request carries mediasoup's field names.
    let a = answer_send_offer(
        &offer,
        &transport(),
        &policy(VideoCodec::Vp8),
        1,
        &page_encodings("1"),
    )
    .unwrap();
    let enc = serde_json::to_value(&a.producers[1].rtp_parameters.encodings[0]).unwrap();
    assert_eq!(
        enc,
        json!({"rid": "q", "maxBitrate": 150000, "scalabilityMode": "L1T3", "scaleResolutionDownBy": 4.0})
    );
    // Without the page's word: the a=simulcast order, nothing else.
    let a = answer_send_offer(
        &offer,
        &transport(),
        &policy(VideoCodec::Vp8),
        1,
        &Default::default(),
    )
    .unwrap();
    let enc = &a.producers[1].rtp_parameters.encodings;
    assert_eq!(enc.len(), 3);
    assert_eq!(enc[0].rid.as_deref(), Some("q"));
    assert_eq!(enc[0].max_bitrate, None);
}

#[test]
fn simulcast_needs_the_rid_extension_and_hints_must_match() {
    let chromium = fixture("chromium-simulcast-offer.sdp");
    let without_rid: String = chromium
        .lines()
        .filter(|l| !l.ends_with(EXT_RID))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let d = parse(&without_rid).unwrap();
    let e = answer_send_offer(
        &d,
        &transport(),
        &policy(VideoCodec::Vp8),
        1,
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&e, SdpError::Unsupported(m) if m.contains(EXT_RID)),
        "{e}"
    );
    // Without repaired RID, RTX has no way to be told apart: not negotiated.
    let without_rrid: String = chromium
        .lines()
        .filter(|l| !l.ends_with(EXT_RRID))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let d = parse(&without_rrid).unwrap();
    let a = answer_send_offer(
        &d,
        &transport(),
        &policy(VideoCodec::Vp8),
        1,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(a.producers[1].rtp_parameters.codecs.len(), 1);
    assert!(!a.sdp.contains("rtx/90000"));
    // Hints for the audio m-line, or for a rid the offer does not send, are refused.
    let d = parse(&chromium).unwrap();
    for hints in [page_encodings("0"), page_encodings("7")] {
        let e =
            answer_send_offer(&d, &transport(), &policy(VideoCodec::Vp8), 1, &hints).unwrap_err();
        assert!(matches!(e, SdpError::Invalid(_)), "{e}");
    }
    let two_rids = chromium
        .replace("a=rid:f send\r\n", "")
        .replace("send q;h;f", "send q;h");
    let d = parse(&two_rids).unwrap();
    let e = answer_send_offer(
        &d,
        &transport(),
        &policy(VideoCodec::Vp8),
        1,
        &page_encodings("1"),
    )
    .unwrap_err();
    assert!(
        matches!(&e, SdpError::Invalid(m) if m.contains("rid f")),
        "{e}"
    );
    // A paused rid is left out of the answer (the browser never sends it).
    let paused = chromium.replace("send q;h;f", "send q;h;~f");
    let d = parse(&paused).unwrap();
    let a = answer_send_offer(
        &d,
        &transport(),
        &policy(VideoCodec::Vp8),
        1,
        &Default::default(),
    )
    .unwrap();
    assert!(a.sdp.contains("a=simulcast:recv q;h\r\n"), "{}", a.sdp);
    assert_eq!(a.producers[1].rtp_parameters.encodings.len(), 2);
}

#[test]
fn firefox_simulcast_offer_is_answered() {
    let offer = parse(&fixture("firefox-simulcast-offer.sdp")).unwrap();
    let a = answer_send_offer(
        &offer,
        &transport(),
        &policy(VideoCodec::Vp8),
        42,
        &page_encodings("1"),
    )
    .unwrap();
    let sd = reparse(&a.sdp);
    check_transport_rules(&sd, "passive");
    let video = &sd.media_descriptions[1];
    assert_eq!(attrs(video, "rid"), ["q recv", "h recv", "f recv"]);
    assert_eq!(attrs(video, "simulcast"), ["recv q;h;f"]);
    let ext = attrs(video, "extmap");
    // Firefox marks the RID extensions sendonly: accepted (it sends them).
    assert!(ext.contains(&format!("9 {EXT_RID}")), "{ext:?}");
    assert!(ext.contains(&format!("10 {EXT_RRID}")), "{ext:?}");
    let p = &a.producers[1].rtp_parameters;
    let rids: Vec<_> = p
        .encodings
        .iter()
        .map(|e| e.rid.as_deref().unwrap())
        .collect();
    assert_eq!(rids, ["q", "h", "f"]);
    // Firefox lists an SSRC per encoding, but not which rid it belongs to: RIDs decide.
    assert!(p.encodings.iter().all(|e| e.ssrc.is_none()));
    assert_eq!(p.codecs[1].mime_type, "video/rtx");
    assert!(p.rtcp.cname.as_deref().is_some_and(|c| c.starts_with('{')));
}

#[test]
fn firefox_offer_with_bundle_only_video_is_answered() {
    let offer = parse(&fixture("firefox-send-offer.sdp")).unwrap();
    assert_eq!(
        offer.media[1].port, 0,
        "the fixture has a bundle-only m-line"
    );
    let a = answer_send_offer(
        &offer,
        &transport(),
        &policy(VideoCodec::Vp8),
        42,
        &Default::default(),
    )
    .unwrap();
    let sd = reparse(&a.sdp);
    check_transport_rules(&sd, "passive");
    let [audio, video] = sd.media_descriptions.as_slice() else {
        panic!("two m-lines")
    };
    assert_eq!(attrs(audio, "rtpmap"), vec!["109 opus/48000/2"]);
    assert_eq!(attrs(audio, "rtcp-fb"), vec!["109 transport-cc"]);
    assert_eq!(
        attrs(video, "rtpmap"),
        vec!["120 VP8/90000", "124 rtx/90000"]
    );
    assert_eq!(
        attrs(video, "rtcp-fb"),
        vec![
            "120 nack",
            "120 nack pli",
            "120 ccm fir",
            "120 goog-remb",
            "120 transport-cc"
        ]
    );
    assert_eq!(
        attrs(video, "fmtp"),
        vec!["120 max-fs=12288;max-fr=60", "124 apt=120"]
    );
    assert_eq!(
        video.media_name.port.value, 40000,
        "bundle-only is accepted on the shared port"
    );
    // Firefox's recvonly csrc-audio-level is not taken.
    assert_eq!(
        attrs(audio, "extmap"),
        vec![
            "1 urn:ietf:params:rtp-hdrext:ssrc-audio-level".to_owned(),
            "3 urn:ietf:params:rtp-hdrext:sdes:mid".to_owned(),
            format!("7 {TWCC}")
        ]
    );
    assert_eq!(
        a.producers[0].rtp_parameters.encodings[0].ssrc,
        Some(2624464402)
    );
    assert_eq!(
        a.producers[1].rtp_parameters.encodings[0].ssrc,
        Some(2581078228)
    );
    assert_eq!(
        a.producers[1].rtp_parameters.encodings[0]
            .rtx
            .map(|r| r.ssrc),
        Some(1703652744),
        "Firefox's FID group comes after its a=ssrc lines"
    );
    assert!(
        a.dtls.fingerprints[0].value.starts_with("9E:3C:D3"),
        "session-level fingerprint used"
    );
}

#[test]
fn preferred_video_codecs_when_offered() {
    let chromium = parse(&fixture("chromium-send-offer.sdp")).unwrap();
    let h264 = answer_send_offer(
        &chromium,
        &transport(),
        &policy(VideoCodec::H264),
        1,
        &Default::default(),
    )
    .unwrap();
    let v = &h264.producers[1].rtp_parameters.codecs[0];
    assert_eq!(
        (v.mime_type.as_str(), v.payload_type),
        ("video/H264", 108),
        "constrained baseline, mode 1"
    );
    assert_eq!(v.parameters["profile-level-id"], "42e01f");
    assert!(h264.sdp.contains(
        "a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
    ));
    assert!(
        h264.sdp
            .contains("a=rtpmap:109 rtx/90000\r\na=fmtp:109 apt=108\r\n"),
        "the RTX codec of the chosen H264: {}",
        h264.sdp
    );
    let vp9 = answer_send_offer(
        &chromium,
        &transport(),
        &policy(VideoCodec::Vp9),
        1,
        &Default::default(),
    )
    .unwrap();
    let v = &vp9.producers[1].rtp_parameters.codecs[0];
    assert_eq!(
        (v.mime_type.as_str(), v.payload_type),
        ("video/VP9", 98),
        "profile 0, not 2"
    );
    // Firefox has no H264 here: VP8 instead.
    let firefox = parse(&fixture("firefox-send-offer.sdp")).unwrap();
    let ff = answer_send_offer(
        &firefox,
        &transport(),
        &policy(VideoCodec::H264),
        1,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(
        ff.producers[1].rtp_parameters.codecs[0].mime_type,
        "video/VP8"
    );
}

#[test]
fn receive_capabilities_follow_the_browser() {
    let chromium: serde_json::Value =
        serde_json::from_str(&fixture("chromium-recv-caps.json")).unwrap();
    let firefox: serde_json::Value =
        serde_json::from_str(&fixture("firefox-recv-caps.json")).unwrap();
    let merge = |v: &serde_json::Value| -> BrowserCapabilities {
        let mut codecs = v["audio"]["codecs"].as_array().unwrap().clone();
        codecs.extend(v["video"]["codecs"].as_array().unwrap().iter().cloned());
        let mut exts = v["audio"]["headerExtensions"].as_array().unwrap().clone();
        exts.extend(
            v["video"]["headerExtensions"]
                .as_array()
                .unwrap()
                .iter()
                .cloned(),
        );
        serde_json::from_value(json!({ "codecs": codecs, "headerExtensions": exts })).unwrap()
    };
    let names = |c: &sfu_control::params::RtpCapabilities| -> Vec<(String, u8)> {
        c.codecs
            .iter()
            .map(|c| (c.mime_type.clone(), c.preferred_payload_type))
            .collect()
    };
    let feedback = |c: &sfu_control::params::RtpCapabilities| -> Vec<(String, Vec<String>)> {
        c.codecs
            .iter()
            .map(|c| {
                let fb = c
                    .rtcp_feedback
                    .iter()
                    .map(|f| format!("{} {}", f.kind, f.parameter).trim().to_owned())
                    .collect();
                (c.mime_type.clone(), fb)
            })
            .collect()
    };
    let exts = |c: &sfu_control::params::RtpCapabilities| -> Vec<(Option<MediaKind>, String, u8)> {
        c.header_extensions
            .iter()
            .map(|e| (e.kind, e.uri.clone(), e.preferred_id))
            .collect()
    };
    let c = receive_capabilities(Some(&merge(&chromium)), true);
    // Each video codec followed by its RTX codec (apt = the codec's payload type).
    assert_eq!(
        names(&c),
        [
            ("audio/opus", 111),
            ("audio/red", 63),
            ("video/VP8", 96),
            ("video/rtx", 97),
            ("video/VP9", 98),
            ("video/rtx", 99),
            ("video/H264", 102),
            ("video/rtx", 103)
        ]
        .map(|(m, p)| (m.to_owned(), p))
    );
    for pair in c.codecs.windows(2) {
        if pair[1].mime_type == "video/rtx" {
            assert_eq!(pair[1].parameters["apt"], pair[0].preferred_payload_type);
        }
    }
    assert_eq!(
        exts(&c),
        vec![
            (
                Some(MediaKind::Audio),
                "urn:ietf:params:rtp-hdrext:ssrc-audio-level".into(),
                1
            ),
            (None, TWCC.into(), 3),
            (
                Some(MediaKind::Video),
                "urn:3gpp:video-orientation".into(),
                4
            ),
            (
                Some(MediaKind::Video),
                "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay".into(),
                6
            )
        ]
    );
    let f = receive_capabilities(Some(&merge(&firefox)), true);
    assert_eq!(
        names(&f),
        [
            ("audio/opus", 111),
            ("video/VP8", 96),
            ("video/rtx", 97),
            ("video/VP9", 98),
            ("video/rtx", 99)
        ]
        .map(|(m, p)| (m.to_owned(), p)),
        "no H264 and no audio/red in this Firefox: RED reaches it unwrapped"
    );
    let video_fb: Vec<String> = ["nack", "nack pli", "ccm fir", "transport-cc"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        feedback(&f)[..3],
        [
            ("audio/opus".to_owned(), vec!["transport-cc".to_owned()]),
            ("video/VP8".to_owned(), video_fb.clone()),
            ("video/rtx".to_owned(), vec![])
        ]
    );
    // Without bandwidth feedback: no transport-wide-cc and no transport-cc; NACK and RTX stay.
    let off = receive_capabilities(Some(&merge(&chromium)), false);
    assert_eq!(names(&off), names(&c));
    assert!(exts(&off).iter().all(|(_, uri, _)| uri != TWCC));
    assert_eq!(feedback(&off)[2].1, ["nack", "nack pli", "ccm fir"]);
    assert!(feedback(&off)[0].1.is_empty());
    // A browser that announces nothing: Opus and VP8, with NACK/PLI/FIR only.
    let default = receive_capabilities(None, true);
    assert_eq!(
        names(&default),
        [("audio/opus", 111), ("video/VP8", 96)].map(|(m, p)| (m.to_owned(), p))
    );
    assert_eq!(feedback(&default)[1].1, ["nack", "nack pli", "ccm fir"]);
    assert!(exts(&default).iter().all(|(_, uri, _)| uri != TWCC));
}

fn consumer_rtp(kind: MediaKind, ssrc: u32) -> RtpParameters {
    let v = match kind {
        MediaKind::Audio => json!({
            "mid": "0",
            "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2,
                        "parameters": {"minptime": 10, "useinbandfec": 1},
                        "rtcpFeedback": [{"type": "transport-cc"}]}],
            "headerExtensions": [{"uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "id": 1, "encrypt": false, "parameters": {}},
                                 {"uri": TWCC, "id": 3, "encrypt": false, "parameters": {}}],
            "encodings": [{"ssrc": ssrc}],
            "rtcp": {"cname": "ada-cam", "reducedSize": true, "mux": true}
        }),
        MediaKind::Video => json!({
            "mid": "1",
            "codecs": [{"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000, "parameters": {},
                        "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"},
                                         {"type": "ccm", "parameter": "fir"}, {"type": "transport-cc"}]},
                       {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000, "parameters": {"apt": 96},
                        "rtcpFeedback": []}],
            "headerExtensions": [{"uri": "urn:3gpp:video-orientation", "id": 4}, {"uri": TWCC, "id": 3}],
            "encodings": [{"ssrc": ssrc, "rtx": {"ssrc": ssrc + 1}}],
            "rtcp": {"cname": "ada-cam", "reducedSize": true, "mux": true}
        }),
    };
    serde_json::from_value(v).unwrap()
}

#[test]
fn receive_offer_carries_ssrc_msid_and_transport() {
    let audio = consumer_rtp(MediaKind::Audio, 1111);
    let video = consumer_rtp(MediaKind::Video, 2222);
    let closed = consumer_rtp(MediaKind::Video, 3333);
    let text = build_recv_offer(
        &transport(),
        77,
        3,
        &[
            OfferedMedia::Active {
                mid: "0",
                kind: MediaKind::Audio,
                rtp: &audio,
                stream_id: "peer-a",
                track_id: "c0",
            },
            OfferedMedia::Active {
                mid: "1",
                kind: MediaKind::Video,
                rtp: &video,
                stream_id: "peer-a",
                track_id: "c1",
            },
            OfferedMedia::Closed {
                mid: "2",
                kind: MediaKind::Video,
                rtp: &closed,
            },
        ],
    );
    let sd = reparse(&text);
    assert_eq!(sd.origin.session_id, 77);
    assert_eq!(sd.origin.session_version, 3);
    check_transport_rules(&sd, "actpass");
    assert_eq!(
        sd.attribute("group").unwrap(),
        "BUNDLE 0 1",
        "closed m-lines are out of the group"
    );
    let [a, v, c] = sd.media_descriptions.as_slice() else {
        panic!("three m-lines")
    };
    assert!(a.has_attribute("sendonly"));
    assert_eq!(attrs(a, "rtpmap"), vec!["111 opus/48000/2"]);
    assert_eq!(attrs(a, "fmtp"), vec!["111 minptime=10;useinbandfec=1"]);
    assert_eq!(attrs(a, "msid"), vec!["peer-a c0"]);
    assert_eq!(
        attrs(a, "ssrc"),
        vec!["1111 cname:ada-cam", "1111 msid:peer-a c0"]
    );
    assert_eq!(
        attrs(a, "extmap"),
        vec![
            "1 urn:ietf:params:rtp-hdrext:ssrc-audio-level".to_owned(),
            format!("3 {TWCC}")
        ]
    );
    assert_eq!(attrs(a, "rtcp-fb"), vec!["111 transport-cc"]);
    assert!(attrs(a, "ssrc-group").is_empty());
    // Video: VP8 + RTX (RFC 4588), the consumer's RTX SSRC in an FID group.
    assert_eq!(v.media_name.formats, vec!["96", "97"]);
    assert_eq!(attrs(v, "rtpmap"), vec!["96 VP8/90000", "97 rtx/90000"]);
    assert_eq!(attrs(v, "fmtp"), vec!["97 apt=96"]);
    assert_eq!(
        attrs(v, "rtcp-fb"),
        vec!["96 nack", "96 nack pli", "96 ccm fir", "96 transport-cc"]
    );
    assert_eq!(
        attrs(v, "extmap"),
        vec![
            "4 urn:3gpp:video-orientation".to_owned(),
            format!("3 {TWCC}")
        ]
    );
    assert_eq!(attrs(v, "ssrc-group"), vec!["FID 2222 2223"]);
    assert_eq!(
        attrs(v, "ssrc"),
        vec![
            "2222 cname:ada-cam",
            "2222 msid:peer-a c1",
            "2223 cname:ada-cam",
            "2223 msid:peer-a c1"
        ]
    );
    assert_eq!(c.media_name.port.value, 0);
    assert!(c.has_attribute("inactive"));
    assert!(attrs(c, "ssrc").is_empty());

    // A browser's answer to it: DTLS active, one m-line rejected.
    let answer = common::answer_for(&text).replacen("m=video 40000", "m=video 0", 1);
    let desc = parse(&answer).unwrap();
    assert_eq!(desc.media[0].direction, Direction::RecvOnly);
    let offered = [
        ("0".to_owned(), true),
        ("1".to_owned(), true),
        ("2".to_owned(), false),
    ];
    let r = read_recv_answer(&desc, &offered).unwrap();
    assert_eq!(r.rejected, vec!["1".to_owned()]);
    assert_eq!(r.dtls.role, DtlsRole::Client);
    // An answer that would make the daemon the DTLS client is refused.
    let passive = common::answer_for(&text).replace("a=setup:active", "a=setup:passive");
    assert!(matches!(
        read_recv_answer(&parse(&passive).unwrap(), &offered),
        Err(SdpError::Unsupported(_))
    ));
    // So is an answer with other m-lines than offered.
    assert!(read_recv_answer(&desc, &offered[..2]).is_err());
}

/// Issue 13: a Chromium subscriber whose consumer negotiated RED gets it in the receive
/// offer, first, with its fmtp naming the m-line's Opus (RFC 2198 section 5).
#[test]
fn receive_offer_carries_red_first_with_its_fmtp() {
    let mut audio = consumer_rtp(MediaKind::Audio, 1111);
    audio.codecs.insert(
        0,
        serde_json::from_value(json!({"mimeType": "audio/red", "payloadType": 63,
            "clockRate": 48000, "channels": 2, "parameters": {}, "rtcpFeedback": []}))
        .unwrap(),
    );
    let text = build_recv_offer(
        &transport(),
        1,
        1,
        &[OfferedMedia::Active {
            mid: "0",
            kind: MediaKind::Audio,
            rtp: &audio,
            stream_id: "peer-a",
            track_id: "c0",
        }],
    );
    let sd = reparse(&text);
    let a = &sd.media_descriptions[0];
    assert_eq!(a.media_name.formats, vec!["63", "111"]);
    assert_eq!(
        attrs(a, "rtpmap"),
        vec!["63 red/48000/2", "111 opus/48000/2"]
    );
    assert_eq!(
        attrs(a, "fmtp"),
        vec!["63 111/111", "111 minptime=10;useinbandfec=1"]
    );
}

/// Firefox offers no audio/red: its produce has Opus alone, and an offer whose RED
/// carries another codec than the chosen Opus is answered without RED.
#[test]
fn red_only_when_offered_for_the_chosen_opus() {
    let firefox = parse(&fixture("firefox-send-offer.sdp")).unwrap();
    let a = answer_send_offer(
        &firefox,
        &transport(),
        &policy(VideoCodec::Vp8),
        1,
        &Default::default(),
    )
    .unwrap();
    let mimes: Vec<&str> = a.producers[0]
        .rtp_parameters
        .codecs
        .iter()
        .map(|c| c.mime_type.as_str())
        .collect();
    assert_eq!(mimes, vec!["audio/opus"]);
    let other = fixture("chromium-send-offer.sdp").replace("a=fmtp:63 111/111", "a=fmtp:63 111/9");
    let a = answer_send_offer(
        &parse(&other).unwrap(),
        &transport(),
        &policy(VideoCodec::Vp8),
        1,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(a.producers[0].rtp_parameters.codecs.len(), 1);
    assert_eq!(
        reparse(&a.sdp).media_descriptions[0].media_name.formats,
        vec!["111"]
    );
}

/// What a refused offer's error must look like.
type Expect = fn(&SdpError) -> bool;

/// Each kind of bad send-side offer gets its own, clear error.
#[test]
fn bad_offers_are_refused_with_reasons() {
    let chromium = fixture("chromium-send-offer.sdp");
    let answer = |sdp: &str| {
        parse(sdp).and_then(|d| {
            answer_send_offer(
                &d,
                &transport(),
                &policy(VideoCodec::Vp8),
                1,
                &Default::default(),
            )
        })
    };
    let cases: Vec<(&str, String, Expect)> = vec![
        ("garbage", "hello".into(), |e| {
            matches!(e, SdpError::Parse(_))
        }),
        (
            "no version line",
            chromium.replacen("v=0\r\n", "", 1),
            |e| matches!(e, SdpError::Parse(_)),
        ),
        (
            "no audio codec",
            chromium.replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:111 speex/48000/2"),
            |e| matches!(e, SdpError::NoCommonCodec(m) if m.contains("audio")),
        ),
        (
            "only AV1 video",
            {
                let mut s = chromium.clone();
                for c in ["VP8", "VP9", "H264"] {
                    s = s.replace(&format!(" {c}/90000"), " XX/90000");
                }
                s
            },
            |e| matches!(e, SdpError::NoCommonCodec(m) if m.contains("video")),
        ),
        (
            "no BUNDLE",
            chromium.replace("a=group:BUNDLE 0 1\r\n", ""),
            |e| matches!(e, SdpError::Invalid(m) if m.contains("BUNDLE")),
        ),
        (
            "no rtcp-mux",
            chromium.replace("a=rtcp-mux\r\n", ""),
            |e| matches!(e, SdpError::Invalid(m) if m.contains("rtcp-mux")),
        ),
        (
            "no fingerprint",
            chromium
                .lines()
                .filter(|l| !l.starts_with("a=fingerprint"))
                .map(|l| format!("{l}\r\n"))
                .collect(),
            |e| matches!(e, SdpError::Invalid(m) if m.contains("fingerprint")),
        ),
        (
            "setup passive",
            chromium.replace("a=setup:actpass", "a=setup:passive"),
            |e| matches!(e, SdpError::Unsupported(_)),
        ),
        (
            "no ssrc",
            chromium
                .lines()
                .filter(|l| !l.starts_with("a=ssrc"))
                .map(|l| format!("{l}\r\n"))
                .collect(),
            |e| matches!(e, SdpError::Invalid(m) if m.contains("ssrc")),
        ),
        (
            "simulcast audio",
            chromium.replacen(
                "a=sendonly\r\n",
                "a=sendonly\r\na=simulcast:send h;l\r\n",
                1,
            ),
            |e| matches!(e, SdpError::Unsupported(m) if m.contains("simulcast audio")),
        ),
        (
            "simulcast of rids without a=rid lines",
            chromium.replace(
                "a=rtcp-xr:rcvr-rtt=all\r\na=rtpmap:96",
                "a=simulcast:send h;l\r\na=rtpmap:96",
            ),
            |e| matches!(e, SdpError::Invalid(m) if m.contains("without an a=rid:h send line")),
        ),
        (
            "recvonly",
            chromium.replace("a=sendonly", "a=recvonly"),
            |e| matches!(e, SdpError::Invalid(_)),
        ),
        (
            "bad payload type",
            chromium.replace("UDP/TLS/RTP/SAVPF 111", "UDP/TLS/RTP/SAVPF 300"),
            |e| matches!(e, SdpError::Invalid(_)),
        ),
        (
            "bad extmap",
            chromium.replace("a=extmap:1 ", "a=extmap:x "),
            |e| matches!(e, SdpError::Invalid(_)),
        ),
        (
            "data channel",
            chromium.replace(
                "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
                "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            ),
            |e| matches!(e, SdpError::Unsupported(_)),
        ),
    ];
    for (what, sdp, expected) in cases {
        match answer(&sdp) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => assert!(expected(&e), "{what}: {e:?}"),
        }
    }
}

/// Untrusted SDP never panics: every truncation and a byte flip at every position of
/// every fixture (the simulcast ones with the page's encodings).
#[test]
fn mangled_sdp_never_panics() {
    for name in [
        "chromium-send-offer.sdp",
        "firefox-send-offer.sdp",
        "chromium-simulcast-offer.sdp",
        "firefox-simulcast-offer.sdp",
    ] {
        let hints = page_encodings("1");
        let text = fixture(name);
        let bytes = text.as_bytes();
        for cut in (0..bytes.len()).step_by(7) {
            let s = String::from_utf8_lossy(&bytes[..cut]);
            if let Ok(d) = parse(&s) {
                let _ = answer_send_offer(&d, &transport(), &policy(VideoCodec::Vp8), 1, &hints);
                let _ = read_recv_answer(&d, &[("0".into(), true), ("1".into(), true)]);
            }
        }
        for i in (0..bytes.len()).step_by(3) {
            for b in [b' ', b':', b'\n', b'0', 0xff] {
                let mut m = bytes.to_vec();
                m[i] = b;
                let s = String::from_utf8_lossy(&m);
                if let Ok(d) = parse(&s) {
                    let _ =
                        answer_send_offer(&d, &transport(), &policy(VideoCodec::H264), 1, &hints);
                }
            }
        }
    }
}
