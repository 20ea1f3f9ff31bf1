//! Anchors: placing an asynchronous event (a signal that interrupted user
//! code) at a point replay can find again without a hardware branch counter
//! (DESIGN.md, "Asynchronous events without a hardware counter").
//!
//! Record: the interrupted task is single-stepped to the next *anchor*, an
//! instruction of 5 bytes or more that is not a branch. The full registers
//! there, the values of the instruction's memory operands and a digest of
//! all writable memory identify the state; the signal is delivered there.
//!
//! Replay: the anchor instruction is patched with a jump to a trampoline in
//! a page mapped near it. The trampoline compares the instruction's memory
//! operand and the registers with the recorded ones inside the tracee (a
//! few instructions per pass, no ptrace stop), traps with `int3` only on a
//! match, and otherwise runs the relocated instruction and jumps back. On a
//! trap the tracer checks every register and the memory digest: equal
//! state, identical future. Then the patch and the page go away, so the
//! address space is the recorded one again.

use iced_x86::{
    BlockEncoder, BlockEncoderOptions, Decoder, DecoderOptions, FlowControl, Instruction,
    InstructionBlock, InstructionInfoFactory, Mnemonic, Register,
};
use rrpipe_plugin_api::{AnchorInfo, MemBlock, Regs};

use crate::error::{Error, Result};
use crate::exec::PAGE_SYSCALL;
use crate::ptrace::{Resume, Stop, Task};
use crate::remote;

/// Decodes the instruction at `rip`.
fn decode(task: &Task, rip: u64) -> Option<Instruction> {
    let bytes = task.read_mem(rip, 16).ok().or_else(|| {
        // Near the end of a mapping: read what there is.
        (1..16).rev().find_map(|n| task.read_mem(rip, n).ok())
    })?;
    let mut decoder = Decoder::with_ip(64, &bytes, rip, DecoderOptions::NONE);
    let instr = decoder.decode();
    (!instr.is_invalid()).then_some(instr)
}

/// Whether the next instruction leaves user code (a syscall), so that a
/// pending signal is better delivered at that syscall.
pub fn at_syscall(task: &Task, rip: u64) -> bool {
    decode(task, rip).is_some_and(|i| {
        matches!(
            i.mnemonic(),
            Mnemonic::Syscall | Mnemonic::Sysenter | Mnemonic::Int
        )
    })
}

/// The instruction at `rip` if it can serve as an anchor.
pub fn eligible(task: &Task, rip: u64) -> Option<Instruction> {
    let instr = decode(task, rip)?;
    let ok = instr.len() >= 5
        && instr.flow_control() == FlowControl::Next
        && !matches!(
            instr.mnemonic(),
            Mnemonic::Rdtsc | Mnemonic::Rdtscp | Mnemonic::Cpuid | Mnemonic::Syscall
        )
        && !instr.has_lock_prefix();
    ok.then_some(instr)
}

fn reg_value(regs: &Regs, reg: Register) -> Option<u64> {
    let full = reg.full_register();
    let v = match full {
        Register::RAX => regs.rax,
        Register::RBX => regs.rbx,
        Register::RCX => regs.rcx,
        Register::RDX => regs.rdx,
        Register::RSI => regs.rsi,
        Register::RDI => regs.rdi,
        Register::RBP => regs.rbp,
        Register::RSP => regs.rsp,
        Register::R8 => regs.r8,
        Register::R9 => regs.r9,
        Register::R10 => regs.r10,
        Register::R11 => regs.r11,
        Register::R12 => regs.r12,
        Register::R13 => regs.r13,
        Register::R14 => regs.r14,
        Register::R15 => regs.r15,
        Register::RIP => regs.rip,
        Register::None => 0,
        _ => return None,
    };
    Some(match reg.size() {
        4 => v & 0xffff_ffff,
        2 => v & 0xffff,
        1 => v & 0xff,
        _ => v,
    })
}

/// The memory operands of `instr` with the registers `regs`: (address, size).
fn operands(instr: &Instruction, regs: &Regs) -> Vec<(u64, usize)> {
    let mut factory = InstructionInfoFactory::new();
    let info = factory.info(instr);
    let mut out = Vec::new();
    for used in info.used_memory() {
        let size = used.memory_size().size();
        if !(1..=8).contains(&size)
            || used.segment() == Register::FS
            || used.segment() == Register::GS
        {
            continue;
        }
        if let Some(addr) = used.virtual_address(0, |reg, _, _| reg_value(regs, reg)) {
            if !out.iter().any(|&(a, _)| a == addr) {
                out.push((addr, size));
            }
        }
    }
    out
}

