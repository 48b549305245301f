//! A worker's ICE-TCP listener (RFC 6544 passive candidates) and its connections: the
//! sockets and tasks only. What a connection may hold and for how long, and how its bytes
//! are framed, is sans-IO (`crate::tcp`, `worker::tcp_peers`); its frames go through the
//! same packet path as UDP datagrams ([`Shared::process`]).
//!
//! Per connection: one reader task (read into the [`Deframer`], frames copied into a small
//! [`RecvBatch`], processed, until the peer closes, a bad length, or the core's deadline
//! for it passes) and one writer task (woken when the core queued frames to it, it writes
//! them in one `write_all`).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::net::{TcpListener, TcpStream};

use crate::batch::{canonical, RecvBatch};
use crate::tcp::{Deframer, TcpPeer};
use crate::worker::shell::{Shared, Source};
use crate::worker::tcp_peers::TcpClosed;

/// Frames taken from one connection per pass through the core: a connection carries one
/// peer's traffic, a few packets per read.
const TCP_RECV_BATCH: usize = 8;
/// Pause after a failed accept (e.g. out of file descriptors) before retrying.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Binds the ICE-TCP listener with std, so a port in use fails loudly (glommio's own
/// bind sets `SO_REUSEPORT`, which would share the port with another process).
pub(super) fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    // SAFETY: into_raw_fd hands over ownership of a valid, bound and listening socket,
    // which the glommio listener now owns and closes.
    Ok(unsafe { TcpListener::from_raw_fd(std_listener.into_raw_fd()) })
}

/// Accepts connections for as long as the worker runs; the core admits or refuses each.
pub(super) async fn tcp_accept_loop(listener: TcpListener, shared: Rc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "ICE-TCP accept failed");
                glommio::timer::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let Ok(remote) = stream.peer_addr() else {
            continue;
        };
        let admitted = shared
            .core
            .borrow_mut()
            .tcp_open(Instant::now(), canonical(remote));
        // A refused connection is closed by dropping it.
        if let Some(peer) = admitted {
            glommio::spawn_local(serve(stream, peer, shared.clone())).detach();
        }
    }
}

async fn serve(stream: TcpStream, peer: TcpPeer, shared: Rc<Shared>) {
    // Media: a small frame must not wait for more to fill a segment.
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = futures_lite::io::split(stream);
    let (wake, woken) = local_channel::new_bounded(1);
    {
        let mut writers = shared.tcp_writers.borrow_mut();
        if writers.len() <= peer.slot() {
            writers.resize_with(peer.slot() + 1, || None);
        }
        if let Some(w) = writers.get_mut(peer.slot()) {
            *w = Some(wake);
        }
    }
    glommio::spawn_local(write_loop(writer, woken, peer, shared.clone())).detach();

    let mut deframer = Deframer::new();
    let mut rb = RecvBatch::new(TCP_RECV_BATCH);
    let why = 'read: loop {
        let Some(deadline) = shared.core.borrow().tcp_deadline(peer) else {
            break TcpClosed::Ended;
        };
        let read = async { Some(reader.read(deframer.spare()).await) };
        let expire = async {
            glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
            None
        };
        let n = match futures_lite::future::or(read, expire).await {
            None => break TcpClosed::TimedOut,
            Some(Ok(0) | Err(_)) => break TcpClosed::Ended,
            Some(Ok(n)) => n,
        };
        deframer.filled(n);
        let received = Instant::now();
        loop {
            rb.clear();
            let mut bad = None;
            let mut more = true;
            while rb.len() < rb.capacity() {
                match deframer.next_frame() {
                    // A frame is at most MAX_FRAME_LEN, a slot's size: it always fits.
                    Ok(Some(frame)) => {
                        rb.push(peer.addr(), frame, received);
                    }
                    Ok(None) => {
                        more = false;
                        break;
                    }
                    Err(e) => {
                        bad = Some(e);
                        break;
                    }
                }
            }
            if !rb.is_empty() {
                // The shared batch, taken for this pass and given back with its capacity
                // (a connection waiting for the core meanwhile takes an empty one, which
                // costs no allocation until used).
                let mut sb = std::mem::take(&mut *shared.tcp_send_batch.borrow_mut());
                shared
                    .process(&mut rb, &mut sb, received, Source::Tcp)
                    .await;
                *shared.tcp_send_batch.borrow_mut() = sb;
                shared
                    .core
                    .borrow_mut()
                    .tcp_received(received, peer, rb.len());
                shared.flush().await;
            }
            if let Some(e) = bad {
                break 'read TcpClosed::Framing(e);
            }
            if !more {
                break;
            }
        }
    };
    shared.core.borrow_mut().tcp_close(peer, why);
    // The writer ends with its only sender (slot reuse waits for tcp_close above, and
    // nothing awaits in between).
    if let Some(w) = shared.tcp_writers.borrow_mut().get_mut(peer.slot()) {
        *w = None;
    }
    tracing::debug!(%peer, ?why, "ICE-TCP connection closed");
}

/// Writes what the core queues to the connection until the connection is closed.
async fn write_loop(
    mut writer: futures_lite::io::WriteHalf<TcpStream>,
    woken: LocalReceiver<()>,
    peer: TcpPeer,
    shared: Rc<Shared>,
) {
    let mut buf = Vec::new();
    while woken.recv().await.is_some() {
        shared.core.borrow_mut().tcp_take_out(peer, &mut buf);
        if buf.is_empty() {
            continue;
        }
        if writer.write_all(&buf).await.is_err() {
            break;
        }
    }
    let _ = writer.close().await;
}
