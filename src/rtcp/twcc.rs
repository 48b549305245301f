//! Transport-wide congestion control feedback
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01, "the draft" below).
//!
//! Two halves:
//! - [`TwccRecorder`], the receive side toward a publisher: it records when each
//!   transport-wide sequence number arrived and writes the RTPFB FMT=15 feedback that
//!   the publisher's send-side estimator (libwebrtc's `TransportFeedbackAdapter` and
//!   GCC) runs on. Without it Chrome's estimate stays near its 300 kbps start.
//! - [`TwccFeedback`], the parsed form of the same message when a subscriber sends it
//!   about the packets we forwarded; `crate::bwe::SendSideEstimator` consumes it.
//!
//! What libwebrtc needs from the feedback, and so what the recorder guarantees:
//! - every received sequence number is reported, at least once, within about
//!   [`FEEDBACK_INTERVAL`]; packets between reported ones that have not arrived are
//!   reported "not received"; nothing is ever reported received that was not;
//! - one reference time base for all feedback of a transport (64 ms units, 24 bits,
//!   wrapping, draft 3.1), with receive deltas in 250 us units that accumulate
//!   without drift (draft 3.1.5), and a feedback packet count incremented per packet;
//! - a packet that arrives after feedback already called it lost is reported again
//!   as received (the feedback restarts from it, as libwebrtc's own receive side
//!   does; the sender ignores duplicates of packets it already saw received).

use std::time::{Duration, Instant};

use super::PT_RTPFB;

/// RTPFB FMT=15: transport-wide feedback (draft 3.1).
pub(super) const FMT_TCC: u8 = 15;
/// How often feedback is sent while packets arrive. libwebrtc's receive side sends
/// every 50-250 ms depending on the rate (100 ms by default); 50 ms gives the
/// publisher's estimator fresh data quickly, for ~20 small RTCP packets a second.
pub const FEEDBACK_INTERVAL: Duration = Duration::from_millis(50);
/// Unreported packets that make feedback due before the interval is up, so one
/// feedback stays well under [`MAX_FEEDBACK_LEN`] at high rates.
pub const FORCE_FEEDBACK_PACKETS: u64 = 256;
/// Largest feedback packet written (bytes, header and padding included): leaves room
/// for SRTCP and IP/UDP headers under a 1200-byte path MTU. More pending packets are
/// split over several feedback packets.
pub const MAX_FEEDBACK_LEN: usize = 1000;
/// Arrival history per transport, in sequence numbers (a power of two). 4096 covers
/// 400 ms of reordering at 10,000 packets/s (~100 Mbps); older packets are forgotten.
const HISTORY: usize = 4096;
const HISTORY_MASK: u64 = HISTORY as u64 - 1;
/// Receive deltas count 250 us (draft 3.1.5).
const DELTA_TICK_US: i64 = 250;
/// The reference time counts 64 ms (draft 3.1).
const REFERENCE_TICK_US: u64 = 64_000;
/// The reference time is 24 bits (draft 3.1).
const REFERENCE_MASK: u64 = 0xFF_FFFF;
/// Fixed part of a feedback packet: RTCP header, two SSRCs, base sequence number and
/// status count, reference time and feedback packet count (draft 3.1).
const FIXED_LEN: usize = 20;
/// The first extended sequence number, high enough that unwrapping backwards from
/// it never underflows.
const EXT_BASE: u64 = 1 << 32;
/// Status symbols (draft 3.1.1).
const NOT_RECEIVED: u8 = 0;
const SMALL_DELTA: u8 = 1;
const LARGE_DELTA: u8 = 2;

/// Records transport-wide sequence numbers arriving on one transport and writes
/// transport-cc feedback for them.
///
/// Driving contract (sans-IO): call [`Self::on_packet`] for every received RTP packet
/// that carries the transport-wide sequence number extension, with its receive time;
/// then, after a batch of packets and whenever [`Self::poll_timeout`] is reached, call
/// [`Self::poll_feedback`] until it returns `false`, sending each packet it appended.
/// Nothing here allocates after the first packet (the history is allocated then, and
/// the delta scratch grows once to the size of one feedback).
#[derive(Debug)]
pub struct TwccRecorder {
    /// Arrival time + 1 in microseconds since `epoch`, indexed by extended sequence
    /// number modulo [`HISTORY`]; 0 means not received. Valid for `start..=highest`.
    ring: Vec<u64>,
    /// The first packet's arrival: the zero of the reference time base.
    epoch: Option<Instant>,
    /// Highest extended sequence number received.
    highest: Option<u64>,
    /// Lowest extended sequence number still held in `ring`.
    start: u64,
    /// First extended sequence number the next feedback starts at.
    report_from: u64,
    /// Feedback packet count (draft 3.1), incremented per packet written.
    fb_count: u8,
    last_sent: Option<Instant>,
    /// The last feedback was split: the rest is due at once.
    flush: bool,
    /// Receive deltas of the packet being written (they follow all the chunks).
    deltas: Vec<u8>,
    stats: TwccRecorderStats,
}

