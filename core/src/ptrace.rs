//! A traced task: registers, memory, resumption and stops. Everything that
//! speaks ptrace goes through here, on the one tracer thread the kernel
//! binds the tracee to.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use rrpipe_plugin_api::{Mapping, Regs};

use crate::error::{Error, Result};

/// How to let a stopped task run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Until a signal or ptrace event.
    Cont,
    /// Until the next syscall entry or exit.
    Syscall,
    /// Until the next syscall entry, which is then skipped.
    Sysemu,
    /// One instruction.
    Step,
}

/// What a wait reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    SyscallEntry,
    SyscallExit,
    /// A signal about to be delivered (signal-delivery-stop).
    Signal(i32),
    /// A ptrace event stop (`PTRACE_EVENT_*`).
    Event(i32),
    /// The task exited with this code.
    Exited(i32),
    /// The task was killed by this signal.
    Killed(i32),
}

/// Signals the kernel raises at the faulting instruction (with a positive
/// si_code): they recur by themselves when the same code runs again.
pub fn is_fault(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGFPE | libc::SIGILL | libc::SIGTRAP | libc::SIGSYS
    )
}

/// One traced thread.
pub struct Task {
    pub tid: Pid,
    /// `/proc/TID/mem`, reopened after each exec (the old one names the old
    /// address space). Reads and writes through it ignore page protections,
    /// which lets the tracer patch code.
    mem: File,
    /// How it was last resumed, to resume it the same way after a stop
    /// that is not the program's (a trapped `cpuid`).
    last_resume: std::cell::Cell<Resume>,
    /// Its registers at the current stop, once read: a syscall stop reads
    /// them several times (the recorder, the session, snapshots), and each
    /// PTRACE_GETREGS is a syscall. Forgotten whenever the task may have
    /// changed: resumed, waited for, or replaced by an exec.
    regs: std::cell::Cell<Option<Regs>>,
    /// A ptrace call found it out of its stop (ESRCH), or its memory gone:
    /// see `gone`.
    gone: std::cell::Cell<bool>,
    /// `cpuid` may fault in it (see `crate::cpuid`): true until known
    /// otherwise, so that an untrap is never skipped wrongly.
    cpuid_faulting: std::cell::Cell<bool>,
    /// Signals whose delivery stops came while rrpipe ran syscalls in the
    /// task for itself (see `crate::remote`): the task went on without
    /// them, and they are the caller's to deliver later, each with its
    /// siginfo (the recorder re-sends them; replay, which delivers only
    /// the recorded signals, drops them).
    set_aside: std::cell::RefCell<Vec<(i32, Vec<u8>)>>,
}

fn proc_mem(tid: Pid) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{tid}/mem"))
}

impl Task {
    pub fn new(tid: Pid) -> Result<Task> {
        let mem = proc_mem(tid).map_err(|e| Error::internal(format!("open /proc/{tid}/mem"), e))?;
        Ok(Task {
            tid,
            mem,
            last_resume: std::cell::Cell::new(Resume::Cont),
            regs: std::cell::Cell::new(None),
            gone: std::cell::Cell::new(false),
            cpuid_faulting: std::cell::Cell::new(true),
            set_aside: Default::default(),
        })
    }

    /// Keeps signal `sig` (siginfo `raw`), which the task is stopped for,
    /// for later: the task resumes without it (see `set_aside`).
    pub fn set_aside_signal(&self, sig: i32, raw: Vec<u8>) {
        self.set_aside.borrow_mut().push((sig, raw));
    }

    /// The signals set aside so far, in their order (see `set_aside`).
    pub fn take_set_aside(&self) -> Vec<(i32, Vec<u8>)> {
        self.set_aside.take()
    }

    /// Whether `cpuid` may fault in this task (see `crate::cpuid`).
    pub fn cpuid_faulting(&self) -> bool {
        self.cpuid_faulting.get()
    }

    pub fn set_cpuid_faulting(&self, on: bool) {
        self.cpuid_faulting.set(on);
    }

    /// Re-opens the memory file after an exec replaced the address space.
    pub fn reopen_mem(&mut self) -> Result<()> {
        self.regs.set(None);
        self.mem = proc_mem(self.tid)
            .map_err(|e| Error::internal(format!("open /proc/{}/mem", self.tid), e))?;
        Ok(())
    }

