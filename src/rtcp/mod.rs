//! RTCP for an SFU that terminates feedback.
//!
//! The SFU does not relay RTCP between peers: each transport's RTCP is consumed here
//! (PLI/FIR turn into keyframe requests upstream, NACKs are served from a
//! retransmission cache, REMB / transport-cc feed bandwidth estimation, SR/RR feed
//! statistics), and the SFU writes its own reports and requests.
//!
//! Parsing uses the `rtcp` crate per packet of a compound, except transport-cc, which
//! `twcc` parses itself (the crate's parser overflows on some inputs and allocates
//! per status). We do *not* apply
//! `CompoundPacket::validate`: browsers send reduced-size RTCP (RFC 5506), e.g. a
//! lone PLI or transport-cc packet, which is not a valid RFC 3550 6.1 compound.
//! Writers are hand-rolled: they append to a caller-owned `Vec` (no allocation once
//! it has capacity) so several can be concatenated into one compound packet.

pub mod remb;
pub mod twcc;

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rtcp::packet::Packet;
use rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtcp::receiver_report::ReceiverReport;
use rtcp::reception_report::ReceptionReport;
use rtcp::sender_report::SenderReport;
use rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;

/// RTCP packet types (RFC 3550 12.1, RFC 4585 6.1).
const PT_SR: u8 = 200;
const PT_RR: u8 = 201;
const PT_RTPFB: u8 = 205;
const PT_PSFB: u8 = 206;
/// Feedback message types (RFC 4585 6.3, RFC 5104 4.3.1, draft-alvestrand-rmcat-remb).
const FMT_PLI: u8 = 1;
/// Generic NACK, RTPFB FMT=1 (RFC 4585 6.2.1).
const FMT_NACK: u8 = 1;
/// One FCI entry covers its PID and the 16 sequence numbers after it (RFC 4585 6.2.1).
const NACK_SPAN: u32 = 16;
const FMT_FIR: u8 = 4;
const FMT_AFB: u8 = 15;
/// Report counts are 5 bits (RFC 3550 6.4.1).
const MAX_REPORT_BLOCKS: usize = 31;
/// Cumulative loss is a signed 24-bit field (RFC 3550 6.4.1).
const MAX_TOTAL_LOST: u32 = 0x7F_FFFF;
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970), RFC 5905 6.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Errors in the framing of a compound RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// No bytes at all.
    #[error("empty RTCP packet")]
    Empty,
    /// A packet header, or the length it announces, runs past the end of the buffer.
    #[error("RTCP packet at offset {offset} truncated: needs {needed} bytes, {available} left")]
    Truncated {
        offset: usize,
        needed: usize,
        available: usize,
    },
    /// Version field is not 2 (RFC 3550 6.4.1).
    #[error("RTCP packet at offset {offset} has version {version}")]
    BadVersion { offset: usize, version: u8 },
}

/// One reception report block (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// SSRC of the source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost. Written saturated to the 24-bit signed maximum; a
    /// negative value on the wire (more duplicates than losses) is read as 0.
    pub total_lost: u32,
    /// Extended highest sequence number received (cycles << 16 | seq).
    pub highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received (LSR).
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s (DLSR).
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn from_crate(r: &ReceptionReport) -> Self {
        Self {
            ssrc: r.ssrc,
            fraction_lost: r.fraction_lost,
            // The crate hands back the raw 24 bits; the sign bit means "negative".
            total_lost: if r.total_lost & 0x80_0000 != 0 {
                0
            } else {
                r.total_lost & 0xFF_FFFF
            },
            highest_seq: r.last_sequence_number,
            jitter: r.jitter,
            last_sr: r.last_sender_report,
            delay_since_last_sr: r.delay,
        }
    }
}

