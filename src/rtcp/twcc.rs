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
mod tests {
    use bytes::Bytes;
    use rand::{Rng, SeedableRng};
    use rtcp::transport_feedbacks::transport_layer_cc::{
        PacketStatusChunk, RecvDelta, RunLengthChunk, StatusChunkTypeTcc, StatusVectorChunk,
        SymbolSizeTypeTcc, SymbolTypeTcc, TransportLayerCc,
    };

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Parses with the `rtcp` crate: one `TransportLayerCc` per RTCP packet.
    fn crate_parse(buf: &[u8]) -> Vec<TransportLayerCc> {
        rtcp::packet::unmarshal(&mut Bytes::copy_from_slice(buf))
            .expect("crate unmarshal")
            .iter()
            .map(|p| {
                p.as_any()
                    .downcast_ref::<TransportLayerCc>()
                    .expect("transport-cc")
                    .clone()
            })
            .collect()
    }

    /// The crate's view flattened to `(seq, cumulative receive time in us)`.
    fn crate_statuses(cc: &TransportLayerCc) -> Vec<(u16, Option<i64>)> {
        let count = usize::from(cc.packet_status_count);
        let mut out = Vec::new();
        let mut deltas = cc.recv_deltas.iter();
        let mut cum = 0;
        let mut seq = cc.base_sequence_number;
        for chunk in &cc.packet_chunks {
            let symbols = match chunk {
                PacketStatusChunk::RunLengthChunk(r) => {
                    vec![r.packet_status_symbol; usize::from(r.run_length)]
                }
                PacketStatusChunk::StatusVectorChunk(v) => v.symbol_list.clone(),
            };
            for s in symbols {
                if out.len() == count {
                    break;
                }
                match s {
                    SymbolTypeTcc::PacketNotReceived => out.push((seq, None)),
                    SymbolTypeTcc::PacketReceivedSmallDelta
                    | SymbolTypeTcc::PacketReceivedLargeDelta => {
                        let d = deltas.next().expect("a delta per received packet");
                        assert_eq!(d.type_tcc_packet, s);
                        cum += d.delta;
                        out.push((seq, Some(cum)));
                    }
                    SymbolTypeTcc::PacketReceivedWithoutDelta => panic!("reserved symbol"),
                }
                seq = seq.wrapping_add(1);
            }
        }
        assert_eq!(out.len(), count, "chunks cover the status count");
        assert!(deltas.next().is_none(), "no extra deltas");
        out
    }

    /// Polls until nothing is due, one buffer per feedback packet.
    fn drain(rec: &mut TwccRecorder, now: Instant) -> Vec<Vec<u8>> {
        let mut packets = Vec::new();
        loop {
            let mut out = Vec::new();
            if !rec.poll_feedback(now, 0x1111, 0x2222, &mut out) {
                return packets;
            }
            assert!(out.len() <= MAX_FEEDBACK_LEN, "{} bytes", out.len());
            assert_eq!(out.len() % 4, 0);
            packets.push(out);
        }
    }

    /// Checks one feedback packet against what was received, with both parsers,
    /// and returns the reported statuses with absolute receive times (us since the
    /// recorder's epoch).
    fn check(buf: &[u8], truth: &dyn Fn(u16) -> Option<u64>) -> Vec<(u16, Option<i64>)> {
        let ccs = crate_parse(buf);
        assert_eq!(ccs.len(), 1);
        let cc = &ccs[0];
        assert_eq!((cc.sender_ssrc, cc.media_ssrc), (0x1111, 0x2222));
        let statuses = crate_statuses(cc);
        let ours = TwccFeedback::parse(buf).expect("our parser");
        assert_eq!(ours.packets().collect::<Vec<_>>(), statuses);
        assert_eq!(ours.reference_time, cc.reference_time);
        assert_eq!(ours.fb_count, cc.fb_pkt_count);
        assert!(
            statuses.iter().any(|s| s.1.is_some()),
            "some packet received"
        );
        statuses
            .into_iter()
            .map(|(seq, cum)| {
                let Some(cum) = cum else {
                    // Never claim a packet received that was not; a packet reported
                    // lost really had not arrived.
                    assert_eq!(truth(seq), None, "seq {seq} reported lost");
                    return (seq, None);
                };
                let at = i64::from(cc.reference_time) * 64_000 + cum;
                let real = truth(seq).unwrap_or_else(|| panic!("seq {seq} not received"));
                // Quantized deltas accumulate without drift: within half a tick
                // (modulo the 24-bit reference time wrap).
                let wrap = (REFERENCE_MASK as i64 + 1) * 64_000;
                let err = (at - real as i64).rem_euclid(wrap);
                assert!(err <= 125 || wrap - err <= 125, "seq {seq}: {at} vs {real}");
                (seq, Some(at))
            })
            .collect()
    }

