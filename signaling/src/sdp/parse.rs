//! A browser's session description, read into what the translation needs. Everything
//! here is untrusted: no indexing, no unwrap; a malformed attribute is an error naming it.

use std::collections::BTreeMap;
use std::io::Cursor;

use sdp::SessionDescription;
use serde_json::Value;

use super::simulcast::{parse_rid, parse_simulcast, RidLine, SimulcastStream, MAX_RID_LINES};
use super::SdpError;
use sfu_control::params::{CodecParameters, DtlsFingerprint, MediaKind};

/// Largest SDP accepted (a Chromium offer with audio and video is about 6 KB).
pub const MAX_SDP_LEN: usize = 32 * 1024;

/// A codec of an m-line: `a=rtpmap`, `a=fmtp` and `a=rtcp-fb` of one payload type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpCodec {
    pub pt: u8,
    pub name: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
    /// The raw fmtp text (echoed in answers).
    pub fmtp: String,
    /// `(type, parameter)`, parameter empty when absent.
    pub rtcp_fb: Vec<(String, String)>,
}

impl SdpCodec {
    /// `audio/opus`-style MIME type.
    pub fn mime(&self, kind: MediaKind) -> String {
        format!("{}/{}", kind.as_str(), self.name)
    }

    /// One fmtp parameter's value.
    pub fn param(&self, key: &str) -> Option<&str> {
        fmtp_pairs(&self.fmtp)
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }
}

/// `key=value;key=value` pairs of an fmtp line (an entry without `=`, such as RED's
/// `111/111` or telephone-event's `0-15`, has an empty key).
pub fn fmtp_pairs(fmtp: &str) -> impl Iterator<Item = (&str, &str)> {
    fmtp.split(';').filter(|p| !p.trim().is_empty()).map(|p| {
        let p = p.trim();
        p.split_once('=').unwrap_or(("", p))
    })
}

/// fmtp text as mediasoup parameters: numbers where the value is an integer.
pub fn fmtp_to_parameters(fmtp: &str) -> CodecParameters {
    let mut out = BTreeMap::new();
    for (k, v) in fmtp_pairs(fmtp) {
        if k.is_empty() {
            continue;
        }
        let value = match v.parse::<u64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::String(v.to_owned()),
        };
        out.insert(k.to_owned(), value);
    }
    out
}

/// mediasoup parameters back to fmtp text.
pub fn parameters_to_fmtp(params: &CodecParameters) -> String {
    params
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// `a=extmap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtMap {
    pub id: u8,
    pub uri: String,
    /// `recvonly` etc. after the id (`a=extmap:2/recvonly ...`).
    pub direction: Option<String>,
}

/// Media direction of an m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

/// One m-line.
#[derive(Debug, Clone)]
pub struct MediaSection {
    pub index: usize,
    /// `audio`, `video`, `application`...
    pub media: String,
    pub port: i64,
    pub proto: String,
    pub bundle_only: bool,
    pub mid: Option<String>,
    pub direction: Direction,
    /// In the order of the m-line's format list.
    pub codecs: Vec<SdpCodec>,
    pub extmaps: Vec<ExtMap>,
    /// `a=ssrc:<ssrc> <attribute>` lines in order.
    pub ssrcs: Vec<(u32, String)>,
    /// `a=ssrc-group:<semantics> <ssrc>...`.
    pub ssrc_groups: Vec<(String, Vec<u32>)>,
    pub rtcp_mux: bool,
    pub rtcp_rsize: bool,
    /// `a=rid` lines (RFC 8851), in order.
    pub rids: Vec<RidLine>,
    /// The send streams of `a=simulcast` (RFC 8853), when there is one.
    pub simulcast: Option<Vec<SimulcastStream>>,
    pub fingerprints: Vec<DtlsFingerprint>,
    pub setup: Option<String>,
}

