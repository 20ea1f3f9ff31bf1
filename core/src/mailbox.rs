//! Handing work to a thread on another CPU without waking it each time.
//!
//! Waking a thread that sleeps on the other CPU costs the waker ~19 µs on
//! these VMs (a futex wake that interrupts the other vCPU), and a
//! crossbeam send to a receiver blocked in `recv` made one or two of them
//! for each batch of events. Worse, every time the plugins' CPU wakes up,
//! the program's CPU slows down: with the trace writer looking for work
//! every 0.1 ms, recording `cp -r` took 3.6 ms longer than with a wake-up
//! per batch; every 4 ms, 1.0–1.5 ms shorter (`ls -laR` 2.5 ms, `python3
//! -c pass` 1.1 ms, replaying `cp -r` 0.6 ms shorter; 8 and 16 ms were no
//! better). So a worker that waits with [`Inbox::recv`] looks at its
//! channel every [`POLL`], by a timer on its own CPU, while it has had
//! work lately, and after [`DOZE`] without any sleeps until rung. A
//! [`Mailbox::send`] wakes it only for an urgent message or from that
//! sleep.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use crossbeam_channel::{Receiver, SendError, Sender, TryRecvError};

/// How often a worker with work lately looks for more (see the module's
/// measurements). The channel's capacity and the snapshot backlog's limit
/// stay what bound the memory queued meanwhile: a sender they stop waits
/// for the worker's next look at most.
pub const POLL: Duration = Duration::from_millis(4);

/// How long a worker polls without finding work before it sleeps until
/// rung: a program that waits for long costs no wake-ups every [`POLL`].
pub const DOZE: Duration = Duration::from_millis(20);

/// The sending end: a channel and the worker's doorbell.
pub struct Mailbox<T> {
    tx: Sender<T>,
    asleep: Arc<AtomicBool>,
    worker: Thread,
}

/// The receiving end, in the worker thread.
pub struct Inbox<T> {
    rx: Receiver<T>,
    asleep: Arc<AtomicBool>,
}

/// Starts a thread (as `builder` says) running `work`, which takes its
/// messages from the [`Inbox`] it is given; the channel holds up to
/// `capacity` of them.
pub fn spawn<T, R>(
    builder: std::thread::Builder,
    capacity: usize,
    work: impl FnOnce(Inbox<T>) -> R + Send + 'static,
) -> std::io::Result<(Mailbox<T>, JoinHandle<R>)>
where
    T: Send + 'static,
    R: Send + 'static,
{
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let asleep = Arc::new(AtomicBool::new(false));
    let inbox = Inbox {
        rx,
        asleep: asleep.clone(),
    };
    let handle = builder.spawn(move || work(inbox))?;
    let mailbox = Mailbox {
        tx,
        asleep,
        worker: handle.thread().clone(),
    };
    Ok((mailbox, handle))
}

impl<T> Mailbox<T> {
    /// Queues `msg` (waiting while the channel is full); wakes the worker
    /// if it sleeps, or at once if `urgent`. `Err` when the worker has
    /// gone.
    pub fn send(&self, msg: T, urgent: bool) -> Result<(), SendError<T>> {
        self.tx.send(msg)?;
        // Pairs with the worker's fence between announcing its sleep and
        // its last look: either it sees the message or this sees it asleep.
        fence(Ordering::SeqCst);
        if urgent || self.asleep.load(Ordering::Relaxed) {
            self.worker.unpark();
        }
        Ok(())
    }
}

impl<T> Drop for Mailbox<T> {
    /// The worker learns that nothing more comes at its next look: now.
    fn drop(&mut self) {
        self.worker.unpark();
    }
}

impl<T> Inbox<T> {
    /// The next message; `None` once every [`Mailbox`] is gone and the
    /// channel is empty.
    pub fn recv(&self) -> Option<T> {
        let mut idle = Duration::ZERO;
        loop {
            match self.rx.try_recv() {
                Ok(msg) => return Some(msg),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {}
            }
            if idle < DOZE {
                std::thread::park_timeout(POLL);
                idle += POLL;
                continue;
            }
            self.asleep.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            // A message sent before the announcement was not rung for.
            let last = self.rx.try_recv();
            if matches!(last, Err(TryRecvError::Empty)) {
                std::thread::park();
            }
            self.asleep.store(false, Ordering::Relaxed);
            match last {
                Ok(msg) => return Some(msg),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => idle = Duration::ZERO,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn start(capacity: usize) -> (Mailbox<u32>, JoinHandle<Vec<u32>>) {
        spawn(
            std::thread::Builder::new(),
            capacity,
            |inbox: Inbox<u32>| {
                let mut got = Vec::new();
                while let Some(m) = inbox.recv() {
                    got.push(m);
                }
                got
            },
        )
        .unwrap()
    }

    #[test]
    fn every_message_arrives_in_order_and_the_end_is_seen() {
        // A small channel: the sender also waits for the worker's looks.
        let (mailbox, worker) = start(4);
        for i in 0..100 {
            mailbox.send(i, i % 10 == 0).unwrap();
        }
        drop(mailbox);
        assert_eq!(worker.join().unwrap(), (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn a_sleeping_worker_is_rung() {
        let (mailbox, worker) = start(4);
        mailbox.send(1, false).unwrap();
        // Long enough for it to give up polling and sleep.
        let sleeping = Instant::now();
        while !mailbox.asleep.load(Ordering::SeqCst) {
            assert!(sleeping.elapsed() < Duration::from_secs(10), "never slept");
            std::thread::sleep(DOZE);
        }
        mailbox.send(2, false).unwrap();
        let started = Instant::now();
        drop(mailbox);
        assert_eq!(worker.join().unwrap(), vec![1, 2]);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
