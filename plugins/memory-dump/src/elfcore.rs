//! ELF core files, laid out the way the kernel writes them, so that
//! `gdb PROGRAM CORE` (and `readelf`, `eu-stack`...) open them.
//!
//! One `PT_NOTE` segment carries the task's registers (`NT_PRSTATUS`,
//! `NT_PRFPREG`), the process description (`NT_PRPSINFO`), the signal being
//! delivered (`NT_SIGINFO`), the auxiliary vector (`NT_AUXV`, which gdb
//! needs to find where a PIE was loaded) and the file mappings (`NT_FILE`).
//! Then one `PT_LOAD` per mapping, in address order: readable mappings with
//! their contents, others (guard pages, `[vvar]`) with no file bytes.
//!
//! Bytes the snapshot does not have (each thread's dead stack below its red
//! zone, file pages past the end of the file) are zeros: they are not
//! program state, and leaving them out is what makes a dump taken in replay
//! identical to the one taken in record.
//!
//! Only the task of the event is described (one thread): the other tasks
//! of a recorded process are not stopped at a point where their registers
//! are program state.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

use rrpipe_plugin_api::{Mapping, ProcessState, Regs, Snapshot};

const PAGE: u64 = 4096;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

const NT_PRSTATUS: u32 = 1;
const NT_PRFPREG: u32 = 2;
const NT_PRPSINFO: u32 = 3;
const NT_AUXV: u32 = 6;
const NT_SIGINFO: u32 = 0x5349_4749;
const NT_FILE: u32 = 0x4649_4c45;

const EHDR_SIZE: u64 = 64;
const PHDR_SIZE: u64 = 56;

const AT_NULL: u64 = 0;
const AT_EXECFN: u64 = 31;

/// What a core file describes besides memory.
pub struct Task<'a> {
    pub tid: i32,
    /// The signal being delivered (0 for none), and its `siginfo_t`.
    pub signal: i32,
    pub siginfo: &'a [u8],
}

/// Writes the core file of `task` from `snapshot` (taken with
/// `MemoryRequest::Core`) to `out`.
pub fn write(out: &mut File, task: &Task, snapshot: &Snapshot) -> io::Result<()> {
    let process = snapshot
        .process
        .as_ref()
        .into_option()
        .ok_or_else(|| io::Error::other("the snapshot has no process state"))?;
    let notes = notes(task, snapshot, process);
    let segments = segments(snapshot, process);

    // Layout: headers, notes, then each segment's bytes page-aligned.
    let phnum = 1 + segments.len() as u64;
    let notes_at = EHDR_SIZE + PHDR_SIZE * phnum;
    let mut at = align(notes_at + notes.len() as u64, PAGE);
    let mut offsets = Vec::with_capacity(segments.len());
    for s in &segments {
        offsets.push(at);
        at += s.filesz;
    }
    let end = at;

    let mut head = Vec::with_capacity(notes_at as usize + notes.len());
    elf_header(&mut head, phnum as u16);
    phdr(&mut head, PT_NOTE, 0, notes_at, 0, notes.len() as u64, 0, 4);
    for (s, &offset) in segments.iter().zip(&offsets) {
        phdr(
            &mut head, PT_LOAD, s.flags, offset, s.start, s.filesz, s.memsz, PAGE,
        );
    }
    head.extend_from_slice(&notes);
    out.write_all(&head)?;

    // Contents: each region at its place; the gaps stay holes (zeros).
    for (s, &offset) in segments.iter().zip(&offsets) {
        if s.filesz == 0 {
            continue;
        }
        for r in snapshot.regions.iter() {
            let r_end = r.addr + r.data.len() as u64;
            if r.addr >= s.start && r_end <= s.start + s.filesz {
                out.seek(SeekFrom::Start(offset + (r.addr - s.start)))?;
                out.write_all(&r.data)?;
            }
        }
    }
    out.set_len(end)?;
    Ok(())
}

struct Segment {
    start: u64,
    memsz: u64,
    filesz: u64,
    flags: u32,
}

/// One segment per mapping; file bytes for those the snapshot copied.
fn segments(snapshot: &Snapshot, process: &ProcessState) -> Vec<Segment> {
    process
        .maps
        .iter()
        .filter(|m| m.end > m.start)
        .map(|m| {
            let copied = snapshot
                .regions
                .iter()
                .any(|r| r.addr >= m.start && r.addr < m.end);
            let size = m.end - m.start;
            Segment {
                start: m.start,
                memsz: size,
                filesz: if copied { size } else { 0 },
                flags: flags(m.prot),
            }
        })
        .collect()
}

fn flags(prot: u32) -> u32 {
    let mut f = 0;
    if prot & libc::PROT_READ as u32 != 0 {
        f |= PF_R;
    }
    if prot & libc::PROT_WRITE as u32 != 0 {
        f |= PF_W;
    }
    if prot & libc::PROT_EXEC as u32 != 0 {
        f |= PF_X;
    }
    f
}

fn align(x: u64, to: u64) -> u64 {
    x.div_ceil(to) * to
}

