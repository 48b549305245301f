//! What one control connection has queued to be written: responses and the
//! notifications the core emits for it, bounded in bytes. A client that stops reading
//! would otherwise make the daemon hold everything it is ever sent (100,000 unread
//! `worker.getStats` answers held 90 MB); past the bound the connection is marked
//! overflowed, further frames are dropped, and its reader is told to close it.

use std::cell::Cell;
use std::rc::Rc;

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};

/// Bytes one control connection may have queued and not yet written.
///
/// Sized from the largest burst a well-behaved client (signaling) can be sent at once,
/// which is all of its notifications at the close of everything it owns (its control
/// connection closing, or the worker stopping: `workerclose`, then a `routerclose`,
/// `transportclose` or `producerclose` per entity): about 100 bytes each, so 16 MiB holds
/// the close of some 160,000 transports, producers and consumers, 40 times the 4,000
/// consumers of the 2,000-subscriber capacity run (BENCHMARKS.md). The largest single
/// answer, `router.getStats`, takes about 1.3 KB per transport: 16 MiB is a
/// 12,000-transport router. A client that reads as it goes never comes near; one that
/// does not read is cut off after about 16,000 unread `worker.getStats` answers.
pub(crate) const MAX_QUEUED_BYTES: usize = 16 << 20;

/// Bookkeeping charged per queued frame beyond its bytes (the Vec and the channel's
/// slot), so that a flood of tiny frames is bounded too.
const FRAME_OVERHEAD: usize = 64;

/// The sending side, shared by everything that queues frames for the connection.
#[derive(Debug)]
pub(crate) struct ConnWriter {
    frames: LocalSender<Vec<u8>>,
    queued: Rc<Cell<usize>>,
    limit: usize,
    overflowed: Cell<bool>,
    /// Wakes the connection's reader once the queue overflowed.
    kill: LocalSender<()>,
}

/// The writer task's side: frames in order, each [`Self::written`] once it is out.
#[derive(Debug)]
pub(crate) struct QueueReceiver {
    frames: LocalReceiver<Vec<u8>>,
    queued: Rc<Cell<usize>>,
}

/// A queue for one connection with room for `limit` bytes. The third value resolves
/// when the queue overflows.
pub(crate) fn writer_queue(limit: usize) -> (ConnWriter, QueueReceiver, LocalReceiver<()>) {
    let (frames_tx, frames_rx) = local_channel::new_unbounded();
    let (kill_tx, kill_rx) = local_channel::new_bounded(1);
    let queued = Rc::new(Cell::new(0));
    (
        ConnWriter {
            frames: frames_tx,
            queued: queued.clone(),
            limit,
            overflowed: Cell::new(false),
            kill: kill_tx,
        },
        QueueReceiver {
            frames: frames_rx,
            queued,
        },
        kill_rx,
    )
}

fn charge(frame: &[u8]) -> usize {
    frame.len().saturating_add(FRAME_OVERHEAD)
}

impl ConnWriter {
    /// Queues a frame, unless that would pass the bound: then the connection is marked
    /// overflowed, its reader woken, and this and every later frame dropped.
    pub(crate) fn send(&self, frame: Vec<u8>) {
        if self.overflowed.get() {
            return;
        }
        let queued = self.queued.get().saturating_add(charge(&frame));
        if queued > self.limit {
            self.overflowed.set(true);
            let _ = self.kill.try_send(());
            return;
        }
        if self.frames.try_send(frame).is_ok() {
            self.queued.set(queued);
        }
    }

    /// Whether the client stopped reading and the connection must be closed.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed.get()
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.queued.get()
    }
}

impl QueueReceiver {
    /// The next frame, or None once every [`ConnWriter`] is gone and the queue is empty.
    pub(crate) async fn recv(&self) -> Option<Vec<u8>> {
        self.frames.recv().await
    }

    /// Releases the bytes of a frame taken by [`Self::recv`], once written.
    pub(crate) fn written(&self, frame: &[u8]) {
        self.queued
            .set(self.queued.get().saturating_sub(charge(frame)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_drops_frames_and_signals_once() {
        glommio::LocalExecutor::default().run(async {
            let (tx, rx, kill) = writer_queue(3 * (10 + FRAME_OVERHEAD));
            for _ in 0..3 {
                tx.send(vec![0; 10]);
            }
            assert!(!tx.overflowed());
            tx.send(vec![0; 10]);
            assert!(tx.overflowed());
            assert_eq!(kill.recv().await, Some(()));
            // Written frames free their room, but an overflowed queue stays closed.
            let f = rx.recv().await.unwrap();
            rx.written(&f);
            assert_eq!(tx.queued(), 2 * (10 + FRAME_OVERHEAD));
            tx.send(vec![0; 1]);
            assert_eq!(tx.queued(), 2 * (10 + FRAME_OVERHEAD));
        });
    }
}
