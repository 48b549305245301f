//! A remote WebRTC peer: a str0m [`Rtc`] (an independent, sans-IO implementation) in RTP
//! mode, driven by its own contract: `handle_input(Receive | Timeout)`, then
//! `poll_output()` until it returns `Timeout`. What it sends goes to the network; what it
//! reports becomes trace records.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sfu_control::params::{DtlsFingerprint, DtlsParameters, DtlsRole};
use sfu_control::responses::TransportCreated;
use str0m::bwe::BweKind;
use str0m::config::{DtlsVersion, Fingerprint};
use str0m::format::Codec;
use str0m::ice::IceCreds;
use str0m::media::MediaKind;
use str0m::net::{Protocol, Receive};
use str0m::rtp::rtcp::Rtcp;
use str0m::rtp::{RawPacket, RtpWrite};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

use super::trace::{FeedbackKind, Record};

/// Timeouts a peer gets at one instant before its past deadlines count as the next
/// millisecond.
const MAX_TIMEOUTS_AT_ONCE: u32 = 16;

/// A stream the peer declared, by SSRC.
#[derive(Debug, Clone)]
struct Stream {
    name: String,
    rtx: bool,
}

/// One str0m peer at one address.
pub(crate) struct SimPeer {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    pub(crate) rtc: Rtc,
    /// When str0m wants `handle_input(Timeout)` next.
    timeout: Instant,
    /// The last time it was given input, and how many timeouts it has had at that time:
    /// str0m may ask to run again at the same instant (its pacer releases one packet
    /// per timeout), but a deadline it keeps leaving in the past must not stall time.
    last_input: Option<Instant>,
    timeouts_at_last_input: u32,
    streams: HashMap<u32, Stream>,
    /// Media sections declared so far (a mid is declared once).
    mids: HashSet<String>,
    /// Each received stream's first sequence number, so the trace holds offsets only.
    first_seq: HashMap<String, u16>,
    pub(crate) connected: bool,
    last_estimate: Option<u64>,
}