fn elf_header(out: &mut Vec<u8>, phnum: u16) {
    out.extend_from_slice(b"\x7fELF");
    out.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little-endian, v1, System V
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&4u16.to_le_bytes()); // ET_CORE
    out.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    out.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    out.extend_from_slice(&EHDR_SIZE.to_le_bytes()); // e_phoff
    out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    out.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    out.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    out.extend_from_slice(&phnum.to_le_bytes());
    out.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
}

#[allow(clippy::too_many_arguments)]
fn phdr(
    out: &mut Vec<u8>,
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
) {
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&vaddr.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // p_paddr
    out.extend_from_slice(&filesz.to_le_bytes());
    out.extend_from_slice(&memsz.to_le_bytes());
    out.extend_from_slice(&align.to_le_bytes());
}

/// One note: name "CORE", 4-byte aligned name and descriptor.
fn note(out: &mut Vec<u8>, kind: u32, desc: &[u8]) {
    let name = b"CORE\0";
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(name);
    out.resize(align(out.len() as u64, 4) as usize, 0);
    out.extend_from_slice(desc);
    out.resize(align(out.len() as u64, 4) as usize, 0);
}

fn notes(task: &Task, snapshot: &Snapshot, process: &ProcessState) -> Vec<u8> {
    let mut out = Vec::new();
    note(
        &mut out,
        NT_PRSTATUS,
        &prstatus(task, &snapshot.regs, !process.fpregs.is_empty()),
    );
    note(&mut out, NT_PRPSINFO, &prpsinfo(task, snapshot, process));
    if task.signal != 0 && !task.siginfo.is_empty() {
        note(&mut out, NT_SIGINFO, task.siginfo);
    }
    if !process.auxv.is_empty() {
        note(&mut out, NT_AUXV, &process.auxv);
    }
    note(&mut out, NT_FILE, &file_note(&process.maps));
    if !process.fpregs.is_empty() {
        note(&mut out, NT_PRFPREG, &process.fpregs);
    }
    out
}

/// `struct elf_prstatus` (336 bytes on x86_64).
fn prstatus(task: &Task, regs: &Regs, fpvalid: bool) -> Vec<u8> {
    let mut d = vec![0u8; 336];
    d[0..4].copy_from_slice(&task.signal.to_le_bytes()); // pr_info.si_signo
    d[12..14].copy_from_slice(&(task.signal as i16).to_le_bytes()); // pr_cursig
    d[32..36].copy_from_slice(&task.tid.to_le_bytes()); // pr_pid
    for (i, r) in regs.to_array().iter().enumerate() {
        let at = 112 + 8 * i; // pr_reg, user_regs_struct order
        d[at..at + 8].copy_from_slice(&r.to_le_bytes());
    }
    d[328..332].copy_from_slice(&(fpvalid as i32).to_le_bytes());
    d
}

/// `struct elf_prpsinfo` (136 bytes): the program's name, from the
/// `AT_EXECFN` string in the copied stack.
fn prpsinfo(task: &Task, snapshot: &Snapshot, process: &ProcessState) -> Vec<u8> {
    let mut d = vec![0u8; 136];
    d[1] = b'R'; // pr_sname
    d[24..28].copy_from_slice(&task.tid.to_le_bytes()); // pr_pid
    let execfn = auxv_entry(&process.auxv, AT_EXECFN)
        .and_then(|addr| c_string_at(snapshot, addr))
        .unwrap_or_default();
    let base = execfn.rsplit(|&b| b == b'/').next().unwrap_or(&[]);
    let fname = &base[..base.len().min(15)];
    d[40..40 + fname.len()].copy_from_slice(fname);
    let args = &execfn[..execfn.len().min(79)];
    d[56..56 + args.len()].copy_from_slice(args);
    d
}

fn auxv_entry(auxv: &[u8], kind: u64) -> Option<u64> {
    auxv.chunks_exact(16)
        .map(|p| {
            (
                u64::from_le_bytes(p[..8].try_into().unwrap()),
                u64::from_le_bytes(p[8..].try_into().unwrap()),
            )
        })
        .take_while(|&(k, _)| k != AT_NULL)
        .find(|&(k, _)| k == kind)
        .map(|(_, v)| v)
}

fn c_string_at(snapshot: &Snapshot, addr: u64) -> Option<Vec<u8>> {
    let r = snapshot
        .regions
        .iter()
        .find(|r| r.addr <= addr && addr < r.addr + r.data.len() as u64)?;
    let from = &r.data[(addr - r.addr) as usize..];
    let len = from.iter().position(|&b| b == 0)?;
    Some(from[..len].to_vec())
}

/// `NT_FILE`: count, page size, (start, end, offset in pages) per file
/// mapping, then their names.
fn file_note(maps: &[Mapping]) -> Vec<u8> {
    let files: Vec<&Mapping> = maps
        .iter()
        .filter(|m| m.name.starts_with('/') && m.inode != 0)
        .collect();
    let mut d = Vec::new();
    d.extend_from_slice(&(files.len() as u64).to_le_bytes());
    d.extend_from_slice(&PAGE.to_le_bytes());
    for m in &files {
        d.extend_from_slice(&m.start.to_le_bytes());
        d.extend_from_slice(&m.end.to_le_bytes());
        d.extend_from_slice(&(m.offset / PAGE).to_le_bytes());
    }
    for m in &files {
        d.extend_from_slice(m.name.as_bytes());
        d.push(0);
    }
    d
}
