//! SDP translation, with the `sdp` crate doing the text: browsers speak SDP, the daemon
//! speaks transport/producer/consumer parameters and never sees SDP.
//!
//! - [`parse`]: a browser's description read into the few facts we use.
//! - [`answer`]: the send side. The browser offers its tracks; the answer (ICE-lite,
//!   the worker's candidate, DTLS passive, BUNDLE, rtcp-mux) picks one codec per track
//!   and yields the `transport.produce` parameters.
//! - [`offer`]: the receive side. The server offers one sendonly m-line per consumer and
//!   reads the browser's answer.
//! - [`capabilities`]: the fixed payload-type table and what a browser can receive.

pub mod answer;
pub mod capabilities;
pub mod offer;
pub mod parse;
pub mod playback;
pub mod simulcast;

use std::net::IpAddr;

use sdp::description::common::{Address, Attribute, ConnectionInformation};
use sdp::description::media::{MediaName, RangedPort};
use sdp::description::session::{Origin, SessionDescription, TimeDescription, Timing};
use sdp::MediaDescription;

use sfu_control::responses::TransportCreated;

/// Why a description from a browser was refused. The text is shown to that client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP does not parse: {0}")]
    Parse(String),
    #[error("SDP is not acceptable: {0}")]
    Invalid(String),
    #[error("no supported codec: {0}")]
    NoCommonCodec(String),
    #[error("not supported: {0}")]
    Unsupported(String),
}

/// `c=` and candidate address family for an IP.
fn addr_type(ip: &str) -> &'static str {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => "IP6",
        _ => "IP4",
    }
}

fn attr(key: &str, value: impl Into<String>) -> Attribute {
    Attribute::new(key.to_owned(), Some(value.into()))
}

fn flag(key: &str) -> Attribute {
    Attribute::new(key.to_owned(), None)
}

/// The skeleton both our answers and our offers share: ICE-lite at session level.
fn session(session_id: u64, version: u64) -> SessionDescription {
    SessionDescription {
        version: 0,
        origin: Origin {
            username: "-".into(),
            session_id,
            session_version: version,
            network_type: "IN".into(),
            address_type: "IP4".into(),
            unicast_address: "0.0.0.0".into(),
        },
        session_name: "-".into(),
        time_descriptions: vec![TimeDescription {
            timing: Timing {
                start_time: 0,
                stop_time: 0,
            },
            repeat_times: vec![],
        }],
        attributes: vec![flag("ice-lite")],
        ..Default::default()
    }
}

/// An m-line on the worker's address with the transport's ICE and DTLS attributes
/// (repeated in every bundled m-line, as JSEP does) and its candidate.
fn media_section(
    kind: &str,
    port: u16,
    formats: Vec<String>,
    transport: &TransportCreated,
    setup: &str,
) -> MediaDescription {
    let ip = transport
        .ice_candidates
        .first()
        .map(|c| c.ip.clone())
        .unwrap_or_else(|| "0.0.0.0".into());
    let mut attributes = vec![
        attr("ice-ufrag", &transport.ice_parameters.username_fragment),
        attr("ice-pwd", &transport.ice_parameters.password),
    ];
    for fp in &transport.dtls_parameters.fingerprints {
        attributes.push(attr(
            "fingerprint",
            format!("{} {}", fp.algorithm, fp.value),
        ));
    }
    attributes.push(attr("setup", setup));
    MediaDescription {
        media_name: MediaName {
            media: kind.into(),
            port: RangedPort {
                value: port as isize,
                range: None,
            },
            protos: ["UDP", "TLS", "RTP", "SAVPF"].map(String::from).to_vec(),
            formats,
        },
        connection_information: Some(ConnectionInformation {
            network_type: "IN".into(),
            address_type: addr_type(&ip).into(),
            address: Some(Address {
                address: ip,
                ttl: None,
                range: None,
            }),
        }),
        attributes,
        ..Default::default()
    }
}

/// The worker's host candidates (RFC 8839 section 5.1 syntax, RFC 6544 section 4.5's
/// `tcptype` for ICE-TCP) and end-of-candidates: an ICE-lite server has nothing to
/// trickle.
fn push_candidates(m: &mut MediaDescription, transport: &TransportCreated) {
    for c in &transport.ice_candidates {
        let mut line = format!(
            "{} 1 {} {} {} {} typ {}",
            c.foundation, c.protocol, c.priority, c.ip, c.port, c.kind
        );
        if let Some(tcp_type) = &c.tcp_type {
            line.push_str(" tcptype ");
            line.push_str(tcp_type);
        }
        m.attributes.push(attr("candidate", line));
    }
    m.attributes.push(flag("end-of-candidates"));
}

/// The port of the worker's first candidate (what m-lines carry).
fn media_port(transport: &TransportCreated) -> u16 {
    transport.ice_candidates.first().map_or(9, |c| c.port)
}