/// xxh3 of every writable mapping, in address order, leaving out the
/// stack below the red zone: dead memory, which replay's trampoline itself
/// scribbles on.
pub fn digest(task: &Task, rsp: u64) -> Result<u64> {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let maps = task
        .mappings()
        .map_err(|e| Error::internal("read tracee maps", e))?;
    for m in maps
        .iter()
        .filter(|m| m.prot & libc::PROT_WRITE as u32 != 0)
    {
        let live = rsp.saturating_sub(128);
        let start = if (m.start..m.end).contains(&rsp) {
            live.max(m.start)
        } else {
            m.start
        };
        let data = task
            .read_mem(start, (m.end - start) as usize)
            .map_err(|e| Error::internal(format!("read memory at {start:#x}"), e))?;
        hasher.update(&start.to_le_bytes());
        hasher.update(&data);
    }
    Ok(hasher.digest())
}

/// Record: the identification of the anchor the task is stopped at.
pub fn capture(task: &Task, regs: &Regs, instr: &Instruction, precheck: i32) -> Result<AnchorInfo> {
    let mut blocks = Vec::new();
    for (addr, size) in operands(instr, regs) {
        let data = task
            .read_mem(addr, size)
            .map_err(|e| Error::internal(format!("read anchor operand at {addr:#x}"), e))?;
        blocks.push(MemBlock {
            addr,
            data: data.into(),
        });
    }
    Ok(AnchorInfo {
        operands: blocks.into(),
        digest: digest(task, regs.rsp)?,
        precheck,
    })
}

/// General registers in x86 encoding order.
pub fn gp(regs: &Regs) -> [u64; 16] {
    [
        regs.rax, regs.rcx, regs.rdx, regs.rbx, regs.rsp, regs.rbp, regs.rsi, regs.rdi, regs.r8,
        regs.r9, regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15,
    ]
}

/// The cheapest thing that differs between two passes through an anchor
/// (see [`AnchorInfo::precheck`]).
pub fn precheck_between(first: &Regs, second: &Regs, ops_changed: bool) -> i32 {
    let (a, b) = (gp(first), gp(second));
    if let Some(r) = (0..16).filter(|&r| r != 4).find(|&r| a[r] != b[r]) {
        return r as i32;
    }
    if ops_changed {
        16
    } else {
        -1
    }
}

/// The values of `instr`'s memory operands now.
pub fn operand_values(task: &Task, regs: &Regs, instr: &Instruction) -> Vec<Vec<u8>> {
    operands(instr, regs)
        .into_iter()
        .map(|(addr, size)| task.read_mem(addr, size).unwrap_or_default())
        .collect()
}

/// Does the stopped task's state equal the recorded anchor state?
fn matches(task: &Task, regs: &Regs, info: &AnchorInfo) -> Result<bool> {
    let now = task.regs()?;
    let mut a = now;
    a.rip = regs.rip;
    if a != *regs {
        return Ok(false);
    }
    for op in info.operands.iter() {
        if task.read_mem(op.addr, op.data.len()).ok().as_deref() != Some(&op.data[..]) {
            return Ok(false);
        }
    }
    Ok(digest(task, regs.rsp)? == info.digest)
}

/// Machine code of the trampoline, built by hand: every instruction is
/// fixed-size, and the tail is the relocated anchor.
struct Code(Vec<u8>);

impl Code {
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn mov_imm64(&mut self, reg: u8, imm: u64) {
        // REX.W (+B) B8+r imm64
        self.bytes(&[0x48 | (reg >> 3), 0xb8 + (reg & 7)]);
        self.bytes(&imm.to_le_bytes());
    }
    /// `jne rel32` to be patched; returns the offset of the rel32.
    fn jne(&mut self) -> usize {
        self.bytes(&[0x0f, 0x85, 0, 0, 0, 0]);
        self.0.len() - 4
    }
    /// `jrcxz rel8` to be patched; returns the offset of the rel8.
    fn jrcxz(&mut self) -> usize {
        self.bytes(&[0xe3, 0]);
        self.0.len() - 1
    }
    fn patch32(&mut self, at: usize, target: usize) {
        let rel = target as i64 - (at as i64 + 4);
        self.0[at..at + 4].copy_from_slice(&(rel as i32).to_le_bytes());
    }
    fn patch8(&mut self, at: usize, target: usize) {
        let rel = target as i64 - (at as i64 + 1);
        self.0[at] = rel as i8 as u8;
    }
}