    fn fail(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::internal(format!("{what} of task {}", self.tid), e)
    }

    /// A failed ptrace call: ESRCH says the task is no longer in the stop
    /// it was held in (see `gone`).
    fn fail_ptrace(&self, what: &str, e: nix::errno::Errno) -> Error {
        if e == nix::errno::Errno::ESRCH {
            self.gone.set(true);
        }
        self.fail(what, e)
    }

    /// Whether the task was found gone: a ptrace call failed with ESRCH,
    /// or its memory could not be read or written at all any more. Every
    /// ptrace call is made on a task held in a stop, and only SIGKILL
    /// (from outside, from rrpipe's second interruption, or the kernel's
    /// for a group exit or an exec in another thread) takes a task out of
    /// one: it is on its way out, and its exit stop (`PTRACE_EVENT_EXIT`)
    /// or its end is reported next. Set until `clear_gone`.
    pub fn gone(&self) -> bool {
        self.gone.get()
    }

    /// Forgets that the task was found gone (its end is being handled).
    pub fn clear_gone(&self) {
        self.gone.set(false);
    }

    pub fn regs(&self) -> Result<Regs> {
        if let Some(regs) = self.regs.get() {
            return Ok(regs);
        }
        let r = nix::sys::ptrace::getregs(self.tid)
            .map_err(|e| self.fail_ptrace("PTRACE_GETREGS", e))?;
        // Same field order and types (see Regs).
        let regs = unsafe { std::mem::transmute::<libc::user_regs_struct, Regs>(r) };
        self.regs.set(Some(regs));
        Ok(regs)
    }

