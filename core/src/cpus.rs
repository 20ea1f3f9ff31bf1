//! Where rrpipe's threads run. The tracer and the program share one CPU (a
//! ptrace stop costs ~7 µs there, ~50 µs across two); plugin workers, the
//! file saver and the record pool's helper run on the others, so that
//! compression and hashing overlap the program.
//!
//! Crossing CPUs has a price of its own on the virtual machines rrpipe is
//! measured on: a vCPU with nothing to run halts, and waking it (to run a
//! thread woken from another CPU, to move a thread there, to acknowledge a
//! TLB flush) takes 50-400 µs. Moving the plugins' last work to the
//! tracer's CPU so as not to wait for that was tried, and measured no
//! faster: they finish on their own CPU while the program's exit runs.

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
