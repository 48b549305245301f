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
