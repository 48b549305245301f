//! The only I/O of a worker: a glommio LocalExecutor pinned to one core, its UDP socket,
//! its ICE-TCP listener (`worker::tcp`), its timer and its control socket. Everything else is the sans-IO [`WorkerCore`],
//! shared between this executor's tasks as `Rc<RefCell<_>>` (one thread: no locks, no
//! atomics) and never borrowed across an `.await`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{UnixListener, UnixStream};
use glommio::sync::Semaphore;
use glommio::{Latency, LocalExecutorBuilder, Placement, Shares};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::batch::{RecvBatch, SendBatch};
use crate::channel::framing::{encode, Frame, FrameDecoder};
use crate::channel::{parse_request, ControlError, Event, Notification};
use crate::dtls::DtlsIdentity;
use crate::router::ConnId;
use crate::stats::DropReason;
use crate::tcp::{is_tcp_peer, TcpPeer};
use crate::worker::core::{CoreConfig, WorkerCore};
use crate::worker::liveness::LoopPhase;
use crate::worker::ownership::ConnRole;
use crate::worker::tcp::{bind_tcp, tcp_accept_loop};
use crate::worker::udp::MediaSocket;
use crate::worker::writer_queue::{writer_queue, ConnWriter, MAX_QUEUED_BYTES};

/// Datagrams taken from the socket per wake-up.
const RECV_BATCH: usize = 32;
/// Flush the send batch once it holds this many datagrams, even mid-receive-batch, to
/// bound latency and memory under large fan-out. Checked between consumers, so each
/// consumer's copies of a batch stay together for GSO (`worker::fanout`).
const SEND_FLUSH: usize = 1024;
/// How often a worker looks at its stop request.
const STOP_POLL: Duration = Duration::from_millis(20);
/// How long shutdown waits for control writers to deliver the last notifications.
const WRITER_DRAIN: Duration = Duration::from_millis(500);
/// Requests one control connection has handled before the others get their turn.
const REQUESTS_PER_TURN: u64 = 16;
/// The control queue's latency requirement: how long a control request or timer may
/// wait behind the packet loop.
const CONTROL_LATENCY: Duration = Duration::from_millis(10);
/// The timer loop sleeps until the core's next deadline, but never longer than this: its
/// wake-ups are the worker's heartbeat (systemd watchdog, `timerTicks`), so an idle
/// worker still proves at this interval that its executor runs.
const MAX_TIMER_SLEEP: Duration = Duration::from_millis(100);
/// Pause after a failed control accept (e.g. out of file descriptors) before retrying.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What the main thread and a worker share, outside the packet path: a stop request and
/// a heartbeat. The worker's timer task stores the heartbeat every wake-up (at least
/// every [`MAX_TIMER_SLEEP`]); since a
/// LocalExecutor runs its tasks on one thread, a stuck packet loop stops the heartbeat
/// too, and the systemd watchdog (main thread) stops being fed.
#[derive(Debug, Default)]
pub struct Lifeline {
    stop: AtomicBool,
    /// Milliseconds since the epoch instant of the last timer wake-up; 0 before the first.
    heartbeat_ms: AtomicU64,
}

impl Lifeline {
    /// Asks the worker to stop gracefully.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn beat(&self, epoch: Instant) {
        let ms = epoch.elapsed().as_millis().max(1) as u64;
        self.heartbeat_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether the worker ticked within `max_age` of now (both measured from `epoch`).
    pub fn alive(&self, epoch: Instant, max_age: Duration) -> bool {
        let last = self.heartbeat_ms.load(Ordering::Relaxed);
        last > 0 && epoch.elapsed().as_millis() as u64 <= last + max_age.as_millis() as u64
    }
}

/// Everything one worker needs to start.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub index: usize,
    pub workers: usize,
    pub listen: SocketAddr,
    /// Where the ICE-TCP listener binds; None without ICE-TCP.
    pub tcp_listen: Option<SocketAddr>,
    /// Addresses put into ICE candidates, the first preferred; empty: the bound one.
    pub announced_ips: Vec<IpAddr>,
    pub control_dir: PathBuf,
    /// CPU to pin to, or None to leave placement to the kernel.
    pub cpu: Option<usize>,
    pub identity: DtlsIdentity,
    /// Bytes of io_uring registered memory per ring (glommio locks 3 rings' worth).
    pub io_memory: usize,
    /// Stop request and heartbeat shared with the main thread.
    pub lifeline: Arc<Lifeline>,
    /// The instant heartbeats are measured from.
    pub epoch: Instant,
}

