//! The address space a program starts with, made identical in record and
//! replay.
//!
//! After every exec, both sessions (1) patch the vDSO so that its time and
//! CPU functions make real, traced syscalls, and (2) map the rrpipe page at
//! a fixed address: a `syscall` instruction for remote syscalls and scratch
//! space. Record then captures the layout, the contents of every writable
//! mapping (the stack with argv, environment, auxv and the 16 AT_RANDOM
//! bytes; the zero-padded data pages) and saves the mapped files; replay
//! maps the saved files over the kernel's mappings, checks the layout and
//! writes the recorded contents back.

use std::collections::HashMap;
use std::path::Path;

use object::{Object, ObjectSymbol};
use rrpipe_plugin_api::{ExecInfo, MemBlock, SavedFile};

use crate::error::{Error, Result};
use crate::ptrace::Task;
use crate::remote;
use crate::tracedir::FileSaver;
use rrpipe_syscallbuf as abi;

/// Where the rrpipe page lives in every tracee (rr uses the same spot).
pub const RRPIPE_PAGE: u64 = 0x7000_0000;
/// A `syscall` instruction inside the rrpipe page.
pub const PAGE_SYSCALL: u64 = RRPIPE_PAGE;
/// Scratch bytes inside the rrpipe page (paths for remote syscalls).
pub const PAGE_SCRATCH: u64 = RRPIPE_PAGE + 0x800;
const PAGE_SIZE: u64 = 4096;

/// vDSO entry points replaced by a real syscall: `mov eax, NR; syscall; ret`.
const VDSO_SYSCALLS: &[(&str, i64)] = &[
    ("__vdso_clock_gettime", libc::SYS_clock_gettime),
    ("__vdso_gettimeofday", libc::SYS_gettimeofday),
    ("__vdso_time", libc::SYS_time),
    ("__vdso_getcpu", libc::SYS_getcpu),
    ("__vdso_clock_getres", libc::SYS_clock_getres),
];
/// vDSO entry points that must report "unavailable" so libc falls back to
/// the syscall (the vDSO getrandom keeps its own state in user memory).
const VDSO_UNAVAILABLE: &[&str] = &["__vdso_getrandom"];

fn syscall_stub(nr: i64) -> Vec<u8> {
    let mut code = vec![0xb8];
    code.extend_from_slice(&(nr as u32).to_le_bytes());
    code.extend_from_slice(&[0x0f, 0x05, 0xc3]);
    code
}

/// `mov rax, -ENOSYS; ret`
const ENOSYS_STUB: [u8; 8] = [0x48, 0xc7, 0xc0, 0xda, 0xff, 0xff, 0xff, 0xc3];

/// What the preload library finds in the rrpipe page (see
/// `rrpipe_syscallbuf`): whether to buffer, how, and which files are
/// rrpipe's own stdout and stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageSetup {
    pub mode: u32,
    pub console: [(u64, u64); 2],
}

/// Patches the vDSO, maps the rrpipe page and makes `cpuid` trap (see
/// `cpuid`). Afterwards [`PAGE_SYSCALL`] is usable for remote syscalls.
pub fn prepare(task: &Task, setup: &PageSetup) -> Result<()> {
    let maps = task
        .mappings()
        .map_err(|e| Error::internal("read tracee maps", e))?;
    let vdso = maps
        .iter()
        .find(|m| m.name.as_str() == "[vdso]")
        .ok_or_else(|| {
            Error::Internal("tracee has no vDSO; cannot make time deterministic".into())
        })?;
    let image = task
        .read_mem(vdso.start, (vdso.end - vdso.start) as usize)
        .map_err(|e| Error::internal("read vDSO", e))?;
    let elf = object::File::parse(&image[..]).map_err(|e| Error::internal("parse vDSO", e))?;
    let mut patches: HashMap<u64, Vec<u8>> = HashMap::new();
    for sym in elf.dynamic_symbols() {
        let Ok(name) = sym.name() else { continue };
        let at = vdso.start + sym.address();
        if let Some(&(_, nr)) = VDSO_SYSCALLS.iter().find(|(n, _)| *n == name) {
            patches.insert(at, syscall_stub(nr));
        } else if VDSO_UNAVAILABLE.contains(&name) {
            patches.insert(at, ENOSYS_STUB.to_vec());
        }
    }
    let mut stub_syscall = None;
    for (at, code) in &patches {
        task.write_mem(*at, code)
            .map_err(|e| Error::internal("patch vDSO", e))?;
        if code.len() == 8 && code[0] == 0xb8 {
            stub_syscall = Some(at + 5);
        }
    }
    let insn =
        stub_syscall.ok_or_else(|| Error::Internal("vDSO has no clock_gettime to patch".into()))?;
    let prot = (libc::PROT_READ | libc::PROT_EXEC) as u64;
    let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE) as u64;
    let r = remote::syscall_from_user(
        task,
        insn,
        libc::SYS_mmap,
        &[RRPIPE_PAGE, PAGE_SIZE, prot, flags, u64::MAX, 0],
    )?;
    if r as u64 != RRPIPE_PAGE {
        return Err(Error::Internal(format!(
            "cannot map the rrpipe page at {RRPIPE_PAGE:#x} (result {r})"
        )));
    }
    // syscall; ret: remote syscalls stop at its exit, the preload library
    // calls it (see `rrpipe_syscallbuf::UNTRACED_SYSCALL`).
    let mut page = vec![0x0f, 0x05, 0xc3];
    page.resize((abi::PAGE_MODE - RRPIPE_PAGE) as usize, 0xcc);
    page.extend_from_slice(&setup.mode.to_le_bytes());
    page.extend_from_slice(&[0; 4]);
    for (dev, ino) in setup.console {
        page.extend_from_slice(&dev.to_le_bytes());
        page.extend_from_slice(&ino.to_le_bytes());
    }
    task.write_mem(RRPIPE_PAGE, &page)
        .map_err(|e| Error::internal("write rrpipe page", e))?;
    crate::cpuid::trap(task, PAGE_SYSCALL)?;
    Ok(())
}