/// Counters of a [`TwccRecorder`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TwccRecorderStats {
    /// Packets recorded.
    pub received: u64,
    /// Packets whose sequence number had already arrived (ignored).
    pub duplicates: u64,
    /// Packets older than the history (ignored).
    pub too_old: u64,
    /// Feedback packets written.
    pub feedback_sent: u64,
}

impl Default for TwccRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl TwccRecorder {
    /// A recorder that has seen nothing.
    pub fn new() -> Self {
        Self {
            ring: Vec::new(),
            epoch: None,
            highest: None,
            start: 0,
            report_from: 0,
            fb_count: 0,
            last_sent: None,
            flush: false,
            deltas: Vec::new(),
            stats: TwccRecorderStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> TwccRecorderStats {
        self.stats
    }

    /// Records the arrival of transport-wide sequence number `seq`.
    ///
    /// Sequence numbers are unwrapped against the highest seen (RFC 3550 A.1 style:
    /// within half the space is forward or backward). Duplicates keep the first
    /// arrival; packets older than the history are ignored; a late packet moves the
    /// next feedback's start back to it so it gets reported.
    pub fn on_packet(&mut self, seq: u16, arrival: Instant) {
        let epoch = *self.epoch.get_or_insert(arrival);
        let micros = arrival.saturating_duration_since(epoch).as_micros();
        let t = u64::try_from(micros)
            .unwrap_or(u64::MAX - 1)
            .min(u64::MAX - 1)
            + 1;
        if self.ring.is_empty() {
            self.ring = vec![0; HISTORY];
        }
        let Some(highest) = self.highest else {
            let ext = EXT_BASE + u64::from(seq);
            self.highest = Some(ext);
            self.start = ext;
            self.report_from = ext;
            self.set(ext, t);
            self.stats.received += 1;
            return;
        };
        let diff = seq.wrapping_sub(highest as u16) as i16;
        let ext = highest.wrapping_add_signed(i64::from(diff));
        if ext > highest {
            // Forget what the new window no longer holds, and mark the gap as not
            // received. At most HISTORY slots, and only on a jump is it more than one.
            let window_start = (ext + 1).saturating_sub(HISTORY as u64);
            for s in (highest + 1).max(window_start)..ext {
                self.set(s, 0);
            }
            self.start = self.start.max(window_start);
            self.set(ext, t);
            self.highest = Some(ext);
            if self.report_from < self.start {
                // Unreported packets fell out of the history (feedback was not polled
                // for a long time, or the sequence jumped): they cannot be reported
                // any more, so start at the oldest packet still known to be received
                // rather than calling the forgotten ones lost.
                self.report_from = (self.start..=ext)
                    .find(|&s| self.arrival(s).is_some())
                    .unwrap_or(ext);
            }
        } else if ext < self.start {
            self.stats.too_old += 1;
            return;
        } else if self.arrival(ext).is_some() {
            self.stats.duplicates += 1;
            return;
        } else {
            self.set(ext, t);
            self.report_from = self.report_from.min(ext);
        }
        self.stats.received += 1;
    }

    /// When [`Self::poll_feedback`] next has something to send, if anything is
    /// pending. A time in the past means "now".
    pub fn poll_timeout(&self) -> Option<Instant> {
        let highest = self.highest?;
        if self.report_from > highest {
            return None;
        }
        let last = self.last_sent.or(self.epoch)?;
        if self.flush || highest + 1 - self.report_from >= FORCE_FEEDBACK_PACKETS {
            return Some(last);
        }
        Some(last + FEEDBACK_INTERVAL)
    }

    /// Appends one feedback packet to `out` if one is due at `now`, and returns
    /// whether it did. Call again until it returns `false`: when more packets are
    /// pending than fit in [`MAX_FEEDBACK_LEN`], the rest follows in further packets.
    ///
    /// `sender_ssrc` is our RTCP SSRC on the transport; `media_ssrc` any of the
    /// publisher's media SSRCs (the feedback is transport-wide, libwebrtc does not
    /// route it by this field).
    #[must_use]
    pub fn poll_feedback(
        &mut self,
        now: Instant,
        sender_ssrc: u32,
        media_ssrc: u32,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(highest) = self.highest else {
            return false;
        };
        match self.poll_timeout() {
            Some(due) if now >= due => {}
            _ => return false,
        }
        let next = self.write_packet(out, sender_ssrc, media_ssrc, self.report_from, highest);
        self.report_from = next;
        self.fb_count = self.fb_count.wrapping_add(1);
        self.last_sent = Some(now);
        self.flush = next <= highest;
        self.stats.feedback_sent += 1;
        true
    }

    fn set(&mut self, ext: u64, value: u64) {
        if let Some(slot) = self.ring.get_mut((ext & HISTORY_MASK) as usize) {
            *slot = value;
        }
    }

    /// Arrival in microseconds since the epoch, if `ext` (within the window) arrived.
    fn arrival(&self, ext: u64) -> Option<u64> {
        match self.ring.get((ext & HISTORY_MASK) as usize) {
            Some(&t) if t != 0 => Some(t - 1),
            _ => None,
        }
    }

    /// Writes one feedback packet for `from..=to` (or a prefix of it, when it does not
    /// fit) and returns the first sequence number not reported. `to` has arrived.
    fn write_packet(
        &mut self,
        out: &mut Vec<u8>,
        sender_ssrc: u32,
        media_ssrc: u32,
        from: u64,
        to: u64,
    ) -> u64 {
        let begin = out.len();
        // Header (length and P bit patched at the end), SSRCs, base sequence number,
        // status count (patched), reference time and feedback packet count.
        out.extend_from_slice(&[0x80 | FMT_TCC, PT_RTPFB, 0, 0]);
        out.extend_from_slice(&sender_ssrc.to_be_bytes());
        out.extend_from_slice(&media_ssrc.to_be_bytes());
        out.extend_from_slice(&(from as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        // The reference time is the first received packet's arrival rounded down to
        // 64 ms (as libwebrtc does), and the first delta is relative to it, so that
        // delta is in 0..=256 ticks and always fits.
        let first_us = (from..=to).find_map(|s| self.arrival(s)).unwrap_or(0);
        let reference = first_us / REFERENCE_TICK_US;
        let [_, r0, r1, r2] = ((reference & REFERENCE_MASK) as u32).to_be_bytes();
        out.extend_from_slice(&[r0, r1, r2, self.fb_count]);
        // Running receive time, advanced by the *quantized* deltas so that rounding
        // errors do not accumulate (draft 3.1.5; libwebrtc does the same).
        let mut last_us = i64::try_from(reference * REFERENCE_TICK_US).unwrap_or(i64::MAX);

        self.deltas.clear();
        let mut chunks = ChunkEncoder::new();
        let mut count: u16 = 0;
        let mut seq = from;
        while seq <= to {
            let (symbol, ticks) = match self.arrival(seq) {
                None => (NOT_RECEIVED, 0),
                Some(at) => {
                    let diff = i64::try_from(at).unwrap_or(i64::MAX) - last_us;
                    // Round to the nearest tick, halves away from zero.
                    let half = DELTA_TICK_US / 2;
                    let ticks = if diff >= 0 {
                        (diff + half) / DELTA_TICK_US
                    } else {
                        (diff - half) / DELTA_TICK_US
                    };
                    match i16::try_from(ticks) {
                        Ok(t) if (0..=255).contains(&t) => (SMALL_DELTA, t),
                        Ok(t) => (LARGE_DELTA, t),
                        // More than 8.19 s from the previous packet (e.g. a late
                        // packet re-reported next to new ones): end this feedback
                        // here and start the next one with a new reference time.
                        // Never with nothing written: the first delta always fits.
                        Err(_) if count > 0 => break,
                        Err(_) => (LARGE_DELTA, if ticks < 0 { i16::MIN } else { i16::MAX }),
                    }
                }
            };
            let delta_len = usize::from(symbol);
            // Worst case after this status: one chunk emitted now and one for the
            // remainder at the end, plus up to 3 bytes of padding.
            let projected = (out.len() - begin) + 4 + self.deltas.len() + delta_len + 3;
            if count > 0 && projected > MAX_FEEDBACK_LEN {
                break;
            }
            chunks.add(symbol, out);
            match symbol {
                SMALL_DELTA => self.deltas.push(ticks as u8),
                LARGE_DELTA => self.deltas.extend_from_slice(&ticks.to_be_bytes()),
                _ => {}
            }
            if symbol != NOT_RECEIVED {
                last_us += i64::from(ticks) * DELTA_TICK_US;
            }
            count += 1;
            seq += 1;
        }
        chunks.finish(out);
        out.extend_from_slice(&self.deltas);

        // Pad to 32 bits with the P bit and the count in the last byte
        // (RFC 3550 6.4.1), as libwebrtc writes it.
        let unpadded = out.len() - begin;
        let pad = (4 - unpadded % 4) % 4;
        if pad > 0 {
            out.extend(std::iter::repeat_n(0, pad - 1));
            out.push(pad as u8);
            if let Some(b0) = out.get_mut(begin) {
                *b0 |= 0x20;
            }
        }
        let words = ((out.len() - begin) / 4 - 1) as u16;
        if let Some(len) = out.get_mut(begin + 2..begin + 4) {
            len.copy_from_slice(&words.to_be_bytes());
        }
        if let Some(c) = out.get_mut(begin + 14..begin + 16) {
            c.copy_from_slice(&count.to_be_bytes());
        }
        seq
    }
}

/// Packet status chunk encoder (draft 3.1.2-3.1.4), the same greedy scheme as
/// libwebrtc's `LastChunk`: statuses accumulate until the next one fits no chunk
/// type, then the longest chunk that holds them is emitted — a run-length chunk if
/// all are equal (up to 8191), a one-bit status vector for 14 statuses without large
/// deltas, otherwise a two-bit vector of the first 7 (the rest carry over).
struct ChunkEncoder {
    symbols: [u8; ONE_BIT_CAPACITY],
    len: usize,
    all_same: bool,
    has_large: bool,
}

const RUN_LENGTH_CAPACITY: usize = 0x1FFF;
const ONE_BIT_CAPACITY: usize = 14;
const TWO_BIT_CAPACITY: usize = 7;

impl ChunkEncoder {
    fn new() -> Self {
        Self {
            symbols: [0; ONE_BIT_CAPACITY],
            len: 0,
            all_same: true,
            has_large: false,
        }
    }

    fn can_add(&self, symbol: u8) -> bool {
        let first = self.symbols.first().copied().unwrap_or(symbol);
        self.len < TWO_BIT_CAPACITY
            || (self.len < ONE_BIT_CAPACITY && !self.has_large && symbol != LARGE_DELTA)
            || (self.len < RUN_LENGTH_CAPACITY && self.all_same && first == symbol)
    }

    fn add(&mut self, symbol: u8, out: &mut Vec<u8>) {
        if !self.can_add(symbol) {
            self.emit(out);
        }
        if let Some(s) = self.symbols.get_mut(self.len) {
            *s = symbol;
        }
        self.len += 1;
        self.all_same = self.all_same && self.symbols.first() == Some(&symbol);
        self.has_large |= symbol == LARGE_DELTA;
    }

    fn emit(&mut self, out: &mut Vec<u8>) {
        if self.all_same {
            out.extend_from_slice(&self.run_length().to_be_bytes());
            self.clear();
        } else if self.len == ONE_BIT_CAPACITY {
            out.extend_from_slice(&self.one_bit().to_be_bytes());
            self.clear();
        } else {
            // 7 < len < 14 with a large delta among them: two-bit vector of the first
            // 7, and the rest moves to the front.
            out.extend_from_slice(&self.two_bit(TWO_BIT_CAPACITY).to_be_bytes());
            self.symbols.copy_within(TWO_BIT_CAPACITY.., 0);
            self.len -= TWO_BIT_CAPACITY;
            let kept = self.symbols.get(..self.len).unwrap_or(&[]);
            let first = kept.first().copied();
            self.all_same = kept.iter().all(|&s| Some(s) == first);
            self.has_large = kept.contains(&LARGE_DELTA);
        }
    }

    /// Emits what is left as the last chunk. Vector chunks are filled up with "not
    /// received", which lies past the status count and so is not read.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.len == 0 {
            return;
        }
        let chunk = if self.all_same {
            self.run_length()
        } else if self.len <= TWO_BIT_CAPACITY {
            self.two_bit(self.len)
        } else {
            self.one_bit()
        };
        out.extend_from_slice(&chunk.to_be_bytes());
        self.clear();
    }

    fn clear(&mut self) {
        self.len = 0;
        self.all_same = true;
        self.has_large = false;
    }

    /// Draft 3.1.3: T=0, 2-bit symbol, 13-bit run length.
    fn run_length(&self) -> u16 {
        let symbol = u16::from(self.symbols.first().copied().unwrap_or(0));
        (symbol << 13) | (self.len as u16 & 0x1FFF)
    }

    /// Draft 3.1.4: T=1, S=0, 14 one-bit symbols (1 = received, small delta).
    fn one_bit(&self) -> u16 {
        let mut chunk = 0x8000;
        for (i, &s) in self.symbols.iter().take(self.len).enumerate() {
            chunk |= u16::from(s & 1) << (ONE_BIT_CAPACITY - 1 - i);
        }
        chunk
    }

    /// Draft 3.1.4: T=1, S=1, 7 two-bit symbols.
    fn two_bit(&self, n: usize) -> u16 {
        let mut chunk = 0xC000;
        for (i, &s) in self
            .symbols
            .iter()
            .take(n.min(TWO_BIT_CAPACITY))
            .enumerate()
        {
            chunk |= u16::from(s & 3) << (2 * (TWO_BIT_CAPACITY - 1 - i));
        }
        chunk
    }
}

/// One received packet in a [`TwccFeedback`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwccArrival {
    /// Transport-wide sequence number.
    pub seq: u16,
    /// Receive time relative to the feedback's reference time, in microseconds: the
    /// sum of the receive deltas up to and including this packet's (draft 3.1.5).
    /// Negative deltas make it go backwards for reordered packets.
    pub arrival_us: i64,
}

/// A transport-cc feedback packet (draft 3.1), parsed.
///
/// Packets `base_seq .. base_seq + status_count` (wrapping) are reported: those in
/// `received` arrived, the others did not (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwccFeedback {
    pub sender_ssrc: u32,
    pub media_ssrc: u32,
    pub base_seq: u16,
    pub status_count: u16,
    /// 24-bit reference time in 64 ms units, in the feedback sender's time base
    /// (wraps every 2^24 * 64 ms, ~12.4 days).
    pub reference_time: u32,
    /// Feedback packet count (wraps at 256).
    pub fb_count: u8,
    /// The received packets, in report (sequence) order.
    pub received: Vec<TwccArrival>,
}

