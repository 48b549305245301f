//! RTCP on both sides of the worker: feedback from peers (PLI, FIR, NACK, SR, RR,
//! transport-cc) acted on, keyframe requests toward publishers (per encoding:
//! aggregated, throttled, early for a consumer that starts, repeated until answered;
//! `router::producer::keyframe`), and the periodic sender and receiver reports (RFC 3550
//! 6.4) with scores.

use std::time::{Duration, Instant};

use crate::batch::SendBatch;
use crate::channel::params::MediaKind;
use crate::channel::Event;
use crate::router::{
    Consumer, ConsumerKey, ConsumerKind, KeyframeNeed, Producer, ProducerKey, TransportKey,
};
use crate::rtcp::{self, Feedback};
use crate::stats::DropReason;
use crate::worker::core::{send_rtcp, srtp_drop_reason, WorkerCore};

impl WorkerCore {
    pub(crate) fn on_rtcp(
        &mut self,
        now: Instant,
        tk: TransportKey,
        buf: &mut [u8],
        out: &mut SendBatch,
    ) {
        let Some(t) = self.transports.get_mut(tk) else {
            return;
        };
        let Some(srtp) = t.srtp_in.as_mut() else {
            return self.drop_packet(DropReason::NotReady, Some(tk));
        };
        let len = match srtp.unprotect_rtcp(buf) {
            Ok(n) => n,
            Err(e) => return self.drop_packet(srtp_drop_reason(e), Some(tk)),
        };
        t.rtcp_in.add(len);
        let mut feedback = std::mem::take(&mut self.feedback);
        feedback.clear();
        let parsed = buf
            .get(..len)
            .map(|b| rtcp::parse_compound(b, &mut feedback));
        if !matches!(parsed, Some(Ok(()))) {
            self.drop_packet(DropReason::RtcpMalformed, Some(tk));
        }
        for fb in feedback.drain(..) {
            self.on_feedback(now, tk, fb, out);
        }
        self.feedback = feedback;
    }

    fn on_feedback(&mut self, now: Instant, tk: TransportKey, fb: Feedback, out: &mut SendBatch) {
        let Some(t) = self.transports.get(tk) else {
            return;
        };
        match fb {
            Feedback::Pli { media_ssrc, .. } => {
                let Some(&ck) = t.consumers_by_ssrc.get(&media_ssrc) else {
                    return;
                };
                let Some(c) = self.consumers.get_mut(ck) else {
                    return;
                };
                c.on_pli();
                self.totals.pli_received += 1;
                if let (Some(pk), layer) = (c.producer(), c.keyframe_layer()) {
                    self.request_keyframe(now, pk, layer, KeyframeNeed::Repair, out);
                }
            }
            Feedback::Fir { media_ssrcs, .. } => {
                let targets: Vec<ConsumerKey> = media_ssrcs
                    .iter()
                    .filter_map(|(ssrc, _)| t.consumers_by_ssrc.get(ssrc).copied())
                    .collect();
                for ck in targets {
                    let Some(c) = self.consumers.get_mut(ck) else {
                        continue;
                    };
                    c.on_fir();
                    self.totals.fir_received += 1;
                    if let (Some(pk), layer) = (c.producer(), c.keyframe_layer()) {
                        self.request_keyframe(now, pk, layer, KeyframeNeed::Repair, out);
                    }
                }
            }
            Feedback::Nack {
                media_ssrc, lost, ..
            } => {
                let Some(&ck) = t.consumers_by_ssrc.get(&media_ssrc) else {
                    return;
                };
                if let Some(c) = self.consumers.get_mut(ck) {
                    c.on_nack();
                    self.totals.nack_received += 1;
                }
                self.retransmit(now, ck, &lost, out);
            }
            Feedback::SenderReport {
                ssrc,
                ntp_time,
                rtp_time,
                ..
            } => {
                // Each encoding's own mapping (an RTX stream's reports say nothing of the
                // media timeline).
                let Some(&route) = t.producers_by_ssrc.get(&ssrc).filter(|r| !r.rtx) else {
                    return;
                };
                if let Some(p) = self.producers.get_mut(route.producer) {
                    p.on_sender_report(route.layer, ntp_time, rtp_time, now);
                }
            }
            Feedback::ReceiverReport { reports, .. } => {
                let now_mid = (self.ntp(now) >> 16) as u32;
                let mut scores = Vec::new();
                for block in reports {
                    let Some(&ck) = t.consumers_by_ssrc.get(&block.ssrc) else {
                        continue;
                    };
                    let Some(c) = self.consumers.get_mut(ck) else {
                        continue;
                    };
                    if let Some(score) = c.on_receiver_report(now, &block, now_mid) {
                        let producer_score = c
                            .producer()
                            .and_then(|k| self.producers.get(k))
                            .map_or(0, Producer::score);
                        scores.push((c.id().0.clone(), score, producer_score));
                    }
                }
                let router = t.router.clone();
                for (id, score, producer_score) in scores {
                    let event = Event::Score {
                        score,
                        producer_score: Some(producer_score),
                    };
                    self.notify(&router, &id, event);
                }
            }
            Feedback::TransportCc(fb) => {
                if let Some(bwe) = self.transports.get_mut(tk).and_then(|t| t.bwe.as_mut()) {
                    bwe.on_feedback(now, &fb);
                    self.congestion_control(now, tk, out);
                }
            }
            // REMB from subscribers, SDES, BYE, APP: nothing to act on.
            _ => {}
        }
    }

