//! What rrpipe knows about each syscall, in one declarative table
//! ([`table::TABLE`]) that the recorder, the replayer and `rrpipe dump` all
//! read: how to show its arguments, which tracee memory the kernel writes
//! (recorded, restored in replay), which memory it reads (shown to plugins
//! asking for `SyscallInputs`), and whether replay emulates it or runs it.
//!
//! A syscall missing from the table is unsupported: recording stops before
//! it runs, with an error naming it.

mod decode;
mod table;

pub use decode::format_call;

/// How to show one argument, and which ones are path strings to capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Signed decimal.
    Int,
    /// Unsigned decimal (sizes, counts).
    Size,
    /// Hexadecimal (flags, addresses, masks).
    Hex,
    /// A pointer, shown in hex.
    Ptr,
    /// A file descriptor.
    Fd,
    /// A directory file descriptor (`AT_FDCWD` shown by name).
    DirFd,
    /// A NUL-terminated string the syscall reads: captured into the event
    /// (shown by dump, compared by replay).
    Path,
    /// A signal number, shown by name.
    Signal,
}

/// How long a memory range is, computed from the arguments and the result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Len {
    /// A fixed size (a struct).
    Fixed(u64),
    /// The syscall's (non-negative) result, in bytes.
    Result,
    /// The value of argument `n`.
    Arg(usize),
    /// The value of argument `n` times a fixed element size.
    ArgTimes(usize, u64),
    /// The result times a fixed element size (poll-like counts).
    ResultTimes(u64),
    /// The u32 stored at the address in argument `n` (socklen_t*), read
    /// after the syscall.
    DerefU32(usize),
}

/// A memory range a syscall accesses: the address in argument `arg`, of
/// length `len`. A null address means "nothing".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buf {
    pub arg: usize,
    pub len: Len,
}

/// Reads tracee memory; what the table's custom functions may use to follow
/// pointers (iovec arrays, msghdr).
pub trait MemRead {
    fn read_bytes(&self, addr: u64, len: usize) -> std::io::Result<Vec<u8>>;
}

/// A computed access: (arguments, result, tracee memory) to (addr, len)
/// ranges, or an `Err` naming what is unsupported. See [`Access::Custom`].
pub type AccessFn = fn(&[u64; 6], i64, &dyn MemRead) -> Result<Vec<(u64, u64)>, String>;

/// A syscall's memory accesses beyond plain buffers.
#[derive(Clone, Copy)]
pub enum Access {
    /// No memory.
    None,
    /// These buffers.
    Bufs(&'static [Buf]),
    /// Computed: called with the arguments, the result (for writes; 0 when
    /// computing inputs at entry) and tracee memory; returns (addr, len)
    /// ranges. An `Err` names what is unsupported (an ioctl request...).
    Custom(AccessFn),
}

/// What replay does with a syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Skip it and write back the recorded result and memory.
    Emulate,
    /// Run it again (it shapes kernel state that later execution depends
    /// on: signal handlers, the fs base...) and check the result matches.
    Execute,
    /// Run it again for its effect, but give the program the recorded
    /// result: the value is an identifier the kernel assigns anew in replay
    /// (set_tid_address returns the tid).
    ExecuteKeepResult,
    /// Never returns to the caller (exit, exit_group): run it.
    NoReturn,
    /// mmap: map the saved file copy or anonymous memory at the recorded
    /// address.
    Mmap,
    /// mremap: run it, forcing the recorded destination.
    Mremap,
    /// execve/execveat: rebuild the recorded address space.
    Exec,
    /// clone/fork/vfork: run it, so the replayed tree has the same shape;
    /// the program sees the recorded child id.
    Clone,
    /// Not run even in record: the program is told `-errno`. Used where the
    /// real result would be nondeterministic or would escape the tracer
    /// (rseq, whose kernel-written CPU number differs between machines).
    Deny(i32),
}

