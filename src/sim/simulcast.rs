//! A simulcast publisher's side as the simulation tests build it: three VP8 encodings
//! named by RID (with RTX tagged by the repaired RID), the producer's parameters as a
//! page gives them, a subscriber's VP8 capabilities, and the L1T3 payload descriptor
//! (PictureID, TL0PICIDX, TID/Y) Chrome writes. Each test keeps its own SSRCs, bitrates
//! and frame pattern.

use serde_json::{json, Value};
use sfu_control::params::{
    self, RtcpFeedback, RtpCapabilities, RtpCodecCapability, RtpHeaderExtensionCapability,
    RtpParameters,
};
use sfu_control::requests::TransportProduce;
use str0m::format::Codec;

use super::call::{TWCC_ID, TWCC_URI};
use super::{PeerId, Sim};

/// (rid, media SSRC, RTX SSRC) of one encoding.
pub(crate) type Layer = (&'static str, u32, u32);
/// One entry of a producer's `encodings`: (rid, `maxBitrate`, `scaleResolutionDownBy`).
pub(crate) type Encoding = (&'static str, u32, Option<f64>);

/// str0m's standard extension ids (Chrome's).
pub(crate) const MID_ID: u8 = 4;
pub(crate) const RID_ID: u8 = 10;
pub(crate) const RRID_ID: u8 = 11;

/// The encodings "q", "h" and "f", lowest first, with SSRCs `0xP100_0001`,
/// `0xP200_0002`, `0xP300_0003` and RTX `0xP100_1001`..., `P` being `prefix` (so every
/// test's publishers have SSRCs of their own).
pub(crate) const fn layers(prefix: u32) -> [Layer; 3] {
    let p = prefix << 28;
    [
        ("q", p | 0x0100_0001, p | 0x0100_1001),
        ("h", p | 0x0200_0002, p | 0x0200_1002),
        ("f", p | 0x0300_0003, p | 0x0300_1003),
    ]
}

/// Declares `layers` as the str0m publisher's streams of mid "v" by RID: its VP8 and
/// RTX payload types.
pub(crate) fn declare_layers(sim: &mut Sim, peer: PeerId, layers: &[Layer]) -> (u8, u8) {
    let (vp8, rtx) = sim.peer(peer).pt(Codec::Vp8);
    let rtx = rtx.expect("str0m pairs VP8 with RTX");
    for &(rid, ssrc, rtx) in layers {
        sim.peer(peer).send_rid_stream("v", ssrc, rtx, rid);
    }
    (vp8, rtx)
}

/// The producer's parameters for mid "v" as a page gives them: VP8 with NACK and PLI,
/// RTX, the MID/RID/RRID extensions, no SSRCs, `encodings` in the given order, each
/// L1T3.
pub(crate) fn simulcast_video(vp8: u8, rtx: u8, encodings: &[Encoding]) -> RtpParameters {
    let encodings: Vec<Value> = encodings
        .iter()
        .map(|&(rid, max_bitrate, scale)| {
            let mut e = json!({"rid": rid, "maxBitrate": max_bitrate, "scalabilityMode": "L1T3"});
            if let Some(scale) = scale {
                e["scaleResolutionDownBy"] = json!(scale);
            }
            e
        })
        .collect();
    serde_json::from_value(json!({
        "mid": "v",
        "codecs": [
            {"mimeType": "video/VP8", "payloadType": vp8, "clockRate": 90000,
             "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}]},
            {"mimeType": "video/rtx", "payloadType": rtx, "clockRate": 90000, "parameters": {"apt": vp8}}
        ],
        "headerExtensions": [
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": MID_ID},
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", "id": RID_ID},
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id", "id": RRID_ID}
        ],
        "encodings": encodings,
        "rtcp": {"cname": "pub"}
    }))
    .expect("valid parameters")
}

/// Produces [`simulcast_video`] on `transport`: the producer id.
pub(crate) fn produce_simulcast(
    sim: &mut Sim,
    transport: &str,
    vp8: u8,
    rtx: u8,
    encodings: &[Encoding],
) -> String {
    sim.ok(&TransportProduce {
        transport_id: transport.into(),
        kind: params::MediaKind::Video,
        rtp_parameters: simulcast_video(vp8, rtx, encodings),
        paused: false,
        app_data: Value::Null,
    })
    .producer_id
    .0
}

/// What a subscriber receives: VP8 (`vp8`) with NACK and PLI and its RTX (`rtx`); with
/// `twcc`, transport-cc feedback and its header extension too.
pub(crate) fn vp8_capabilities(vp8: u8, rtx: u8, twcc: bool) -> RtpCapabilities {
    let mut feedback = vec![
        RtcpFeedback::new("nack", ""),
        RtcpFeedback::new("nack", "pli"),
    ];
    let mut header_extensions = vec![];
    if twcc {
        feedback.push(RtcpFeedback::new("transport-cc", ""));
        header_extensions.push(RtpHeaderExtensionCapability {
            kind: Some(params::MediaKind::Video),
            uri: TWCC_URI.into(),
            preferred_id: TWCC_ID,
            preferred_encrypt: false,
            direction: None,
        });
    }
    let video = |mime: &str, pt: u8, parameters, rtcp_feedback| RtpCodecCapability {
        kind: params::MediaKind::Video,
        mime_type: mime.into(),
        preferred_payload_type: pt,
        clock_rate: 90000,
        channels: None,
        parameters,
        rtcp_feedback,
    };
    RtpCapabilities {
        codecs: vec![
            video("video/VP8", vp8, Default::default(), feedback),
            video(
                "video/rtx",
                rtx,
                [("apt".to_owned(), Value::from(vp8))].into(),
                vec![],
            ),
        ],
        header_extensions,
    }
}

/// The start of a VP8 packet of an L1T3 stream: the payload descriptor with a 15-bit
/// PictureID, TL0PICIDX and TID/Y in the pattern TID 0, 2, 1, 2 (Y on the first TL1 and
/// TL2 frame after a base frame; `n` is the frame's number since its keyframe), and on a
/// frame's `first` packet the start bit and the VP8 header (the start code on a
/// keyframe, RFC 6386 9.1).
pub(crate) fn vp8_l1t3(n: u32, picture_id: u16, tl0: u8, keyframe: bool, first: bool) -> Vec<u8> {
    let tid = if keyframe {
        0
    } else {
        [0u8, 2, 1, 2][(n % 4) as usize]
    };
    let sync = !keyframe && matches!(n % 4, 1 | 2);
    let [hi, lo] = picture_id.to_be_bytes();
    let start = if first { 0x10 } else { 0 };
    let mut p = vec![
        0x80 | start,
        0xe0,
        0x80 | hi,
        lo,
        tl0,
        (tid << 6) | (u8::from(sync) << 5),
    ];
    if first {
        if keyframe {
            p.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
        } else {
            p.extend_from_slice(&[0x31, 0x02, 0x00, 0x11, 0x22, 0x33]);
        }
    }
    p
}