/// The control socket path of worker `index` under `dir`: connections confined to the
/// routers they create, mode 0770 (the daemon's group may connect).
pub fn control_socket_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("worker-{index}.sock"))
}

/// The admin socket path of worker `index` under `dir`: connections that may act on
/// every router, mode 0600 (the daemon's own user only).
pub fn admin_socket_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("worker-{index}.admin.sock"))
}

/// Who may connect to the confined socket (owner and group) and to the admin one
/// (owner). Set explicitly, not left to the umask: the admin socket must never be
/// reachable by the group.
const CONTROL_SOCKET_MODE: u32 = 0o770;
const ADMIN_SOCKET_MODE: u32 = 0o600;

/// What a started worker reports back.
#[derive(Debug, Clone)]
pub struct WorkerReady {
    pub index: usize,
    pub media: SocketAddr,
    /// The ICE-TCP listener's address, when it has one.
    pub tcp: Option<SocketAddr>,
    pub control: PathBuf,
    pub admin: PathBuf,
}

/// Starts a worker thread. `ready` receives its addresses once it listens, or the error
/// that kept it from starting.
pub fn spawn_worker(
    spec: WorkerSpec,
    ready: std::sync::mpsc::Sender<Result<WorkerReady, String>>,
) -> io::Result<glommio::ExecutorJoinHandle<()>> {
    let placement = match spec.cpu {
        Some(cpu) => Placement::Fixed(cpu),
        None => Placement::Unbound,
    };
    let name = format!("sfu-worker-{}", spec.index);
    LocalExecutorBuilder::new(placement)
        .name(&name)
        .io_memory(spec.io_memory)
        .spawn(move || async move {
            let failed = ready.clone();
            if let Err(e) = run(spec, ready).await {
                tracing::error!(error = %e, "worker stopped");
                let _ = failed.send(Err(e.to_string()));
            }
        })
        .map_err(|e| io::Error::other(e.to_string()))
}

type Conns = Rc<RefCell<HashMap<ConnId, Rc<ConnWriter>>>>;

/// Shared by a worker's tasks.
pub(super) struct Shared {
    pub(super) core: RefCell<WorkerCore>,
    socket: MediaSocket,
    /// One flush at a time: the socket's batching state is not re-entrant across awaits.
    send_lock: Semaphore,
    /// One receive batch in the core at a time, from its first datagram to the end of
    /// its fan-out: the core's fan-out refers to the batch's buffers, and the UDP loop and
    /// the ICE-TCP connections each have their own.
    packet_lock: Semaphore,
    /// Each ICE-TCP connection's writer, by the connection's slot (`worker::tcp`).
    pub(super) tcp_writers: RefCell<Vec<Option<LocalSender<()>>>>,
    /// Reused list of the connections a send queued to.
    tcp_woken: RefCell<Vec<TcpPeer>>,
    /// The send batch of ICE-TCP connections' receive batches, one for all of them (one
    /// batch is in the core at a time): a connection whose publisher fans out to many
    /// subscribers must not leave each connection holding a batch of that size.
    pub(super) tcp_send_batch: RefCell<SendBatch>,
    conns: Conns,
    /// Each connection's writer task, awaited at shutdown so that the last
    /// notifications reach the client before the worker exits.
    writers: RefCell<HashMap<ConnId, glommio::task::JoinHandle<()>>>,
    /// The next control connection's id (both sockets of the worker draw from it).
    next_conn: Cell<ConnId>,
    /// When the timer loop will wake next.
    timer_armed: Cell<Instant>,
    /// Wakes the timer loop early, to re-arm it for a deadline earlier than
    /// `timer_armed` (capacity one: one pending wake-up is enough).
    timer_wake: LocalSender<()>,
}

impl Shared {
    /// Notes what the packet loop does next (see [`Liveness`](crate::worker::liveness)).
    fn enter(&self, phase: LoopPhase) {
        self.core
            .borrow_mut()
            .liveness_mut()
            .enter(phase, Instant::now());
    }

