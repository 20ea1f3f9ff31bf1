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
use rrpipe_plugin_api::{AnchorInfo, MemBlock, RegionDigest, Regs};

use crate::deadmem::DeadMemory;
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

/// Instructions that can be moved into a trampoline.
fn relocatable(instr: &Instruction) -> bool {
    instr.flow_control() == FlowControl::Next
        && !matches!(
            instr.mnemonic(),
            Mnemonic::Rdtsc | Mnemonic::Rdtscp | Mnemonic::Cpuid | Mnemonic::Syscall
        )
        && !instr.has_lock_prefix()
}

/// An anchor at `rip`: the instruction there and those following it, up
/// to the 5 bytes a `jmp rel32` patch needs, all of them plain (no branch,
/// no syscall). Usually one instruction; in tight loops of short
/// instructions, a few (nothing jumps into the middle of a basic block).
#[derive(Clone, Debug)]
pub struct Anchor {
    pub instrs: Vec<Instruction>,
}

impl Anchor {
    fn first(&self) -> &Instruction {
        &self.instrs[0]
    }
    fn end(&self) -> u64 {
        self.instrs.last().expect("non-empty").next_ip()
    }

    /// Whether, along an observed `path` of instruction addresses, the
    /// bytes the patch covers were only ever entered at the anchor and run
    /// straight through.
    pub fn entered_only_at_start(&self, path: &[u64]) -> bool {
        let start = self.first().ip();
        path.windows(2).all(|w| {
            let (prev, cur) = (w[0], w[1]);
            if cur <= start || cur >= self.end() {
                return true;
            }
            // Inside: only by falling through from the instruction before.
            self.instrs
                .windows(2)
                .any(|p| p[0].ip() == prev && p[1].ip() == cur)
        })
    }
}