impl SimPeer {
    /// A peer named `name` at `addr`; `configure` adjusts str0m's configuration (BWE,
    /// extensions). Its ICE credentials are fixed by its name so STUN lengths repeat.
    pub(crate) fn new(
        name: &str,
        addr: SocketAddr,
        now: Instant,
        configure: impl FnOnce(RtcConfig) -> RtcConfig,
    ) -> Self {
        let builder = Rtc::builder()
            .set_rtp_mode(true)
            .enable_raw_packets(true)
            // rtc-dtls speaks DTLS 1.2 only, as do browsers today.
            .set_dtls_version(DtlsVersion::Dtls12)
            .set_local_ice_credentials(IceCreds {
                ufrag: format!("{name}-ufrag"),
                pass: format!("{name}-password-of-22+chars"),
            });
        let mut rtc = configure(builder).build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("host candidate"));
        Self {
            name: name.to_owned(),
            addr,
            rtc,
            timeout: now,
            last_input: None,
            timeouts_at_last_input: 0,
            streams: HashMap::new(),
            mids: HashSet::new(),
            first_seq: HashMap::new(),
            connected: false,
            last_estimate: None,
        }
    }

    /// When the peer wants to run next (never again at a time it already ran at).
    pub(crate) fn deadline(&self) -> Instant {
        match self.last_input {
            Some(last)
                if self.timeout <= last && self.timeouts_at_last_input >= MAX_TIMEOUTS_AT_ONCE =>
            {
                last + Duration::from_millis(1)
            }
            Some(last) if self.timeout <= last => last,
            _ => self.timeout,
        }
    }

    fn note_input(&mut self, now: Instant, timeout: bool) {
        if self.last_input != Some(now) {
            self.timeouts_at_last_input = 0;
        }
        self.last_input = Some(now);
        self.timeouts_at_last_input += u32::from(timeout);
    }

    /// A datagram arrives at `now`.
    pub(crate) fn receive(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Ok(receive) = Receive::new(Protocol::Udp, from, self.addr, bytes) else {
            return;
        };
        self.note_input(now, false);
        if let Err(e) = self.rtc.handle_input(Input::Receive(now, receive)) {
            panic!("{}: str0m refused a datagram from {from}: {e}", self.name);
        }
    }

    /// Time passes to `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.note_input(now, true);
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            panic!("{}: str0m timeout failed: {e}", self.name);
        }
    }

    /// Drains str0m's output: datagrams to `transmits`, reports to `records`, until it
    /// names its next deadline.
    /// The records of one drain are sorted: str0m reports what one input caused (the
    /// sender reports of one compound RTCP packet, say) in its hash maps' order, which
    /// is random per process.
    pub(crate) fn poll(
        &mut self,
        transmits: &mut Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
        records: &mut Vec<Record>,
    ) {
        let mut drained = Vec::new();
        self.drain(transmits, &mut drained);
        drained.sort_by_cached_key(ToString::to_string);
        records.append(&mut drained);
    }

    fn drain(
        &mut self,
        transmits: &mut Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
        records: &mut Vec<Record>,
    ) {
        loop {
            let output = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => panic!("{}: str0m poll_output failed: {e}", self.name),
            };
            match output {
                Output::Timeout(t) => {
                    self.timeout = t;
                    return;
                }
                Output::Transmit(t) => {
                    transmits.push((t.source, t.destination, t.contents.to_vec()));
                }
                Output::Event(e) => self.on_event(e, records),
            }
        }
    }

    fn on_event(&mut self, e: Event, records: &mut Vec<Record>) {
        let peer = self.name.clone();
        match e {
            Event::Connected => {
                self.connected = true;
                records.push(Record::Connected { peer });
            }
            Event::RtpPacket(p) => {
                let stream = self.stream_name(*p.header.ssrc);
                let first = *self
                    .first_seq
                    .entry(stream.clone())
                    .or_insert(p.header.sequence_number);
                let index = payload_index(&p.payload);
                let vp8 = crate::rtp::Vp8Descriptor::parse(&p.payload);
                if let Some((d, pid)) = vp8.and_then(|d| Some((d, d.picture_id?))) {
                    records.push(Record::Vp8 {
                        peer: peer.clone(),
                        stream: stream.clone(),
                        index,
                        seq: p.header.sequence_number,
                        picture_id: pid.value,
                        tl0_pic_idx: d.tl0_pic_idx,
                        tid: d.tid,
                        keyframe: crate::rtp::is_vp8_keyframe(&p.payload),
                    });
                }
                records.push(Record::Rtp {
                    peer,
                    stream,
                    index,
                    seq: p.header.sequence_number.wrapping_sub(first),
                    ts: p.header.timestamp,
                });
            }
            Event::SenderFeedback(f) => records.push(Record::SenderReport {
                peer,
                mid: f.mid.to_string(),
            }),
            Event::KeyframeRequest(k) => records.push(Record::KeyframeRequest {
                peer,
                mid: k.mid.to_string(),
                rid: k.rid.map(|r| r.to_string()),
            }),
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                let bps = estimate.as_u64();
                if self.last_estimate != Some(bps) {
                    self.last_estimate = Some(bps);
                    records.push(Record::Estimate { peer, bps });
                }
            }
            Event::RawPacket(raw) => match *raw {
                RawPacket::RtpRx(header, _) => {
                    if let Some(s) = self.streams.get(&*header.ssrc).filter(|s| s.rtx) {
                        records.push(Record::Rtx {
                            peer,
                            stream: s.name.clone(),
                        });
                    }
                }
                RawPacket::RtcpRx(rtcp) => feedback(&peer, false, &rtcp, records),
                RawPacket::RtcpTx(rtcp) => feedback(&peer, true, &rtcp, records),
                RawPacket::RtpTx(..) => {}
            },
            _ => {}
        }
    }

    fn stream_name(&self, ssrc: u32) -> String {
        self.streams
            .get(&ssrc)
            .map_or_else(|| "undeclared".to_owned(), |s| s.name.clone())
    }

    /// Our certificate fingerprint in mediasoup's DtlsParameters shape.
    pub(crate) fn dtls_parameters(&mut self) -> DtlsParameters {
        let fp = self.rtc.direct_api().local_dtls_fingerprint().to_string();
        let (alg, value) = fp.split_once(' ').unwrap_or_default();
        DtlsParameters {
            role: DtlsRole::Client,
            fingerprints: vec![DtlsFingerprint {
                algorithm: alg.to_owned(),
                value: value.to_owned(),
            }],
        }
    }

    /// Points the peer at a transport the core created (`transport.create`'s response)
    /// at `core`, and starts ICE (controlling, against the core's ICE-lite) and DTLS.
    pub(crate) fn connect_to(&mut self, transport: &TransportCreated, core: SocketAddr) {
        let ice = &transport.ice_parameters;
        let fingerprint = transport
            .dtls_parameters
            .fingerprints
            .first()
            .map_or("", |f| f.value.as_str());
        let mut api = self.rtc.direct_api();
        api.set_ice_controlling(true);
        api.set_remote_ice_credentials(IceCreds {
            ufrag: ice.username_fragment.clone(),
            pass: ice.password.clone(),
        });
        let fp: Fingerprint = format!("sha-256 {fingerprint}")
            .parse()
            .expect("the core's fingerprint parses");
        api.set_remote_fingerprint(fp);
        api.start_dtls(true).expect("DTLS starts");
        self.rtc
            .add_remote_candidate(Candidate::host(core, "udp").expect("core candidate"));
    }

    /// The payload type str0m configured for `codec`, and its RTX payload type.
    pub(crate) fn pt(&self, codec: Codec) -> (u8, Option<u8>) {
        self.rtc
            .codec_config()
            .iter()
            .find(|p| p.spec().codec == codec)
            .map(|p| (*p.pt(), p.resend().map(|r| *r)))
            .expect("str0m offers the codec")
    }

    /// Declares an outgoing stream `mid` (and its RTX SSRC).
    pub(crate) fn send_stream(&mut self, mid: &str, kind: MediaKind, ssrc: u32, rtx: Option<u32>) {
        let mut api = self.rtc.direct_api();
        if self.mids.insert(mid.to_owned()) {
            api.declare_media(mid.into(), kind);
        }
        api.declare_stream_tx(ssrc.into(), rtx.map(Into::into), mid.into(), None);
    }

    /// Declares an outgoing simulcast encoding `rid` of video media `mid` with its RTX
    /// SSRC: str0m then sends the MID and RID header extensions until our receiver
    /// reports acknowledge the SSRC, and its retransmissions carry the repaired RID.
    pub(crate) fn send_rid_stream(&mut self, mid: &str, ssrc: u32, rtx: u32, rid: &str) {
        let mut api = self.rtc.direct_api();
        if self.mids.insert(mid.to_owned()) {
            api.declare_media(mid.into(), MediaKind::Video);
        }
        api.declare_stream_tx(ssrc.into(), Some(rtx.into()), mid.into(), Some(rid.into()));
    }

    /// Declares an incoming stream named `name` in media `mid` (declared once per mid).
    pub(crate) fn recv_stream(
        &mut self,
        name: &str,
        mid: &str,
        kind: MediaKind,
        ssrc: u32,
        rtx: Option<u32>,
    ) {
        let mut api = self.rtc.direct_api();
        if self.mids.insert(mid.to_owned()) {
            api.declare_media(mid.into(), kind);
        }
        api.expect_stream_rx(ssrc.into(), rtx.map(Into::into), mid.into(), None);
        self.streams.insert(
            ssrc,
            Stream {
                name: name.to_owned(),
                rtx: false,
            },
        );
        if let Some(rtx) = rtx {
            self.streams.insert(
                rtx,
                Stream {
                    name: name.to_owned(),
                    rtx: true,
                },
            );
        }
    }

    /// Forgets an outgoing stream and its media section `mid` (its producer closed).
    pub(crate) fn forget_send_stream(&mut self, mid: &str, ssrc: u32) {
        let mut api = self.rtc.direct_api();
        api.remove_stream_tx(ssrc.into());
        if self.mids.remove(mid) {
            api.remove_media(mid.into());
        }
    }

    /// Forgets an outgoing stream, keeping its media section.
    pub(crate) fn forget_send_stream_ssrc(&mut self, ssrc: u32) {
        self.rtc.direct_api().remove_stream_tx(ssrc.into());
    }

    /// Forgets an incoming stream and its media section `mid` (its consumer closed).
    pub(crate) fn forget_stream(&mut self, mid: &str, ssrc: u32) {
        let mut api = self.rtc.direct_api();
        api.remove_stream_rx(ssrc.into());
        if self.mids.remove(mid) {
            api.remove_media(mid.into());
        }
        self.streams.remove(&ssrc);
    }

    /// Writes one RTP packet on an outgoing stream at `now` (its payload made by
    /// [`indexed`]).
    pub(crate) fn write(
        &mut self,
        now: Instant,
        ssrc: u32,
        pt: u8,
        seq: u64,
        ts: u32,
        payload: Vec<u8>,
    ) {
        let mut api = self.rtc.direct_api();
        let stream = api.stream_tx(&ssrc.into()).expect("a declared stream");
        let w = RtpWrite::new(pt.into(), seq.into(), ts, now, payload);
        stream.write_rtp(w.nackable(true));
    }

    /// Asks the sender of `ssrc` for a keyframe.
    pub(crate) fn request_keyframe(&mut self, ssrc: u32, kind: str0m::media::KeyframeRequestKind) {
        let mut api = self.rtc.direct_api();
        if let Some(s) = api.stream_rx(&ssrc.into()) {
            s.request_keyframe(kind);
        }
    }
}

