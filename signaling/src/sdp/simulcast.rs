//! RID-based simulcast of a publisher's m-line (RFC 8851 `a=rid`, RFC 8853
//! `a=simulcast`): which encodings the browser will send, and their
//! `transport.produce` `encodings`, lowest first.
//!
//! SDP carries no bitrates or scales, so the page may describe its encodings in its
//! `offer` message ([`EncodingHint`]); they are matched to the offered rids by name and
//! order the layers. Without them the `a=simulcast` order is kept (the web client and
//! Chromium list the lowest first).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::SdpError;
use sfu_control::params::RtpEncodingParameters;

/// Most encodings one m-line may send (the web client sends three; four leaves room for
/// other clients, and bounds what a peer can make the daemon track).
pub const MAX_ENCODINGS: usize = 4;

/// Longest rid accepted: it travels in a one-byte RTP header extension (RFC 8285: at
/// most 16 bytes of data).
pub const MAX_RID_LEN: usize = 16;

/// Most `a=rid` lines read from one m-line; more is refused rather than stored.
pub const MAX_RID_LINES: usize = 16;

/// Largest `scaleResolutionDownBy` accepted (a 4K picture scaled to below 64 pixels).
pub const MAX_SCALE_DOWN: f64 = 64.0;

/// `a=rid:<id> <send|recv> [restrictions]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RidLine {
    pub id: String,
    pub send: bool,
}

/// One stream of `a=simulcast:send`: its first alternative (RFC 8853 section 5.1: the
/// answerer may pick any; the first is the offerer's preference), and whether the
/// offerer starts it paused (`~`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulcastStream {
    pub rid: String,
    pub paused: bool,
}

/// A rid: 1-16 of `A-Z a-z 0-9 - _` (RFC 8851 section 10's `rid-id`, bounded).
pub fn valid_rid(rid: &str) -> bool {
    !rid.is_empty()
        && rid.len() <= MAX_RID_LEN
        && rid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses an `a=rid` value.
pub(crate) fn parse_rid(value: &str) -> Option<RidLine> {
    let mut parts = value.split_whitespace();
    let id = parts.next()?;
    let send = match parts.next()? {
        "send" => true,
        "recv" => false,
        _ => return None,
    };
    valid_rid(id).then(|| RidLine {
        id: id.to_owned(),
        send,
    })
}

/// Parses an `a=simulcast` value into its send streams; `Ok(None)` when it has no send
/// direction. Accepts the draft form `send rid=q;h;f` that older Firefox wrote.
pub(crate) fn parse_simulcast(value: &str) -> Result<Option<Vec<SimulcastStream>>, ()> {
    let mut parts = value.split_whitespace();
    let mut send = None;
    while let Some(dir) = parts.next() {
        let list = parts.next().ok_or(())?;
        if dir != "send" {
            if dir != "recv" {
                return Err(());
            }
            continue;
        }
        let list = list.strip_prefix("rid=").unwrap_or(list);
        let mut streams = Vec::new();
        for stream in list.split(';') {
            let first = stream.split(',').next().unwrap_or_default();
            let (rid, paused) = match first.strip_prefix('~') {
                Some(r) => (r, true),
                None => (first, false),
            };
            if !valid_rid(rid) || streams.len() >= MAX_RID_LINES {
                return Err(());
            }
            streams.push(SimulcastStream {
                rid: rid.to_owned(),
                paused,
            });
        }
        send = Some(streams);
    }
    Ok(send)
}

/// What the page says about one of its encodings (`RTCRtpEncodingParameters`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncodingHint {
    pub rid: String,
    #[serde(default)]
    pub max_bitrate: Option<u32>,
    #[serde(default)]
    pub scale_resolution_down_by: Option<f64>,
    #[serde(default)]
    pub scalability_mode: Option<String>,
}

/// `L1T1`..`L3T3`, `S2T1`.., with the `h` and `_KEY` variants (W3C webrtc-svc).
fn valid_scalability_mode(mode: &str) -> bool {
    let b = mode.as_bytes();
    let core = matches!(b, [b'L' | b'S', b'1'..=b'3', b'T', b'1'..=b'3', ..]);
    core && matches!(b.get(4..), Some(b"" | b"h" | b"_KEY" | b"_KEY_SHIFT"))
}

