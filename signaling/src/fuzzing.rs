//! Entry points for the signaling process's cargo-fuzz targets in fuzz/ (FUZZING.md): one
//! function per target, so that each target is a one-liner and the harnesses build, lint
//! and run with the rest of the crate (signaling/tests/fuzz_regressions.rs replays crash
//! inputs and the committed corpus through them).
//!
//! What a browser (or anyone who can open `/ws`) sends is untrusted: a panic anywhere below
//! is a bug. Beyond "no panic" the harnesses assert properties that must hold for any
//! input: every description we produce re-parses, with the `sdp` crate and with our own
//! parser, and has one m-line per m-line it answers or offers; every reply serialises.
//!
//! - `signaling_ws`: one WebSocket session's text messages, interleaved with what its
//!   room does to the receive side ([`ws`]).
//! - `signaling_sdp`: one SDP description, as a publisher's offer and as a subscriber's
//!   answer ([`sdp`]).
//! - `signaling_whip`: one WHIP or WHEP request's headers, body and path, as `POST` and
//!   `PATCH` read them ([`whip`]).
//!
//! Variable-length pieces are framed as in the media daemon's targets: a 2-byte
//! little-endian length, then that many bytes ([`push_frame`]).

mod sdp;
mod whip;
mod ws;

pub use self::sdp::{signaling_sdp, SDP_FIXED_MIDS, SDP_H264, SDP_IPV6, SDP_NO_FEEDBACK, SDP_VP9};
pub use self::whip::{signaling_whip, WHIP_ETAG, WHIP_SECRET};
pub use self::ws::{
    run_ws, signaling_ws, WsReport, WS_CLOSE, WS_CONSUME, WS_NOW, WS_RESTART, WS_SECRET, WS_TEXT,
};

use sfu_control::params::{DtlsFingerprint, DtlsParameters, IceCandidate, IceParameters};

use sfu_control::responses::TransportCreated;

/// Appends `bytes` with the 2-byte little-endian length prefix the harnesses read.
pub fn push_frame(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(bytes.get(..len).unwrap_or_default());
}

/// Splits `data` into frames; a length past the end takes what is left, so every input
/// decodes to something (a lone trailing byte is dropped).
fn frames(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (len, rest) = match data {
            [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
            _ => return None,
        };
        let (frame, rest) = rest.split_at(len.min(rest.len()));
        data = rest;
        Some(frame)
    })
}

/// A worker transport as `transport.create` returns it, on IPv4 or IPv6 (the address
/// family decides the `c=` lines of our descriptions).
fn transport(ipv6: bool) -> TransportCreated {
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
        ice_candidates: vec![IceCandidate {
            foundation: "udpcandidate".into(),
            priority: 2130706431,
            ip: if ipv6 { "2001:db8::7" } else { "127.0.0.1" }.into(),
            address: if ipv6 { "2001:db8::7" } else { "127.0.0.1" }.into(),
            protocol: "udp".into(),
            port: 40000,
            kind: "host".into(),
        tcp_type: None,
        }],
        dtls_parameters: DtlsParameters {
            role: sfu_control::params::DtlsRole::Auto,
            fingerprints: vec![DtlsFingerprint {
                algorithm: "sha-256".into(),
                value: "95:3D:20:CF:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:8E:FD".into(),
            }],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_truncate() {
        let mut data = Vec::new();
        push_frame(&mut data, b"abc");
        push_frame(&mut data, b"");
        push_frame(&mut data, b"de");
        let all: Vec<&[u8]> = frames(&data).collect();
        assert_eq!(all, [&b"abc"[..], b"", b"de"]);
        // A length past the end takes the rest; a single trailing byte is no frame.
        assert_eq!(frames(&[9, 0, b'x']).collect::<Vec<_>>(), [&b"x"[..]]);
        assert_eq!(frames(&[9]).count(), 0);
    }
}