    /// The x87/SSE registers (the 512-byte `user_fpregs_struct`), for core
    /// dumps.
    pub fn fpregs(&self) -> Result<Vec<u8>> {
        let mut area = std::mem::MaybeUninit::<libc::user_fpregs_struct>::zeroed();
        // SAFETY: PTRACE_GETFPREGS writes one user_fpregs_struct at `data`.
        let rc = unsafe {
            libc::ptrace(
                libc::PTRACE_GETFPREGS,
                self.tid.as_raw(),
                std::ptr::null_mut::<libc::c_void>(),
                area.as_mut_ptr(),
            )
        };
        if rc < 0 {
            return Err(self.fail_ptrace("PTRACE_GETFPREGS", nix::errno::Errno::last()));
        }
        // SAFETY: initialised by the kernel (or zeroed), plain bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                area.as_ptr().cast::<u8>(),
                std::mem::size_of::<libc::user_fpregs_struct>(),
            )
        };
        Ok(bytes.to_vec())
    }

    /// The auxiliary vector the kernel gave the program.
    pub fn auxv(&self) -> io::Result<Vec<u8>> {
        std::fs::read(format!("/proc/{}/auxv", self.tid))
    }

    pub fn set_regs(&self, regs: &Regs) -> Result<()> {
        let r = unsafe { std::mem::transmute::<Regs, libc::user_regs_struct>(*regs) };
        self.regs.set(None);
        nix::sys::ptrace::setregs(self.tid, r)
            .map_err(|e| self.fail_ptrace("PTRACE_SETREGS", e))?;
        self.regs.set(Some(*regs));
        Ok(())
    }

    pub fn read_mem(&self, addr: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(len);
        self.read_mem_into(addr, len, &mut buf)?;
        Ok(buf)
    }

    /// As much of `[addr, addr + len)` as can be read, from `addr` on (empty
    /// when its first page cannot be read): snapshots of whole mappings use
    /// it to find where a mapping stops being readable without a read per
    /// page.
    pub fn read_mem_prefix(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut buf = Vec::with_capacity(len);
        if self.read_mem_into(addr, len, &mut buf).is_err() {
            buf.shrink_to_fit();
        }
        buf
    }

    /// Appends `[addr, addr + len)` to `buf`, stopping at the first byte
    /// that cannot be read (the error says why; `buf` keeps what was read).
    ///
    /// Snapshots copy megabytes per event, so this reads straight into the
    /// buffer's spare capacity (no zeroing first) with `process_vm_readv`,
    /// which copies each page once and takes the address-space lock per
    /// batch of pages, where `/proc/PID/mem` copies through a bounce page
    /// and locks per page. `/proc/PID/mem` stays the fallback for what
    /// `process_vm_readv` refuses (pages without read permission, which it
    /// can read with ptrace's force; kernels or sandboxes without the call),
    /// so what can be read is the same as before.
    pub fn read_mem_into(&self, addr: u64, len: usize, buf: &mut Vec<u8>) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::{AtomicBool, Ordering};
        /// Cleared the first time the kernel refuses the call outright.
        static VM_READV: AtomicBool = AtomicBool::new(true);

        buf.reserve(len);
        let target = buf.len() + len;
        let first = buf.len();
        while buf.len() < target {
            let at = addr + (buf.len() - first) as u64;
            let want = target - buf.len();
            let dst = buf.spare_capacity_mut().as_mut_ptr().cast::<libc::c_void>();
            if VM_READV.load(Ordering::Relaxed) {
                let local = libc::iovec {
                    iov_base: dst,
                    iov_len: want,
                };
                let remote = libc::iovec {
                    iov_base: at as *mut libc::c_void,
                    iov_len: want,
                };
                // SAFETY: the kernel writes at most `want` bytes into the
                // spare capacity, which holds at least that many.
                let n =
                    unsafe { libc::process_vm_readv(self.tid.as_raw(), &local, 1, &remote, 1, 0) };
                if n > 0 {
                    // SAFETY: the kernel initialised the first `n` bytes.
                    unsafe { buf.set_len(buf.len() + n as usize) };
                    continue;
                }
                if n < 0
                    && matches!(
                        io::Error::last_os_error().raw_os_error(),
                        Some(libc::ENOSYS | libc::EPERM)
                    )
                {
                    VM_READV.store(false, Ordering::Relaxed);
                }
            }
            // This page through /proc/PID/mem (everything left, when
            // process_vm_readv is not used at all).
            let chunk = if VM_READV.load(Ordering::Relaxed) {
                want.min((4096 - at % 4096) as usize)
            } else {
                want
            };
            // SAFETY: as above, at most `chunk` <= `want` bytes.
            let n = unsafe { libc::pread(self.mem.as_raw_fd(), dst, chunk, at as libc::off_t) };
            match n {
                n if n > 0 => unsafe { buf.set_len(buf.len() + n as usize) },
                0 => {
                    // (/proc/PID/mem reads nothing at all, rather than
                    // failing with EIO as for an unmapped page, once the
                    // address space is gone: the task has exited.)
                    self.gone.set(true);
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("tracee memory at {at:#x} unreadable"),
                    ));
                }
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    pub fn write_mem(&self, addr: u64, data: &[u8]) -> io::Result<()> {
        let r = self.mem.write_all_at(data, addr);
        if r.as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::WriteZero)
        {
            // Nothing written, not even an error: the address space is
            // gone (see `read_mem_into`).
            self.gone.set(true);
        }
        r
    }

    /// A NUL-terminated string (without the NUL), at most `max` bytes.
    pub fn read_cstring(&self, addr: u64, max: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < max {
            // Read up to the end of the page, so we never cross into an
            // unmapped one needlessly.
            let chunk = (4096 - (at % 4096)) as usize;
            let mut buf = vec![0u8; chunk.min(max - out.len())];
            let n = self.mem.read_at(&mut buf, at)?;
            if n == 0 {
                break;
            }
            if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
                out.extend_from_slice(&buf[..end]);
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
            at += n as u64;
        }
        Ok(out)
    }

    pub fn resume(&self, how: Resume, signal: i32) -> Result<()> {
        self.last_resume.set(how);
        self.regs.set(None);
        let sig = if signal == 0 {
            None
        } else {
            Signal::try_from(signal).ok()
        };
        let r = match how {
            Resume::Cont => nix::sys::ptrace::cont(self.tid, sig),
            Resume::Syscall => nix::sys::ptrace::syscall(self.tid, sig),
            Resume::Sysemu => nix::sys::ptrace::sysemu(self.tid, sig),
            Resume::Step => nix::sys::ptrace::step(self.tid, sig),
        };
        r.map_err(|e| self.fail_ptrace("resume", e))
    }

    /// Waits for this task's next stop. A trapped `cpuid` is not one: it is
    /// emulated and the task resumed as it was (a single step ends there).
    pub fn wait(&self) -> Result<Stop> {
        loop {
            let stop = wait_for(self.tid).map(|(_, stop)| stop)?;
            self.regs.set(None);
            if stop != Stop::Signal(libc::SIGSEGV) || !self.emulate_cpuid()? {
                return Ok(stop);
            }
            match self.last_resume.get() {
                Resume::Step => return Ok(Stop::Signal(libc::SIGTRAP)),
                how => self.resume(how, 0)?,
            }
        }
    }

    /// Waits for the next stop or the end of a task found gone (see
    /// [`Task::gone`]); None when the kernel has no more of it to report
    /// (`ECHILD`: it was released already). A thread SIGKILLed with its
    /// process while rrpipe held it in a stop was seen to go that way on
    /// Linux 6.18, in about one such kill of 400.
    pub fn wait_gone(&self) -> Result<Option<Stop>> {
        let found = waitpid_stop(self.tid, WaitPidFlag::__WALL);
        self.regs.set(None);
        match found {
            Ok(found) => Ok(found.map(|(_, stop)| stop)),
            Err((_, nix::errno::Errno::ECHILD)) => Ok(None),
            Err((what, e)) => Err(Error::internal(what, e)),
        }
    }

    /// At a SIGSEGV stop: when a trapped `cpuid` caused it, executes it for
    /// the task (see `cpuid`) and returns true.
    pub fn emulate_cpuid(&self) -> Result<bool> {
        let regs = self.regs()?;
        if !crate::cpuid::at(self, &regs) {
            return Ok(false);
        }
        self.set_regs(&crate::cpuid::emulate(&regs))?;
        if crate::cpuid::features_read(&regs) {
            // Keep resuming the way the stop came (a wait resumes it).
            let how = self.last_resume.get();
            crate::cpuid::untrap(self, crate::exec::PAGE_SYSCALL)?;
            self.last_resume.set(how);
        }
        Ok(true)
    }

    pub fn siginfo(&self) -> Result<libc::siginfo_t> {
        nix::sys::ptrace::getsiginfo(self.tid).map_err(|e| self.fail_ptrace("PTRACE_GETSIGINFO", e))
    }

    /// The siginfo of the signal this task is stopped for, as the kernel's
    /// 128 bytes (what `set_siginfo` takes back).
    pub fn siginfo_bytes(&self) -> Result<Vec<u8>> {
        let si = self.siginfo()?;
        Ok(siginfo_bytes(&si))
    }

    /// Replaces the siginfo of the signal this task is stopped for.
    pub fn set_siginfo(&self, raw: &[u8]) -> Result<()> {
        if raw.len() != std::mem::size_of::<libc::siginfo_t>() {
            return Ok(());
        }
        // SAFETY: 128 bytes of a siginfo_t, as the kernel gave them.
        let si: libc::siginfo_t =
            unsafe { std::ptr::read_unaligned(raw.as_ptr() as *const libc::siginfo_t) };
        nix::sys::ptrace::setsiginfo(self.tid, &si)
            .map_err(|e| self.fail_ptrace("PTRACE_SETSIGINFO", e))
    }

    /// Queues signal `sig` for this very thread.
    pub fn tgkill(&self, sig: i32) -> Result<()> {
        let tid = self.tid.as_raw();
        let tgid = tgid_of(tid).unwrap_or(tid);
        let r = unsafe { libc::syscall(libc::SYS_tgkill, tgid, tid, sig) };
        if r != 0 {
            return Err(self.fail_ptrace("tgkill", nix::errno::Errno::last()));
        }
        Ok(())
    }

    /// At a `PTRACE_EVENT_EXIT` stop: how the task is ending.
    pub fn exit_info(&self) -> Result<rrpipe_plugin_api::ExitInfo> {
        let status = self.event_msg()? as i32;
        Ok(if libc::WIFSIGNALED(status) {
            rrpipe_plugin_api::ExitInfo {
                code: 0,
                signal: libc::WTERMSIG(status),
            }
        } else {
            rrpipe_plugin_api::ExitInfo {
                code: libc::WEXITSTATUS(status),
                signal: 0,
            }
        })
    }

    pub fn event_msg(&self) -> Result<i64> {
        nix::sys::ptrace::getevent(self.tid).map_err(|e| self.fail_ptrace("PTRACE_GETEVENTMSG", e))
    }

    /// The address space, from `/proc/TID/maps`.
    pub fn mappings(&self) -> io::Result<Vec<Mapping>> {
        let text = std::fs::read_to_string(format!("/proc/{}/maps", self.tid))?;
        Ok(text.lines().filter_map(parse_maps_line).collect())
    }

    /// Whether this task leads a thread group that has other threads left
    /// (its exit then completes only after theirs).
    pub fn leads_other_threads(&self) -> bool {
        let threads = std::fs::read_dir(format!("/proc/{}/task", self.tid))
            .map(|d| d.count())
            .unwrap_or(1);
        tgid_of(self.tid.as_raw()) == Some(self.tid.as_raw()) && threads > 1
    }

    /// Whether the task has a handler installed for `sig` (SigCgt in
    /// /proc/TID/status), and whether it ignores it (SigIgn).
    pub fn signal_disposition(&self, sig: i32) -> io::Result<(bool, bool)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.tid))?;
        let mask = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .unwrap_or(0)
        };
        let bit = 1u64 << (sig - 1);
        Ok((mask("SigCgt:") & bit != 0, mask("SigIgn:") & bit != 0))
    }
}

