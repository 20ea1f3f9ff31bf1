//! `cpuid` trapping. After every exec the tracee runs with CPUID faulting
//! (`arch_prctl(ARCH_SET_CPUID, 0)`) until its dynamic loader is done (see
//! [`untrap`]), so each `cpuid` of the program's start-up faults; the
//! tracer executes it on the same CPU and hands back the result with a few
//! features hidden, in record and in replay alike, without an event (the
//! answers depend only on the machine).
//!
//! Hidden, because they make an execution depend on more than its inputs:
//! - XSAVE and OSXSAVE. glibc's lazy-binding trampoline saves registers
//!   with XSAVE(C) into user memory, and XSAVE skips the components the
//!   CPU considers in their initial state, which depends on context
//!   switches. Without them, glibc uses FXSAVE, which writes everything.
//!   (AVX code still runs; glibc's ifuncs then pick their SSE variants.)
//! - RTM and HLE: hardware transactions abort at the whim of interrupts.
//! - The APIC ids (leaf 1, leaves 0xB and 0x1F): they name the CPU the
//!   task ran on, which replay need not share.

use rrpipe_plugin_api::Regs;

use crate::error::{Error, Result};
use crate::ptrace::Task;

const ARCH_SET_CPUID: u64 = 0x1012;

/// Set (to anything) in rrpipe's environment, rrpipe runs programs as on a
/// machine without CPUID faulting: for testing that path on one with it.
pub const NO_TRAP_ENV: &str = "RRPIPE_NO_CPUID_TRAP";

/// Makes `cpuid` fault in the task (until its next exec), through a remote
/// syscall at `insn`. Machines without CPUID faulting run unchanged.
pub fn trap(task: &Task, insn: u64) -> Result<bool> {
    if std::env::var_os(NO_TRAP_ENV).is_some() {
        task.set_cpuid_faulting(false);
        return Ok(false);
    }
    let r =
        crate::remote::syscall_from_user(task, insn, libc::SYS_arch_prctl, &[ARCH_SET_CPUID, 0])?;
    let on = match r {
        0 => true,
        r if r == -(libc::ENODEV as i64) || r == -(libc::EINVAL as i64) => false,
        r => {
            return Err(Error::Internal(format!(
                "arch_prctl(ARCH_SET_CPUID, 0) in task {} returned {r}",
                task.tid
            )))
        }
    };
    task.set_cpuid_faulting(on);
    Ok(on)
}

/// Lets `cpuid` run natively again in the task (and in the tasks it
/// creates from now on). Called at the program's first syscall from
/// outside the dynamic loader: glibc has read the CPU's features by then
/// (the loader does, before handing over to libc; a static program,
/// before setting up its TLS) and decided how to save registers. After
/// that, a faulting cpuid would only cost time, and in a VM each switch to
/// a task with CPUID faulting on writes a model-specific register, which
/// tripled the cost of a ptrace stop.
///
/// Once per exec: glibc's query of leaf 7 subleaf 1 untraps (see
/// `features_read`), and the first syscall from outside the loader finds
/// it done (a libc that asks other leaves is untrapped there).
pub fn untrap(task: &Task, insn: u64) -> Result<()> {
    if !task.cpuid_faulting() || std::env::var_os(NO_TRAP_ENV).is_some() {
        return Ok(());
    }
    // ENODEV: this machine never trapped it.
    crate::remote::syscall_from_user(task, insn, libc::SYS_arch_prctl, &[ARCH_SET_CPUID, 1])?;
    task.set_cpuid_faulting(false);
    Ok(())
}

/// Whether the `cpuid` about to be emulated (its registers `regs`) shows
/// that glibc has read every leaf whose answer is changed here: it reads
/// leaf 1 and leaf 7 (subleaf 0, then 1) first, then the extended and
/// XSAVE leaves, then, on Intel, the cache descriptors (leaf 2, then leaves
/// 4 and 0xB in loops, ~50 more). Each fault is a ptrace stop, and while
/// faulting is on, every stop of the task costs two model-specific
/// register writes in a VM: ~45 µs a fault here. Untrapping at leaf 7
/// subleaf 1 (the same instruction in both sessions) leaves the rest
/// native: what leaf 0xD says (XSAVE's extensions and area sizes) counts
/// for glibc only with OSXSAVE, which stays hidden, and of leaf 0xB's
/// x2APIC ids glibc
/// keeps only its thread counts (replay runs on the recorded CPU when it
/// can). Leaf 2 stays a way out for libcs that skip subleaf 1 (glibc
/// before 2.33). Trapping until leaf 2 cost 8 more faults per exec,
/// trapping until the loader's first syscall from outside it ~4 ms.
pub fn features_read(regs: &Regs) -> bool {
    let (leaf, subleaf) = (regs.rax as u32, regs.rcx as u32);
    (leaf == 7 && subleaf == 1) || leaf == 2
}

/// Whether the task is stopped at a `cpuid` instruction.
pub fn at(task: &Task, regs: &Regs) -> bool {
    matches!(task.read_mem(regs.rip, 2).as_deref(), Ok([0x0f, 0xa2]))
}

/// The registers after the `cpuid` at `regs.rip`, executed here.
pub fn emulate(regs: &Regs) -> Regs {
    let (leaf, subleaf) = (regs.rax as u32, regs.rcx as u32);
    let c = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    let (mut eax, mut ebx, mut ecx, mut edx) = (c.eax, c.ebx, c.ecx, c.edx);
    match leaf {
        1 => {
            ecx &= !(1 << 26 | 1 << 27); // XSAVE, OSXSAVE
            ebx &= 0x00ff_ffff; // initial APIC id
        }
        7 if subleaf == 0 => ebx &= !(1 << 4 | 1 << 11), // HLE, RTM
        0xb | 0x1f => edx = 0,                           // x2APIC id
        0xd => (eax, ebx, ecx, edx) = (0, 0, 0, 0),      // XSAVE areas
        _ => {}
    }
    let mut r = *regs;
    r.rax = eax as u64;
    r.rbx = ebx as u64;
    r.rcx = ecx as u64;
    r.rdx = edx as u64;
    r.rip += 2;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(leaf: u64, subleaf: u64) -> Regs {
        Regs {
            rax: leaf,
            rcx: subleaf,
            ..Regs::default()
        }
    }

    #[test]
    fn trapping_ends_once_the_changed_leaves_are_read() {
        // glibc's order: 0, 1, 7/0, 7/1, then leaves nothing here changes.
        assert!(!features_read(&asking(0, 0)));
        assert!(!features_read(&asking(1, 0)));
        assert!(!features_read(&asking(7, 0)));
        assert!(features_read(&asking(7, 1)));
        // Older glibc: the cache descriptors come first.
        assert!(features_read(&asking(2, 0)));
        // The subleaf register's upper half is not part of the query.
        assert!(features_read(&asking(7, 0xffff_ffff_0000_0001)));
    }

    #[test]
    fn hidden_features_stay_hidden() {
        let leaf1 = emulate(&asking(1, 0));
        assert_eq!(leaf1.rcx & (1 << 26 | 1 << 27), 0, "XSAVE, OSXSAVE");
        assert_eq!(leaf1.rbx >> 24, 0, "initial APIC id");
        let leaf7 = emulate(&asking(7, 0));
        assert_eq!(leaf7.rbx & (1 << 4 | 1 << 11), 0, "HLE, RTM");
        assert_eq!(emulate(&asking(0xd, 0)).rax, 0);
        assert_eq!(leaf7.rip, 2, "steps over the instruction");
    }
}