/// What the SFU acts on from an incoming RTCP packet.
#[derive(Debug, Clone, PartialEq)]
pub enum Feedback {
    /// Picture Loss Indication (RFC 4585 6.3.1): send a keyframe for `media_ssrc`.
    Pli { sender_ssrc: u32, media_ssrc: u32 },
    /// Full Intra Request (RFC 5104 4.3.1): (media SSRC, command sequence number)
    /// pairs; a repeated sequence number is a retransmission, not a new request.
    Fir {
        sender_ssrc: u32,
        media_ssrcs: Vec<(u32, u8)>,
    },
    /// Generic NACK (RFC 4585 6.2.1), expanded to the lost sequence numbers.
    Nack {
        sender_ssrc: u32,
        media_ssrc: u32,
        lost: Vec<u16>,
    },
    /// Receiver Estimated Maximum Bitrate (draft-alvestrand-rmcat-remb-03), bits/s.
    Remb { bitrate: f32, ssrcs: Vec<u32> },
    /// Transport-wide congestion control feedback
    /// (draft-holmer-rmcat-transport-wide-cc-extensions-01 3.1), parsed by
    /// [`twcc::TwccFeedback::parse`].
    TransportCc(twcc::TwccFeedback),
    /// Sender Report sender info (RFC 3550 6.4.1). Report blocks carried in an SR
    /// are emitted as a following [`Feedback::ReceiverReport`] with the same SSRC.
    SenderReport {
        ssrc: u32,
        ntp_time: u64,
        rtp_time: u32,
        packet_count: u32,
        octet_count: u32,
    },
    /// Receiver Report (RFC 3550 6.4.2) or the report blocks of an SR.
    ReceiverReport {
        ssrc: u32,
        reports: Vec<ReportBlock>,
    },
    /// Anything else (SDES, BYE, XR, other feedback) or a packet the crate rejected.
    Other,
}

/// RFC 5761 4: on a port shared by RTP and RTCP, the second byte (M bit + PT for
/// RTP, packet type for RTCP) is 192..=223 only for RTCP, given that RTP payload
/// types 64..=95 are not used.
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.get(1).is_some_and(|&b| (192..=223).contains(&b))
}

/// Converts wall-clock time to a 64-bit NTP timestamp (RFC 5905 6: 32.32 fixed point
/// seconds since 1900), as used in SR (RFC 3550 6.4.1). The seconds field wraps in
/// 2036 (NTP era 1), which is how the wire format represents it too. Times before
/// 1900 give 0.
pub fn system_time_to_ntp(t: SystemTime) -> u64 {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (NTP_UNIX_OFFSET.wrapping_add(d.as_secs()), d.subsec_nanos()),
        Err(e) => {
            // Before 1970: count back from the Unix epoch.
            let d = e.duration();
            let mut secs = NTP_UNIX_OFFSET.checked_sub(d.as_secs());
            let mut nanos = d.subsec_nanos();
            if nanos > 0 {
                secs = secs.and_then(|s| s.checked_sub(1));
                nanos = 1_000_000_000 - nanos;
            }
            match secs {
                Some(s) => (s, nanos),
                None => return 0,
            }
        }
    };
    // nanos < 1e9, so the product fits in 64 bits and the quotient in 32.
    let frac = (u64::from(nanos) << 32) / 1_000_000_000;
    ((secs & 0xFFFF_FFFF) << 32) | frac
}