impl TwccFeedback {
    /// Parses one RTCP packet (as framed by `parse_compound`). `None` if it is not
    /// transport-cc or is malformed: too short, status count 0 (libwebrtc rejects it
    /// too), chunks or deltas running past the end, or the reserved symbol 3.
    /// Bounds-checked throughout; allocates only `received`, which is no larger
    /// than the delta bytes present.
    pub fn parse(packet: &[u8]) -> Option<Self> {
        let (&b0, &pt) = (packet.first()?, packet.get(1)?);
        if b0 >> 6 != 2 || pt != PT_RTPFB || b0 & 0x1F != FMT_TCC {
            return None;
        }
        let mut end = packet.len();
        if end < FIXED_LEN {
            return None;
        }
        if b0 & 0x20 != 0 {
            // RFC 3550 6.4.1: the last octet counts the padding, itself included.
            let pad = usize::from(*packet.last()?);
            if pad == 0 || pad > end - FIXED_LEN {
                return None;
            }
            end -= pad;
        }
        let body = packet.get(..end)?;
        let u32_at = |at: usize| -> Option<u32> {
            body.get(at..at + 4)
                .and_then(|s| s.first_chunk::<4>())
                .map(|b| u32::from_be_bytes(*b))
        };
        let u16_at = |at: usize| -> Option<u16> {
            body.get(at..at + 2)
                .and_then(|s| s.first_chunk::<2>())
                .map(|b| u16::from_be_bytes(*b))
        };
        let sender_ssrc = u32_at(4)?;
        let media_ssrc = u32_at(8)?;
        let base_seq = u16_at(12)?;
        let status_count = u16_at(14)?;
        let word = u32_at(16)?;
        if status_count == 0 {
            return None;
        }

        // First pass: where the chunks end and the deltas begin.
        let mut pos = FIXED_LEN;
        let mut remaining = usize::from(status_count);
        while remaining > 0 {
            let chunk = u16_at(pos)?;
            remaining -= chunk_statuses(chunk).min(remaining);
            pos += 2;
        }

        // Second pass: statuses and deltas.
        let mut received = Vec::with_capacity(usize::from(status_count).min(end - pos));
        let mut dpos = pos;
        let mut cum_us: i64 = 0;
        let mut seq = base_seq;
        let mut remaining = usize::from(status_count);
        pos = FIXED_LEN;
        while remaining > 0 {
            let chunk = u16_at(pos)?;
            pos += 2;
            let n = chunk_statuses(chunk).min(remaining);
            remaining -= n;
            if chunk & 0x8000 == 0 && (chunk >> 13) & 3 == u16::from(NOT_RECEIVED) {
                // A run of losses: nothing to read.
                seq = seq.wrapping_add(n as u16);
                continue;
            }
            for i in 0..n {
                let ticks = match chunk_symbol(chunk, i) {
                    NOT_RECEIVED => None,
                    SMALL_DELTA => {
                        let d = *body.get(dpos)?;
                        dpos += 1;
                        Some(i64::from(d))
                    }
                    LARGE_DELTA => {
                        let d = u16_at(dpos)? as i16;
                        dpos += 2;
                        Some(i64::from(d))
                    }
                    _ => return None,
                };
                if let Some(t) = ticks {
                    cum_us += t * DELTA_TICK_US;
                    received.push(TwccArrival {
                        seq,
                        arrival_us: cum_us,
                    });
                }
                seq = seq.wrapping_add(1);
            }
        }
        Some(Self {
            sender_ssrc,
            media_ssrc,
            base_seq,
            status_count,
            reference_time: word >> 8,
            fb_count: word as u8,
            received,
        })
    }