    /// Wakes the timer loop if the core's next deadline moved before the one it sleeps
    /// for (after a receive batch or a control request).
    fn rearm_timer(&self) {
        let next = self.core.borrow().poll_timeout();
        if next.is_some_and(|at| at < self.timer_armed.get()) {
            // Full: a wake-up is already pending, which re-reads the deadline.
            let _ = self.timer_wake.try_send(());
        }
    }

    /// Sends a batch (serialised with other senders of this worker): datagrams for
    /// ICE-TCP connections to their writers, the rest by UDP.
    async fn send(&self, batch: &mut SendBatch) {
        if batch.has_tcp() {
            self.queue_tcp(batch);
        }
        if batch.is_empty() {
            return;
        }
        let Ok(_permit) = self.send_lock.acquire_permit(1).await else {
            return;
        };
        match self.socket.send_batch(batch).await {
            Ok(report) => self.core.borrow_mut().record_send(&report),
            Err(e) => {
                tracing::warn!(error = %e, "UDP send failed");
                self.core.borrow_mut().record_send_failure(batch.len());
                batch.clear();
            }
        }
    }

    /// Moves a batch's datagrams for ICE-TCP connections to their queues and wakes the
    /// writers that have something new.
    fn queue_tcp(&self, batch: &mut SendBatch) {
        let mut woken = self.tcp_woken.borrow_mut();
        self.core.borrow_mut().route_tcp(batch, &mut woken);
        let writers = self.tcp_writers.borrow();
        for peer in woken.drain(..) {
            if let Some(Some(w)) = writers.get(peer.slot()) {
                // Full: a wake-up is pending already.
                let _ = w.try_send(());
            }
        }
    }

    /// Runs one receive batch (`rb`, received at `received`) through the core: every
    /// datagram received, then the fan-out in steps of [`SEND_FLUSH`] copies, sending
    /// as it goes. The UDP loop and every ICE-TCP connection use it, one at a time.
    pub(super) async fn process(
        &self,
        rb: &mut RecvBatch,
        sb: &mut SendBatch,
        received: Instant,
        source: Source,
    ) {
        let Ok(_permit) = self.packet_lock.acquire_permit(1).await else {
            return;
        };
        {
            let mut core = self.core.borrow_mut();
            for i in 0..rb.len() {
                // The kernel's receive time per datagram when known (transport-cc
                // feedback depends on it); else the batch's.
                let arrival = rb.arrival(i).unwrap_or(received);
                let Some((buf, from)) = rb.get_mut(i) else {
                    continue;
                };
                if source == Source::Udp && is_tcp_peer(&from) {
                    // An ICE-TCP connection's stand-in address as a UDP source is
                    // forged (`crate::tcp`): never let it reach the tables.
                    core.drop_packet(DropReason::UnknownSource, None);
                    continue;
                }
                core.receive(arrival, from, buf, i, sb);
            }
        }
        // The batch may have brought deadlines forward (NACKs, feedback, handshakes).
        self.rearm_timer();
        // Replies and feedback first: they are few and time-critical.
        self.send(sb).await;
        loop {
            // Send-side bandwidth estimation wants the time copies leave, near enough.
            let done = self.core.borrow_mut().fan_out(
                Instant::now(),
                |i| rb.get(i).map(|(b, _)| b),
                sb,
                SEND_FLUSH,
            );
            self.send_measured(sb, received).await;
            if done {
                break;
            }
        }
    }

    /// Sends a batch of forwarded datagrams received at `received`, recording their
    /// receive-to-send-submission latency (one clock read and one histogram update per
    /// flush, not per datagram).
    async fn send_measured(&self, batch: &mut SendBatch, received: Instant) {
        if batch.is_empty() {
            return;
        }
        let micros = received.elapsed().as_micros() as u64;
        self.core
            .borrow_mut()
            .record_latency(micros, batch.len() as u64);
        self.send(batch).await;
    }