impl MediaSection {
    /// Audio or video.
    pub fn kind(&self) -> Option<MediaKind> {
        MediaKind::from_sdp(&self.media)
    }

    /// A port-0 m-line without `a=bundle-only` is rejected (RFC 8843 section 7.3.3).
    pub fn is_rejected(&self) -> bool {
        self.port == 0 && !self.bundle_only
    }

    /// The SSRC the browser sends media on: the first of an FID group (RTX repairs it),
    /// else the first `a=ssrc`.
    pub fn primary_ssrc(&self) -> Option<u32> {
        self.ssrc_groups
            .iter()
            .find(|(sem, _)| sem == "FID")
            .and_then(|(_, ssrcs)| ssrcs.first().copied())
            .or_else(|| self.ssrcs.first().map(|(s, _)| *s))
    }

    /// The RTX SSRC paired with `primary` by an `a=ssrc-group:FID <primary> <rtx>`
    /// (RFC 5576, RFC 4588 section 8.3), if any and distinct.
    pub fn rtx_ssrc(&self, primary: u32) -> Option<u32> {
        self.ssrc_groups
            .iter()
            .filter(|(sem, _)| sem == "FID")
            .find_map(|(_, ssrcs)| match ssrcs.as_slice() {
                [media, rtx] if *media == primary && *rtx != primary => Some(*rtx),
                _ => None,
            })
    }

    /// The CNAME of `ssrc`.
    pub fn cname(&self, ssrc: u32) -> Option<&str> {
        self.ssrcs
            .iter()
            .filter(|(s, _)| *s == ssrc)
            .find_map(|(_, a)| a.strip_prefix("cname:"))
    }

    fn describe(&self) -> String {
        format!("m-line {} ({})", self.index, self.media)
    }
}

/// A parsed description.
#[derive(Debug, Clone)]
pub struct Description {
    pub media: Vec<MediaSection>,
    /// Mids of the first `a=group:BUNDLE`.
    pub bundle: Vec<String>,
    pub session_fingerprints: Vec<DtlsFingerprint>,
    pub session_setup: Option<String>,
}

impl Description {
    /// Fingerprints of m-line `m`, falling back to the session level.
    pub fn fingerprints<'a>(&'a self, m: &'a MediaSection) -> &'a [DtlsFingerprint] {
        if m.fingerprints.is_empty() {
            &self.session_fingerprints
        } else {
            &m.fingerprints
        }
    }

    /// `a=setup` of m-line `m`, falling back to the session level.
    pub fn setup<'a>(&'a self, m: &'a MediaSection) -> Option<&'a str> {
        m.setup.as_deref().or(self.session_setup.as_deref())
    }
}

fn invalid(what: impl Into<String>) -> SdpError {
    SdpError::Invalid(what.into())
}

fn parse_fingerprint(value: &str) -> Result<DtlsFingerprint, SdpError> {
    let (alg, fp) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| invalid(format!("bad a=fingerprint {value:?}")))?;
    let fp = fp.trim();
    let hex_pairs = fp
        .split(':')
        .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()));
    if !hex_pairs || fp.len() < 2 {
        return Err(invalid(format!("bad a=fingerprint value {fp:?}")));
    }
    Ok(DtlsFingerprint {
        algorithm: alg.to_ascii_lowercase(),
        value: fp.to_ascii_uppercase(),
    })
}

/// `a=rtpmap:<pt> <name>/<clock>[/<channels>]`.
fn parse_rtpmap(value: &str) -> Option<(u8, String, u32, Option<u8>)> {
    let (pt, rest) = value.split_once(' ')?;
    let mut parts = rest.trim().split('/');
    let name = parts.next()?.to_owned();
    let clock = parts.next()?.parse().ok()?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse().ok()?),
        None => None,
    };
    Some((pt.parse().ok()?, name, clock, channels))
}

