//! Time slices for the serialized schedule. Only one task runs user code at
//! a time; one that computes without syscalls while others wait would keep
//! the CPU forever (a thread spinning on a flag another thread must set).
//! The preempter, a helper thread, stops the running task with SIGSTOP when
//! its slice ends; the recorder turns that stop into a `Preempt` event at an
//! anchor and lets the next task run.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where the ends of time slices come from, behind one interface so that
/// the scheduler does not care. Here: a wall-clock timer ([`Preempter`]),
/// since these machines have no PMU. Where one exists, a source counting
/// retired conditional branches (perf_event_open, as rr does) implements
/// the same trait: it arms a counter overflow for the running task and
/// recognises the stop it causes.
pub trait TickSource {
    /// Starts (or keeps going) a slice for `tid`; None: nobody to preempt.
    fn set(&mut self, tid: Option<i32>);
    /// Whether `tid`'s stop with `signal` is the end of its slice (consumed).
    fn take_fired(&mut self, tid: i32, signal: i32) -> bool;
}

/// How long a task may run user code while others wait.
pub const SLICE: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Slot {
    /// The task to stop at the deadline.
    armed: Option<(i32, Instant)>,
    /// Tasks stopped by the preempter whose stop was not seen yet.
    fired: Vec<i32>,
    quit: bool,
    /// The helper waits with no deadline: arming must wake it. Otherwise
    /// it wakes by itself at a deadline no later than any new one (a slice
    /// armed now ends after every slice armed before), and re-reads
    /// `armed` then, so arming, re-arming and disarming need no wake-up:
    /// waking it cost a context switch at every change of the running
    /// task, which a program of several threads makes at most stops.
    waiting_forever: bool,
}

/// The wall-clock tick source: a helper thread that stops the running
/// task with SIGSTOP when its slice ends.
pub struct Preempter {
    shared: Arc<(Mutex<Slot>, Condvar)>,
    armed_for: Option<i32>,
    thread: Option<JoinHandle<()>>,
}

impl Preempter {
    /// Its thread starts with the first slice: a program that never has
    /// two tasks wanting the CPU never needs one (starting it, and joining
    /// it at the end, cost a wake-up of another CPU each).
    pub fn new() -> Preempter {
        Preempter {
            shared: Arc::new((Mutex::new(Slot::default()), Condvar::new())),
            armed_for: None,
            thread: None,
        }
    }

    fn start(&mut self) {
        let theirs = Arc::clone(&self.shared);
        self.thread = std::thread::Builder::new()
            .name("rrpipe-preempt".into())
            .stack_size(crate::HELPER_STACK)
            .spawn(move || run(&theirs))
            .ok();
    }
}

impl TickSource for Preempter {
    /// A slice goes on while the same task stays current.
    fn set(&mut self, tid: Option<i32>) {
        if tid == self.armed_for {
            return;
        }
        self.armed_for = tid;
        if tid.is_some() && self.thread.is_none() {
            self.start();
        }
        let (lock, cv) = &*self.shared;
        let mut slot = lock.lock().unwrap_or_else(|p| p.into_inner());
        slot.armed = tid.map(|t| (t, Instant::now() + SLICE));
        if tid.is_some() && slot.waiting_forever {
            cv.notify_all();
        }
    }

    fn take_fired(&mut self, tid: i32, signal: i32) -> bool {
        if signal != libc::SIGSTOP {
            return false;
        }
        let (lock, _) = &*self.shared;
        let mut slot = lock.lock().unwrap_or_else(|p| p.into_inner());
        let before = slot.fired.len();
        slot.fired.retain(|&t| t != tid);
        let fired = slot.fired.len() != before;
        if fired && self.armed_for == Some(tid) {
            self.armed_for = None;
        }
        fired
    }
}

impl Default for Preempter {
    fn default() -> Self {
        Preempter::new()
    }
}

impl Drop for Preempter {
    fn drop(&mut self) {
        {
            let (lock, cv) = &*self.shared;
            let mut slot = lock.lock().unwrap_or_else(|p| p.into_inner());
            slot.quit = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &(Mutex<Slot>, Condvar)) {
    let (lock, cv) = shared;
    let mut slot = lock.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if slot.quit {
            return;
        }
        match slot.armed {
            None => {
                slot.waiting_forever = true;
                slot = cv.wait(slot).unwrap_or_else(|p| p.into_inner());
                slot.waiting_forever = false;
            }
            Some((tid, deadline)) => {
                let now = Instant::now();
                if now < deadline {
                    slot = cv
                        .wait_timeout(slot, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    continue;
                }
                slot.armed = None;
                // SIGSTOP cannot be blocked or handled: the task stops at
                // its next chance, and the recorder suppresses it.
                let r = unsafe { libc::syscall(libc::SYS_tkill, tid, libc::SIGSTOP) };
                if r == 0 {
                    slot.fired.push(tid);
                }
            }
        }
    }
}
