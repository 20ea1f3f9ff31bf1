//! Memory for the syscall records of `Buffered` events.
//!
//! Every flush of a tracee's syscall buffer reads its records into tracer
//! memory that then travels to the plugins with the event. Fresh memory
//! costs a page fault per 4 KiB, taken by the tracer on the tracee's CPU
//! while the tracee waits: a third of the tracer's time on `cp -r` once.
//! So spent record buffers come back here when no plugin holds them any
//! more, and at the first large flush a helper thread on the plugins' CPUs
//! faults in a set ahead, for the flushes before the first ones return
//! (plugins hold a batch's worth and more, [`KEEP`]). A recording whose
//! flushes are all small (a short program, a few calls before each traced
//! one) never starts it: the memory it made resident took the plugins'
//! CPU from the trace writer just when the recording's end waited for it
//! (`cp --version` recorded 1.1 ms faster without it).

use std::sync::Arc;

use crossbeam_channel::{unbounded, Receiver};
use rrpipe_syscallbuf as abi;

/// Buffers the helper makes resident, and kept. Since the trace writer
/// looks for work only every few milliseconds (see `mailbox`), it holds two
/// flushes' records at a time while a third is being collected: with two,
/// `cp -r` still took fresh memory at two of its twelve flushes (~90 µs
/// each: on this VM a first touch costs ~1.6 µs per 4 KiB), and with
/// three, none after the first (recorded 0.2 and 0.46 ms faster, 41 and 31
/// alternating runs). Four were no faster than two (31 alternating runs),
/// and when the writer was still woken for every batch, 1.5-3 ms slower.
pub const KEEP: usize = 3;

/// Flushes of at most this many bytes of records get memory of their own
/// size rather than a pool buffer.
pub const SMALL: usize = 16 * 1024;

/// Record buffers, each with room for a whole syscall buffer's records.
pub struct RecordPool {
    spares: Vec<Vec<u8>>,
    /// Buffers the helper thread has faulted in, as they come.
    ready: Option<Receiver<Vec<u8>>>,
    /// Where the helper runs: the plugins' CPUs. Without other CPUs than
    /// the tracer's it would only move the faults, so there is none.
    cpus: Option<Arc<[usize]>>,
    /// Whether any pool buffer was taken: replay never takes one, and
    /// keeps none.
    in_use: bool,
}

impl RecordPool {
    pub fn new(cpus: Option<Arc<[usize]>>) -> RecordPool {
        RecordPool {
            spares: Vec::new(),
            ready: None,
            cpus,
            in_use: false,
        }
    }

    /// An empty buffer for `len` bytes of records. Up to [`SMALL`], just
    /// that (most flushes are a few calls before a traced one: each taking
    /// a pool buffer would spend the resident pages the large ones need);
    /// else one with room for [`abi::CAPACITY`] bytes, its pages resident
    /// when the pool has one.
    pub fn take(&mut self, len: usize) -> Vec<u8> {
        if len <= SMALL {
            return Vec::with_capacity(len);
        }
        if !self.in_use {
            self.in_use = true;
            self.ready = self.cpus.clone().and_then(start_helper);
        }
        if let Some(spare) = self.spares.pop() {
            return spare;
        }
        if let Some(ready) = self.ready.as_ref().and_then(|r| r.try_recv().ok()) {
            return ready;
        }
        resident_buffer()
    }

    /// Buffers kept for the next flushes.
    pub fn spares(&self) -> usize {
        self.spares.len()
    }

    /// Keeps the memory of records no plugin holds any more.
    pub fn give_back(&mut self, mut records: Vec<u8>) {
        if self.in_use && self.spares.len() < KEEP && records.capacity() >= abi::CAPACITY {
            records.clear();
            self.spares.push(records);
        }
    }
}