/// The anchor at `rip`, if one can start there.
pub fn eligible(task: &Task, rip: u64) -> Option<Anchor> {
    let bytes = task.read_mem(rip, 32).ok()?;
    let mut decoder = Decoder::with_ip(64, &bytes, rip, DecoderOptions::NONE);
    let mut instrs = Vec::new();
    let mut len = 0;
    while len < 5 {
        let instr = decoder.decode();
        if instr.is_invalid() || !relocatable(&instr) {
            return None;
        }
        len += instr.len();
        instrs.push(instr);
    }
    Some(Anchor { instrs })
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

/// xxh3 of every writable mapping but `skip` (replay's trampoline pages),
/// in address order, leaving out `dead` memory, which may differ between
/// record and replay.
pub fn digest(
    task: &Task,
    skip: Option<u64>,
    dead: &DeadMemory,
) -> Result<(u64, Vec<RegionDigest>)> {
    let maps = task
        .mappings()
        .map_err(|e| Error::internal("read tracee maps", e))?;
    let writable = |m: &&rrpipe_plugin_api::Mapping| {
        m.prot & libc::PROT_WRITE as u32 != 0 && Some(m.start) != skip
    };
    let mut regions = Vec::new();
    for m in maps.iter().filter(writable) {
        for (start, end) in dead.live_parts(m.start, m.end) {
            let data = task
                .read_mem(start, (end - start) as usize)
                .map_err(|e| Error::internal(format!("read memory at {start:#x}"), e))?;
            regions.push(RegionDigest {
                start,
                digest: xxhash_rust::xxh3::xxh3_64(&data),
            });
        }
    }
    let mut all = xxhash_rust::xxh3::Xxh3::new();
    for r in &regions {
        all.update(&r.start.to_le_bytes());
        all.update(&r.digest.to_le_bytes());
    }
    Ok((all.digest(), regions))
}

/// Record: the identification of the anchor the task is stopped at.
pub fn capture(
    task: &Task,
    regs: &Regs,
    anchor: &Anchor,
    precheck: i32,
    dead: &DeadMemory,
) -> Result<AnchorInfo> {
    let mut blocks = Vec::new();
    for (addr, size) in operands(anchor.first(), regs) {
        let data = task
            .read_mem(addr, size)
            .map_err(|e| Error::internal(format!("read anchor operand at {addr:#x}"), e))?;
        blocks.push(MemBlock {
            addr,
            data: data.into(),
        });
    }
    let (digest, regions) = digest(task, None, dead)?;
    Ok(AnchorInfo {
        operands: blocks.into(),
        digest,
        regions: regions.into(),
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
pub fn operand_values(task: &Task, regs: &Regs, anchor: &Anchor) -> Vec<Vec<u8>> {
    operands(anchor.first(), regs)
        .into_iter()
        .map(|(addr, size)| task.read_mem(addr, size).unwrap_or_default())
        .collect()
}

/// Does the stopped task's state equal the recorded anchor state?
fn matches(
    task: &Task,
    regs: &Regs,
    info: &AnchorInfo,
    page: u64,
    dead: &DeadMemory,
) -> Result<bool> {
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
    Ok(digest(task, Some(page), dead)?.0 == info.digest)
}

/// Machine code of the trampoline, built by hand. Data lives at the end
/// of the page and is addressed rip-relative.
struct Code {
    base: u64,
    bytes: Vec<u8>,
}

/// Where the trampoline keeps its data, from the start of its page.
const DATA: u64 = 0x1000;
/// Saved rax, saved flags (from `lahf`/`seto`), then the recorded
/// registers (16 slots, x86 order).
const SAVE_RAX: u64 = DATA;
const SAVE_FLAGS: u64 = DATA + 8;
const SAVE_RCX: u64 = DATA + 16;
const SAVE_RDX: u64 = DATA + 24;
const NEG_PRECHECK: u64 = DATA + 32;
const RECORDED: u64 = DATA + 40;
/// The trampoline's code page and its data page (kept apart: stores into
/// a page that holds running code are treated as self-modifying code).
const PAGES: u64 = 2 * 4096;

impl Code {
    fn b(&mut self, b: &[u8]) {
        self.bytes.extend_from_slice(b);
    }
    /// A rip-relative disp32 to page offset `at`, for an instruction whose
    /// remaining bytes after the displacement are `tail`.
    fn rel(&mut self, at: u64, tail: usize) {
        let next = self.base + self.bytes.len() as u64 + 4 + tail as u64;
        let disp = (self.base + at) as i64 - next as i64;
        self.b(&(disp as i32).to_le_bytes());
    }
    /// mov [rip+slot], rax
    fn store_rax(&mut self, slot: u64) {
        self.b(&[0x48, 0x89, 0x05]);
        self.rel(slot, 0);
    }
    /// mov rax, [rip+slot]
    fn load_rax(&mut self, slot: u64) {
        self.b(&[0x48, 0x8b, 0x05]);
        self.rel(slot, 0);
    }
    /// mov rcx, reg
    fn rcx_from(&mut self, reg: u8) {
        self.b(&[0x48 | ((reg >> 3) << 2), 0x89, 0xc0 | ((reg & 7) << 3) | 1]);
    }
    /// cmp reg, [rip+slot]
    fn cmp_slot(&mut self, reg: u8, slot: u64) {
        self.b(&[0x48 | ((reg >> 3) << 2), 0x3b, 0x05 | ((reg & 7) << 3)]);
        self.rel(slot, 0);
    }
    /// A rel32 jump or jne to be patched: returns the offset of the rel32.
    fn jcc(&mut self, opcode: &[u8]) -> usize {
        self.b(opcode);
        self.b(&[0, 0, 0, 0]);
        self.bytes.len() - 4
    }
    fn patch32(&mut self, at: usize, target: usize) {
        let rel = target as i64 - (at as i64 + 4);
        self.bytes[at..at + 4].copy_from_slice(&(rel as i32).to_le_bytes());
    }
    /// Puts back rcx and rdx saved by the pre-check.
    fn restore_rcx_rdx(&mut self) {
        self.b(&[0x48, 0x8b, 0x0d]); // mov rcx, [rip+SAVE_RCX]
        self.rel(SAVE_RCX, 0);
        self.b(&[0x48, 0x8b, 0x15]); // mov rdx, [rip+SAVE_RDX]
        self.rel(SAVE_RDX, 0);
    }

    /// Puts back the flags and rax saved by the full compare.
    fn restore_flags_rax(&mut self) {
        self.load_rax(SAVE_FLAGS);
        self.b(&[0x04, 0x7f, 0x9e]); // add al,0x7f (restores OF); sahf
        self.load_rax(SAVE_RAX);
    }
}

/// The trampoline for `anchor` (at `regs.rip`) placed at `base`, and its
/// data. It writes nothing but its data page: the full compare saves the
/// flags with `lahf`/`seto`. Returns the page image, the offset just past the `int3`
/// of a hit and the offset where a pass that is not a hit continues.
fn trampoline(
    base: u64,
    anchor: &Anchor,
    regs: &Regs,
    info: &AnchorInfo,
) -> Result<(Vec<u8>, usize, usize)> {
    let mut c = Code {
        base,
        bytes: Vec::new(),
    };
    let recorded = gp(regs);
    let mut to_out = Vec::new();
    // Cheap pre-check, flags untouched (lea + jrcxz): the value that was
    // seen to change between passes must hold its recorded value.
    let pre = match info.precheck {
        r @ 0..=15 if r != 4 => Some((None, r as u8, recorded[r as usize])),
        16 => info.operands.first().map(|op| {
            let mut value = [0u8; 8];
            value[..op.data.len()].copy_from_slice(&op.data);
            (Some(op), 0, u64::from_le_bytes(value))
        }),
        _ => None,
    };
    let mut neg_precheck = 0u64;
    if let Some((operand, reg, value)) = pre {
        // The hot path writes only to the data page: never the stack,
        // whose dead part would then differ from the recording's.
        neg_precheck = value.wrapping_neg();
        c.b(&[0x48, 0x89, 0x0d]); // mov [rip+SAVE_RCX], rcx
        c.rel(SAVE_RCX, 0);
        c.b(&[0x48, 0x89, 0x15]); // mov [rip+SAVE_RDX], rdx
        c.rel(SAVE_RDX, 0);
        match operand {
            Some(op) => {
                c.b(&[0x48, 0xb9]); // mov rcx, imm64
                c.b(&op.addr.to_le_bytes());
                match op.data.len() {
                    1 => c.b(&[0x0f, 0xb6, 0x09]), // movzx ecx, byte [rcx]
                    2 => c.b(&[0x0f, 0xb7, 0x09]), // movzx ecx, word [rcx]
                    4 => c.b(&[0x8b, 0x09]),       // mov ecx, [rcx]
                    _ => c.b(&[0x48, 0x8b, 0x09]), // mov rcx, [rcx]
                }
            }
            None if reg == 1 => {}
            None => c.rcx_from(reg),
        }
        c.b(&[0x48, 0x8b, 0x15]); // mov rdx, [rip+NEG_PRECHECK]
        c.rel(NEG_PRECHECK, 0);
        c.b(&[0x48, 0x8d, 0x0c, 0x11]); // lea rcx,[rcx+rdx]
        c.b(&[0xe3, 0x00]); // jrcxz candidate (patched below)
        let jrcxz = c.bytes.len() - 1;
        c.restore_rcx_rdx();
        to_out.push(c.jcc(&[0xe9]));
        let here = c.bytes.len();
        c.bytes[jrcxz] = (here - (jrcxz + 1)) as u8;
        c.restore_rcx_rdx();
    }
    // Full compare; the flags are saved first.
    c.store_rax(SAVE_RAX);
    c.b(&[0x0f, 0x90, 0xc0, 0x9f]); // seto al; lahf
    c.store_rax(SAVE_FLAGS);
    let mut misses = Vec::new();
    for reg in 1..16u8 {
        c.cmp_slot(reg, RECORDED + reg as u64 * 8);
        misses.push(c.jcc(&[0x0f, 0x85]));
    }
    c.load_rax(SAVE_RAX);
    c.cmp_slot(0, RECORDED);
    misses.push(c.jcc(&[0x0f, 0x85]));
    // A candidate: everything as it was, then trap.
    c.restore_flags_rax();
    c.b(&[0xcc]); // int3
    let hit = c.bytes.len();
    let miss = c.bytes.len();
    for at in misses {
        c.patch32(at, miss);
    }
    c.restore_flags_rax();
    let out = c.bytes.len();
    for at in to_out {
        c.patch32(at, out);
    }
    // The anchor itself, relocated, then back to what follows it.
    let reloc_ip = base + out as u64;
    let encoded = BlockEncoder::encode(
        64,
        InstructionBlock::new(&anchor.instrs, reloc_ip),
        BlockEncoderOptions::NONE,
    )
    .map_err(|e| Error::Internal(format!("cannot relocate anchor instruction: {e}")))?;
    c.b(&encoded.code_buffer);
    let jmp_at = base + c.bytes.len() as u64;
    let back = anchor.end() as i64 - (jmp_at as i64 + 5);
    let back = i32::try_from(back)
        .map_err(|_| Error::Internal("trampoline too far from the anchor".into()))?;
    c.b(&[0xe9]);
    c.b(&back.to_le_bytes());
    if c.bytes.len() as u64 > DATA {
        return Err(Error::Internal("trampoline code too long".into()));
    }
    let mut page = c.bytes;
    page.resize(RECORDED as usize + 16 * 8, 0);
    let at = NEG_PRECHECK as usize;
    page[at..at + 8].copy_from_slice(&neg_precheck.to_le_bytes());
    for (i, v) in recorded.iter().enumerate() {
        let at = RECORDED as usize + i * 8;
        page[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    Ok((page, hit, out))
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
        if end > start + 2 * PAGES {
            // The pages closest to the anchor inside the gap.
            let cand = if near < start {
                start
            } else if near + PAGES >= end {
                end - PAGES
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
    dead: &DeadMemory,
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
    let Some(anchor) = eligible(task, regs.rip) else {
        return Ok(Err(format!("no anchor instruction at {:#x}", regs.rip)));
    };
    // Stopped inside the bytes the patch will cover (a handler returned
    // there): run those instructions first, as the program would.
    let mut steps = 0;
    loop {
        let rip = task.regs()?.rip;
        if rip <= regs.rip || rip >= anchor.end() {
            break;
        }
        steps += 1;
        if steps > 16 {
            return Ok(Err(format!("stuck inside the anchor at {rip:#x}")));
        }
        task.resume(Resume::Step, 0)?;
        match task.wait()? {
            Stop::Signal(libc::SIGTRAP) => {}
            other => return Ok(Err(format!("stepping out of the anchor: {other:?}"))),
        }
    }
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
    let (code, hit, resume) = trampoline(page, &anchor, regs, info)?;
    // Writable too: the trampoline keeps its scratch data there.
    let prot = (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64;
    let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE) as u64;
    let got = remote::syscall_from_user(
        task,
        PAGE_SYSCALL,
        libc::SYS_mmap,
        &[page, PAGES, prot, flags, u64::MAX, 0],
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
                if matches(task, regs, info, page, dead)? {
                    break Ok(());
                }
                if std::env::var_os("RRPIPE_DEBUG").is_some() {
                    let (_, now_regions) = digest(task, Some(page), dead)?;
                    let differ: Vec<String> = info
                        .regions
                        .iter()
                        .filter(|r| !now_regions.contains(r))
                        .map(|r| format!("{:#x}", r.start))
                        .collect();
                    let regs_differ: Vec<&str> = regs
                        .to_array()
                        .iter()
                        .zip(now.to_array())
                        .enumerate()
                        .filter(|(i, (a, b))| **a != *b && Regs::NAMES[*i] != "rip")
                        .map(|(i, _)| Regs::NAMES[i])
                        .collect();
                    eprintln!(
                        "anchor: candidate at {:#x} rejected: registers {regs_differ:?}, memory at {differ:?} (now {} regions, recorded {})",
                        regs.rip,
                        now_regions.len(),
                        info.regions.len()
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
    remote::syscall_from_user(task, PAGE_SYSCALL, libc::SYS_munmap, &[page, PAGES])?;
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
            regions: Vec::new().into(),
            precheck: 16,
        };
        let anchor = Anchor {
            instrs: vec![instr],
        };
        let (code, hit, resume) = trampoline(0x402000, &anchor, &regs, &info).unwrap();
        assert_eq!(code[hit - 1], 0xcc);
        assert!(code.len() <= PAGES as usize);
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