/// How the replay treatment can depend on the arguments (prctl, fcntl,
/// arch_prctl multiplex many operations).
#[derive(Clone, Copy)]
pub enum ReplayRule {
    Always(Replay),
    /// Decided from the arguments; `Err` names an unsupported operation.
    ByArgs(fn(&[u64; 6]) -> Result<Replay, String>),
}

/// One row of the table.
#[derive(Clone, Copy)]
pub struct Spec {
    pub nr: i64,
    pub name: &'static str,
    pub args: &'static [Arg],
    pub replay: ReplayRule,
    /// Memory the kernel writes; recorded at syscall exit when the result is
    /// not an error.
    pub writes: Access,
    /// Buffers the kernel reads (beyond `Path` strings), for plugins.
    pub reads: Access,
}

impl Spec {
    /// The replay treatment for these arguments.
    pub fn replay_for(&self, args: &[u64; 6]) -> Result<Replay, String> {
        match self.replay {
            ReplayRule::Always(r) => Ok(r),
            ReplayRule::ByArgs(f) => f(args),
        }
    }
}

/// Syscalls that may wait for another task (or for the outside world):
/// where the serialized schedule switches to another task.
pub fn may_block(nr: i64) -> bool {
    #![allow(non_upper_case_globals)]
    use libc::*;
    matches!(
        nr,
        SYS_read
            | SYS_readv
            | SYS_pread64
            | SYS_write
            | SYS_writev
            | SYS_recvfrom
            | SYS_recvmsg
            | SYS_recvmmsg
            | SYS_sendto
            | SYS_sendmsg
            | SYS_accept
            | SYS_accept4
            | SYS_connect
            | SYS_futex
            | SYS_wait4
            | SYS_waitid
            | SYS_nanosleep
            | SYS_clock_nanosleep
            | SYS_poll
            | SYS_ppoll
            | SYS_select
            | SYS_pselect6
            | SYS_epoll_wait
            | SYS_epoll_pwait
            | SYS_epoll_pwait2
            | SYS_pause
            | SYS_rt_sigsuspend
            | SYS_rt_sigtimedwait
            | SYS_sched_yield
            | SYS_flock
            | SYS_open
            | SYS_openat
            | SYS_msgrcv
            | SYS_msgsnd
            | SYS_semop
            | SYS_semtimedop
    )
}

/// The table row for syscall `nr`.
pub fn lookup(nr: i64) -> Option<&'static Spec> {
    table::lookup(nr)
}

/// A syscall's name, also for those not in the table.
pub fn name(nr: i64) -> String {
    match lookup(nr) {
        Some(s) => s.name.to_string(),
        None => match syscalls::Sysno::new(nr as usize) {
            Some(s) => s.name().to_string(),
            None => format!("syscall_{nr}"),
        },
    }
}

/// Resolves an access to concrete (addr, len) ranges, dropping null or empty
/// ones. Errors when a length cannot be computed from tracee memory.
pub fn ranges(
    access: &Access,
    args: &[u64; 6],
    result: i64,
    mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    let mut out = Vec::new();
    match access {
        Access::None => {}
        Access::Custom(f) => out = f(args, result, mem)?,
        Access::Bufs(bufs) => {
            for b in bufs.iter() {
                let addr = args[b.arg];
                let len = match b.len {
                    Len::Fixed(n) => n,
                    Len::Result => result.max(0) as u64,
                    Len::Arg(n) => args[n],
                    Len::ArgTimes(n, size) => args[n].saturating_mul(size),
                    Len::ResultTimes(size) => (result.max(0) as u64).saturating_mul(size),
                    Len::DerefU32(n) => {
                        if args[n] == 0 {
                            0
                        } else {
                            let raw = mem.read_bytes(args[n], 4).map_err(|e| {
                                format!("cannot read length at {:#x}: {e}", args[n])
                            })?;
                            u32::from_le_bytes(raw[..4].try_into().unwrap()) as u64
                        }
                    }
                };
                out.push((addr, len));
            }
        }
    }
    out.retain(|&(addr, len)| addr != 0 && len != 0);
    Ok(out)
}