    /// Moves queued notifications to their connections' writers, and datagrams caused by
    /// control requests to the socket. Called after every unit of work, so a response
    /// always precedes the notifications its request caused.
    pub(super) async fn flush(&self) {
        let mut out = {
            let mut core = self.core.borrow_mut();
            let conns = self.conns.borrow();
            for (conn, n) in core.drain_notifications() {
                if let Some(tx) = conns.get(&conn) {
                    tx.send(encode_json(&n));
                }
            }
            std::mem::take(core.control_out())
        };
        self.send(&mut out).await;
        // Give the (now empty, but grown) batch back so its capacity is reused.
        let mut core = self.core.borrow_mut();
        if core.control_out().is_empty() {
            *core.control_out() = out;
        }
    }
}

/// Where a receive batch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Udp,
    /// One ICE-TCP connection's frames.
    Tcp,
}

fn encode_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Serialising our own plain structs cannot fail; an empty object is the fallback.
    encode(&serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec()))
}

async fn run(
    spec: WorkerSpec,
    ready: std::sync::mpsc::Sender<Result<WorkerReady, String>>,
) -> io::Result<()> {
    let socket = MediaSocket::bind(spec.listen)?;
    let local = socket.local_addr()?;
    let tcp_listener = spec.tcp_listen.map(bind_tcp).transpose()?;
    let tcp_local = tcp_listener
        .as_ref()
        .map(glommio::net::TcpListener::local_addr)
        .transpose()?;
    let announced = SocketAddr::new(
        spec.announced_ips.first().copied().unwrap_or(local.ip()),
        local.port(),
    );
    let also_announced = spec.announced_ips.iter().skip(1).copied().collect();
    let path = control_socket_path(&spec.control_dir, spec.index);
    let admin_path = admin_socket_path(&spec.control_dir, spec.index);
    let listener = bind_control(&path, CONTROL_SOCKET_MODE)?;
    let admin_listener = bind_control(&admin_path, ADMIN_SOCKET_MODE)?;
    let cfg = CoreConfig {
        index: spec.index,
        workers: spec.workers,
        local,
        announced,
        also_announced,
        tcp_port: tcp_local.map(|a| a.port()),
    };
    let (timer_wake, timer_woken) = local_channel::new_bounded(1);
    let shared = Rc::new(Shared {
        core: RefCell::new(WorkerCore::new(
            cfg,
            spec.identity,
            StdRng::from_entropy(),
            Instant::now(),
            SystemTime::now(),
        )),
        socket,
        send_lock: Semaphore::new(1),
        packet_lock: Semaphore::new(1),
        tcp_writers: RefCell::new(Vec::new()),
        tcp_woken: RefCell::new(Vec::new()),
        tcp_send_batch: RefCell::new(SendBatch::new()),
        conns: Rc::new(RefCell::new(HashMap::new())),
        writers: RefCell::new(HashMap::new()),
        next_conn: Cell::new(1),
        timer_armed: Cell::new(Instant::now()),
        timer_wake,
    });
    tracing::info!(worker = spec.index, media = %local, tcp = ?tcp_local, control = %path.display(), "worker listening");
    let _ = ready.send(Ok(WorkerReady {
        index: spec.index,
        media: local,
        tcp: tcp_local,
        control: path.clone(),
        admin: admin_path.clone(),
    }));

    // Control and timers get their own latency-sensitive task queue: under a continuous
    // stream of datagrams the packet loop never parks, and in one queue a control request
    // could wait seconds behind it. The packet loop yields whenever glommio says a
    // latency-sensitive queue is due (yield_if_needed after every batch). Tasks spawned
    // from these (connections, writers) inherit the queue.
    let control = glommio::executor().create_task_queue(
        Shares::Static(1000),
        Latency::Matters(CONTROL_LATENCY),
        "control",
    );
    let accept = accept_loop(
        listener,
        ConnRole::Confined,
        shared.clone(),
        spec.index,
        spec.workers,
    );
    let accept_admin = accept_loop(
        admin_listener,
        ConnRole::Admin,
        shared.clone(),
        spec.index,
        spec.workers,
    );
    let timers = timer_loop(
        shared.clone(),
        timer_woken,
        spec.lifeline.clone(),
        spec.epoch,
    );
    let spawn_err = |e: glommio::GlommioError<()>| io::Error::other(e.to_string());
    glommio::spawn_local_into(accept, control)
        .map_err(spawn_err)?
        .detach();
    glommio::spawn_local_into(accept_admin, control)
        .map_err(spawn_err)?
        .detach();
    glommio::spawn_local_into(timers, control)
        .map_err(spawn_err)?
        .detach();
    if let Some(listener) = tcp_listener {
        // The packet path's queue, like the UDP loop: TCP media is media.
        glommio::spawn_local(tcp_accept_loop(listener, shared.clone())).detach();
    }
    futures_lite::future::or(packet_loop(shared.clone()), wait_for_stop(&spec.lifeline)).await?;
    shutdown(&shared, &[&path, &admin_path]).await;
    Ok(())
}

