//! The load generator's event loop: one thread, one UDP socket per session, epoll +
//! `recvmmsg` to receive, `sendmmsg` per publisher frame to send.
//!
//! Publishers pace video (frames of ~1,100-byte packets at `fps`) and audio (one packet
//! per 20 ms). Subscribers count every packet from its clear RTP header and decrypt one
//! in `decrypt_every` (and the first of each SSRC) to read the trailer: the stream it
//! belongs to, its index and its send time. Latency is kernel receive time
//! (SO_TIMESTAMPNS) minus send time, so our own polling delay is not in it.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::Rng;

use crate::feedback::{FeedbackCounts, PubFeedback, SubFeedback};
use crate::media::{
    self, build_packet, histogram, l1t3, read_trailer, rtp_seq_ssrc, LayerRate, MediaSpec,
    RxStream, VideoShape, Vp8Head, Vp8Layering, Window,
};
use crate::sys::{self, Epoll, RecvBuf};
use crate::targets::Signalled;
use crate::webrtc::{Identity, Remote, Session, State};

/// Socket buffers: a subscriber may get a burst of a whole frame while we serve others.
const SOCKET_BUFFER: usize = 1 << 20;
/// How often session timers (ICE retries and keepalives, DTLS retransmissions) run.
const TICK: Duration = Duration::from_millis(20);

/// A publisher stream (audio or video of one publisher).
#[derive(Clone, Copy)]
struct Track {
    ssrc: u32,
    stream: u32,
    base_seq: u16,
    /// Index of the next packet.
    next: u32,
    ts: u32,
}

/// One video stream of a publisher (its only one, or a simulcast layer).
struct VideoLayer {
    track: Track,
    rate: LayerRate,
    /// Bytes owed to the pacing: a frame sends whole packets of what it accumulated.
    budget: f64,
    /// The extended VP8 descriptor's numbering (simulcast cameras write it): where this
    /// encoder's PictureID and TL0PICIDX started.
    layering: Option<(u16, u8)>,
}

struct Publisher {
    audio: Track,
    /// Lowest layer first; a frame sends the highest first (see `send_due`).
    video: Vec<VideoLayer>,
    next_frame: Instant,
    next_audio: Instant,
    frame: u32,
    /// TL0 (base temporal layer) frames sent: the TL0PICIDX of layered video.
    tl0_frames: u32,
    /// Upstream loss and NACK answers (the feedback scenarios).
    fb: Option<PubFeedback>,
}

impl Publisher {
    fn tracks(&self) -> impl Iterator<Item = &Track> {
        std::iter::once(&self.audio).chain(self.video.iter().map(|v| &v.track))
    }
}

/// A new publisher's streams: (stream id, SSRC) of its audio and of each video layer.
pub(crate) struct NewTracks {
    pub(crate) audio: (u32, u32),
    pub(crate) video: Vec<(u32, u32)>,
    /// RTX SSRC of the (first) video stream, used when the publisher answers NACKs.
    pub(crate) video_rtx: u32,
}

struct Subscriber {
    /// Publisher stream ids this subscriber should receive.
    expect: Vec<u32>,
    rx: Vec<RxStream>,
    /// SSRC -> position in `expect` once identified.
    ssrcs: Vec<(u32, Option<usize>)>,
    packets: u32,
    /// Receiver reports, NACKs and transport-cc (the feedback scenarios); boxed, as
    /// its transport-cc recorder is most of a subscriber's size.
    fb: Option<Box<SubFeedback>>,
}

enum Role {
    Publisher(Publisher),
    Subscriber(Subscriber),
}

struct Peer {
    socket: UdpSocket,
    session: Session,
    role: Role,
    /// Last SO_RXQ_OVFL value: datagrams our own socket dropped.
    rx_drops: u32,
}

/// Per stream: base sequence number and measurement window.
#[derive(Clone, Copy)]
struct StreamInfo {
    base_seq: u16,
    window: Option<Window>,
}

/// Counters of one measurement window.
#[derive(Default, Debug, Clone)]
pub(crate) struct WindowCounts {
    pub(crate) rx_packets: u64,
    pub(crate) rx_bytes: u64,
    pub(crate) decrypted: u64,
    pub(crate) decrypt_failures: u64,
    pub(crate) rtcp: u64,
    pub(crate) sent_packets: u64,
    pub(crate) feedback: FeedbackCounts,
}