/// Whether two tasks share their memory (threads, `CLONE_VM` children, a
/// vfork child and its parent): asked of the kernel (`kcmp`); an error
/// counts as shared.
pub fn share_memory(a: i32, b: i32) -> bool {
    const KCMP_VM: i64 = 1;
    // SAFETY: kcmp only compares the two tasks' mm.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, a, b, KCMP_VM, 0, 0) };
    !(r == 1 || r == 2)
}

/// A siginfo as the kernel's 128 bytes.
pub fn siginfo_bytes(si: &libc::siginfo_t) -> Vec<u8> {
    // SAFETY: siginfo_t is plain data, 128 bytes.
    unsafe {
        std::slice::from_raw_parts(
            si as *const libc::siginfo_t as *const u8,
            std::mem::size_of::<libc::siginfo_t>(),
        )
    }
    .to_vec()
}

/// The thread group (process) a task belongs to.
pub fn tgid_of(tid: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Kills tasks and reaps them, ignoring errors: used on the way out. All
/// are killed before any is reaped: a thread-group leader is reaped only
/// after its threads, which stop at their exit event until continued.
pub fn kill_all(tasks: impl IntoIterator<Item = Task>) {
    let mut left: std::collections::HashSet<Pid> = tasks.into_iter().map(|t| t.tid).collect();
    for &tid in &left {
        let _ = nix::sys::signal::kill(tid, Signal::SIGKILL);
    }
    while !left.is_empty() {
        let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::__WALL)) else {
            break; // ECHILD: nothing left to reap
        };
        let Some(pid) = status.pid() else { continue };
        match status {
            WaitStatus::Exited(..) | WaitStatus::Signaled(..) => {
                left.remove(&pid);
            }
            _ => {
                let _ = nix::sys::ptrace::cont(pid, None);
            }
        }
    }
}

