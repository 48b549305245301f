//! The active speaker end to end, through a real `sfu-signaling` and its real daemon:
//! two pages publish Opus over real UDP with the audio level in every packet, as
//! browsers do (a str0m peer in SDP mode per page: offer, answer, ICE, DTLS, SRTP). The
//! one who talks is announced to both pages as `activeSpeaker`; when the other talks,
//! the announcement follows; a page that joins later is told at once; and after the
//! media server restarts, the room's new router observes the pages' new tracks.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicI8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use str0m::change::SdpAnswer;
use str0m::config::DtlsVersion;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use common::{Client, Daemon, Signaling};

/// Speech, and a microphone nobody talks into (dBov).
const TALKING: i8 = -25;
const QUIET: i8 = -120;
/// One Opus frame.
const FRAME: Duration = Duration::from_millis(20);

/// A page's publishing side: its str0m peer runs on its own thread (real time, real
/// UDP), sending an Opus frame every 20 ms at the level the test sets.
struct Mic {
    level: Arc<AtomicI8>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Mic {
    fn set(&self, level: i8) {
        self.level.store(level, Ordering::Relaxed);
    }
}

impl Drop for Mic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Joins `name` to `room` and publishes a microphone, quiet at first.
async fn join_and_publish(srv: &Signaling, room: &str, name: &str) -> (Client, String, Mic) {
    let mut page = Client::connect(&srv.ws_url()).await;
    let joined = page.join(room, name).await;
    let peer_id = joined["peerId"].as_str().unwrap().to_owned();
    let mic = publish(&mut page, 0).await;
    (page, peer_id, mic)
}

/// Publishes a microphone, quiet at first, on a new peer connection (the send side's
/// offer after the `restart` of `epoch`, 0 before any).
async fn publish(page: &mut Client, epoch: u64) -> Mic {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = socket.local_addr().unwrap();
    let mut rtc = Rtc::builder()
        // rtc-dtls speaks DTLS 1.2 only, as do browsers today.
        .set_dtls_version(DtlsVersion::Dtls12)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, pending) = change.apply().expect("an offer");
    page.send(json!({"type": "offer", "sdp": offer.to_sdp_string(), "epoch": epoch}))
        .await;
    let answer = page.until("answer").await;
    let answer = SdpAnswer::from_sdp_string(answer["sdp"].as_str().unwrap()).unwrap();
    rtc.sdp_api().accept_answer(pending, answer).unwrap();

    let level = Arc::new(AtomicI8::new(QUIET));
    let stop = Arc::new(AtomicBool::new(false));
    let (l, s) = (level.clone(), stop.clone());
    let thread = std::thread::spawn(move || run_mic(rtc, socket, local, mid, &l, &s));
    Mic {
        level,
        stop,
        thread: Some(thread),
    }
}

/// The page's media loop: str0m's output to the socket, the socket to str0m, and once
/// connected an Opus frame with its audio level every 20 ms.
fn run_mic(
    mut rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    mid: Mid,
    level: &AtomicI8,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 2000];
    let mut connected = false;
    let mut next_frame = Instant::now();
    let mut frames: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let timeout = match rtc.poll_output().expect("poll_output") {
            Output::Transmit(t) => {
                let _ = socket.send_to(&t.contents, t.destination);
                continue;
            }
            Output::Event(Event::Connected) => {
                connected = true;
                continue;
            }
            Output::Event(_) => continue,
            Output::Timeout(t) => t,
        };
        let now = Instant::now();
        if connected && now >= next_frame {
            if let Some(writer) = rtc.writer(mid) {
                let pt = writer
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::Opus)
                    .map(|p| p.pt());
                if let Some(pt) = pt {
                    let dbov = level.load(Ordering::Relaxed);
                    let rtp_time = MediaTime::new(frames * 960, Frequency::FORTY_EIGHT_KHZ);
                    let _ = writer.audio_level(dbov, dbov > -60).write(
                        pt,
                        now,
                        rtp_time,
                        vec![0xfc; 60],
                    );
                }
            }
            frames += 1;
            next_frame += FRAME;
            continue;
        }
        let wake = if connected {
            timeout.min(next_frame)
        } else {
            timeout
        };
        let wait = wake
            .saturating_duration_since(now)
            .clamp(Duration::from_millis(1), Duration::from_millis(20));
        socket.set_read_timeout(Some(wait)).unwrap();
        let input = match socket.recv_from(&mut buf) {
            Ok((n, from)) => match Receive::new(Protocol::Udp, from, local, &buf[..n]) {
                Ok(r) => Input::Receive(Instant::now(), r),
                Err(_) => continue,
            },
            Err(_) => Input::Timeout(Instant::now()),
        };
        if rtc.handle_input(input).is_err() {
            return;
        }
    }
}

/// The next `activeSpeaker` message of `page` (other messages skipped).
async fn active_speaker(page: &mut Client) -> Value {
    page.until("activeSpeaker").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_told_who_speaks_and_follows_the_other_when_it_talks() {
    let srv = Signaling::start(&[]);
    let (mut ada, ada_id, ada_mic) = join_and_publish(&srv, "speakers", "ada").await;
    let (mut bob, bob_id, bob_mic) = join_and_publish(&srv, "speakers", "bob").await;

    ada_mic.set(TALKING);
    assert_eq!(active_speaker(&mut bob).await["peerId"], ada_id.as_str());
    assert_eq!(active_speaker(&mut ada).await["peerId"], ada_id.as_str());

    ada_mic.set(QUIET);
    bob_mic.set(TALKING);
    assert_eq!(active_speaker(&mut ada).await["peerId"], bob_id.as_str());
    assert_eq!(active_speaker(&mut bob).await["peerId"], bob_id.as_str());

    // Someone who joins now learns who speaks without waiting for a change.
    let mut cyd = Client::connect(&srv.ws_url()).await;
    cyd.join("speakers", "cyd").await;
    assert_eq!(active_speaker(&mut cyd).await["peerId"], bob_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_media_server_restart_the_room_observes_its_speakers_again() {
    let mut daemon = Daemon::start();
    let dir = daemon.dir.path().to_str().unwrap().to_owned();
    let srv = Signaling::start(&["--daemon", &dir]);
    let (mut ada, ada_id, ada_mic) = join_and_publish(&srv, "phoenix", "ada").await;
    let (mut bob, bob_id, bob_mic) = join_and_publish(&srv, "phoenix", "bob").await;
    ada_mic.set(TALKING);
    assert_eq!(active_speaker(&mut bob).await["peerId"], ada_id.as_str());
    drop((ada_mic, bob_mic));

    daemon.kill();
    daemon.restart();
    for page in [&mut ada, &mut bob] {
        let restart = page.until("restart").await;
        assert_eq!(restart["epoch"], 1, "{restart}");
    }
    // The pages publish again on new peer connections; the new router's observer hears
    // them: Bob talks now.
    let _ada_mic = publish(&mut ada, 1).await;
    let bob_mic = publish(&mut bob, 1).await;
    bob_mic.set(TALKING);
    assert_eq!(active_speaker(&mut ada).await["peerId"], bob_id.as_str());
}