/// What a window measured, for the result file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Measured {
    pub(crate) expected: u64,
    pub(crate) unique: u64,
    pub(crate) duplicates: u64,
    pub(crate) reordered: u64,
    pub(crate) counts: WindowCounts,
    /// Subscriber streams that got nothing at all in the window.
    pub(crate) silent_streams: u64,
    pub(crate) generator_rx_drops: u64,
}

pub(crate) struct Generator {
    identity: Identity,
    pub(crate) spec: MediaSpec,
    decrypt_every: u32,
    ip: Ipv4Addr,
    peers: Vec<Peer>,
    streams: Vec<StreamInfo>,
    epoll: Epoll,
    recv: RecvBuf,
    ready: Vec<u64>,
    sending: bool,
    last_tick: Instant,
    pub(crate) e2e: Histogram<u64>,
    /// How late publisher sends were against their schedule (us).
    pub(crate) lateness: Histogram<u64>,
    pub(crate) counts: WindowCounts,
    /// `counts` as they were when the window closed (the loop keeps counting sends).
    window_counts: WindowCounts,
    in_window: bool,
    scratch: Vec<Vec<u8>>,
    /// Simulated loss with RTCP feedback, when the scenario has it.
    feedback_loss: Option<f64>,
    rtcp_buf: Vec<u8>,
}

impl Generator {
    pub(crate) fn new(ip: Ipv4Addr, spec: MediaSpec, decrypt_every: u32) -> Result<Self, String> {
        Ok(Self {
            identity: Identity::generate()?,
            spec,
            decrypt_every: decrypt_every.max(1),
            ip,
            peers: Vec::new(),
            streams: Vec::new(),
            epoll: Epoll::new().map_err(|e| e.to_string())?,
            recv: RecvBuf::new(),
            ready: Vec::new(),
            sending: false,
            last_tick: Instant::now(),
            e2e: histogram(),
            lateness: histogram(),
            counts: WindowCounts::default(),
            window_counts: WindowCounts::default(),
            in_window: false,
            scratch: (0..16).map(|_| vec![0u8; 1500]).collect(),
            feedback_loss: None,
            rtcp_buf: Vec::with_capacity(1500),
        })
    }

    /// Makes the sessions added from now on send and answer RTCP feedback, with `loss`
    /// simulated on subscribers' receive path and publishers' send path.
    pub(crate) fn set_feedback(&mut self, loss: f64) {
        self.feedback_loss = Some(loss);
    }

    pub(crate) fn fingerprint(&self) -> String {
        self.identity.fingerprint.clone()
    }

    /// A fresh socket for a new session, and its address.
    pub(crate) fn socket(&self) -> Result<(UdpSocket, SocketAddr), String> {
        let s = sys::udp_socket(self.ip, SOCKET_BUFFER).map_err(|e| format!("socket: {e}"))?;
        let a = s.local_addr().map_err(|e| e.to_string())?;
        Ok((s, a))
    }

    /// New stream ids with random SSRCs and base sequence numbers: audio and `video`
    /// video streams.
    pub(crate) fn new_tracks(&mut self, video: usize) -> NewTracks {
        let mut rng = rand::thread_rng();
        let mut next = || {
            let id = self.streams.len() as u32;
            self.streams.push(StreamInfo {
                base_seq: rng.gen(),
                window: None,
            });
            (id, rng.gen())
        };
        NewTracks {
            audio: next(),
            video: (0..video).map(|_| next()).collect(),
            video_rtx: rng.gen(),
        }
    }

    fn session(
        &self,
        sig: Signalled,
        ufrag: String,
        pwd: String,
        now: Instant,
    ) -> Result<Session, String> {
        match sig {
            Signalled::Ice(remote) => Ok(Session::new(ufrag, pwd, remote, &self.identity, now)),
            Signalled::Preshared {
                addr,
                profile,
                material,
            } => {
                let remote = Remote {
                    addr,
                    ufrag: String::new(),
                    pwd: String::new(),
                    dtls_client: true,
                };
                let mut s = Session::new(ufrag, pwd, remote, &self.identity, now);
                let (out, inb) = sfu::srtp::contexts_from_keying_material(profile, &material, true)
                    .map_err(|e| e.to_string())?;
                s.srtp_out = Some(out);
                s.srtp_in = Some(inb);
                s.profile = Some(profile);
                s.state = State::Connected;
                Ok(s)
            }
        }
    }

