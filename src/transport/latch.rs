//! Demultiplexing a publisher's RTP to its producer and encoding: by SSRC first (the
//! transport's `producers_by_ssrc`), and for an SSRC nobody signalled, by the MID and
//! RID header extensions (RFC 8843 15.2, RFC 8852), as browsers publish simulcast with
//! `a=rid` and no SSRCs. They send MID and RID only in a stream's first packets (until
//! they see it acknowledged in RTCP), so the SSRC is learnt ("latched") on first sight
//! and from then on is one hash lookup like any signalled SSRC.
//!
//! What a peer can make us hold is bounded: an encoding learns at most one media and one
//! RTX SSRC (a second stream naming the same RID is dropped, `unknownRid`), so a producer
//! of at most `negotiate::MAX_ENCODINGS` encodings adds at most eight entries. Once
//! nothing awaits an SSRC, unknown SSRCs are dropped before any extension is read.

use slab::Slab;

use crate::router::producer::LayerStream;
use crate::router::{Producer, ProducerKey};
use crate::rtp::{read_extension_str, RtpHeader};
use crate::stats::DropReason;

/// Where the packets of one SSRC of a transport go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsrcRoute {
    pub producer: ProducerKey,
    /// The spatial layer (encoding, 0 = lowest).
    pub layer: u8,
    /// Whether it is the encoding's RTX stream.
    pub rtx: bool,
}

impl SsrcRoute {
    /// The producer's stream it is.
    pub fn stream(&self) -> LayerStream {
        LayerStream {
            layer: self.layer,
            rtx: self.rtx,
        }
    }
}