/// `payload` carrying packet `index` in its last four bytes, so receivers can name it.
pub(crate) fn indexed(mut payload: Vec<u8>, index: u32) -> Vec<u8> {
    payload.extend_from_slice(&index.to_be_bytes());
    payload
}

/// The packet index a payload carries in its last four bytes.
fn payload_index(payload: &[u8]) -> u32 {
    payload
        .len()
        .checked_sub(4)
        .and_then(|at| payload.get(at..))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(u32::MAX, u32::from_be_bytes)
}

fn feedback(peer: &str, sent: bool, rtcp: &Rtcp, records: &mut Vec<Record>) {
    if let (false, Rtcp::ReceiverReport(rr)) = (sent, rtcp) {
        records.extend(rr.reports.iter().map(|b| Record::ReportBlock {
            peer: peer.to_owned(),
            ssrc: *b.ssrc,
            fraction_lost: b.fraction_lost,
        }));
    }
    let kind = match rtcp {
        Rtcp::Nack(n) => FeedbackKind::Nack(
            n.reports
                .iter()
                .map(|e| 1 + e.blp.count_ones() as usize)
                .sum(),
        ),
        Rtcp::Pli(_) => FeedbackKind::Pli,
        Rtcp::Fir(_) => FeedbackKind::Fir,
        Rtcp::Twcc(_) => FeedbackKind::TransportCc,
        Rtcp::Remb(_) => FeedbackKind::Remb,
        _ => return,
    };
    records.push(Record::Feedback {
        peer: peer.to_owned(),
        sent,
        kind,
    });
}