    /// Asks a producer's publisher for a keyframe of spatial layer `layer` (a PLI or
    /// FIR for that encoding's SSRC) for `need`, as that encoding's request state says
    /// (`router::producer::KeyframeRequests`): at once, served by the request
    /// on its way, or deferred to the producer's timer, which also repeats a request no
    /// keyframe answered. Nothing while the encoding's SSRC is not known yet (nothing of
    /// it arrived, so nobody waits for its keyframe) or the publisher's transport cannot
    /// send RTCP yet (its media path is not ready: asked again when it is).
    pub(crate) fn request_keyframe(
        &mut self,
        now: Instant,
        pk: ProducerKey,
        layer: u8,
        need: KeyframeNeed,
        out: &mut SendBatch,
    ) {
        let Some(p) = self.producers.get_mut(pk) else {
            return;
        };
        let connected = self
            .transports
            .get(p.transport())
            .is_some_and(|t| t.media_dest().is_some());
        if !connected || p.layer_ssrc(layer).is_none() {
            return;
        }
        if p.want_keyframe(now, layer, need) {
            self.send_keyframe_request(pk, layer, out);
        }
        // Deferred, or sent and repeated unless answered: the producer's timer.
        self.reschedule_producer(pk);
    }

    /// A keyframe for consumer `ck`, which has no picture yet (new, resumed, or its
    /// transport just connected): of `layer`, early if need be. Nothing while its
    /// transport cannot send (no SRTP keys or no selected tuple yet): the request made
    /// when its media path is ready serves it, and a keyframe before that would be
    /// wasted.
    pub(crate) fn request_start_keyframe(
        &mut self,
        now: Instant,
        ck: ConsumerKey,
        layer: u8,
        out: &mut SendBatch,
    ) {
        let Some(c) = self.consumers.get(ck) else {
            return;
        };
        let sendable = self
            .transports
            .get(c.transport())
            .is_some_and(|t| t.media_dest().is_some());
        if let (true, Some(pk)) = (sendable, c.producer()) {
            self.request_keyframe(now, pk, layer, KeyframeNeed::Start, out);
        }
    }

    /// Sends the producer's publisher a keyframe request for layer `layer` (the request
    /// state has counted it): FIR when the publisher accepts only that, with the
    /// encoding's next command sequence number, else PLI.
    fn send_keyframe_request(&mut self, pk: ProducerKey, layer: u8, out: &mut SendBatch) {
        let Some(p) = self.producers.get(pk) else {
            return;
        };
        let Some(media_ssrc) = p.layer_ssrc(layer) else {
            return;
        };
        self.totals.key_frame_requests_sent += 1;
        let (use_fir, fir_seq) = p.keyframe_request_form(layer);
        let Some(t) = self.transports.get_mut(p.transport()) else {
            return;
        };
        self.scratch.clear();
        if use_fir {
            rtcp::write_fir(&mut self.scratch, t.rtcp_ssrc, media_ssrc, fir_seq);
        } else {
            rtcp::write_pli(&mut self.scratch, t.rtcp_ssrc, media_ssrc);
        }
        send_rtcp(t, &mut self.scratch, out, &mut self.drops);
    }

    /// The producer's timer for its keyframe requests: each encoding's deferred request
    /// or repeat that is due goes out while a consumer still waits for that keyframe.
    pub(crate) fn keyframe_requests_due(
        &mut self,
        now: Instant,
        pk: ProducerKey,
        out: &mut SendBatch,
    ) {
        let layers = self.producers.get(pk).map_or(0, Producer::spatial_layers);
        for layer in 0..layers {
            let Some(p) = self.producers.get(pk) else {
                return;
            };
            if !p.keyframe_request_due(layer, now) {
                continue;
            }
            let waiting = !p.paused()
                && p.consumers()
                    .iter()
                    .filter_map(|ck| self.consumers.get(*ck))
                    .any(|c| waits_for_keyframe_of(c, layer));
            let repeat = p.keyframe_request_unanswered(layer);
            let send = self
                .producers
                .get_mut(pk)
                .is_some_and(|p| p.poll_keyframe_request(layer, now, waiting));
            if send {
                if repeat {
                    self.totals.key_frame_requests_repeated += 1;
                }
                self.send_keyframe_request(pk, layer, out);
            }
        }
    }