/// Binds a control socket at `path` with `mode`. The daemon's umask (main.rs) leaves a
/// new socket owner-only until the mode is set, so it is never more open than `mode`.
fn bind_control(path: &Path, mode: u32) -> io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    // A stale socket from a previous run would make bind fail.
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

async fn wait_for_stop(lifeline: &Lifeline) -> io::Result<()> {
    while !lifeline.stop_requested() {
        glommio::timer::sleep(STOP_POLL).await;
    }
    Ok(())
}

/// Graceful stop: no new control connections (the socket file goes), every router closed
/// with notifications, DTLS close_notify to peers, and the control writers drained.
async fn shutdown(shared: &Shared, control_paths: &[&Path]) {
    for path in control_paths {
        let _ = std::fs::remove_file(path);
    }
    shared.core.borrow_mut().shutdown(Instant::now());
    shared.flush().await;
    // An empty frame tells a writer to finish after what is queued before it.
    for tx in shared.conns.borrow().values() {
        tx.send(Vec::new());
    }
    let writers: Vec<_> = shared
        .writers
        .borrow_mut()
        .drain()
        .map(|(_, w)| w)
        .collect();
    let drained = async {
        for w in writers {
            let _ = w.await;
        }
    };
    futures_lite::future::or(drained, glommio::timer::sleep(WRITER_DRAIN)).await;
    tracing::info!("worker stopped");
}

async fn packet_loop(shared: Rc<Shared>) -> io::Result<()> {
    let mut rb = RecvBatch::new(RECV_BATCH);
    let mut sb = SendBatch::new();
    loop {
        shared.enter(LoopPhase::Receive);
        let n = shared.socket.recv_batch(&mut rb).await?;
        // Receive completion: the start of every forwarded datagram's in-daemon latency.
        let received = Instant::now();
        {
            let mut core = shared.core.borrow_mut();
            core.liveness_mut().received(received);
            core.liveness_mut().enter(LoopPhase::Send, received);
            core.record_receive(n);
        }
        shared
            .process(&mut rb, &mut sb, received, Source::Udp)
            .await;
        shared.enter(LoopPhase::Flush);
        shared.flush().await;
        shared.enter(LoopPhase::Yield);
        glommio::yield_if_needed().await;
    }
}

/// Arms one timer for the core's next deadline (at most [`MAX_TIMER_SLEEP`] away), runs
/// what is due, and starts over; `woken` re-arms it early when a receive batch or a
/// control request moved the deadline earlier.
async fn timer_loop(
    shared: Rc<Shared>,
    woken: LocalReceiver<()>,
    lifeline: Arc<Lifeline>,
    epoch: Instant,
) {
    let mut sb = SendBatch::new();
    loop {
        lifeline.beat(epoch);
        let now = Instant::now();
        let latest = now + MAX_TIMER_SLEEP;
        let at = shared
            .core
            .borrow()
            .poll_timeout()
            .map_or(latest, |at| at.min(latest));
        shared.timer_armed.set(at);
        let sleep = async {
            glommio::timer::sleep(at.saturating_duration_since(now)).await;
            false
        };
        let early = async { woken.recv().await.is_some() };
        if futures_lite::future::or(sleep, early).await && Instant::now() < at {
            // Re-armed for an earlier deadline: nothing may be due yet.
            continue;
        }
        let now = Instant::now();
        {
            let mut core = shared.core.borrow_mut();
            core.liveness_mut().ticked(now);
            core.handle_timeout(now, &mut sb);
        }
        shared.send(&mut sb).await;
        shared.flush().await;
    }
}

