//! What happened in a run, in order, at virtual times relative to its start: every
//! datagram's fate and every media event the peers and the core report. Two runs of one
//! seed must produce equal traces, so nothing random enters a record: no ciphertext, no
//! SSRC, id or sequence number the core or str0m draws at random (streams are named by
//! what the test declared, packets by the index their payload carries, sequence numbers
//! relative to the first one a receiver saw), and no DTLS record length (ECDSA signatures
//! vary in length).

use std::fmt;
use std::time::Duration;

use crate::demux::PacketClass;

/// One event of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// A datagram arrived (`fate` None) or was dropped by the network.
    Datagram {
        from: String,
        to: String,
        class: PacketClass,
        /// The datagram's length, except for DTLS.
        len: Option<usize>,
        fate: Option<Dropped>,
    },
    /// A peer received an RTP packet of `stream` carrying payload `index`; `seq` counts
    /// from the first packet of the stream it saw; `ts` is its RTP timestamp.
    Rtp {
        peer: String,
        stream: String,
        index: u32,
        seq: u16,
        ts: u32,
    },
    /// Beside `Rtp`, for a VP8 payload whose descriptor has a PictureID (the simulcast
    /// tests' streams): the descriptor as the peer got it, its full sequence number, and
    /// whether it starts a keyframe.
    Vp8 {
        peer: String,
        stream: String,
        index: u32,
        seq: u16,
        picture_id: u16,
        tl0_pic_idx: Option<u8>,
        tid: Option<u8>,
        keyframe: bool,
    },
    /// A peer received a retransmission (RFC 4588) on `stream`'s RTX SSRC.
    Rtx { peer: String, stream: String },
    /// RTCP feedback a peer received (`sent` false) or sent.
    Feedback {
        peer: String,
        sent: bool,
        kind: FeedbackKind,
    },
    /// A peer got a receiver report block about its stream `ssrc`.
    ReportBlock {
        peer: String,
        ssrc: u32,
        fraction_lost: u8,
    },
    /// A peer got a sender report for its incoming media `mid`.
    SenderReport { peer: String, mid: String },
    /// A peer was asked for a keyframe of `mid`.
    KeyframeRequest {
        peer: String,
        mid: String,
        /// The simulcast encoding asked for, when the stream has a rid.
        rid: Option<String>,
    },
    /// A peer's send-side bandwidth estimate changed.
    Estimate { peer: String, bps: u64 },
    /// A peer's ICE + DTLS came up.
    Connected { peer: String },
    /// A control request and whether it was accepted.
    Request {
        method: String,
        target: String,
        accepted: bool,
    },
    /// A notification of the core, its target named as the test named the entity.
    Notification { target: String, event: String },
}

/// A VP8 packet as a peer received it ([`Record::Vp8`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Vp8Seen {
    pub(crate) index: u32,
    pub(crate) seq: u16,
    pub(crate) picture_id: u16,
    pub(crate) tl0_pic_idx: Option<u8>,
    pub(crate) tid: Option<u8>,
    pub(crate) keyframe: bool,
}

/// Why the network dropped a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    Lost,
    QueueFull,
}

/// RTCP feedback by type; a NACK with how many packets it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FeedbackKind {
    Nack(usize),
    Pli,
    Fir,
    TransportCc,
    Remb,
}

/// The records of a run with their times since its start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Trace {
    records: Vec<(Duration, Record)>,
}

impl Trace {
    pub(crate) fn push(&mut self, at: Duration, record: Record) {
        self.records.push((at, record));
    }