/// Register numbers as the encoding uses them.
const RCX: u8 = 1;
const RDX: u8 = 2;

/// The trampoline for `instr` (the anchor at `regs.rip`) placed at `base`.
/// Returns the code, the offset of the `int3` (a hit traps just past it)
/// and the offset where a pass that is not a hit continues.
fn trampoline(
    base: u64,
    instr: &Instruction,
    regs: &Regs,
    info: &AnchorInfo,
) -> Result<(Vec<u8>, usize, usize)> {
    let mut c = Code(Vec::new());
    c.bytes(&[0x48, 0x8d, 0x64, 0x24, 0x80]); // lea rsp,[rsp-128]: keep the red zone
    let mut to_out = Vec::new();
    // Cheap pre-check without touching flags (lea + jrcxz): the value
    // that was seen to change between passes must hold its recorded value.
    let pre = match info.precheck {
        r @ 0..=15 if r != 4 => Some((None, r as u8, gp(regs)[r as usize])),
        16 => info.operands.first().map(|op| {
            let mut value = [0u8; 8];
            value[..op.data.len()].copy_from_slice(&op.data);
            (Some(op), 0, u64::from_le_bytes(value))
        }),
        _ => None,
    };
    if let Some((operand, reg, value)) = pre {
        c.bytes(&[0x51, 0x52]); // push rcx; push rdx
        match operand {
            Some(op) => {
                c.mov_imm64(RCX, op.addr);
                match op.data.len() {
                    1 => c.bytes(&[0x0f, 0xb6, 0x09]), // movzx ecx, byte [rcx]
                    2 => c.bytes(&[0x0f, 0xb7, 0x09]), // movzx ecx, word [rcx]
                    4 => c.bytes(&[0x8b, 0x09]),       // mov ecx, [rcx]
                    _ => c.bytes(&[0x48, 0x8b, 0x09]), // mov rcx, [rcx]
                }
            }
            None if reg == RCX => {}
            None => {
                // mov rcx, reg
                c.bytes(&[
                    0x48 | ((reg >> 3) << 2),
                    0x89,
                    0xc0 | ((reg & 7) << 3) | RCX,
                ]);
            }
        }
        c.mov_imm64(RDX, value.wrapping_neg());
        c.bytes(&[0x48, 0x8d, 0x0c, 0x11]); // lea rcx,[rcx+rdx]
        let candidate = c.jrcxz();
        c.bytes(&[0x5a, 0x59]); // pop rdx; pop rcx
        let skip = c.0.len();
        c.bytes(&[0xe9, 0, 0, 0, 0]); // jmp out
        to_out.push(skip + 1);
        let here = c.0.len();
        c.patch8(candidate, here);
        c.bytes(&[0x5a, 0x59]); // pop rdx; pop rcx
    }
    // Full register compare, flags saved.
    c.bytes(&[0x9c, 0x50]); // pushfq; push rax
    let mut misses = Vec::new();
    let gp: [(u8, u64); 14] = [
        (1, regs.rcx),
        (2, regs.rdx),
        (3, regs.rbx),
        (5, regs.rbp),
        (6, regs.rsi),
        (7, regs.rdi),
        (8, regs.r8),
        (9, regs.r9),
        (10, regs.r10),
        (11, regs.r11),
        (12, regs.r12),
        (13, regs.r13),
        (14, regs.r14),
        (15, regs.r15),
    ];
    for (reg, value) in gp {
        c.mov_imm64(0, value); // mov rax, imm64
                               // cmp reg, rax
        c.bytes(&[if reg >= 8 { 0x49 } else { 0x48 }, 0x39, 0xc0 | (reg & 7)]);
        misses.push(c.jne());
    }
    c.mov_imm64(0, regs.rax);
    c.bytes(&[0x48, 0x39, 0x04, 0x24]); // cmp [rsp], rax
    misses.push(c.jne());
    c.mov_imm64(0, regs.rsp.wrapping_sub(144));
    c.bytes(&[0x48, 0x39, 0xc4]); // cmp rsp, rax
    misses.push(c.jne());
    // A candidate: restore everything and trap.
    c.bytes(&[0x58, 0x9d]); // pop rax; popfq
    c.bytes(&[0x48, 0x8d, 0xa4, 0x24, 0x80, 0, 0, 0]); // lea rsp,[rsp+128]
    c.bytes(&[0xcc]); // int3
    let hit = c.0.len();
    let miss = c.0.len();
    for at in misses {
        c.patch32(at, miss);
    }
    c.bytes(&[0x58, 0x9d]); // pop rax; popfq
    let out = c.0.len();
    for at in to_out {
        c.patch32(at, out);
    }
    c.bytes(&[0x48, 0x8d, 0xa4, 0x24, 0x80, 0, 0, 0]); // lea rsp,[rsp+128]
    let resume = c.0.len();
    // The anchor itself, relocated, then back to the instruction after it.
    let reloc_ip = base + resume as u64;
    let block = [*instr];
    let encoded = BlockEncoder::encode(
        64,
        InstructionBlock::new(&block, reloc_ip),
        BlockEncoderOptions::NONE,
    )
    .map_err(|e| Error::Internal(format!("cannot relocate anchor instruction: {e}")))?;
    c.bytes(&encoded.code_buffer);
    let jmp_at = base + c.0.len() as u64;
    let back = instr.next_ip() as i64 - (jmp_at as i64 + 5);
    let back = i32::try_from(back)
        .map_err(|_| Error::Internal("trampoline too far from the anchor".into()))?;
    c.bytes(&[0xe9]);
    c.bytes(&back.to_le_bytes());
    Ok((c.0, hit, resume))
}