/// Record: installs the seccomp filter that lets syscalls made from the
/// rrpipe page's instruction through without a stop and sends every other
/// one to the tracer (`SECCOMP_RET_TRACE`, a `PTRACE_EVENT_SECCOMP` stop
/// before the syscall runs). Forks and execs keep it. Replay has none: it
/// stops at every syscall with PTRACE_SYSEMU, and the preload library
/// makes none of its buffered calls.
pub fn install_seccomp_filter(task: &Task) -> Result<()> {
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_TRACE: u32 = 0x7ff0_0000;
    let ip = abi::UNTRACED_IP;
    // (code, jt, jf, k); seccomp_data.instruction_pointer is at offset 8.
    let program: [(u16, u8, u8, u32); 6] = [
        (LD_W_ABS, 0, 0, 8),
        (JEQ_K, 0, 3, ip as u32),
        (LD_W_ABS, 0, 0, 12),
        (JEQ_K, 0, 1, (ip >> 32) as u32),
        (RET_K, 0, 0, RET_ALLOW),
        (RET_K, 0, 0, RET_TRACE),
    ];
    let mut bytes = Vec::new();
    for (code, jt, jf, k) in program {
        bytes.extend_from_slice(&code.to_le_bytes());
        bytes.extend_from_slice(&[jt, jf]);
        bytes.extend_from_slice(&k.to_le_bytes());
    }
    let filter_at = PAGE_SCRATCH;
    let fprog_at = PAGE_SCRATCH + 0x100;
    let mut fprog = (program.len() as u64).to_le_bytes().to_vec();
    fprog.extend_from_slice(&filter_at.to_le_bytes());
    task.write_mem(filter_at, &bytes)
        .and_then(|_| task.write_mem(fprog_at, &fprog))
        .map_err(|e| Error::internal("write the seccomp filter", e))?;
    let install = || {
        remote::syscall_from_user(
            task,
            PAGE_SYSCALL,
            libc::SYS_seccomp,
            &[libc::SECCOMP_SET_MODE_FILTER as u64, 0, fprog_at],
        )
    };
    let mut r = install()?;
    if r == -(libc::EACCES as i64) {
        // Without CAP_SYS_ADMIN the kernel wants no_new_privs first (rr
        // sets it too): setuid programs then run without their privileges.
        remote::syscall_from_user(
            task,
            PAGE_SYSCALL,
            libc::SYS_prctl,
            &[libc::PR_SET_NO_NEW_PRIVS as u64, 1, 0, 0, 0],
        )?;
        r = install()?;
    }
    if r != 0 {
        return Err(Error::Internal(format!(
            "cannot install the syscall-buffering seccomp filter (errno {}); record with --no-syscall-buffer",
            -r
        )));
    }
    Ok(())
}

fn is_file(name: &str) -> bool {
    name.starts_with('/')
}

