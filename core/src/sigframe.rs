//! Signal frames, which the kernel does not write deterministically.
//!
//! Two parts of a frame depend on more than the program. `trapno` (and
//! `err`) in the saved context name the task's last trap, which in record
//! is a single-step to an anchor and in replay the anchor's breakpoint.
//! And the FPU area is written with XSAVE, which skips the state components the CPU reports as in their initial
//! configuration (XSTATE_BV clear), leaving whatever the stack held there,
//! and which components it reports depends on context switches and
//! similar events outside the program. A handler that returns leaves the
//! frame behind as dead stack, which later frames read uninitialised; a
//! handler on an alternate stack in `.bss` leaves it in live memory. So
//! record keeps the whole frame as the kernel wrote it (one single-step
//! into the handler), and replay writes those bytes over its own frame:
//! the registers restored by `sigreturn` are the same either way (the
//! general ones are checked equal, and FPU components in their initial
//! state hold their initial values).

use std::io;

use rrpipe_plugin_api::Regs;

use crate::ptrace::Task;

/// `rt_sigframe` starts with the return address, then the `ucontext`:
/// `uc_flags`, `uc_link`, `uc_stack` (40 bytes), then `uc_mcontext`, whose
/// 23 general registers (184 bytes) precede the `fpstate` pointer.
const FPSTATE_POINTER: u64 = 8 + 40 + 184;
/// `fpstate->sw_reserved` (struct `_fpx_sw_bytes`) in the FXSAVE area's
/// unused tail: magic, then the size of the whole extended area.
const SW_RESERVED: u64 = 464;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FXSAVE_SIZE: usize = 512;

/// The most a frame may span (an AVX-512 XSAVE area is under 3 KiB).
const MAX_FRAME: u64 = 64 * 1024;

/// The address range of the signal frame of a task stopped at its
/// handler's first instruction: from its stack pointer to the end of the
/// FPU area, which the kernel places above the rest.
pub fn frame(task: &Task, entry: &Regs) -> io::Result<(u64, usize)> {
    let start = entry.rsp;
    let ptr = read_u64(task, start + FPSTATE_POINTER)?;
    let end = if ptr == 0 {
        // No FPU area: the ucontext and siginfo only.
        start + FPSTATE_POINTER + 8
    } else {
        ptr + fpstate_len(task, ptr)? as u64
    };
    if end <= start || end - start > MAX_FRAME {
        return Err(io::Error::other(format!(
            "no signal frame at {start:#x} (FPU area at {ptr:#x})"
        )));
    }
    Ok((start, (end - start) as usize))
}

/// The size of the FPU area at `ptr`: the extended size its software
/// bytes announce, or a bare FXSAVE area.
fn fpstate_len(task: &Task, ptr: u64) -> io::Result<usize> {
    let sw = task.read_mem(ptr + SW_RESERVED, 8)?;
    let magic = u32::from_le_bytes(sw[..4].try_into().unwrap());
    let extended = u32::from_le_bytes(sw[4..].try_into().unwrap()) as usize;
    Ok(if magic == FP_XSTATE_MAGIC1 && extended >= FXSAVE_SIZE {
        extended
    } else {
        FXSAVE_SIZE
    })
}

fn read_u64(task: &Task, addr: u64) -> io::Result<u64> {
    let b = task.read_mem(addr, 8)?;
    Ok(u64::from_le_bytes(b[..8].try_into().unwrap()))
}