/// Checks the page's hints before any use: known shapes and bounded values only.
pub fn check_hints(
    hints: &BTreeMap<String, Vec<EncodingHint>>,
    max_mids: usize,
) -> Result<(), String> {
    if hints.len() > max_mids {
        return Err(format!("encodings for at most {max_mids} mids"));
    }
    for (mid, list) in hints {
        let shown: String = mid.chars().take(32).collect();
        if mid.is_empty() || mid.len() > 32 {
            return Err(format!("bad mid {shown:?} in encodings"));
        }
        if list.is_empty() || list.len() > MAX_ENCODINGS {
            return Err(format!(
                "encodings of mid {shown:?}: 1 to {MAX_ENCODINGS} entries"
            ));
        }
        for (i, h) in list.iter().enumerate() {
            if !valid_rid(&h.rid) {
                return Err(format!("encodings of mid {shown:?}: bad rid"));
            }
            if list.iter().take(i).any(|o| o.rid == h.rid) {
                return Err(format!("encodings of mid {shown:?}: rid {} twice", h.rid));
            }
            if h.scale_resolution_down_by
                .is_some_and(|s| !(1.0..=MAX_SCALE_DOWN).contains(&s))
            {
                return Err(format!(
                    "encodings of mid {shown:?}: scaleResolutionDownBy must be 1 to {MAX_SCALE_DOWN}"
                ));
            }
            if h.max_bitrate == Some(0) {
                return Err(format!("encodings of mid {shown:?}: maxBitrate 0"));
            }
            if h.scalability_mode
                .as_deref()
                .is_some_and(|m| !valid_scalability_mode(m))
            {
                return Err(format!(
                    "encodings of mid {shown:?}: unknown scalabilityMode"
                ));
            }
        }
    }
    Ok(())
}