    /// The periodic reports of a transport: a sender report per consumer that has sent
    /// media, a receiver report covering its producers, as compound RTCP packets of at
    /// most [`MAX_RTCP_DATAGRAM`] bytes each (a subscriber with a thousand consumers
    /// would otherwise get one 28 KB datagram, fragmented by IP, or refused by the
    /// kernel past 64 KB).
    pub(crate) fn send_reports(&mut self, now: Instant, tk: TransportKey, out: &mut SendBatch) {
        let ntp_now = self.ntp(now);
        let Some(t) = self.transports.get_mut(tk) else {
            return;
        };
        self.scratch.clear();
        let mut i = 0;
        while let Some(&ck) = t.consumers.get(i) {
            i += 1;
            let Some(c) = self.consumers.get(ck) else {
                continue;
            };
            let Some(info) = c.sender_info() else {
                continue;
            };
            let (in_ts, out_ts, at) = (info.in_ts, info.out_ts, info.at);
            let p = c.producer().and_then(|k| self.producers.get(k));
            let rate = f64::from(info.clock_rate.max(1));
            let (ntp, rtp) = match p.and_then(|p| p.last_sr(info.layer)) {
                // Keep the publisher's NTP/RTP mapping so that audio and video of one
                // publisher stay in sync in the subscriber (lip-sync, RFC 3550 6.4.1).
                Some((sr_ntp, sr_rtp, sr_at)) => {
                    let el = now.saturating_duration_since(sr_at);
                    let ntp = sr_ntp.wrapping_add(duration_to_ntp(el));
                    let prod_rtp = sr_rtp.wrapping_add((el.as_secs_f64() * rate) as u32);
                    (ntp, prod_rtp.wrapping_add(out_ts.wrapping_sub(in_ts)))
                }
                None => {
                    let el = now.saturating_duration_since(at);
                    (
                        ntp_now,
                        out_ts.wrapping_add((el.as_secs_f64() * rate) as u32),
                    )
                }
            };
            if self.scratch.len() + SR_LEN > MAX_RTCP_DATAGRAM {
                send_rtcp(t, &mut self.scratch, out, &mut self.drops);
                self.scratch.clear();
            }
            rtcp::write_sender_report(
                &mut self.scratch,
                info.ssrc,
                ntp,
                rtp,
                info.packets as u32,
                info.bytes as u32,
            );
        }
        let mut blocks = Vec::new();
        let mut scores = Vec::new();
        for pk in &t.producers {
            let Some(p) = self.producers.get_mut(*pk) else {
                continue;
            };
            if !p.has_received() {
                continue;
            }
            let first = blocks.len();
            if let Some(score) = p.report(now, &mut blocks) {
                scores.push((p.id().0.clone(), score));
            }
            // A lossy uplink: its subscribers hold video long enough for our repair
            // (`producer::upstream_delay`).
            if p.kind() == MediaKind::Video {
                let limits = p.upstream_playout_delay(now);
                for ck in p.consumers() {
                    if let Some(c) = self.consumers.get_mut(*ck) {
                        c.set_upstream_playout(limits);
                    }
                }
            }
            // An audio publisher hears the worst of its uplink's loss and its
            // subscribers' (capped, decaying: `consumer::RemoteLoss`), so its Opus
            // encoder protects with in-band FEC what they lose. Only the fraction.
            if p.kind() == MediaKind::Audio {
                let consumers = &self.consumers;
                let worst = p
                    .consumers()
                    .iter()
                    .filter_map(|ck| consumers.get(*ck))
                    .map(|c| c.loss_for_publisher(now))
                    .max()
                    .unwrap_or(0);
                for b in blocks.get_mut(first..).into_iter().flatten() {
                    b.fraction_lost = b.fraction_lost.max(worst);
                }
            }
        }
        // RFC 3550 allows at most 31 report blocks per RR.
        for chunk in blocks.chunks(31) {
            if self.scratch.len() + RR_LEN_MAX > MAX_RTCP_DATAGRAM {
                send_rtcp(t, &mut self.scratch, out, &mut self.drops);
                self.scratch.clear();
            }
            rtcp::write_receiver_report(&mut self.scratch, t.rtcp_ssrc, chunk);
        }
        if !self.scratch.is_empty() {
            send_rtcp(t, &mut self.scratch, out, &mut self.drops);
        }
        let router = t.router.clone();
        for (id, score) in scores {
            self.notify(
                &router,
                &id,
                Event::Score {
                    score,
                    producer_score: None,
                },
            );
        }
    }
}

/// Whether a keyframe of spatial layer `layer` is of use to consumer `c`: it forwards
/// (it can be asked for by a subscriber that lost its picture) or waits for that layer,
/// and is not paused.
fn waits_for_keyframe_of(c: &Consumer, layer: u8) -> bool {
    if !c.active() {
        return false;
    }
    match c.kind() {
        ConsumerKind::Simple(_) => layer == 0,
        ConsumerKind::Simulcast(s) => c.keyframe_layer() == layer || s.target().spatial == layer,
    }
}

/// Largest plaintext compound RTCP packet we send: with SRTCP's 18-20 bytes and the
/// IP/UDP headers it stays under a 1,280-byte IPv6 minimum MTU path.
const MAX_RTCP_DATAGRAM: usize = 1200;
/// A sender report without report blocks (RFC 3550 6.4.1).
const SR_LEN: usize = 28;
/// A receiver report with 31 report blocks.
const RR_LEN_MAX: usize = 8 + 31 * 24;

fn duration_to_ntp(d: Duration) -> u64 {
    (d.as_secs() << 32) | ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
}