    /// The reference time in microseconds (not unwrapped).
    pub fn reference_us(&self) -> i64 {
        i64::from(self.reference_time) * REFERENCE_TICK_US as i64
    }

    /// Every reported packet in order: `(seq, Some(arrival_us))` when received (see
    /// [`TwccArrival::arrival_us`]), `(seq, None)` when reported not received.
    pub fn packets(&self) -> TwccPackets<'_> {
        TwccPackets {
            feedback: self,
            done: 0,
            next_received: 0,
        }
    }
}

/// Iterator over all packets of a [`TwccFeedback`], see [`TwccFeedback::packets`].
#[derive(Debug, Clone)]
pub struct TwccPackets<'a> {
    feedback: &'a TwccFeedback,
    done: u16,
    next_received: usize,
}

impl Iterator for TwccPackets<'_> {
    type Item = (u16, Option<i64>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done >= self.feedback.status_count {
            return None;
        }
        let seq = self.feedback.base_seq.wrapping_add(self.done);
        self.done += 1;
        match self.feedback.received.get(self.next_received) {
            Some(r) if r.seq == seq => {
                self.next_received += 1;
                Some((seq, Some(r.arrival_us)))
            }
            _ => Some((seq, None)),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.feedback.status_count - self.done);
        (n, Some(n))
    }
}

impl ExactSizeIterator for TwccPackets<'_> {}

/// How many statuses a chunk describes (draft 3.1.3, 3.1.4).
fn chunk_statuses(chunk: u16) -> usize {
    match chunk >> 14 {
        0 | 1 => usize::from(chunk & 0x1FFF),
        2 => ONE_BIT_CAPACITY,
        _ => TWO_BIT_CAPACITY,
    }
}

/// Symbol `i` of a chunk (`i` below [`chunk_statuses`]).
fn chunk_symbol(chunk: u16, i: usize) -> u8 {
    let v = match chunk >> 14 {
        0 | 1 => chunk >> 13,
        2 => (chunk >> (ONE_BIT_CAPACITY - 1).saturating_sub(i)) & 1,
        _ => chunk >> (2 * (TWO_BIT_CAPACITY - 1).saturating_sub(i)),
    };
    (v & 3) as u8
}

#[cfg(test)]
mod tests;