/// The encodings of a simulcast m-line: the unpaused `a=simulcast` send streams that
/// have an `a=rid ... send` line (a paused stream is left out of the answer, which RFC
/// 8853 section 5.3 allows: the browser then never sends it). With hints, each gets the
/// page's bitrate, scale and scalability mode, and the encodings are ordered lowest
/// first by scale (largest `scaleResolutionDownBy` first) then bitrate; otherwise in
/// the `a=simulcast` order. Returns the accepted rids in the offer's order (for the
/// answer) and the encodings.
pub fn simulcast_encodings(
    where_: &str,
    streams: &[SimulcastStream],
    rids: &[RidLine],
    hints: Option<&[EncodingHint]>,
) -> Result<(Vec<String>, Vec<RtpEncodingParameters>), SdpError> {
    let mut accepted: Vec<String> = Vec::new();
    for s in streams.iter().filter(|s| !s.paused) {
        if !rids.iter().any(|r| r.send && r.id == s.rid) {
            return Err(SdpError::Invalid(format!(
                "{where_}: a=simulcast names rid {} without an a=rid:{} send line",
                s.rid, s.rid
            )));
        }
        if !accepted.contains(&s.rid) {
            accepted.push(s.rid.clone());
        }
    }
    if accepted.is_empty() {
        return Err(SdpError::Invalid(format!(
            "{where_}: a=simulcast sends no unpaused stream"
        )));
    }
    if accepted.len() > MAX_ENCODINGS {
        return Err(SdpError::Unsupported(format!(
            "{where_}: at most {MAX_ENCODINGS} simulcast encodings, the offer has {}",
            accepted.len()
        )));
    }
    if let Some(hints) = hints {
        if let Some(h) = hints.iter().find(|h| !accepted.contains(&h.rid)) {
            return Err(SdpError::Invalid(format!(
                "{where_}: the encodings name rid {} that the offer does not send",
                h.rid
            )));
        }
    }
    let hint = |rid: &str| hints.and_then(|hs| hs.iter().find(|h| h.rid == rid));
    let mut encodings: Vec<RtpEncodingParameters> = accepted
        .iter()
        .map(|rid| {
            let h = hint(rid);
            RtpEncodingParameters {
                rid: Some(rid.clone()),
                max_bitrate: h.and_then(|h| h.max_bitrate),
                scale_resolution_down_by: h.and_then(|h| h.scale_resolution_down_by),
                scalability_mode: h.and_then(|h| h.scalability_mode.clone()),
                ..RtpEncodingParameters::default()
            }
        })
        .collect();
    if hints.is_some() {
        // A stable sort: encodings the page said nothing about keep their order.
        encodings.sort_by(|a, b| {
            let scale = |e: &RtpEncodingParameters| e.scale_resolution_down_by.unwrap_or(1.0);
            let rate = |e: &RtpEncodingParameters| e.max_bitrate.unwrap_or(u32::MAX);
            scale(b)
                .total_cmp(&scale(a))
                .then_with(|| rate(a).cmp(&rate(b)))
        });
    }
    Ok((accepted, encodings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams(v: &str) -> Vec<SimulcastStream> {
        parse_simulcast(v).unwrap().unwrap()
    }

    fn rid_lines(ids: &[&str]) -> Vec<RidLine> {
        ids.iter()
            .map(|id| RidLine {
                id: (*id).into(),
                send: true,
            })
            .collect()
    }

    #[test]
    fn simulcast_attribute_forms() {
        let s = streams("send q;h;f");
        assert_eq!(s.len(), 3);
        assert_eq!(s[2].rid, "f");
        // Alternatives: the first; `~`: paused; the draft form; a recv direction beside.
        let s = streams("send 1,2;~3 recv r");
        assert_eq!(
            s,
            vec![
                SimulcastStream {
                    rid: "1".into(),
                    paused: false
                },
                SimulcastStream {
                    rid: "3".into(),
                    paused: true
                }
            ]
        );
        assert_eq!(streams("send rid=a;b").len(), 2);
        assert_eq!(parse_simulcast("recv a;b"), Ok(None));
        for bad in [
            "send",
            "sideways a",
            "send a;;b",
            "send a b",
            "send ~",
            "send aaaaaaaaaaaaaaaaa",
        ] {
            assert!(parse_simulcast(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rid_lines_parse() {
        assert_eq!(
            parse_rid("q send pt=96;max-width=320"),
            Some(RidLine {
                id: "q".into(),
                send: true
            })
        );
        assert_eq!(parse_rid("q recv").map(|r| r.send), Some(false));
        assert_eq!(parse_rid("q"), None);
        assert_eq!(parse_rid("q both"), None);
        assert_eq!(parse_rid("q! send"), None);
    }

    #[test]
    fn scalability_modes() {
        for ok in ["L1T1", "L1T3", "L3T3_KEY", "S3T3", "L2T2h"] {
            assert!(valid_scalability_mode(ok), "{ok}");
        }
        for bad in ["", "L4T1", "L1T", "X1T1", "L1T3x", "L1T3_KEYS"] {
            assert!(!valid_scalability_mode(bad), "{bad}");
        }
    }

    #[test]
    fn order_follows_the_hints_not_the_rid_order() {
        // Firefox-like: the highest listed first.
        let s = streams("send f;h;q");
        let hints = vec![
            EncodingHint {
                rid: "q".into(),
                max_bitrate: Some(150_000),
                scale_resolution_down_by: Some(4.0),
                scalability_mode: Some("L1T3".into()),
            },
            EncodingHint {
                rid: "h".into(),
                max_bitrate: Some(500_000),
                scale_resolution_down_by: Some(2.0),
                scalability_mode: None,
            },
            EncodingHint {
                rid: "f".into(),
                max_bitrate: None,
                scale_resolution_down_by: Some(1.0),
                scalability_mode: None,
            },
        ];
        let (accepted, enc) =
            simulcast_encodings("m", &s, &rid_lines(&["f", "h", "q"]), Some(&hints)).unwrap();
        assert_eq!(accepted, ["f", "h", "q"]);
        let order: Vec<_> = enc.iter().filter_map(|e| e.rid.as_deref()).collect();
        assert_eq!(order, ["q", "h", "f"]);
        assert_eq!(enc[0].scalability_mode.as_deref(), Some("L1T3"));
        assert_eq!(enc[1].max_bitrate, Some(500_000));
        // Without hints: the offer's order.
        let (_, enc) = simulcast_encodings("m", &s, &rid_lines(&["f", "h", "q"]), None).unwrap();
        assert_eq!(enc[0].rid.as_deref(), Some("f"));
    }

    #[test]
    fn paused_and_unknown_rids() {
        let rids = rid_lines(&["a", "b"]);
        let (accepted, _) = simulcast_encodings("m", &streams("send a;~b"), &rids, None).unwrap();
        assert_eq!(accepted, ["a"]);
        assert!(simulcast_encodings("m", &streams("send ~a;~b"), &rids, None).is_err());
        assert!(simulcast_encodings("m", &streams("send a;c"), &rids, None).is_err());
        let hint = [EncodingHint {
            rid: "z".into(),
            max_bitrate: None,
            scale_resolution_down_by: None,
            scalability_mode: None,
        }];
        assert!(simulcast_encodings("m", &streams("send a"), &rids, Some(&hint)).is_err());
        let five = rid_lines(&["1", "2", "3", "4", "5"]);
        assert!(matches!(
            simulcast_encodings("m", &streams("send 1;2;3;4;5"), &five, None),
            Err(SdpError::Unsupported(_))
        ));
    }

    #[test]
    fn hints_are_bounded() {
        let one = |h: EncodingHint| {
            let mut m = BTreeMap::new();
            m.insert("1".into(), vec![h]);
            check_hints(&m, 4)
        };
        let base = EncodingHint {
            rid: "q".into(),
            max_bitrate: Some(1),
            scale_resolution_down_by: Some(1.0),
            scalability_mode: Some("L1T3".into()),
        };
        assert!(one(base.clone()).is_ok());
        assert!(one(EncodingHint {
            scale_resolution_down_by: Some(f64::NAN),
            ..base.clone()
        })
        .is_err());
        assert!(one(EncodingHint {
            scale_resolution_down_by: Some(0.5),
            ..base.clone()
        })
        .is_err());
        assert!(one(EncodingHint {
            max_bitrate: Some(0),
            ..base.clone()
        })
        .is_err());
        assert!(one(EncodingHint {
            rid: "".into(),
            ..base.clone()
        })
        .is_err());
        assert!(one(EncodingHint {
            scalability_mode: Some("L9T9".into()),
            ..base.clone()
        })
        .is_err());
        let mut m = BTreeMap::new();
        m.insert("1".into(), vec![base.clone(), base]);
        assert!(check_hints(&m, 4).is_err(), "a rid twice");
    }
}
