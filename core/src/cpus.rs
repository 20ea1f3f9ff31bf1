//! Where rrpipe's threads run. The tracer and the program share one CPU (a
//! ptrace stop costs ~7 µs there, ~50 µs across two); plugin workers, the
//! file saver and the record pool's helper run on the others, so that
//! compression and hashing overlap the program.
//!
//! Crossing CPUs has a price of its own on the virtual machines rrpipe is
//! measured on: a vCPU with nothing to run halts, and waking it (to run a
//! thread woken from another CPU, to move a thread there, to acknowledge a
//! TLB flush) takes 50-200 µs. A thread that waits for another CPU
//! synchronously pays that much, so the few places that must wait bring the
//! work to their own CPU instead ([`bring_here`]).

use std::thread::JoinHandle;

use nix::sched::CpuSet;
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// The CPUs this process may run on.
pub fn allowed() -> Vec<usize> {
    match nix::sched::sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => vec![0],
    }
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu).map_err(|e| Error::internal("cpu set", e))?;
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
        .map_err(|e| Error::internal(format!("pin to cpu {cpu}"), e))
}

/// Pins the calling thread to a set of CPUs (plugin, saver and pool
/// workers stay off the tracer's CPU). A hint: a CPU that went offline or
/// a restricted cpuset only costs speed, never correctness.
pub fn pin_to(cpus: &[usize]) {
    let mut set = CpuSet::new();
    for &c in cpus {
        let _ = set.set(c);
    }
    let _ = nix::sched::sched_setaffinity(Pid::from_raw(0), &set);
}

/// Moves `thread` to the calling thread's CPU, for a thread about to be
/// woken for its last piece of work while the caller waits for it (plugin
/// workers and the file saver at the end of a session): a sleeping thread
/// moves without a migration, and then wakes where the caller is about to
/// sleep, instead of on a halted vCPU that must be woken first (and whose
/// wake-up of the caller costs as much again). A hint, like [`pin_to`].
pub fn bring_here<T>(thread: &JoinHandle<T>) {
    use std::os::unix::thread::JoinHandleExt;
    // SAFETY: sched_getcpu has no preconditions; the handle names a thread
    // that has not been joined (it is borrowed), so its pthread_t is valid.
    unsafe {
        let cpu = libc::sched_getcpu();
        if cpu < 0 {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        libc::pthread_setaffinity_np(
            thread.as_pthread_t(),
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_brought_here_may_run_only_here() {
        let cpu = allowed()[0];
        pin_current_thread(cpu).unwrap();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            wait.recv().unwrap();
            nix::sched::sched_getaffinity(Pid::from_raw(0)).unwrap()
        });
        bring_here(&thread);
        go.send(()).unwrap();
        let set = thread.join().unwrap();
        let on: Vec<usize> = (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap())
            .collect();
        assert_eq!(on, [cpu]);
    }
}