/// Starts the thread that makes [`KEEP`] buffers resident, pinned to
/// `cpus`; `None` if it cannot start (the flushes then fault their own).
fn start_helper(cpus: Arc<[usize]>) -> Option<Receiver<Vec<u8>>> {
    let (tx, rx) = unbounded();
    std::thread::Builder::new()
        .name("rrpipe-records".into())
        .stack_size(crate::HELPER_STACK)
        .spawn(move || {
            crate::cpus::pin_to(&cpus);
            for _ in 0..KEEP {
                if tx.send(resident_buffer()).is_err() {
                    return;
                }
            }
        })
        .ok()?;
    Some(rx)
}

/// An empty buffer for a whole syscall buffer's records, its pages
/// resident: one `MADV_POPULATE_WRITE` instead of a page fault per 4 KiB
/// as the copy fills it (`cp -r` recorded 0.6 ms faster, 41 alternating
/// runs), or, where the kernel lacks it (before 5.14), a write per page.
fn resident_buffer() -> Vec<u8> {
    let mut buffer: Vec<u8> = Vec::with_capacity(abi::CAPACITY);
    let spare = buffer.spare_capacity_mut();
    let start = spare.as_mut_ptr() as usize;
    let first = (start + 4095) & !4095;
    let end = (start + spare.len()) & !4095;
    // SAFETY: advice on whole pages inside the buffer's own allocation.
    let populated = end <= first
        || unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                end - first,
                libc::MADV_POPULATE_WRITE,
            )
        } == 0;
    if !populated {
        for byte in spare.iter_mut().step_by(4096) {
            byte.write(0);
        }
    }
    buffer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_only_once_taken_and_up_to_keep() {
        let mut pool = RecordPool::new(None);
        pool.give_back(Vec::with_capacity(abi::CAPACITY));
        assert_eq!(pool.spares(), 0, "kept before any was taken (replay)");
        let first = pool.take(SMALL + 1);
        assert!(first.is_empty() && first.capacity() >= abi::CAPACITY);
        for _ in 0..KEEP + 3 {
            pool.give_back(vec![1u8; abi::CAPACITY]);
        }
        assert_eq!(pool.spares(), KEEP);
        pool.give_back(Vec::with_capacity(16));
        assert_eq!(pool.spares(), KEEP, "too small to hold a flush");
        let spare = pool.take(abi::CAPACITY);
        assert!(spare.is_empty() && spare.capacity() >= abi::CAPACITY);
        assert_eq!(pool.spares(), KEEP - 1);
        let small = pool.take(100);
        assert!(small.capacity() >= 100 && small.capacity() < SMALL);
        assert_eq!(
            pool.spares(),
            KEEP - 1,
            "a small flush takes no pool buffer"
        );
    }

    #[test]
    fn small_flushes_start_no_helper_and_keep_nothing() {
        let mut pool = RecordPool::new(Some(Arc::from(&[0usize][..])));
        for _ in 0..3 {
            let small = pool.take(SMALL);
            assert!(small.capacity() >= SMALL && small.capacity() < abi::CAPACITY);
            pool.give_back(small);
        }
        assert!(pool.ready.is_none(), "helper started for small flushes");
        assert_eq!(pool.spares(), 0);
        pool.give_back(Vec::with_capacity(abi::CAPACITY));
        assert_eq!(pool.spares(), 0, "kept before a large flush took one");
        let _ = pool.take(SMALL + 1);
        assert!(pool.ready.is_some(), "the first large flush starts it");
    }

    #[test]
    fn the_helper_makes_buffers_ready_off_the_tracers_cpu() {
        let mut pool = RecordPool::new(Some(Arc::from(&[0usize][..])));
        let first = pool.take(abi::CAPACITY);
        assert!(first.capacity() >= abi::CAPACITY);
        let ready = pool.ready.take().expect("helper started");
        let buffers: Vec<Vec<u8>> = ready.iter().collect();
        assert_eq!(buffers.len(), KEEP);
        assert!(buffers
            .iter()
            .all(|b| b.is_empty() && b.capacity() >= abi::CAPACITY));
    }
}