    #[test]
    fn consecutive_packets_one_feedback() {
        let t0 = Instant::now();
        let mut rec = TwccRecorder::new();
        assert_eq!(rec.poll_timeout(), None);
        for i in 0..10u16 {
            // 1 ms apart, plus 150 us of jitter on every other packet.
            let jitter = Duration::from_micros(if i % 2 == 1 { 150 } else { 0 });
            rec.on_packet(100 + i, t0 + MS * u32::from(i) + jitter);
        }
        // Due one interval after the first packet.
        assert_eq!(rec.poll_timeout(), Some(t0 + FEEDBACK_INTERVAL));
        assert!(drain(&mut rec, t0 + 20 * MS).is_empty(), "not due yet");
        let fb = drain(&mut rec, t0 + FEEDBACK_INTERVAL);
        assert_eq!(fb.len(), 1);
        let cc = &crate_parse(&fb[0])[0];
        assert_eq!(cc.base_sequence_number, 100);
        assert_eq!(cc.packet_status_count, 10);
        assert_eq!(cc.reference_time, 0);
        assert_eq!(cc.fb_pkt_count, 0);
        // 10 small deltas: one run-length chunk. The first is 0 (the first packet
        // is the time base's zero); then 1150 us rounds to 5 ticks (1250) and the
        // next is measured from that quantized time: 2000 - 1250 = 750.
        assert_eq!(
            cc.packet_chunks,
            vec![PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                packet_status_symbol: SymbolTypeTcc::PacketReceivedSmallDelta,
                run_length: 10,
            })]
        );
        let deltas: Vec<i64> = cc.recv_deltas.iter().map(|d| d.delta).collect();
        assert_eq!(
            deltas,
            [0, 1250, 750, 1250, 750, 1250, 750, 1250, 750, 1250]
        );
        assert_eq!(rec.poll_timeout(), None, "everything reported");
        // The next feedback counts on and starts after the last reported packet.
        rec.on_packet(110, t0 + 60 * MS);
        let fb = drain(&mut rec, t0 + 100 * MS);
        let cc = &crate_parse(&fb[0])[0];
        assert_eq!((cc.base_sequence_number, cc.packet_status_count), (110, 1));
        assert_eq!(cc.fb_pkt_count, 1);
        // 60 ms is in the first 64 ms reference tick: delta 60 ms, a small one.
        assert_eq!(cc.recv_deltas[0].delta, 60_000);
        assert_eq!(rec.stats().feedback_sent, 2);
    }

    #[test]
    fn sequence_number_wraps() {
        let t0 = Instant::now();
        let mut rec = TwccRecorder::new();
        let mut truth = std::collections::HashMap::new();
        for i in 0..20u16 {
            let seq = 65_530u16.wrapping_add(i);
            rec.on_packet(seq, t0 + MS * u32::from(i));
            truth.insert(seq, u64::from(i) * 1000);
        }
        let fb = drain(&mut rec, t0 + 50 * MS);
        let got = check(&fb[0], &|s| truth.get(&s).copied());
        let seqs: Vec<u16> = got.iter().map(|s| s.0).collect();
        let want: Vec<u16> = (0..20u16).map(|i| 65_530u16.wrapping_add(i)).collect();
        assert_eq!(seqs, want);
    }

    #[test]
    fn reference_time_wraps_at_24_bits() {
        let t0 = Instant::now();
        let wrap = Duration::from_micros((REFERENCE_MASK + 1) * REFERENCE_TICK_US);
        let mut rec = TwccRecorder::new();
        rec.on_packet(1, t0);
        let fb = drain(&mut rec, t0 + FEEDBACK_INTERVAL);
        assert_eq!(crate_parse(&fb[0])[0].reference_time, 0);
        // ~12.4 days later, just before and just after the wrap.
        let before = t0 + wrap - 10 * MS;
        rec.on_packet(2, before);
        let fb = drain(&mut rec, before);
        let cc = &crate_parse(&fb[0])[0];
        assert_eq!(cc.reference_time, 0xFF_FFFF);
        assert_eq!(cc.recv_deltas[0].delta, 54_000);
        let after = t0 + wrap + 70 * MS;
        rec.on_packet(3, after);
        let fb = drain(&mut rec, after);
        let cc = &crate_parse(&fb[0])[0];
        assert_eq!(cc.reference_time, 1, "wrapped to 0 and one more 64 ms tick");
        assert_eq!(cc.recv_deltas[0].delta, 6_000);
    }

    #[test]
    fn late_packet_is_reported_lost_then_received() {
        let t0 = Instant::now();
        let mut rec = TwccRecorder::new();
        let mut truth = std::collections::HashMap::new();
        for seq in (1..=10u16).filter(|&s| s != 5) {
            rec.on_packet(seq, t0 + MS * u32::from(seq));
            truth.insert(seq, u64::from(seq) * 1000 - 1000);
        }
        let fb = drain(&mut rec, t0 + 55 * MS);
        let got = check(&fb[0], &|s| truth.get(&s).copied());
        assert_eq!(got.len(), 10);
        assert_eq!(got[4], (5, None));
        // 5 arrives late: the next feedback starts from it and covers 6..=10 again.
        rec.on_packet(5, t0 + 60 * MS);
        truth.insert(5, 59_000);
        let fb = drain(&mut rec, t0 + 105 * MS);
        let got = check(&fb[0], &|s| truth.get(&s).copied());
        let seqs: Vec<u16> = got.iter().map(|s| s.0).collect();
        assert_eq!(seqs, [5, 6, 7, 8, 9, 10]);
        assert!(got.iter().all(|s| s.1.is_some()));
    }

    #[test]
    fn reordering_within_a_feedback_uses_negative_deltas() {
        let t0 = Instant::now();
        let mut rec = TwccRecorder::new();
        let order = [1u16, 2, 4, 3, 5, 7, 6];
        let mut truth = std::collections::HashMap::new();
        for (i, &seq) in order.iter().enumerate() {
            let at = 2000 * i as u64;
            rec.on_packet(seq, t0 + Duration::from_micros(at));
            truth.insert(seq, at);
        }
        let fb = drain(&mut rec, t0 + 50 * MS);
        check(&fb[0], &|s| truth.get(&s).copied());
        let cc = &crate_parse(&fb[0])[0];
        let large: Vec<i64> = cc
            .recv_deltas
            .iter()
            .filter(|d| d.type_tcc_packet == SymbolTypeTcc::PacketReceivedLargeDelta)
            .map(|d| d.delta)
            .collect();
        // 3 after 4, 6 after 7: each 2 ms earlier than the previous in seq order.
        assert_eq!(large, [-2000, -2000]);
    }

    #[test]
    fn big_gaps_use_run_length_chunks() {
        let t0 = Instant::now();
        let mut rec = TwccRecorder::new();
        rec.on_packet(1, t0);
        rec.on_packet(3000, t0 + MS);
        rec.on_packet(3001, t0 + 2 * MS);
        let fb = drain(&mut rec, t0 + 50 * MS);
        let truth = |s: u16| match s {
            1 => Some(0),
            3000 => Some(1000),
            3001 => Some(2000),
            _ => None,
        };
        let got = check(&fb[0], &truth);
        assert_eq!(got.len(), 3001);
        let cc = &crate_parse(&fb[0])[0];
        assert!(cc.packet_chunks.iter().any(|c| matches!(c,
            PacketStatusChunk::RunLengthChunk(r)
                if r.packet_status_symbol == SymbolTypeTcc::PacketNotReceived
                    && r.run_length >= 2900)));
        assert!(fb[0].len() < 40, "{} bytes", fb[0].len());

        // A jump past the history: the forgotten range is not reported at all.
        rec.on_packet(3001 + 5000, t0 + 60 * MS);
        let fb = drain(&mut rec, t0 + 100 * MS);
        let cc = &crate_parse(&fb[0])[0];
        assert_eq!((cc.base_sequence_number, cc.packet_status_count), (8001, 1));
        // A jump within the history is reported as lost packets.
        rec.on_packet(8001 + 1000, t0 + 110 * MS);
        let fb = drain(&mut rec, t0 + 150 * MS);
        let cc = &crate_parse(&fb[0])[0];
        assert_eq!(
            (cc.base_sequence_number, cc.packet_status_count),
            (8002, 1000)
        );
    }

    #[test]
    fn large_deltas_and_split_on_overflow() {
        let t0 = Instant::now();
        let mut rec = TwccRecorder::new();
        // 100 ms apart: large (2-byte) deltas.
        rec.on_packet(1, t0);
        rec.on_packet(2, t0 + 100 * MS);
        rec.on_packet(3, t0 + 200 * MS);
        let fb = drain(&mut rec, t0 + 200 * MS);
        let cc = &crate_parse(&fb[0])[0];
        let deltas: Vec<_> = cc
            .recv_deltas
            .iter()
            .map(|d| (d.type_tcc_packet, d.delta))
            .collect();
        assert_eq!(
            deltas,
            [
                (SymbolTypeTcc::PacketReceivedSmallDelta, 0),
                (SymbolTypeTcc::PacketReceivedLargeDelta, 100_000),
                (SymbolTypeTcc::PacketReceivedLargeDelta, 100_000),
            ]
        );
        // A late packet 10 s after its neighbours: more than a 16-bit delta holds, so
        // the feedback is split and the second one has its own reference time.
        rec.on_packet(5, t0 + 300 * MS);
        rec.on_packet(4, t0 + 10_300 * MS);
        let fb = drain(&mut rec, t0 + 10_300 * MS);
        let truth = |s: u16| match s {
            4 => Some(10_300_000),
            5 => Some(300_000),
            _ => None,
        };
        assert_eq!(fb.len(), 2);
        let first = check(&fb[0], &truth);
        let second = check(&fb[1], &truth);
        assert_eq!(first.iter().map(|s| s.0).collect::<Vec<_>>(), [4]);
        assert_eq!(second.iter().map(|s| s.0).collect::<Vec<_>>(), [5]);
    }

    #[test]
    fn many_packets_are_split_and_force_early_feedback() {
        let t0 = Instant::now();
        let mut rec = TwccRecorder::new();
        let mut truth = std::collections::HashMap::new();
        let n = 3000u16;
        for i in 0..n {
            // Alternating small and large deltas, with some losses, so that every
            // chunk type appears and deltas take space.
            if i % 17 == 3 {
                continue;
            }
            let at = u64::from(i) * 1000 + if i % 2 == 1 { 70_000 } else { 0 };
            rec.on_packet(i, t0 + Duration::from_micros(at));
            truth.insert(i, at);
        }
        // Far more than FORCE_FEEDBACK_PACKETS: due without waiting for the interval.
        assert!(rec.poll_timeout().is_some_and(|t| t <= t0 + 100 * MS));
        let fb = drain(&mut rec, t0 + 3100 * MS);
        assert!(fb.len() > 3, "{} packets", fb.len());
        let mut seen = Vec::new();
        for (i, p) in fb.iter().enumerate() {
            assert_eq!(crate_parse(p)[0].fb_pkt_count, i as u8);
            seen.extend(
                check(p, &|s| truth.get(&s).copied())
                    .into_iter()
                    .map(|s| s.0),
            );
        }
        assert_eq!(seen, (0..n).collect::<Vec<_>>(), "contiguous, each once");
        let kinds: Vec<_> = fb
            .iter()
            .flat_map(|p| crate_parse(p)[0].packet_chunks.clone())
            .map(|c| match c {
                PacketStatusChunk::RunLengthChunk(_) => 0,
                PacketStatusChunk::StatusVectorChunk(v) => 1 + v.symbol_size as u8,
            })
            .collect();
        assert!(kinds.contains(&2), "two-bit vectors");
    }

    #[test]
    fn duplicates_and_too_old_are_ignored() {
        let t0 = Instant::now();
        let mut rec = TwccRecorder::new();
        rec.on_packet(10_000, t0);
        rec.on_packet(10_000, t0 + 5 * MS);
        rec.on_packet(10_001, t0 + MS);
        rec.on_packet(10_000 + HISTORY as u16, t0 + 2 * MS);
        rec.on_packet(10_000, t0 + 3 * MS);
        let s = rec.stats();
        assert_eq!((s.received, s.duplicates, s.too_old), (3, 1, 1));
        // The duplicate kept the first arrival time.
        let fb = drain(&mut rec, t0 + 50 * MS);
        let got = check(&fb[0], &|s| match s {
            10_001 => Some(1000),
            x if x == 10_000 + HISTORY as u16 => Some(2000),
            _ => None,
        });
        assert_eq!(got.first().map(|s| s.0), Some(10_001));
    }

    /// Random loss, reordering, duplicates and jitter over many feedback rounds:
    /// both parsers agree, nothing lost is claimed received, times are exact to half
    /// a tick, and every received packet is reported received at least once.
    #[test]
    fn randomized_against_the_crate() {
        let t0 = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut rec = TwccRecorder::new();
        let mut truth: std::collections::HashMap<u16, u64> = Default::default();
        let mut reported: std::collections::HashSet<u16> = Default::default();
        let mut held: Vec<u16> = Vec::new();
        let mut now_us = 0u64;
        let mut seq = 60_000u16;
        let mut fb_count = 0u8;
        // The first packet fixes the epoch at t0, which `truth` counts from.
        rec.on_packet(seq.wrapping_sub(1), t0);
        truth.insert(seq.wrapping_sub(1), 0);
        for _ in 0..20_000 {
            now_us += rng.gen_range(0..3000);
            let now = t0 + Duration::from_micros(now_us);
            if rng.gen_bool(0.05) {
                held.push(seq);
            } else if !rng.gen_bool(0.05) {
                rec.on_packet(seq, now);
                truth.entry(seq).or_insert(now_us);
            }
            if rng.gen_bool(0.02) {
                rec.on_packet(seq, now);
                truth.entry(seq).or_insert(now_us);
            }
            if !held.is_empty() && rng.gen_bool(0.2) {
                let s = held.swap_remove(0);
                rec.on_packet(s, now);
                truth.entry(s).or_insert(now_us);
            }
            seq = seq.wrapping_add(1);
            for p in drain(&mut rec, now) {
                assert_eq!(crate_parse(&p)[0].fb_pkt_count, fb_count);
                fb_count = fb_count.wrapping_add(1);
                for (s, at) in check(&p, &|s| truth.get(&s).copied()) {
                    if at.is_some() {
                        reported.insert(s);
                    }
                }
            }
        }
        for p in drain(
            &mut rec,
            t0 + Duration::from_micros(now_us) + FEEDBACK_INTERVAL,
        ) {
            for (s, at) in check(&p, &|s| truth.get(&s).copied()) {
                if at.is_some() {
                    reported.insert(s);
                }
            }
        }
        let missing: Vec<_> = truth.keys().filter(|s| !reported.contains(s)).collect();
        assert!(missing.is_empty(), "never reported: {missing:?}");
    }

    #[test]
    fn parses_crate_built_feedback() {
        // Chromium-like: a two-bit vector with a negative large delta, a run of
        // losses, a one-bit vector.
        let cc = TransportLayerCc {
            sender_ssrc: 1,
            media_ssrc: 2,
            base_sequence_number: 65_534,
            packet_status_count: 7 + 20 + 14,
            reference_time: 0xAB_CDEF,
            fb_pkt_count: 200,
            packet_chunks: vec![
                PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
                    type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
                    symbol_size: SymbolSizeTypeTcc::TwoBit,
                    symbol_list: vec![
                        SymbolTypeTcc::PacketReceivedSmallDelta,
                        SymbolTypeTcc::PacketReceivedLargeDelta,
                        SymbolTypeTcc::PacketNotReceived,
                        SymbolTypeTcc::PacketReceivedSmallDelta,
                        SymbolTypeTcc::PacketNotReceived,
                        SymbolTypeTcc::PacketNotReceived,
                        SymbolTypeTcc::PacketReceivedLargeDelta,
                    ],
                }),
                PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                    type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                    packet_status_symbol: SymbolTypeTcc::PacketNotReceived,
                    run_length: 20,
                }),
                PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
                    type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
                    symbol_size: SymbolSizeTypeTcc::OneBit,
                    symbol_list: (0..14)
                        .map(|i| {
                            if i % 3 == 0 {
                                SymbolTypeTcc::PacketReceivedSmallDelta
                            } else {
                                SymbolTypeTcc::PacketNotReceived
                            }
                        })
                        .collect(),
                }),
            ],
            recv_deltas: [
                (SymbolTypeTcc::PacketReceivedSmallDelta, 63_750),
                (SymbolTypeTcc::PacketReceivedLargeDelta, -8_192_000),
                (SymbolTypeTcc::PacketReceivedSmallDelta, 0),
                (SymbolTypeTcc::PacketReceivedLargeDelta, 8_191_750),
            ]
            .into_iter()
            .chain((0..5).map(|_| (SymbolTypeTcc::PacketReceivedSmallDelta, 250)))
            .map(|(type_tcc_packet, delta)| RecvDelta {
                type_tcc_packet,
                delta,
            })
            .collect(),
        };
        let buf = rtcp::packet::marshal(&[
            Box::new(cc.clone()) as Box<dyn rtcp::packet::Packet + Send + Sync>
        ])
        .expect("marshal");
        let fb = TwccFeedback::parse(&buf).expect("parse");
        assert_eq!(fb.packets().collect::<Vec<_>>(), crate_statuses(&cc));
        assert_eq!(fb.packets().len(), 41);
        assert_eq!((fb.sender_ssrc, fb.media_ssrc), (1, 2));
        assert_eq!((fb.reference_time, fb.fb_count), (0xAB_CDEF, 200));
        assert_eq!(fb.reference_us(), 0xAB_CDEF * 64_000);
        assert_eq!(
            fb.received.iter().take(4).copied().collect::<Vec<_>>(),
            [
                TwccArrival {
                    seq: 65_534,
                    arrival_us: 63_750
                },
                TwccArrival {
                    seq: 65_535,
                    arrival_us: 63_750 - 8_192_000
                },
                TwccArrival {
                    seq: 1,
                    arrival_us: 63_750 - 8_192_000
                },
                TwccArrival {
                    seq: 4,
                    arrival_us: 63_750 - 250
                },
            ]
        );
    }

    #[test]
    fn malformed_feedback_is_rejected() {
        let t0 = Instant::now();
        let mut rec = TwccRecorder::new();
        rec.on_packet(1, t0);
        rec.on_packet(3, t0 + MS);
        let good = drain(&mut rec, t0 + 50 * MS).remove(0);
        assert!(TwccFeedback::parse(&good).is_some());
        // Status count 0 (libwebrtc rejects it too).
        let mut b = good.clone();
        b[14..16].copy_from_slice(&[0, 0]);
        assert_eq!(TwccFeedback::parse(&b), None);
        // Reserved symbol 3 in a two-bit vector.
        let mut b = good.clone();
        b[20..22].copy_from_slice(&[0xFF, 0xFF]);
        assert_eq!(TwccFeedback::parse(&b), None);
        // More statuses than the chunks cover.
        let mut b = good.clone();
        b[14..16].copy_from_slice(&[0x10, 0]);
        assert_eq!(TwccFeedback::parse(&b), None);
        // Deltas cut off by the padding count.
        let mut b = good.clone();
        b[0] |= 0x20;
        let last = b.len() - 1;
        b[last] = (b.len() - 21) as u8;
        assert_eq!(TwccFeedback::parse(&b), None);
        // Padding count 0, or longer than the packet.
        b[last] = 0;
        assert_eq!(TwccFeedback::parse(&b), None);
        b[last] = 200;
        assert_eq!(TwccFeedback::parse(&b), None);
        // Wrong type, short.
        assert_eq!(TwccFeedback::parse(&good[..19]), None);
        let mut b = good.clone();
        b[1] = 206;
        assert_eq!(TwccFeedback::parse(&b), None);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x7CC);
        let t0 = Instant::now();
        let mut rec = TwccRecorder::new();
        for i in 0..300u16 {
            rec.on_packet(i.wrapping_mul(7) % 50, t0 + MS * u32::from(i));
        }
        let seeds = drain(&mut rec, t0 + Duration::from_secs(1));
        assert!(!seeds.is_empty());
        for i in 0..100_000u32 {
            let buf: Vec<u8> = if i % 2 == 0 {
                let mut b = seeds[rng.gen_range(0..seeds.len())].clone();
                for _ in 0..rng.gen_range(1..6) {
                    let at = rng.gen_range(0..b.len());
                    b[at] = rng.gen();
                }
                b.truncate(rng.gen_range(0..=b.len()));
                b
            } else {
                let mut b = vec![0x80 | FMT_TCC | if rng.gen() { 0x20 } else { 0 }, PT_RTPFB];
                b.extend((0..rng.gen_range(0..60)).map(|_| rng.gen::<u8>()));
                b
            };
            if let Some(fb) = TwccFeedback::parse(&buf) {
                assert!(fb.received.len() <= usize::from(fb.status_count));
                assert_eq!(fb.packets().count(), usize::from(fb.status_count));
            }
        }
        // The recorder under random sequence numbers and times.
        let mut rec = TwccRecorder::new();
        let mut out = Vec::new();
        let mut now = t0;
        for _ in 0..50_000 {
            now += Duration::from_micros(rng.gen_range(0..20_000));
            let at = now - Duration::from_micros(rng.gen_range(0..5_000));
            rec.on_packet(rng.gen(), at);
            out.clear();
            while rec.poll_feedback(now, 1, 2, &mut out) {
                assert!(TwccFeedback::parse(&out).is_some());
                out.clear();
            }
        }
    }
}