fn parse_extmap(value: &str) -> Option<ExtMap> {
    let mut parts = value.split_whitespace();
    let id_dir = parts.next()?;
    let uri = parts.next()?.to_owned();
    let (id, direction) = match id_dir.split_once('/') {
        Some((id, dir)) => (id, Some(dir.to_owned())),
        None => (id_dir, None),
    };
    let id: u8 = id.parse().ok()?;
    // One-byte (1-14) and two-byte (1-255) header extension ids, RFC 8285.
    (id != 0).then_some(ExtMap { id, uri, direction })
}

/// Parses SDP text.
pub fn parse(text: &str) -> Result<Description, SdpError> {
    if text.len() > MAX_SDP_LEN {
        return Err(invalid(format!("SDP is longer than {MAX_SDP_LEN} bytes")));
    }
    let sd = SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes()))
        .map_err(|e| SdpError::Parse(e.to_string()))?;
    let mut session_fingerprints = Vec::new();
    let mut session_setup = None;
    let mut bundle = Vec::new();
    for a in &sd.attributes {
        let v = a.value.as_deref().unwrap_or_default();
        match a.key.as_str() {
            "fingerprint" => session_fingerprints.push(parse_fingerprint(v)?),
            "setup" => session_setup = Some(v.trim().to_owned()),
            "group" if bundle.is_empty() => {
                let mut parts = v.split_whitespace();
                if parts.next() == Some("BUNDLE") {
                    bundle = parts.map(str::to_owned).collect();
                }
            }
            _ => {}
        }
    }
    let mut media = Vec::new();
    for (index, md) in sd.media_descriptions.iter().enumerate() {
        let name = &md.media_name;
        let mut m = MediaSection {
            index,
            media: name.media.clone(),
            port: name.port.value as i64,
            proto: name.protos.join("/"),
            bundle_only: false,
            mid: None,
            direction: Direction::SendRecv,
            codecs: Vec::new(),
            extmaps: Vec::new(),
            ssrcs: Vec::new(),
            ssrc_groups: Vec::new(),
            rtcp_mux: false,
            rtcp_rsize: false,
            rids: Vec::new(),
            simulcast: None,
            fingerprints: Vec::new(),
            setup: None,
        };
        let is_rtp = m.proto.contains("RTP");
        if is_rtp {
            for f in &name.formats {
                let pt: u8 =
                    f.parse().ok().filter(|pt| *pt <= 127).ok_or_else(|| {
                        invalid(format!("{}: bad payload type {f:?}", m.describe()))
                    })?;
                m.codecs.push(SdpCodec {
                    pt,
                    name: String::new(),
                    clock_rate: 0,
                    channels: None,
                    fmtp: String::new(),
                    rtcp_fb: Vec::new(),
                });
            }
        }
        for a in &md.attributes {
            let v = a.value.as_deref().unwrap_or_default();
            let bad = || invalid(format!("{}: bad a={}:{v}", m.describe(), a.key));
            match a.key.as_str() {
                "mid" => m.mid = Some(v.trim().to_owned()),
                "sendrecv" => m.direction = Direction::SendRecv,
                "sendonly" => m.direction = Direction::SendOnly,
                "recvonly" => m.direction = Direction::RecvOnly,
                "inactive" => m.direction = Direction::Inactive,
                "bundle-only" => m.bundle_only = true,
                "rtcp-mux" => m.rtcp_mux = true,
                "rtcp-rsize" => m.rtcp_rsize = true,
                "rid" => {
                    if m.rids.len() >= MAX_RID_LINES {
                        return Err(invalid(format!(
                            "{}: more than {MAX_RID_LINES} a=rid lines",
                            m.describe()
                        )));
                    }
                    m.rids.push(parse_rid(v).ok_or_else(bad)?);
                }
                "simulcast" => m.simulcast = parse_simulcast(v).map_err(|()| bad())?,
                "fingerprint" => m.fingerprints.push(parse_fingerprint(v)?),
                "setup" => m.setup = Some(v.trim().to_owned()),
                "extmap" => m.extmaps.push(parse_extmap(v).ok_or_else(bad)?),
                "rtpmap" if is_rtp => {
                    let (pt, name, clock, channels) = parse_rtpmap(v).ok_or_else(bad)?;
                    if let Some(c) = m.codecs.iter_mut().find(|c| c.pt == pt) {
                        c.name = name;
                        c.clock_rate = clock;
                        c.channels = channels;
                    }
                }
                "fmtp" if is_rtp => {
                    let (pt, params) = v.split_once(' ').ok_or_else(bad)?;
                    let pt: u8 = pt.parse().map_err(|_| bad())?;
                    if let Some(c) = m.codecs.iter_mut().find(|c| c.pt == pt) {
                        c.fmtp = params.trim().to_owned();
                    }
                }
                "rtcp-fb" if is_rtp => {
                    let (pt, fb) = v.split_once(' ').ok_or_else(bad)?;
                    let (kind, param) = fb.trim().split_once(' ').unwrap_or((fb.trim(), ""));
                    let entry = (kind.to_owned(), param.trim().to_owned());
                    if pt == "*" {
                        m.codecs
                            .iter_mut()
                            .for_each(|c| c.rtcp_fb.push(entry.clone()));
                    } else {
                        let pt: u8 = pt.parse().map_err(|_| bad())?;
                        if let Some(c) = m.codecs.iter_mut().find(|c| c.pt == pt) {
                            c.rtcp_fb.push(entry);
                        }
                    }
                }
                "ssrc" => {
                    let (ssrc, rest) = v.split_once(' ').ok_or_else(bad)?;
                    m.ssrcs
                        .push((ssrc.parse().map_err(|_| bad())?, rest.trim().to_owned()));
                }
                "ssrc-group" => {
                    let mut parts = v.split_whitespace();
                    let semantics = parts.next().ok_or_else(bad)?.to_owned();
                    let ssrcs = parts
                        .map(str::parse)
                        .collect::<Result<Vec<u32>, _>>()
                        .map_err(|_| bad())?;
                    m.ssrc_groups.push((semantics, ssrcs));
                }
                _ => {}
            }
        }
        // Static payload types (RFC 3551) may come without a=rtpmap.
        for c in &mut m.codecs {
            if c.name.is_empty() {
                let (name, clock) = match c.pt {
                    0 => ("PCMU", 8000),
                    8 => ("PCMA", 8000),
                    9 => ("G722", 8000),
                    _ => ("", 0),
                };
                c.name = name.into();
                c.clock_rate = clock;
            }
        }
        m.codecs.retain(|c| !c.name.is_empty());
        media.push(m);
    }
    Ok(Description {
        media,
        bundle,
        session_fingerprints,
        session_setup,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmtp_round_trip() {
        let p = fmtp_to_parameters(
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        );
        assert_eq!(p["packetization-mode"], 1);
        assert_eq!(p["profile-level-id"], "42e01f");
        assert_eq!(
            parameters_to_fmtp(&p),
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
        );
        assert!(fmtp_to_parameters("111/111").is_empty());
    }

    #[test]
    fn extmap_forms() {
        assert_eq!(
            parse_extmap("2/recvonly urn:x"),
            Some(ExtMap {
                id: 2,
                uri: "urn:x".into(),
                direction: Some("recvonly".into())
            })
        );
        assert_eq!(parse_extmap("0 urn:x"), None);
        assert_eq!(parse_extmap("x urn:x"), None);
        assert_eq!(parse_extmap("1"), None);
    }

    #[test]
    fn fingerprints() {
        assert!(parse_fingerprint("sha-256 AB:cd:01").is_ok());
        assert!(parse_fingerprint("sha-256").is_err());
        assert!(parse_fingerprint("sha-256 ABC:01").is_err());
        assert!(parse_fingerprint("sha-256 ").is_err());
    }
}