/// Appends the 4-byte common header (RFC 3550 6.4.1): V=2, P=0, count/FMT, PT,
/// length in 32-bit words minus one.
fn put_header(out: &mut Vec<u8>, count: u8, packet_type: u8, words_minus_one: u16) {
    out.push(0x80 | (count & 0x1F));
    out.push(packet_type);
    out.extend_from_slice(&words_minus_one.to_be_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a PLI (RFC 4585 6.3.1): PSFB FMT=1, no FCI.
pub fn write_pli(out: &mut Vec<u8>, sender_ssrc: u32, media_ssrc: u32) {
    put_header(out, FMT_PLI, PT_PSFB, 2);
    put_u32(out, sender_ssrc);
    put_u32(out, media_ssrc);
}

/// Appends a FIR (RFC 5104 4.3.1) with one FCI entry. The common "media source"
/// field is 0 as required by 4.3.1.2; the target SSRC goes in the FCI, with the
/// command sequence number the caller increments per new request.
pub fn write_fir(out: &mut Vec<u8>, sender_ssrc: u32, media_ssrc: u32, seq: u8) {
    put_header(out, FMT_FIR, PT_PSFB, 4);
    put_u32(out, sender_ssrc);
    put_u32(out, 0);
    put_u32(out, media_ssrc);
    out.extend_from_slice(&[seq, 0, 0, 0]);
}

/// Appends a generic NACK (RFC 4585 6.2.1) asking `media_ssrc` to retransmit the
/// packets in `lost`. Nothing is written for an empty `lost` (a NACK needs at least
/// one FCI entry).
///
/// Each FCI entry is a PID (packet id) and a BLP bitmask whose bit i means PID+i+1 is
/// lost too, so one entry covers up to 17 sequence numbers. `lost` may be unsorted,
/// hold duplicates and cross the 16-bit wrap (65535 -> 0). Entries are chosen
/// greedily from the oldest sequence number (in RFC 3550 A.1 serial order, relative
/// to the oldest in the list), which gives the fewest entries when the span of `lost`
/// is under 2^15; any input is fully covered regardless. Sorted input (what
/// `router::nack::NackGenerator` produces) takes one pass; unsorted input goes
/// through a bitmap on the stack. No allocation beyond `out`'s growth.
///
/// The packet grows by 4 bytes per entry: the caller keeps `lost` small enough for
/// its MTU (e.g. chunks of at most 200 sequence numbers fit any 1200-byte budget).
pub fn write_nack(out: &mut Vec<u8>, sender_ssrc: u32, media_ssrc: u32, lost: &[u16]) {
    let Some(&first) = lost.first() else {
        return;
    };
    // The oldest in serial order (RFC 3550 A.1 / RFC 1982): smallest signed distance
    // from an arbitrary member.
    let back = lost
        .iter()
        .map(|&s| s.wrapping_sub(first) as i16)
        .min()
        .unwrap_or(0);
    let oldest = first.wrapping_add(back as u16);
    let rel = |s: u16| u32::from(s.wrapping_sub(oldest));

    let start = out.len();
    put_header(out, FMT_NACK, PT_RTPFB, 0);
    put_u32(out, sender_ssrc);
    put_u32(out, media_ssrc);
    let mut entries: u32 = 0;
    let mut put_entry = |out: &mut Vec<u8>, pid: u16, blp: u16| {
        out.extend_from_slice(&pid.to_be_bytes());
        out.extend_from_slice(&blp.to_be_bytes());
        entries += 1;
    };

    let sorted = lost.windows(2).all(|w| match w {
        [a, b] => rel(*a) <= rel(*b),
        _ => true,
    });
    if sorted {
        let mut pid = first;
        let mut blp = 0u16;
        for &s in lost.iter().skip(1) {
            let d = u32::from(s.wrapping_sub(pid));
            if d == 0 {
                continue;
            }
            if d <= NACK_SPAN {
                blp |= 1 << (d - 1);
            } else {
                put_entry(out, pid, blp);
                pid = s;
                blp = 0;
            }
        }
        put_entry(out, pid, blp);
    } else {
        // A bitmap of the whole sequence space in serial order from `oldest` (8 KiB
        // on the stack, no allocation), then the same greedy walk over its set bits:
        // O(len + 1024) whatever the order.
        let mut bits = [0u64; 1 << 10];
        for &s in lost {
            let r = rel(s) as usize;
            if let Some(w) = bits.get_mut(r / 64) {
                *w |= 1 << (r % 64);
            }
        }
        let is_set = |r: usize| bits.get(r / 64).is_some_and(|w| w & (1 << (r % 64)) != 0);
        let mut r = 0usize;
        while let Some(&word) = bits.get(r / 64) {
            let word = word & (u64::MAX << (r % 64));
            if word == 0 {
                r = (r / 64 + 1) * 64;
                continue;
            }
            let pid_rel = (r / 64) * 64 + word.trailing_zeros() as usize;
            let mut blp = 0u16;
            for d in 1..=NACK_SPAN as usize {
                if is_set(pid_rel + d) {
                    blp |= 1 << (d - 1);
                }
            }
            // pid_rel < 2^16.
            put_entry(out, oldest.wrapping_add(pid_rel as u16), blp);
            r = pid_rel + NACK_SPAN as usize + 1;
        }
    }

    // Length in 32-bit words minus one: header + two SSRCs + entries, minus one.
    // At most 65536 / 17 + 1 entries can be distinct, so this fits in 16 bits.
    let words = u16::try_from(2 + entries).unwrap_or(u16::MAX);
    if let Some(len) = out.get_mut(start + 2..start + 4) {
        len.copy_from_slice(&words.to_be_bytes());
    }
}

/// Appends a Sender Report (RFC 3550 6.4.1) with no report blocks: the SFU reports
/// reception in separate RRs from its receiving SSRC.
pub fn write_sender_report(
    out: &mut Vec<u8>,
    ssrc: u32,
    ntp_time: u64,
    rtp_time: u32,
    packet_count: u32,
    octet_count: u32,
) {
    put_header(out, 0, PT_SR, 6);
    put_u32(out, ssrc);
    out.extend_from_slice(&ntp_time.to_be_bytes());
    put_u32(out, rtp_time);
    put_u32(out, packet_count);
    put_u32(out, octet_count);
}

/// Appends Receiver Reports (RFC 3550 6.4.2). The report count is 5 bits, so more
/// than 31 blocks are split over several RR packets (RFC 3550 6.4.2 allows
/// additional RRs in the same compound). No blocks yields one empty RR, which is
/// what RFC 3550 6.1 wants at the head of a compound when there is nothing to report.
pub fn write_receiver_report(out: &mut Vec<u8>, sender_ssrc: u32, blocks: &[ReportBlock]) {
    if blocks.is_empty() {
        put_header(out, 0, PT_RR, 1);
        put_u32(out, sender_ssrc);
        return;
    }
    for chunk in blocks.chunks(MAX_REPORT_BLOCKS) {
        // chunk.len() <= 31, so both fit comfortably.
        let count = chunk.len() as u8;
        put_header(out, count, PT_RR, 1 + 6 * u16::from(count));
        put_u32(out, sender_ssrc);
        for b in chunk {
            put_u32(out, b.ssrc);
            let lost = b.total_lost.min(MAX_TOTAL_LOST);
            put_u32(out, (u32::from(b.fraction_lost) << 24) | lost);
            put_u32(out, b.highest_seq);
            put_u32(out, b.jitter);
            put_u32(out, b.last_sr);
            put_u32(out, b.delay_since_last_sr);
        }
    }
}

/// Parses a (possibly reduced-size, RFC 5506) compound RTCP packet, appending what
/// the SFU acts on to `out`.
///
/// The framing (version 2 and each packet's length field, RFC 3550 6.4.1) is walked
/// here; each packet is then parsed by the `rtcp` crate on its own, so a packet the
/// crate does not understand or rejects becomes [`Feedback::Other`] without losing
/// its neighbours. A framing error stops parsing: it returns `Err`, and `out` keeps
/// whatever was parsed before the broken packet.
pub fn parse_compound(buf: &[u8], out: &mut Vec<Feedback>) -> Result<(), RtcpError> {
    if buf.is_empty() {
        return Err(RtcpError::Empty);
    }
    let mut offset = 0;
    let mut rest = buf;
    while !rest.is_empty() {
        let Some(&[b0, _, l0, l1]) = rest.first_chunk::<4>() else {
            return Err(RtcpError::Truncated {
                offset,
                needed: 4,
                available: rest.len(),
            });
        };
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtcpError::BadVersion { offset, version });
        }
        let size = (usize::from(u16::from_be_bytes([l0, l1])) + 1) * 4;
        let Some((packet, tail)) = rest.split_at_checked(size) else {
            return Err(RtcpError::Truncated {
                offset,
                needed: size,
                available: rest.len(),
            });
        };
        parse_one(packet, out);
        rest = tail;
        offset += size;
    }
    Ok(())
}

