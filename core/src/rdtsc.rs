//! `rdtsc`/`rdtscp` trapping. The tracee runs with PR_SET_TSC =
//! PR_TSC_SIGSEGV, so each time-stamp read faults; the tracer reads the
//! counter itself in record, replays the recorded value, and steps over the
//! instruction either way.

use rrpipe_plugin_api::Regs;

use crate::ptrace::Task;

/// A trapped time-stamp instruction at the task's rip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TscInsn {
    Rdtsc,
    Rdtscp,
}

impl TscInsn {
    fn len(self) -> u64 {
        match self {
            TscInsn::Rdtsc => 2,
            TscInsn::Rdtscp => 3,
        }
    }
}

/// The instruction at `rip`, if it is one we trap.
pub fn decode(task: &Task, rip: u64) -> Option<TscInsn> {
    let bytes = task.read_mem(rip, 3).ok()?;
    match bytes[..] {
        [0x0f, 0x31, _] => Some(TscInsn::Rdtsc),
        [0x0f, 0x01, 0xf9] => Some(TscInsn::Rdtscp),
        _ => None,
    }
}

/// Reads the real counter (record). The tracer runs on the tracee's CPU,
/// so the value is what the program would have seen, give or take the stop.
pub fn read_counter(insn: TscInsn) -> (u64, Option<u32>) {
    // SAFETY: rdtsc/rdtscp are unprivileged and always present on x86_64
    // machines rrpipe supports.
    unsafe {
        match insn {
            TscInsn::Rdtsc => (core::arch::x86_64::_rdtsc(), None),
            TscInsn::Rdtscp => {
                let mut aux = 0u32;
                let tsc = core::arch::x86_64::__rdtscp(&mut aux);
                (tsc, Some(aux))
            }
        }
    }
}

/// The registers after the instruction returned `tsc` (and `aux`).
pub fn emulate(regs: &Regs, insn: TscInsn, tsc: u64, aux: Option<u32>) -> Regs {
    let mut r = *regs;
    r.rax = tsc & 0xffff_ffff;
    r.rdx = tsc >> 32;
    if let Some(aux) = aux {
        r.rcx = aux as u64;
    }
    r.rip += insn.len();
    r
}