    pub(crate) fn records(&self) -> impl Iterator<Item = &Record> + '_ {
        self.records.iter().map(|(_, r)| r)
    }

    /// The records with their times since the run's start.
    pub(crate) fn timed_records(&self) -> impl Iterator<Item = (Duration, &Record)> + '_ {
        self.records.iter().map(|(at, r)| (*at, r))
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// The payload indexes `peer` received on `stream`, in arrival order.
    pub(crate) fn received(&self, peer: &str, stream: &str) -> Vec<u32> {
        self.records()
            .filter_map(|r| match r {
                Record::Rtp {
                    peer: p,
                    stream: s,
                    index,
                    ..
                } if p == peer && s == stream => Some(*index),
                _ => None,
            })
            .collect()
    }

    /// The fraction lost (1/256 units) of each receiver report block `peer` got about
    /// its stream `ssrc`, in order.
    pub(crate) fn reported_loss(&self, peer: &str, ssrc: u32) -> Vec<u8> {
        self.records()
            .filter_map(|r| match r {
                Record::ReportBlock {
                    peer: p,
                    ssrc: s,
                    fraction_lost,
                } if p == peer && *s == ssrc => Some(*fraction_lost),
                _ => None,
            })
            .collect()
    }

    /// The VP8 packets `peer` received on `stream` (see [`Record::Vp8`]), in arrival
    /// order.
    pub(crate) fn vp8(&self, peer: &str, stream: &str) -> Vec<Vp8Seen> {
        self.records()
            .filter_map(|r| match r {
                Record::Vp8 {
                    peer: p,
                    stream: s,
                    index,
                    seq,
                    picture_id,
                    tl0_pic_idx,
                    tid,
                    keyframe,
                } if p == peer && s == stream => Some(Vp8Seen {
                    index: *index,
                    seq: *seq,
                    picture_id: *picture_id,
                    tl0_pic_idx: *tl0_pic_idx,
                    tid: *tid,
                    keyframe: *keyframe,
                }),
                _ => None,
            })
            .collect()
    }

    /// The RID of each keyframe request `peer` received, in order (`None` for a stream
    /// without one).
    pub(crate) fn keyframe_request_rids(&self, peer: &str) -> Vec<Option<String>> {
        self.records()
            .filter_map(|r| match r {
                Record::KeyframeRequest { peer: p, rid, .. } if p == peer => Some(rid.clone()),
                _ => None,
            })
            .collect()
    }

    /// Retransmissions `peer` received on `stream`.
    pub(crate) fn retransmissions(&self, peer: &str, stream: &str) -> usize {
        self.records()
            .filter(|r| matches!(r, Record::Rtx { peer: p, stream: s } if p == peer && s == stream))
            .count()
    }

    /// Packets `peer` asked for (`sent`) or was asked for in NACKs.
    pub(crate) fn nacked(&self, peer: &str, sent: bool) -> usize {
        self.records()
            .filter_map(|r| match r {
                Record::Feedback {
                    peer: p,
                    sent: s,
                    kind: FeedbackKind::Nack(n),
                } if p == peer && *s == sent => Some(*n),
                _ => None,
            })
            .sum()
    }

    /// How many feedback packets of `kind`'s type `peer` received (`sent` false) or sent.
    pub(crate) fn feedback(&self, peer: &str, sent: bool, kind: FeedbackKind) -> usize {
        let same = |k: &FeedbackKind| std::mem::discriminant(k) == std::mem::discriminant(&kind);
        self.records()
            .filter(|r| {
                matches!(r, Record::Feedback { peer: p, sent: s, kind: k }
                if p == peer && *s == sent && same(k))
            })
            .count()
    }

    /// `peer`'s bandwidth estimates, in order.
    pub(crate) fn estimates(&self, peer: &str) -> Vec<u64> {
        self.records()
            .filter_map(|r| match r {
                Record::Estimate { peer: p, bps } if p == peer => Some(*bps),
                _ => None,
            })
            .collect()
    }

    /// (arrival time, length) of each `class` datagram from `from` that reached `to`.
    pub(crate) fn delivered(
        &self,
        from: &str,
        to: &str,
        class: PacketClass,
    ) -> Vec<(Duration, usize)> {
        self.records
            .iter()
            .filter_map(|(at, r)| match r {
                Record::Datagram {
                    from: f,
                    to: t,
                    class: c,
                    len,
                    fate: None,
                } if f == from && t == to && *c == class => Some((*at, len.unwrap_or_default())),
                _ => None,
            })
            .collect()
    }

    /// Datagrams from `from` to `to` the network dropped.
    pub(crate) fn dropped(&self, from: &str, to: &str) -> usize {
        self.records()
            .filter(|r| {
                matches!(r, Record::Datagram { from: f, to: t, fate: Some(_), .. }
                if f == from && t == to)
            })
            .count()
    }

    /// A digest of the whole trace (times included), to compare runs across processes.
    pub(crate) fn digest(&self) -> u64 {
        use std::hash::{DefaultHasher, Hash, Hasher};
        // DefaultHasher::new() has fixed keys: the digest is stable across processes.
        let mut h = DefaultHasher::new();
        for (at, r) in &self.records {
            at.hash(&mut h);
            r.to_string().hash(&mut h);
        }
        h.finish()
    }

    /// The first record where `self` and `other` differ, for a readable failure.
    pub(crate) fn first_difference(&self, other: &Self) -> Option<String> {
        let n = self.records.len().max(other.records.len());
        (0..n).find_map(|i| {
            let (a, b) = (self.records.get(i), other.records.get(i));
            (a != b).then(|| {
                let show = |r: Option<&(Duration, Record)>| {
                    r.map_or("(end)".to_owned(), |(t, r)| format!("{t:?} {r}"))
                };
                let window = |t: &Self| {
                    t.records
                        .iter()
                        .skip(i.saturating_sub(12))
                        .take(16)
                        .map(|(t, r)| format!("\n  {t:?} {r}"))
                        .collect::<String>()
                };
                format!(
                    "record {i}: {} vs {}\nfirst:{}\nsecond:{}",
                    show(a),
                    show(b),
                    window(self),
                    window(other)
                )
            })
        })
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Datagram {
                from,
                to,
                class,
                len,
                fate,
            } => {
                write!(f, "{from} -> {to} {class:?}")?;
                if let Some(len) = len {
                    write!(f, " {len}B")?;
                }
                match fate {
                    None => Ok(()),
                    Some(d) => write!(f, " dropped ({d:?})"),
                }
            }
            Self::Rtp {
                peer,
                stream,
                index,
                seq,
                // Drawn at random by the consumer: left out like SSRCs.
                ts: _,
            } => write!(f, "{peer} rtp {stream} #{index} seq+{seq}"),
            Self::Vp8 {
                peer,
                stream,
                index,
                seq,
                picture_id,
                tl0_pic_idx,
                tid,
                keyframe,
            } => write!(
                f,
                "{peer} vp8 {stream} #{index} seq {seq} picture {picture_id} tl0 {tl0_pic_idx:?} tid {tid:?} key {keyframe}"
            ),
            Self::Rtx { peer, stream } => write!(f, "{peer} rtx {stream}"),
            Self::Feedback { peer, sent, kind } => {
                let dir = if *sent { "sent" } else { "got" };
                write!(f, "{peer} {dir} {kind:?}")
            }
            Self::ReportBlock {
                peer,
                ssrc,
                fraction_lost,
            } => write!(f, "{peer} report block {ssrc:#x} lost {fraction_lost}/256"),
            Self::SenderReport { peer, mid } => write!(f, "{peer} sender report {mid}"),
            Self::KeyframeRequest { peer, mid, rid } => {
                write!(f, "{peer} keyframe request {mid}")?;
                match rid {
                    Some(rid) => write!(f, " rid {rid}"),
                    None => Ok(()),
                }
            }
            Self::Estimate { peer, bps } => write!(f, "{peer} estimate {bps} bps"),
            Self::Connected { peer } => write!(f, "{peer} connected"),
            Self::Request {
                method,
                target,
                accepted,
            } => write!(f, "request {method} {target} accepted={accepted}"),
            Self::Notification { target, event } => write!(f, "notification {target} {event}"),
        }
    }
}