/// Record: the state after exec (call after [`prepare`]).
pub fn capture(
    task: &Task,
    regs: rrpipe_plugin_api::Regs,
    filename: &str,
    argv: &[String],
    saver: &mut FileSaver,
) -> Result<ExecInfo> {
    let maps = task
        .mappings()
        .map_err(|e| Error::internal("read tracee maps", e))?;
    let exe = std::fs::read_link(format!("/proc/{}/exe", task.tid))
        .map_err(|e| Error::internal("read /proc/PID/exe", e))?
        .to_string_lossy()
        .into_owned();
    let mut memory = Vec::new();
    let mut files: Vec<SavedFile> = Vec::new();
    let pagemap = std::fs::File::open(format!("/proc/{}/pagemap", task.tid)).ok();
    for m in &maps {
        let name = m.name.as_str();
        if m.prot & libc::PROT_WRITE as u32 != 0 {
            for (start, end) in written_pages(pagemap.as_ref(), m.start, m.end) {
                let data = task
                    .read_mem(start, (end - start) as usize)
                    .map_err(|e| Error::internal(format!("read {name} at {start:#x}"), e))?;
                memory.push(MemBlock {
                    addr: start,
                    data: data.into(),
                });
            }
        }
        if is_file(name) && !files.iter().any(|f| f.original.as_str() == name) {
            let through = format!("/proc/{}/map_files/{:x}-{:x}", task.tid, m.start, m.end);
            let open_path = if Path::new(&through).exists() {
                through
            } else {
                name.to_string()
            };
            if let Some(saved) = saver.save(name, Path::new(&open_path), false)? {
                files.push(saved);
            }
        }
    }
    Ok(ExecInfo {
        regs,
        filename: filename.into(),
        exe: exe.into(),
        argv: argv.iter().map(|a| a.as_str().into()).collect(),
        maps: maps.into(),
        memory: memory.into(),
        files: files.into(),
        caller_tid: 0,
    })
}

/// The runs of pages in `[start, end)` (a writable mapping right after
/// exec) whose contents replay's exec would not reproduce by itself:
/// those the kernel wrote (anonymous pages: the stack with argv, env and
/// auxv, the zero-padded end of the data segment). A page never touched
/// holds the file's bytes (which replay maps from the saved copy) or
/// zeros, and an untouched page of a file is still the file's. Reading
/// them all cost `python3`'s recording 1.5 MiB of mostly untouched data
/// segment at its exec, and the trace writer as much to compress. Without
/// `/proc/PID/pagemap` (or on a short read), the whole range.
fn written_pages(pagemap: Option<&std::fs::File>, start: u64, end: u64) -> Vec<(u64, u64)> {
    use std::os::unix::fs::FileExt;
    const PAGE: u64 = 4096;
    const PRESENT: u64 = 1 << 63;
    const SWAPPED: u64 = 1 << 62;
    const FILE_OR_SHARED: u64 = 1 << 61;
    let pages = ((end - start) / PAGE) as usize;
    let mut entries = vec![0u8; pages * 8];
    let read = pagemap.map(|f| f.read_exact_at(&mut entries, start / PAGE * 8));
    if !matches!(read, Some(Ok(()))) {
        return vec![(start, end)];
    }
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for (i, e) in entries.chunks_exact(8).enumerate() {
        let e = u64::from_le_bytes(e.try_into().expect("8 bytes"));
        let written = e & SWAPPED != 0 || (e & PRESENT != 0 && e & FILE_OR_SHARED == 0);
        if !written {
            continue;
        }
        let at = start + i as u64 * PAGE;
        match runs.last_mut() {
            Some((_, run_end)) if *run_end == at => *run_end = at + PAGE,
            _ => runs.push((at, at + PAGE)),
        }
    }
    runs
}

/// The saved copy of `original` in the trace.
pub fn saved_copy<'a>(info: &'a ExecInfo, original: &str) -> Option<&'a SavedFile> {
    info.files.iter().find(|f| f.original.as_str() == original)
}