async fn accept_loop(
    listener: UnixListener,
    role: ConnRole,
    shared: Rc<Shared>,
    index: usize,
    workers: usize,
) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let conn = shared.next_conn.get();
                shared.next_conn.set(conn + 1);
                glommio::spawn_local(serve_connection(
                    stream,
                    conn,
                    role,
                    shared.clone(),
                    index,
                    workers,
                ))
                .detach();
            }
            Err(e) => {
                tracing::warn!(error = %e, "control accept failed");
                glommio::timer::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

async fn serve_connection(
    stream: UnixStream,
    conn: ConnId,
    role: ConnRole,
    shared: Rc<Shared>,
    index: usize,
    workers: usize,
) {
    // Reading requests and writing responses/notifications proceed independently. The
    // split's mutex guards only this control connection (never the packet path) and is
    // uncontended: both halves live on this one thread.
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let (tx, rx, overflow) = writer_queue(MAX_QUEUED_BYTES);
    let tx = Rc::new(tx);
    shared.conns.borrow_mut().insert(conn, tx.clone());
    shared.core.borrow_mut().open_connection(conn, role);
    // The writer ends once every sender of `rx` is dropped (below), at an empty frame
    // (shutdown), or when cancelled (a client that stopped reading).
    let writer_task = glommio::spawn_local(async move {
        while let Some(frame) = rx.recv().await {
            if frame.is_empty() || writer.write_all(&frame).await.is_err() {
                break;
            }
            rx.written(&frame);
        }
        let _ = writer.flush().await;
    })
    .detach();
    shared.writers.borrow_mut().insert(conn, writer_task);
    tracing::info!(conn, ?role, "control connection opened");
    tx.send(encode_json(&Notification {
        target: format!("worker-{index}"),
        event: Event::Ready {
            worker: index,
            workers,
            pid: std::process::id(),
            admin: role == ConnRole::Admin,
        },
    }));

    let mut decoder = FrameDecoder::default();
    let mut frames = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut handled: u64 = 0;
    'read: loop {
        // The overflow signal interrupts a read that would otherwise wait for a client
        // that sends nothing more either.
        let n = match futures_lite::future::or(async { Some(reader.read(&mut buf).await) }, async {
            let _ = overflow.recv().await;
            None
        })
        .await
        {
            Some(Ok(0) | Err(_)) | None => break,
            Some(Ok(n)) => n,
        };
        decoder.push(buf.get(..n).unwrap_or_default(), &mut frames);
        for frame in frames.drain(..) {
            let response = match frame {
                Frame::Oversized(len) => ControlError::Oversized(len).response(None),
                Frame::Body(body) => match parse_request(&body) {
                    Ok(req) => shared
                        .core
                        .borrow_mut()
                        .handle_request(Instant::now(), conn, req),
                    Err((id, e)) => e.response(id),
                },
            };
            tx.send(encode_json(&response));
            shared.rearm_timer();
            shared.flush().await;
            if tx.overflowed() {
                break 'read;
            }
            handled += 1;
            if handled % REQUESTS_PER_TURN == 0 {
                // A read that finds data completes without suspending: a client
                // streaming requests would keep this task running and every other
                // control connection of the worker waiting.
                futures_lite::future::yield_now().await;
            }
        }
    }
    shared.conns.borrow_mut().remove(&conn);
    let writer_task = shared.writers.borrow_mut().remove(&conn);
    if tx.overflowed() {
        // The client stopped reading: whatever is queued would never be written. The
        // writer goes now, and with it (once this reader half is dropped below) the
        // socket, and the queued frames.
        if let Some(w) = &writer_task {
            w.cancel();
        }
        shared.core.borrow_mut().record_control_client_dropped();
        tracing::warn!(
            conn,
            queued = tx.queued(),
            limit = MAX_QUEUED_BYTES,
            "control client does not read its responses: disconnected"
        );
    } else if let Some(w) = writer_task {
        // A client that closed its sending side gets what is queued, within the drain
        // time: one that never reads again must not keep the queue forever.
        glommio::spawn_local(async move {
            glommio::timer::sleep(WRITER_DRAIN).await;
            w.cancel();
        })
        .detach();
    }
    tracing::info!(conn, "control connection closed");
    drop(tx);
    shared
        .core
        .borrow_mut()
        .close_connection(Instant::now(), conn);
    shared.flush().await;
}