    fn push(&mut self, socket: UdpSocket, session: Session, role: Role) -> Result<usize, String> {
        let idx = self.peers.len();
        self.epoll
            .add(socket.as_raw_fd(), idx as u64)
            .map_err(|e| format!("epoll: {e}"))?;
        self.peers.push(Peer {
            socket,
            session,
            role,
            rx_drops: 0,
        });
        Ok(idx)
    }

    /// Adds a publisher of `shape` whose tracks came from [`Self::new_tracks`] (one video
    /// stream per layer of the shape).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_publisher(
        &mut self,
        socket: UdpSocket,
        sig: Signalled,
        ufrag: String,
        pwd: String,
        tracks: &NewTracks,
        shape: VideoShape,
    ) -> Result<usize, String> {
        let now = Instant::now();
        let session = self.session(sig, ufrag, pwd, now)?;
        let track = |(stream, ssrc): (u32, u32)| Track {
            ssrc,
            stream,
            base_seq: self.streams[stream as usize].base_seq,
            next: 0,
            ts: rand::random(),
        };
        let video = tracks
            .video
            .iter()
            .zip(self.spec.video_layers(shape))
            .map(|(&t, rate)| VideoLayer {
                track: track(t),
                rate,
                budget: 0.0,
                layering: shape.layered().then(rand::random),
            })
            .collect();
        let p = Publisher {
            audio: track(tracks.audio),
            video,
            next_frame: now,
            next_audio: now,
            frame: 0,
            tl0_frames: 0,
            fb: self
                .feedback_loss
                .map(|loss| PubFeedback::new(loss, tracks.video_rtx)),
        };
        self.push(socket, session, Role::Publisher(p))
    }

    /// Adds a subscriber expecting the given publisher stream ids.
    pub(crate) fn add_subscriber(
        &mut self,
        socket: UdpSocket,
        sig: Signalled,
        ufrag: String,
        pwd: String,
        expect: Vec<u32>,
    ) -> Result<usize, String> {
        let now = Instant::now();
        let session = self.session(sig, ufrag, pwd, now)?;
        let s = Subscriber {
            rx: expect.iter().map(|_| RxStream::default()).collect(),
            expect,
            ssrcs: Vec::new(),
            packets: 0,
            fb: self
                .feedback_loss
                .map(|loss| Box::new(SubFeedback::new(loss, now))),
        };
        self.push(socket, session, Role::Subscriber(s))
    }

    /// Starts (or restarts) publishers' pacing from now.
    pub(crate) fn start_sending(&mut self) {
        let now = Instant::now();
        for p in &mut self.peers {
            if let Role::Publisher(pb) = &mut p.role {
                pb.next_frame = now;
                pb.next_audio = now;
            }
        }
        self.sending = true;
    }

    pub(crate) fn stop_sending(&mut self) {
        self.sending = false;
    }

    /// Runs the loop until every session from `from` on is connected (or failed), or
    /// `timeout`. Returns the number of sessions not connected, with the first error.
    pub(crate) fn connect(&mut self, from: usize, timeout: Duration) -> (usize, Option<String>) {
        let deadline = Instant::now() + timeout;
        loop {
            let pending = self.peers[from..]
                .iter()
                .filter(|p| !matches!(p.session.state, State::Connected | State::Failed))
                .count();
            if pending == 0 || Instant::now() >= deadline {
                let bad: Vec<&Peer> = self.peers[from..]
                    .iter()
                    .filter(|p| p.session.state != State::Connected)
                    .collect();
                let err = bad.first().map(|p| {
                    format!(
                        "{:?}: {}",
                        p.session.state,
                        p.session
                            .error
                            .clone()
                            .unwrap_or_else(|| "timed out".into())
                    )
                });
                return (bad.len(), err);
            }
            self.poll(deadline.min(Instant::now() + Duration::from_millis(10)));
        }
    }

    /// Runs the loop until `until`.
    pub(crate) fn run_until(&mut self, until: Instant) {
        while Instant::now() < until {
            self.poll(until);
        }
    }

    /// Opens the measurement window: counts restart at every stream's next packet.
    pub(crate) fn open_window(&mut self) {
        for p in &self.peers {
            if let Role::Publisher(pb) = &p.role {
                for t in pb.tracks() {
                    self.streams[t.stream as usize].window = Some(Window {
                        start: t.next,
                        end: u32::MAX,
                    });
                }
            }
        }
        for p in &mut self.peers {
            if let Role::Subscriber(s) = &mut p.role {
                s.rx.iter_mut().for_each(RxStream::reset_window);
            }
        }
        self.e2e.reset();
        self.lateness.reset();
        self.counts = WindowCounts::default();
        self.in_window = true;
    }

    /// Closes the window at every stream's next packet (packets sent later are ignored;
    /// those in flight are still counted while the loop keeps running).
    pub(crate) fn close_window(&mut self) {
        for p in &self.peers {
            if let Role::Publisher(pb) = &p.role {
                for t in pb.tracks() {
                    if let Some(w) = &mut self.streams[t.stream as usize].window {
                        w.end = t.next;
                    }
                }
            }
        }
        self.in_window = false;
        self.window_counts = self.counts.clone();
    }

    /// Loss, duplicates and reordering of the (closed) window over every subscriber stream.
    pub(crate) fn measured(&self) -> Measured {
        let mut m = Measured {
            counts: self.window_counts.clone(),
            ..Measured::default()
        };
        for p in &self.peers {
            m.generator_rx_drops += u64::from(p.rx_drops);
            let Role::Subscriber(s) = &p.role else {
                continue;
            };
            for (i, stream) in s.expect.iter().enumerate() {
                let Some(w) = self.streams[*stream as usize].window else {
                    continue;
                };
                m.expected += u64::from(w.end.saturating_sub(w.start));
                let rx = &s.rx[i];
                m.unique += rx.unique;
                m.duplicates += rx.duplicates;
                m.reordered += rx.reordered;
                if rx.unique == 0 {
                    m.silent_streams += 1;
                }
            }
        }
        m
    }

    /// The negotiated SRTP profile of the first connected session.
    pub(crate) fn profile(&self) -> Option<String> {
        self.peers
            .iter()
            .find_map(|p| p.session.profile.map(|x| format!("{x:?}")))
    }

    /// One turn: timers, due sends, then whatever arrived (waiting at most until `until`
    /// or the next send).
    fn poll(&mut self, until: Instant) {
        let now = Instant::now();
        if now >= self.last_tick + TICK {
            self.last_tick = now;
            for p in &mut self.peers {
                p.session.tick(now);
                flush_session(p);
                send_feedback(p, now, &mut self.rtcp_buf, &mut self.counts.feedback);
            }
        }
        let mut next = until.min(self.last_tick + TICK);
        if self.sending {
            next = next.min(self.send_due(now));
        }
        let wait = next.saturating_duration_since(Instant::now());
        // epoll has millisecond resolution: round down, so a due send is at most ~1 ms late
        // when idle (the send timestamp is taken when it really leaves).
        let ms = (wait.as_micros() / 1000) as i32;
        let mut ready = std::mem::take(&mut self.ready);
        if self.epoll.wait(ms, &mut ready).is_ok() {
            for &token in &ready {
                self.drain(token as usize);
            }
        }
        self.ready = ready;
    }

    /// Sends everything due and returns when the next send is due.
    fn send_due(&mut self, now: Instant) -> Instant {
        let mut next = now + Duration::from_secs(1);
        let spec = self.spec;
        let frame_dt = Duration::from_secs_f64(1.0 / f64::from(spec.fps));
        let audio_dt = Duration::from_secs_f64(1.0 / f64::from(spec.audio_pps.max(1)));
        let mut bufs = std::mem::take(&mut self.scratch);
        for p in &mut self.peers {
            let Role::Publisher(pb) = &mut p.role else {
                continue;
            };
            if p.session.state != State::Connected {
                continue;
            }
            let dest = p.session.remote.addr;
            let fd = p.socket.as_raw_fd();
            let Some(ctx) = p.session.srtp_out.as_mut() else {
                continue;
            };
            while pb.next_frame <= now {
                let late = now.duration_since(pb.next_frame).as_micros() as u64;
                let _ = self.lateness.record(late.max(1));
                let phase = pb.frame % spec.keyframe_every.max(1);
                let key = phase == 0;
                // The temporal pattern restarts at each keyframe (a TL0 frame).
                let (tid, layer_sync) = l1t3(phase);
                if tid == 0 {
                    pb.tl0_frames = pb.tl0_frames.wrapping_add(1);
                }
                let capacity = bufs.len();
                let mut lens = Vec::with_capacity(capacity);
                let mut free = bufs.iter_mut();
                let send_ns = sys::realtime_ns();
                // Highest layer first, so a simulcast consumer waiting for its first
                // keyframe meets its own layer's before a lower one's.
                for v in pb.video.iter_mut().rev() {
                    v.budget += v.rate.bps as f64 / 8.0 / f64::from(spec.fps);
                    let n = ((v.budget / v.rate.packet as f64) as usize).clamp(1, capacity);
                    v.budget -= (n * v.rate.packet) as f64;
                    let layered = v.layering.map(|(pic0, tl0)| Vp8Layering {
                        picture_id: pic0.wrapping_add(pb.frame as u16),
                        tl0_pic_idx: tl0.wrapping_add(pb.tl0_frames as u8),
                        tid,
                        layer_sync,
                    });
                    for k in 0..n {
                        let Some(buf) = free.next() else { break };
                        let t = &mut v.track;
                        let seq = t.base_seq.wrapping_add(t.next as u16);
                        let len = build_packet(
                            buf,
                            v.rate.packet,
                            media::VIDEO_PT,
                            k + 1 == n,
                            seq,
                            t.ts,
                            t.ssrc,
                            t.stream,
                            t.next,
                            send_ns,
                            Some(Vp8Head {
                                first: k == 0,
                                key: key && k == 0,
                                layered,
                            }),
                        );
                        t.next = t.next.wrapping_add(1);
                        let sent = match pb.fb.as_mut() {
                            Some(fb) => fb.on_send(&buf[..len], seq, &mut self.counts.feedback),
                            None => true,
                        };
                        if sent {
                            lens.push(ctx.protect_rtp(buf, len).unwrap_or(0));
                        } else {
                            // Lost on the way up: sent as far as the stream is concerned.
                            self.counts.sent_packets += 1;
                            lens.push(0);
                        }
                    }
                    v.track.ts = v.track.ts.wrapping_add(90_000 / spec.fps);
                }
                pb.frame += 1;
                pb.next_frame += frame_dt;
                let slices: Vec<&[u8]> = bufs
                    .iter()
                    .zip(&lens)
                    .filter(|(_, l)| **l > 0)
                    .map(|(b, l)| &b[..*l])
                    .collect();
                if let Ok(k) = sys::send_many(fd, dest, &slices) {
                    self.counts.sent_packets += k as u64;
                }
            }
            while pb.next_audio <= now {
                let t = &mut pb.audio;
                let seq = t.base_seq.wrapping_add(t.next as u16);
                let buf = &mut bufs[0];
                let len = build_packet(
                    buf,
                    spec.audio_packet,
                    media::AUDIO_PT,
                    false,
                    seq,
                    t.ts,
                    t.ssrc,
                    t.stream,
                    t.next,
                    sys::realtime_ns(),
                    None,
                );
                t.next = t.next.wrapping_add(1);
                t.ts = t.ts.wrapping_add(48_000 / spec.audio_pps.max(1));
                pb.next_audio += audio_dt;
                if let Ok(n) = ctx.protect_rtp(buf, len) {
                    if let Ok(k) = sys::send_many(fd, dest, &[&buf[..n]]) {
                        self.counts.sent_packets += k as u64;
                    }
                }
            }
            next = next.min(pb.next_frame).min(pb.next_audio);
        }
        self.scratch = bufs;
        next
    }

    /// Reads everything queued on one peer's socket.
    fn drain(&mut self, idx: usize) {
        let Self {
            peers,
            recv,
            streams,
            e2e,
            counts,
            decrypt_every,
            in_window,
            ..
        } = self;
        let Some(peer) = peers.get_mut(idx) else {
            return;
        };
        let fd = peer.socket.as_raw_fd();
        let now = Instant::now();
        for _ in 0..8 {
            let Ok(n) = recv.recv(fd) else { return };
            if let Some(d) = recv.last_drops {
                peer.rx_drops = d;
            }
            for i in 0..n {
                let Some(dg) = recv.get(i) else { continue };
                let first = dg.data.first().copied().unwrap_or(0);
                if !(128..=191).contains(&first) {
                    peer.session.handle(now, dg.from, dg.data);
                    flush_session(peer);
                    continue;
                }
                let sub = match &mut peer.role {
                    Role::Subscriber(sub) => sub,
                    Role::Publisher(pb) => {
                        if rtp_seq_ssrc(dg.data).is_none() {
                            answer_nacks(pb, &mut peer.session, &peer.socket, dg.data, counts);
                        }
                        continue;
                    }
                };
                let Some((seq, ssrc)) = rtp_seq_ssrc(dg.data) else {
                    counts.rtcp += 1;
                    continue;
                };
                if *in_window {
                    counts.rx_packets += 1;
                    counts.rx_bytes += dg.data.len() as u64;
                }
                if let Some(fb) = sub.fb.as_mut() {
                    if !fb.on_rtp(now, dg.data, ssrc, seq, &mut counts.feedback) {
                        continue;
                    }
                }
                sub.packets = sub.packets.wrapping_add(1);
                let slot = match sub.ssrcs.iter().position(|s| s.0 == ssrc) {
                    Some(s) => s,
                    None => {
                        sub.ssrcs.push((ssrc, None));
                        sub.ssrcs.len() - 1
                    }
                };
                let known = sub.ssrcs[slot].1;
                let sample = sub.packets % *decrypt_every == 0;
                if known.is_none() || sample {
                    let Some(ctx) = peer.session.srtp_in.as_mut() else {
                        continue;
                    };
                    match ctx.unprotect_rtp(dg.data) {
                        Ok(len) => {
                            counts.decrypted += 1;
                            if let Some((stream, index, send_ns)) = read_trailer(&dg.data[..len]) {
                                if let Some(pos) = sub.expect.iter().position(|s| *s == stream) {
                                    sub.ssrcs[slot].1 = Some(pos);
                                    let info = streams[stream as usize];
                                    sub.rx[pos].learn(seq, index, info.base_seq);
                                    let in_win = info
                                        .window
                                        .is_some_and(|w| index >= w.start && index < w.end);
                                    if in_win && dg.rx_ns > send_ns {
                                        let _ = e2e.record(((dg.rx_ns - send_ns) / 1000).max(1));
                                    }
                                }
                            }
                        }
                        Err(_) => counts.decrypt_failures += 1,
                    }
                }
                if let Some(pos) = sub.ssrcs[slot].1 {
                    let stream = sub.expect[pos] as usize;
                    let info = streams[stream];
                    sub.rx[pos].on_packet(seq, info.base_seq, info.window);
                }
            }
            if !recv.was_full() {
                return;
            }
        }
    }

    pub(crate) fn peers(&self) -> usize {
        self.peers.len()
    }
}

