//! How much snapshot memory waits in one plugin's queue.
//!
//! The plugin channels are bounded in events, but a whole-memory snapshot
//! is several MiB: a thousand of them queued behind a slow plugin would be
//! gigabytes. So the tracer also waits while a plugin's queued snapshots
//! exceed [`LIMIT`] bytes; the worker releases each event's bytes once it
//! has handled it. One oversized snapshot still passes when the queue is
//! empty, so nothing can wait forever on its own size.

use std::sync::{Condvar, Mutex};

/// Snapshot bytes queued to one plugin before the tracer waits for it.
pub const LIMIT: usize = 256 << 20;

#[derive(Default)]
pub struct Backlog {
    state: Mutex<State>,
    drained: Condvar,
}

#[derive(Default)]
struct State {
    bytes: usize,
    /// The worker stopped: nothing will be released any more.
    closed: bool,
}

impl Backlog {
    /// Reserves `bytes` for an event about to be queued, waiting while the
    /// queue holds too much.
    pub fn reserve(&self, bytes: usize) {
        if bytes == 0 {
            // Most events carry no snapshot: no lock shared with the worker.
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while !s.closed && s.bytes > 0 && s.bytes + bytes > LIMIT {
            s = self.drained.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.bytes += bytes;
    }

    /// Releases what [`Backlog::reserve`] took, once the event is handled.
    pub fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.bytes = s.bytes.saturating_sub(bytes);
        self.drained.notify_all();
    }

    /// The worker is gone: stop making anyone wait.
    pub fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.drained.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn the_tracer_waits_until_the_worker_catches_up() {
        let b = Arc::new(Backlog::default());
        b.reserve(LIMIT - 10);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let b = b.clone();
            std::thread::spawn(move || {
                b.reserve(100);
                tx.send(()).unwrap();
            })
        };
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "did not wait"
        );
        b.release(LIMIT - 10);
        rx.recv_timeout(Duration::from_secs(5)).expect("released");
        waiter.join().unwrap();
        // Alone in the queue, anything passes; a closed backlog never waits.
        b.release(100);
        b.reserve(LIMIT * 2);
        b.close();
        b.reserve(LIMIT);
    }
}