/// Parses one framed packet: transport-cc by hand ([`twcc::TwccFeedback::parse`],
/// which needs no guard and keeps the statuses compact), the rest with the `rtcp`
/// crate.
fn parse_one(packet: &[u8], out: &mut Vec<Feedback>) {
    if let (Some(&b0), Some(&PT_RTPFB)) = (packet.first(), packet.get(1)) {
        if b0 & 0x1F == twcc::FMT_TCC {
            out.push(
                twcc::TwccFeedback::parse(packet).map_or(Feedback::Other, Feedback::TransportCc),
            );
            return;
        }
    }
    if !crate_can_parse(packet) {
        out.push(Feedback::Other);
        return;
    }
    let Ok(parsed) = rtcp::packet::unmarshal(&mut Bytes::copy_from_slice(packet)) else {
        out.push(Feedback::Other);
        return;
    };
    for p in &parsed {
        convert(p.as_ref(), out);
    }
}

/// Whether the packet is worth handing to the `rtcp` crate: a type we act on, and
/// not one of the inputs on which the crate panics instead of returning an error
/// (found by the garbage tests; its parsers read the FCI the length field announces
/// without checking that the pieces fit, and do some length arithmetic in `u16`).
/// Types we would map to [`Feedback::Other`] anyway (SDES, BYE, APP, XR) are not
/// parsed at all, which also keeps their parsers off the attack surface.
fn crate_can_parse(packet: &[u8]) -> bool {
    let (Some(&b0), Some(&pt)) = (packet.first(), packet.get(1)) else {
        return false;
    };
    let len = packet.len();
    // A UDP datagram carries at most 65,507 bytes; beyond 64 KiB the crate's u16
    // arithmetic on the length field (`4 * length`, `length + 1`) overflows.
    if len > 65_536 {
        return false;
    }
    let fmt = b0 & 0x1F;
    match pt {
        PT_SR | PT_RR => true,
        PT_RTPFB | PT_PSFB => {
            // RFC 4585 6.1: every feedback message has the sender and media SSRCs.
            if len < 12 {
                return false;
            }
            match (pt, fmt) {
                // RFC 5104 4.3.1.1: FIR FCI entries are 8 bytes each.
                (PT_PSFB, FMT_FIR) => len.checked_sub(12).is_some_and(|n| n % 8 == 0),
                // REMB (draft-alvestrand-rmcat-remb-03 2.2): "REMB", num SSRC,
                // exponent and mantissa, then num SSRC * 4 bytes.
                (PT_PSFB, FMT_AFB) => {
                    let ssrcs = packet.get(16).map_or(0, |&n| usize::from(n));
                    len >= 20 + 4 * ssrcs
                }
                // transport-cc (RTPFB FMT=15) never gets here: `parse_one` hands it
                // to `twcc::TwccFeedback::parse`, because the crate adds up to 14
                // statuses per chunk to a u16 counter bounded by the status count
                // and overflows.
                _ => true,
            }
        }
        _ => false,
    }
}