/// Waits for the next stop of `tid`, or of any task when `tid` is -1.
pub fn wait_for(tid: Pid) -> Result<(Pid, Stop)> {
    loop {
        if let Some(found) = wait_with(tid, WaitPidFlag::__WALL)? {
            return Ok(found);
        }
    }
}

/// The stop `tid` is in, if it has reported one (does not block).
pub fn try_wait(tid: Pid) -> Result<Option<Stop>> {
    Ok(wait_with(tid, WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)?.map(|(_, s)| s))
}

fn wait_with(tid: Pid, flags: WaitPidFlag) -> Result<Option<(Pid, Stop)>> {
    waitpid_stop(tid, flags).map_err(|(what, e)| Error::internal(what, e))
}

/// `waitpid`, its status as a [`Stop`] (None: nothing yet, with WNOHANG);
/// an error says which call failed.
fn waitpid_stop(
    tid: Pid,
    flags: WaitPidFlag,
) -> std::result::Result<Option<(Pid, Stop)>, (String, nix::errno::Errno)> {
    loop {
        let status = waitpid(tid, Some(flags)).map_err(|e| (format!("waitpid({tid})"), e))?;
        let Some(pid) = status.pid() else {
            return Ok(None);
        };
        let stop = match status {
            WaitStatus::PtraceSyscall(_) => match syscall_stop_is_entry(pid)? {
                Some(true) => Stop::SyscallEntry,
                Some(false) => Stop::SyscallExit,
                // Killed (SIGKILL) since it stopped there: that stop is
                // over, and its exit stop or its end is reported next.
                None => continue,
            },
            WaitStatus::Stopped(_, sig) => Stop::Signal(sig as i32),
            WaitStatus::PtraceEvent(_, _, ev) => Stop::Event(ev),
            WaitStatus::Exited(_, code) => Stop::Exited(code),
            WaitStatus::Signaled(_, sig, _) => Stop::Killed(sig as i32),
            WaitStatus::Continued(_) | WaitStatus::StillAlive => continue,
        };
        return Ok(Some((pid, stop)));
    }
}