/// Finds the producer and encoding of a packet whose SSRC is unknown by its MID and
/// RID, among `candidates` (the transport's producers), and latches its SSRC there.
/// `UnknownSsrc` when no producer waits to learn an SSRC; `UnknownRid` when the packet
/// names no encoding that does (no or an unknown MID or RID, or an encoding that
/// already learnt another SSRC).
pub fn latch_ssrc(
    candidates: &[ProducerKey],
    producers: &mut Slab<Producer>,
    pkt: &[u8],
    hdr: &RtpHeader,
) -> Result<SsrcRoute, DropReason> {
    let waiting = || {
        candidates
            .iter()
            .copied()
            .filter(|pk| producers.get(*pk).is_some_and(Producer::awaits_ssrcs))
    };
    let Some(only) = waiting().next() else {
        return Err(DropReason::UnknownSsrc);
    };
    let unique = waiting().nth(1).is_none();
    let mut named = None;
    let mut mid_seen = false;
    for pk in waiting() {
        let Some(p) = producers.get(pk) else { continue };
        let mid = p
            .stream_ids()
            .mid
            .and_then(|id| read_extension_str(pkt, hdr, id));
        mid_seen |= mid.is_some();
        if mid.is_some() && mid == p.mid().map(str::as_bytes) {
            named = Some(pk);
            break;
        }
    }
    let pk = match named {
        Some(pk) => pk,
        // No MID in the packet: only one producer can be meant.
        None if !mid_seen && unique => only,
        // A MID no producer has: the producer that declared none, if only one did.
        None => {
            let mut without_mid =
                waiting().filter(|pk| producers.get(*pk).is_some_and(|p| p.mid().is_none()));
            match (without_mid.next(), without_mid.next()) {
                (Some(pk), None) => pk,
                _ => return Err(DropReason::UnknownRid),
            }
        }
    };
    let p = producers.get_mut(pk).ok_or(DropReason::UnknownSsrc)?;
    let ids = p.stream_ids();
    let read = |id: Option<u8>| id.and_then(|id| read_extension_str(pkt, hdr, id));
    let (layer, rtx) = if let Some(rid) = read(ids.rid) {
        (p.layer_of_rid(rid), false)
    } else if let Some(rrid) = read(ids.repaired_rid) {
        (p.layer_of_rid(rrid), true)
    } else {
        (None, false)
    };
    let Some(layer) = layer else {
        return Err(DropReason::UnknownRid);
    };
    if !p.latch(layer, hdr.ssrc, rtx) {
        return Err(DropReason::UnknownRid);
    }
    tracing::debug!(producer = %p.id(), layer, rtx, ssrc = hdr.ssrc, "SSRC learnt from RID");
    Ok(SsrcRoute {
        producer: pk,
        layer,
        rtx,
    })
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::{json, Value};

    use super::*;
    use crate::channel::params::{MediaKind, RtpParameters};
    use crate::ids::{ProducerId, RouterId};
    use crate::router::negotiate::validate_producer;
    use crate::router::ProducerParams;

    const MID: u8 = 4;
    const RID: u8 = 10;
    const RRID: u8 = 11;

    fn producer(mid: Option<&str>, rids: &[&str]) -> Producer {
        let encodings: Vec<Value> = rids.iter().map(|r| json!({"rid": r})).collect();
        let params: RtpParameters = serde_json::from_value(json!({
            "mid": mid,
            "codecs": [
                {"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000},
                {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000, "parameters": {"apt": 96}}
            ],
            "headerExtensions": [
                {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": MID},
                {"uri": "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", "id": RID},
                {"uri": "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id", "id": RRID}
            ],
            "encodings": encodings
        }))
        .expect("parameters");
        let stream = validate_producer(MediaKind::Video, &params).expect("valid");
        Producer::new(ProducerParams {
            id: ProducerId(mid.unwrap_or("none").into()),
            router: RouterId("r".into()),
            transport: 0,
            kind: MediaKind::Video,
            rtp_parameters: params,
            stream,
            paused: false,
            app_data: Value::Null,
        })
    }

    /// An RTP packet from `ssrc` with one-byte extension elements `(id, value)`.
    fn packet(ssrc: u32, elements: &[(u8, &[u8])]) -> Vec<u8> {
        let mut ext = Vec::new();
        for (id, value) in elements {
            ext.push((id << 4) | (value.len() as u8 - 1));
            ext.extend_from_slice(value);
        }
        while ext.len() % 4 != 0 {
            ext.push(0);
        }
        let mut p = vec![0x90, 96, 0, 1, 0, 0, 0, 1];
        p.extend(ssrc.to_be_bytes());
        p.extend([0xbe, 0xde]);
        p.extend(((ext.len() / 4) as u16).to_be_bytes());
        p.extend(ext);
        p.extend([0x10, 0, 0, 0]);
        p
    }

    fn latch(
        keys: &[ProducerKey],
        producers: &mut Slab<Producer>,
        pkt: &[u8],
    ) -> Result<SsrcRoute, DropReason> {
        let hdr = RtpHeader::parse(pkt).expect("parses");
        latch_ssrc(keys, producers, pkt, &hdr)
    }

    #[test]
    fn mid_then_rid_or_repaired_rid_names_the_stream() {
        let mut producers = Slab::new();
        let audio_like = producers.insert(producer(Some("a"), &["x"]));
        let video = producers.insert(producer(Some("v"), &["lo", "hi"]));
        let keys = [audio_like, video];
        let route = latch(
            &keys,
            &mut producers,
            &packet(7, &[(MID, b"v"), (RID, b"hi")]),
        );
        assert_eq!(
            route,
            Ok(SsrcRoute {
                producer: video,
                layer: 1,
                rtx: false
            })
        );
        let route = latch(
            &keys,
            &mut producers,
            &packet(8, &[(MID, b"v"), (RRID, b"hi")]),
        );
        assert_eq!(route.map(|r| (r.layer, r.rtx)), Ok((1, true)));
        // RID padded with a 0 byte, as some senders do.
        let route = latch(
            &keys,
            &mut producers,
            &packet(9, &[(MID, b"v"), (RID, b"lo\0")]),
        );
        assert_eq!(route.map(|r| r.layer), Ok(0));
        assert_eq!(producers[video].layer_ssrc(1), Some(7));
        assert_eq!(producers[video].layer_ssrc(0), Some(9));
    }

    /// At most one media and one RTX SSRC per encoding: a second stream claiming a
    /// learnt RID, an unknown RID or MID, or none, is dropped as `unknownRid`; once
    /// nothing waits, unknown SSRCs are `unknownSsrc` without looking further.
    #[test]
    fn latching_is_bounded_and_refuses_conflicts() {
        let mut producers = Slab::new();
        let video = producers.insert(producer(Some("v"), &["lo"]));
        let keys = [video];
        assert!(latch(
            &keys,
            &mut producers,
            &packet(7, &[(MID, b"v"), (RID, b"lo")])
        )
        .is_ok());
        for (ssrc, elements) in [
            (8, vec![(MID, &b"v"[..]), (RID, &b"lo"[..])]),
            (9, vec![(MID, &b"v"[..]), (RID, &b"zz"[..])]),
            (10, vec![(MID, &b"w"[..]), (RID, &b"lo"[..])]),
            (11, vec![(MID, &b"v"[..])]),
            (12, vec![]),
        ] {
            assert_eq!(
                latch(&keys, &mut producers, &packet(ssrc, &elements)),
                Err(DropReason::UnknownRid),
                "ssrc {ssrc}"
            );
        }
        assert!(latch(&keys, &mut producers, &packet(13, &[(RRID, b"lo")])).is_ok());
        assert!(!producers[video].awaits_ssrcs());
        assert_eq!(
            latch(
                &keys,
                &mut producers,
                &packet(14, &[(MID, b"v"), (RID, b"lo")])
            ),
            Err(DropReason::UnknownSsrc)
        );
        assert_eq!(producers[video].ssrcs().collect::<Vec<_>>(), [7, 13]);
    }

    /// Without MID: the only producer waiting is meant, or else the only one that
    /// declared no mid; with a MID nobody has, that one too.
    #[test]
    fn a_missing_or_unknown_mid_falls_back_to_the_only_candidate() {
        let mut producers = Slab::new();
        let with_mid = producers.insert(producer(Some("v"), &["lo"]));
        let keys = [with_mid];
        let route = latch(&keys, &mut producers, &packet(7, &[(RID, b"lo")]));
        assert_eq!(route.map(|r| r.producer), Ok(with_mid));

        let mut producers = Slab::new();
        let a = producers.insert(producer(Some("v"), &["lo"]));
        let b = producers.insert(producer(None, &["lo"]));
        let keys = [a, b];
        let route = latch(&keys, &mut producers, &packet(7, &[(RID, b"lo")]));
        assert_eq!(route.map(|r| r.producer), Ok(b), "no MID: the one without");
        let route = latch(
            &keys,
            &mut producers,
            &packet(8, &[(MID, b"9"), (RRID, b"lo")]),
        );
        assert_eq!(route.map(|r| (r.producer, r.rtx)), Ok((b, true)));
        let route = latch(
            &keys,
            &mut producers,
            &packet(9, &[(MID, b"v"), (RID, b"lo")]),
        );
        assert_eq!(route.map(|r| r.producer), Ok(a));
    }

    /// Fuzz-safety: random extension blocks (bad lengths, two-byte forms, id 15) never
    /// panic and never latch more than the encodings have room for.
    #[test]
    fn malformed_extensions_are_survived() {
        let mut rng = StdRng::seed_from_u64(13);
        let mut producers = Slab::new();
        let video = producers.insert(producer(Some("v"), &["a", "b", "c", "d"]));
        let keys = [video];
        for i in 0..20_000u32 {
            let words = rng.gen_range(0..4usize);
            let mut p = vec![0x90, 96, 0, 1, 0, 0, 0, 1];
            p.extend(i.to_be_bytes());
            let profile: u16 = if rng.gen_bool(0.5) { 0xbede } else { 0x1000 };
            p.extend(profile.to_be_bytes());
            p.extend((words as u16).to_be_bytes());
            for _ in 0..words * 4 {
                // Mostly plausible ids and lengths, with values the RIDs use.
                p.push(match rng.gen_range(0..4) {
                    0 => rng.gen(),
                    1 => (RID << 4) | rng.gen_range(0..2),
                    2 => b"abcdv"[rng.gen_range(0..5)],
                    _ => (MID << 4) | rng.gen_range(0..2),
                });
            }
            if rng.gen_bool(0.2) {
                p.truncate(rng.gen_range(0..p.len()));
            }
            let Ok(hdr) = RtpHeader::parse(&p) else {
                continue;
            };
            let _ = read_extension_str(&p, &hdr, RID);
            let _ = latch_ssrc(&keys, &mut producers, &p, &hdr);
        }
        assert!(producers[video].ssrcs().count() <= 8);
    }
}