/// Replay: makes the fresh process identical to the recorded one (call
/// after [`prepare`]). Returns a description of the first difference in
/// layout, if any.
pub fn restore(task: &Task, info: &ExecInfo, trace_dir: &Path) -> Result<Result<(), String>> {
    let now = task
        .mappings()
        .map_err(|e| Error::internal("read tracee maps", e))?;
    let layout = |m: &rrpipe_plugin_api::Mapping| (m.start, m.end, m.prot);
    let recorded: Vec<_> = info.maps.iter().map(layout).collect();
    let current: Vec<_> = now.iter().map(layout).collect();
    if recorded != current {
        let first = recorded
            .iter()
            .zip(&current)
            .position(|(a, b)| a != b)
            .unwrap_or(recorded.len().min(current.len()));
        let show = |v: &[(u64, u64, u32)], i: usize| {
            v.get(i)
                .map(|(s, e, p)| format!("{s:#x}-{e:#x} prot {p}"))
                .unwrap_or_else(|| "nothing".into())
        };
        return Ok(Err(format!(
            "address space after exec differs at mapping {first}: recorded {}, replay has {}",
            show(&recorded, first),
            show(&current, first)
        )));
    }
    // Map the saved copies over whatever the kernel found on disk today.
    let mut by_file: HashMap<&str, Vec<&rrpipe_plugin_api::Mapping>> = HashMap::new();
    for m in info.maps.iter().filter(|m| is_file(m.name.as_str())) {
        by_file.entry(m.name.as_str()).or_default().push(m);
    }
    for (name, maps) in by_file {
        let saved = saved_copy(info, name).ok_or_else(|| {
            Error::BadTrace(format!("trace lacks the saved copy of mapped file {name}"))
        })?;
        let path = trace_dir.join(saved.in_trace.as_str());
        remote::write_cstring(task, PAGE_SCRATCH, &path.to_string_lossy())?;
        let fd = remote::syscall_from_user(
            task,
            PAGE_SYSCALL,
            libc::SYS_openat,
            &[
                libc::AT_FDCWD as u64,
                PAGE_SCRATCH,
                (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
            ],
        )?;
        if fd < 0 {
            return Err(Error::BadTrace(format!(
                "cannot open saved file {} in the tracee (errno {})",
                path.display(),
                -fd
            )));
        }
        for m in maps {
            let flags = (libc::MAP_PRIVATE | libc::MAP_FIXED) as u64;
            let r = remote::syscall_from_user(
                task,
                PAGE_SYSCALL,
                libc::SYS_mmap,
                &[
                    m.start,
                    m.end - m.start,
                    m.prot as u64,
                    flags,
                    fd as u64,
                    m.offset,
                ],
            )?;
            if r as u64 != m.start {
                return Err(Error::Internal(format!(
                    "remapping {name} at {:#x} failed (result {r})",
                    m.start
                )));
            }
        }
        remote::syscall_from_user(task, PAGE_SYSCALL, libc::SYS_close, &[fd as u64])?;
    }
    for block in info.memory.iter() {
        task.write_mem(block.addr, &block.data)
            .map_err(|e| Error::internal(format!("restore memory at {:#x}", block.addr), e))?;
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    /// Maps `pages` pages (anonymous, or of a fresh file when `file`),
    /// writes the pages in `written` and reads the one in `read`.
    fn mapping(
        pages: usize,
        file: Option<&std::fs::File>,
        written: &[usize],
        read: &[usize],
    ) -> u64 {
        use std::os::fd::AsRawFd;
        let (flags, fd) = match file {
            Some(f) => (libc::MAP_PRIVATE, f.as_raw_fd()),
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a fresh mapping, touched only within its bounds.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                pages * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                0,
            ) as *mut u8;
            assert_ne!(p as *mut libc::c_void, libc::MAP_FAILED);
            for &i in written {
                p.add(i * PAGE).write_volatile(1);
            }
            for &i in read {
                let _ = p.add(i * PAGE).read_volatile();
            }
            p as u64
        }
    }

    #[test]
    fn only_pages_written_since_mapping_are_kept() {
        let pagemap = std::fs::File::open("/proc/self/pagemap").unwrap();
        let pg = PAGE as u64;

        let anon = mapping(8, None, &[1, 2, 5], &[7]);
        let runs = written_pages(Some(&pagemap), anon, anon + 8 * pg);
        // Page 7 was only read: it maps the shared zero page, which
        // pagemap shows as anonymous, so it is kept too (zeros, harmless;
        // the kernel reads no anonymous page of a fresh exec).
        assert_eq!(
            runs,
            [
                (anon + pg, anon + 3 * pg),
                (anon + 5 * pg, anon + 6 * pg),
                (anon + 7 * pg, anon + 8 * pg)
            ]
        );
        let untouched = mapping(4, None, &[], &[]);
        assert_eq!(
            written_pages(Some(&pagemap), untouched, untouched + 4 * pg),
            []
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, vec![7u8; 4 * PAGE]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let mapped = mapping(4, Some(&file), &[2], &[0, 1]);
        let runs = written_pages(Some(&pagemap), mapped, mapped + 4 * pg);
        assert_eq!(runs, [(mapped + 2 * pg, mapped + 3 * pg)]);

        // Without pagemap: everything.
        assert_eq!(
            written_pages(None, anon, anon + 8 * pg),
            [(anon, anon + 8 * pg)]
        );
    }
}