/// Waits for the next stop of any traced task.
pub fn wait_any() -> Result<(Pid, Stop)> {
    wait_for(Pid::from_raw(-1))
}

/// Entry or exit, from the kernel rather than by counting (counting drifts
/// across sysemu, exec and injected syscalls). None when the task is no
/// longer in that stop: a SIGKILL took it out (ESRCH: it is on its way
/// out), or it is already at its exit stop (which has no syscall
/// information), a stop that `waitpid` reports next.
fn syscall_stop_is_entry(
    tid: Pid,
) -> std::result::Result<Option<bool>, (String, nix::errno::Errno)> {
    let mut info: libc::ptrace_syscall_info = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GET_SYSCALL_INFO,
            tid.as_raw(),
            std::mem::size_of::<libc::ptrace_syscall_info>(),
            &mut info as *mut _,
        )
    };
    if r < 0 {
        let e = nix::errno::Errno::last();
        if e == nix::errno::Errno::ESRCH {
            return Ok(None);
        }
        return Err((format!("PTRACE_GET_SYSCALL_INFO of task {tid}"), e));
    }
    Ok(match info.op {
        libc::PTRACE_SYSCALL_INFO_ENTRY => Some(true),
        libc::PTRACE_SYSCALL_INFO_NONE => None,
        _ => Some(false),
    })
}

impl crate::syscalls::MemRead for Task {
    fn read_bytes(&self, addr: u64, len: usize) -> io::Result<Vec<u8>> {
        self.read_mem(addr, len)
    }
}

/// Parses one `/proc/PID/maps` line.
pub fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut it = line.splitn(6, ' ');
    let range = it.next()?;
    let perms = it.next()?.as_bytes();
    let offset = u64::from_str_radix(it.next()?, 16).ok()?;
    let dev = it.next()?;
    let inode: u64 = it.next()?.parse().ok()?;
    let name = it.next().unwrap_or("").trim_start().to_string();
    let (start, end) = range.split_once('-')?;
    let (major, minor) = dev.split_once(':')?;
    let dev = (u64::from_str_radix(major, 16).ok()? << 8) | u64::from_str_radix(minor, 16).ok()?;
    let mut prot = 0;
    if perms.first() == Some(&b'r') {
        prot |= libc::PROT_READ as u32;
    }
    if perms.get(1) == Some(&b'w') {
        prot |= libc::PROT_WRITE as u32;
    }
    if perms.get(2) == Some(&b'x') {
        prot |= libc::PROT_EXEC as u32;
    }
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        prot,
        shared: perms.get(3) == Some(&b's'),
        offset,
        dev,
        inode,
        name: name.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_parse() {
        let m = parse_maps_line(
            "7ffff7fc3000-7ffff7fc5000 r-xp 00001000 fe:01 1234   /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        )
        .unwrap();
        assert_eq!(m.start, 0x7ffff7fc3000);
        assert_eq!(m.end, 0x7ffff7fc5000);
        assert_eq!(m.prot, (libc::PROT_READ | libc::PROT_EXEC) as u32);
        assert!(!m.shared);
        assert_eq!(m.offset, 0x1000);
        assert_eq!(m.inode, 1234);
        assert_eq!(
            m.name.as_str(),
            "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
        );
        let anon = parse_maps_line("7ffff7fc1000-7ffff7fc3000 rw-s 00000000 00:00 0 ").unwrap();
        assert!(anon.shared);
        assert_eq!(anon.name.as_str(), "");
    }
}