fn convert(p: &(dyn Packet + Send + Sync), out: &mut Vec<Feedback>) {
    let any = p.as_any();
    if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
        out.push(Feedback::Pli {
            sender_ssrc: pli.sender_ssrc,
            media_ssrc: pli.media_ssrc,
        });
    } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
        out.push(Feedback::Fir {
            sender_ssrc: fir.sender_ssrc,
            media_ssrcs: fir
                .fir
                .iter()
                .map(|e| (e.ssrc, e.sequence_number))
                .collect(),
        });
    } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
        out.push(Feedback::Nack {
            sender_ssrc: nack.sender_ssrc,
            media_ssrc: nack.media_ssrc,
            lost: nack.nacks.iter().flat_map(|n| n.packet_list()).collect(),
        });
    } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
        out.push(Feedback::Remb {
            bitrate: remb.bitrate,
            ssrcs: remb.ssrcs.clone(),
        });
    } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
        out.push(Feedback::SenderReport {
            ssrc: sr.ssrc,
            ntp_time: sr.ntp_time,
            rtp_time: sr.rtp_time,
            packet_count: sr.packet_count,
            octet_count: sr.octet_count,
        });
        if !sr.reports.is_empty() {
            out.push(Feedback::ReceiverReport {
                ssrc: sr.ssrc,
                reports: sr.reports.iter().map(ReportBlock::from_crate).collect(),
            });
        }
    } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
        out.push(Feedback::ReceiverReport {
            ssrc: rr.ssrc,
            reports: rr.reports.iter().map(ReportBlock::from_crate).collect(),
        });
    } else {
        out.push(Feedback::Other);
    }
}

#[cfg(test)]
mod tests;
