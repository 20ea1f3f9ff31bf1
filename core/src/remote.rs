//! Running syscalls inside the tracee on the tracer's behalf (remote
//! syscalls): how replay maps saved files and how the tracer sets up its
//! own page. The tracee's registers are restored afterwards, so the program
//! cannot tell.

use rrpipe_plugin_api::Regs;

use crate::error::{Error, Result};
use crate::ptrace::{Resume, Stop, Task};

/// The task's next stop, resuming it (`PTRACE_SYSCALL`) past the stops
/// that are not the remote call's own: seccomp stops (recording with
/// syscall buffering: the filter stops a syscall made from anywhere but
/// the rrpipe page, the vDSO before the page is mapped, after its entry
/// stop, and again when its number changes at an entry stop), and signal
/// deliveries, which are set aside for the caller (`Task::take_set_aside`):
/// a signal may come at any time (rrpipe's own preemption is a SIGSTOP),
/// and the remote call must still end with every register put back.
fn next_stop(task: &Task) -> Result<Stop> {
    loop {
        let stop = task.wait()?;
        match stop {
            Stop::Event(libc::PTRACE_EVENT_SECCOMP) => {}
            Stop::Signal(sig) => {
                // (No siginfo: a group-stop, not a delivery; it ends when
                // the task is resumed.)
                if let Ok(raw) = task.siginfo_bytes() {
                    task.set_aside_signal(sig, raw);
                }
            }
            other => return Ok(other),
        }
        task.resume(Resume::Syscall, 0)?;
    }
}

fn expect(task: &Task, want: Stop, what: &str) -> Result<()> {
    let got = next_stop(task)?;
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
    let result = run_from_user(task);
    // Put back even when the call failed: left at the call, the task would
    // make it itself and return to its caller with the call's result.
    let restored = task.set_regs(&saved);
    let result = result?;
    restored?;
    Ok(result)
}

/// Runs the call `syscall_from_user` set up; its result.
fn run_from_user(task: &Task) -> Result<i64> {
    task.resume(Resume::Syscall, 0)?;
    // From a syscall-emulation entry stop, the skipped syscall reports its
    // exit first.
    let mut stop = next_stop(task)?;
    if stop == Stop::SyscallExit {
        task.resume(Resume::Syscall, 0)?;
        stop = next_stop(task)?;
    }
    if stop != Stop::SyscallEntry {
        return Err(Error::Internal(format!(
            "remote syscall entry in task {}: got {stop:?}",
            task.tid
        )));
    }
    task.resume(Resume::Syscall, 0)?;
    expect(task, Stop::SyscallExit, "syscall exit")?;
    Ok(task.regs()?.rax as i64)
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
