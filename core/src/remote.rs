//! Running syscalls inside the tracee on the tracer's behalf (remote
//! syscalls): how replay maps saved files and how the tracer sets up its
//! own page. The tracee's registers are restored afterwards, so the program
//! cannot tell.

use rrpipe_plugin_api::Regs;

use crate::error::{Error, Result};
use crate::ptrace::{Resume, Stop, Task};

fn expect(task: &Task, want: Stop, what: &str) -> Result<()> {
    let mut got = task.wait()?;
    while got == Stop::Event(libc::PTRACE_EVENT_SECCOMP) {
        // Recording with syscall buffering: the seccomp filter stops a
        // syscall made from anywhere but the rrpipe page (the vDSO, before
        // the page is mapped) after its entry stop, and again when its
        // number changes at an entry stop.
        task.resume(Resume::Syscall, 0)?;
        got = task.wait()?;
    }
    if got != want {
        return Err(Error::Internal(format!(
            "remote {what} in task {}: expected {want:?}, got {got:?}",
            task.tid
        )));
    }
    Ok(())
}

fn with_call(base: &Regs, nr: i64, args: &[u64]) -> Regs {
    let mut r = *base;
    r.rax = nr as u64;
    r.orig_rax = nr as u64;
    let slots = [
        &mut r.rdi, &mut r.rsi, &mut r.rdx, &mut r.r10, &mut r.r8, &mut r.r9,
    ];
    for (slot, &a) in slots.into_iter().zip(args) {
        *slot = a;
    }
    r
}

/// From a stop in user mode or at a syscall exit: runs `nr(args)` through
/// the `syscall` instruction at `insn`, then puts every register back.
pub fn syscall_from_user(task: &Task, insn: u64, nr: i64, args: &[u64]) -> Result<i64> {
    let saved = task.regs()?;
    let mut r = with_call(&saved, nr, args);
    r.rip = insn;
    task.set_regs(&r)?;
    task.resume(Resume::Syscall, 0)?;
    // From a syscall-emulation entry stop, the skipped syscall reports its
    // exit first.
    let mut stop = task.wait()?;
    if stop == Stop::SyscallExit {
        task.resume(Resume::Syscall, 0)?;
        stop = task.wait()?;
    }
    if stop != Stop::SyscallEntry {
        return Err(Error::Internal(format!(
            "remote syscall entry in task {}: got {stop:?}",
            task.tid
        )));
    }
    task.resume(Resume::Syscall, 0)?;
    expect(task, Stop::SyscallExit, "syscall exit")?;
    let result = task.regs()?.rax as i64;
    task.set_regs(&saved)?;
    Ok(result)
}

/// At a syscall-entry stop: runs `nr(args)` in place of the pending
/// syscall, then rewinds to the pending syscall's entry stop again.
pub fn syscall_at_entry(task: &Task, nr: i64, args: &[u64]) -> Result<i64> {
    let saved = task.regs()?;
    let r = with_call(&saved, nr, args);
    task.set_regs(&r)?;
    task.resume(Resume::Syscall, 0)?;
    expect(task, Stop::SyscallExit, "syscall exit")?;
    let result = task.regs()?.rax as i64;
    // Back to the `syscall` instruction (2 bytes) to enter the original
    // syscall once more.
    let mut again = saved;
    again.rip -= 2;
    again.rax = saved.orig_rax;
    task.set_regs(&again)?;
    task.resume(Resume::Syscall, 0)?;
    expect(task, Stop::SyscallEntry, "re-entry")?;
    task.set_regs(&saved)?;
    Ok(result)
}

/// Writes a NUL-terminated string to tracee memory at `addr`.
pub fn write_cstring(task: &Task, addr: u64, s: &str) -> Result<()> {
    let mut bytes = s.as_bytes().to_vec();
    bytes.push(0);
    task.write_mem(addr, &bytes)
        .map_err(|e| Error::internal("write tracee scratch memory", e))
}