/// Sends a subscriber's due RTCP feedback (receiver report, NACKs, transport-cc).
fn send_feedback(p: &mut Peer, now: Instant, buf: &mut Vec<u8>, counts: &mut FeedbackCounts) {
    let Role::Subscriber(Subscriber { fb: Some(fb), .. }) = &mut p.role else {
        return;
    };
    let Some(ctx) = p.session.srtp_out.as_mut() else {
        return;
    };
    if !fb.poll(now, buf, counts) {
        return;
    }
    let len = buf.len();
    // Room for the SRTCP index and tag.
    buf.resize(len + 64, 0);
    if let Ok(n) = ctx.protect_rtcp(buf, len) {
        if p.socket.send_to(&buf[..n], p.session.remote.addr).is_ok() {
            counts.rtcp_packets += 1;
        }
    }
}

/// A publisher's answer to the target's RTCP: RTX for the video packets it NACKed.
fn answer_nacks(
    pb: &mut Publisher,
    session: &mut Session,
    socket: &UdpSocket,
    srtcp: &mut [u8],
    counts: &mut WindowCounts,
) {
    let Some(fb) = pb.fb.as_mut() else {
        counts.rtcp += 1;
        return;
    };
    let Some(video_ssrc) = pb.video.first().map(|v| v.track.ssrc) else {
        return;
    };
    let Some(inb) = session.srtp_in.as_mut() else {
        return;
    };
    let Ok(len) = inb.unprotect_rtcp(srtcp) else {
        return;
    };
    let mut rtx = Vec::new();
    fb.on_rtcp(&srtcp[..len], video_ssrc, &mut rtx, &mut counts.feedback);
    let Some(out) = session.srtp_out.as_mut() else {
        return;
    };
    for mut p in rtx {
        let len = p.len();
        p.resize(len + 32, 0);
        if let Ok(n) = out.protect_rtp(&mut p, len) {
            let _ = socket.send_to(&p[..n], session.remote.addr);
        }
    }
}

/// Sends whatever the session queued (STUN, DTLS).
fn flush_session(p: &mut Peer) {
    while let Some(d) = p.session.poll_transmit() {
        let _ = p.socket.send_to(&d, p.session.remote.addr);
    }
}