/// A free page within reach of a rel32 jump from `near`.
fn free_page_near(task: &Task, near: u64) -> Result<u64> {
    let maps = task
        .mappings()
        .map_err(|e| Error::internal("read tracee maps", e))?;
    let reach = 0x7000_0000u64;
    let lo = near.saturating_sub(reach).max(0x10000);
    let hi = near.saturating_add(reach);
    let mut best: Option<u64> = None;
    let mut consider = |gap_start: u64, gap_end: u64| {
        let start = gap_start.max(lo);
        let end = gap_end.min(hi);
        if end > start + 2 * 4096 {
            // The page closest to the anchor inside the gap.
            let cand = if near < start {
                start
            } else if near >= end {
                end - 4096
            } else {
                near & !0xfff
            };
            if best.is_none_or(|b| cand.abs_diff(near) < b.abs_diff(near)) {
                best = Some(cand);
            }
        }
    };
    let mut prev_end = 0x10000u64;
    for m in &maps {
        if m.start > prev_end {
            consider(prev_end + 4096, m.start - 4096);
        }
        prev_end = prev_end.max(m.end);
    }
    best.ok_or_else(|| Error::Internal(format!("no free page within reach of {near:#x}")))
}

/// Replay: runs the task, stopped at its previous event, until it reaches
/// the recorded anchor state. Returns with the task stopped there, at a
/// user-mode stop, registers equal to `regs`.
pub fn run_to(
    task: &Task,
    regs: &Regs,
    info: &AnchorInfo,
    pending_signal: i32,
) -> Result<std::result::Result<(), String>> {
    if pending_signal != 0 {
        // Deliver the pending signal first, stopping at its handler.
        task.resume(Resume::Step, pending_signal)?;
        match task.wait()? {
            Stop::Signal(libc::SIGTRAP) => {}
            other => {
                return Ok(Err(format!(
                    "delivering signal {pending_signal}: {other:?}"
                )))
            }
        }
    }
    let Some(instr) = eligible(task, regs.rip) else {
        return Ok(Err(format!("no anchor instruction at {:#x}", regs.rip)));
    };
    let page = free_page_near(task, regs.rip)?;
    if std::env::var_os("RRPIPE_DEBUG").is_some() {
        eprintln!(
            "anchor: {:#x} precheck {} operands {:?}, trampoline at {page:#x}",
            regs.rip,
            info.precheck,
            info.operands
                .iter()
                .map(|o| (o.addr, o.data.to_vec()))
                .collect::<Vec<_>>()
        );
    }
    let (code, hit, resume) = trampoline(page, &instr, regs, info)?;
    let prot = (libc::PROT_READ | libc::PROT_EXEC) as u64;
    let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE) as u64;
    let got = remote::syscall_from_user(
        task,
        PAGE_SYSCALL,
        libc::SYS_mmap,
        &[page, 4096, prot, flags, u64::MAX, 0],
    )?;
    if got as u64 != page {
        return Err(Error::Internal(format!(
            "cannot map a trampoline at {page:#x} ({got})"
        )));
    }
    task.write_mem(page, &code)
        .map_err(|e| Error::internal("write trampoline", e))?;
    let original = task
        .read_mem(regs.rip, 5)
        .map_err(|e| Error::internal("read anchor", e))?;
    let rel = (page as i64 - (regs.rip as i64 + 5)) as i32;
    let mut jump = vec![0xe9];
    jump.extend_from_slice(&rel.to_le_bytes());
    task.write_mem(regs.rip, &jump)
        .map_err(|e| Error::internal("patch anchor", e))?;
    let outcome = loop {
        task.resume(Resume::Sysemu, 0)?;
        match task.wait()? {
            Stop::Signal(libc::SIGTRAP) => {
                let now = task.regs()?;
                if now.rip != page + hit as u64 {
                    break Err(format!(
                        "unexpected trap at {:#x} on the way to the anchor",
                        now.rip
                    ));
                }
                if matches(task, regs, info)? {
                    break Ok(());
                }
                if std::env::var_os("RRPIPE_DEBUG").is_some() {
                    let d = digest(task, regs.rsp)?;
                    eprintln!(
                        "anchor: candidate at {:#x} rejected: regs {:?} digest {d:#x} want {:#x}",
                        regs.rip,
                        regs.to_array()
                            .iter()
                            .zip(now.to_array())
                            .enumerate()
                            .filter(|(_, (a, b))| **a != *b)
                            .map(|(i, _)| Regs::NAMES[i])
                            .collect::<Vec<_>>(),
                        info.digest
                    );
                }
                // Same registers, other memory: not this pass.
                let mut on = now;
                on.rip = page + resume as u64;
                task.set_regs(&on)?;
            }
            // Signals replay itself causes (a child's real SIGCHLD).
            Stop::Signal(sig) if sig != libc::SIGSEGV && sig != libc::SIGBUS => continue,
            Stop::SyscallExit => continue,
            other => {
                let rip = task.regs().map(|r| r.rip).unwrap_or(0);
                break Err(format!(
                    "expected the anchor at {:#x}, the program stopped with {other:?} at {rip:#x}",
                    regs.rip
                ));
            }
        }
    };
    task.write_mem(regs.rip, &original)
        .map_err(|e| Error::internal("unpatch anchor", e))?;
    if outcome.is_ok() {
        task.set_regs(regs)?;
    }
    remote::syscall_from_user(task, PAGE_SYSCALL, libc::SYS_munmap, &[page, 4096])?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trampoline_relocates_and_returns() {
        // mov eax, [rip+0x100] at 0x401000 (6 bytes)
        let bytes = [0x8b, 0x05, 0x00, 0x01, 0x00, 0x00];
        let mut d = Decoder::with_ip(64, &bytes, 0x401000, DecoderOptions::NONE);
        let instr = d.decode();
        let regs = Regs {
            rip: 0x401000,
            ..Regs::default()
        };
        let info = AnchorInfo {
            operands: vec![MemBlock {
                addr: 0x401106,
                data: vec![1, 0, 0, 0].into(),
            }]
            .into(),
            digest: 0,
            precheck: 16,
        };
        let (code, hit, resume) = trampoline(0x402000, &instr, &regs, &info).unwrap();
        assert_eq!(code[hit - 1], 0xcc);
        // The relocated instruction still reads 0x401106.
        let mut d = Decoder::with_ip(
            64,
            &code[resume..],
            0x402000 + resume as u64,
            DecoderOptions::NONE,
        );
        let moved = d.decode();
        assert_eq!(moved.mnemonic(), Mnemonic::Mov);
        assert_eq!(moved.ip_rel_memory_address(), 0x401106);
        let back = d.decode();
        assert_eq!(back.mnemonic(), Mnemonic::Jmp);
        assert_eq!(back.near_branch_target(), 0x401006);
    }
}
