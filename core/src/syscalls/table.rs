//! The syscall table: one row per supported x86_64 syscall, sorted by
//! number, in the spirit of rr's `syscalls.py`.
//!
//! Each row says how to show the arguments, which user memory the kernel
//! writes on success (every byte of it: what is not recorded here is not
//! restored in replay), which buffers it reads (for plugins), and what replay
//! does with it. Syscalls that multiplex many operations (ioctl, prctl,
//! arch_prctl, fcntl, futex) decide per operation through the small tables
//! below, which `decode` also uses for names.
//!
//! Sizes are those of the x86_64 kernel structures (checked against
//! `sizeof` in C and against `libc` in the tests below).
//!
//! Deliberately absent (reported as unsupported by name): everything not
//! listed (io_uring, SysV IPC, namespaces, ptrace, bpf...).

use std::sync::OnceLock;

use syscalls::Sysno;

use super::Arg;
use super::{Access, Buf, Len, MemRead, Replay, ReplayRule, Spec};

// Kernel structure sizes (x86_64).
pub(super) const STAT: u64 = 144;
pub(super) const STATX: u64 = 256;
pub(super) const STATFS: u64 = 120;
pub(super) const UTSNAME: u64 = 390;
pub(super) const SYSINFO: u64 = 112;
pub(super) const RUSAGE: u64 = 144;
pub(super) const TIMESPEC: u64 = 16;
pub(super) const TIMEVAL: u64 = 16;
pub(super) const TIMEZONE: u64 = 8;
pub(super) const RLIMIT: u64 = 16;
pub(super) const TMS: u64 = 32;
pub(super) const SIGINFO: u64 = 128;
pub(super) const EPOLL_EVENT: u64 = 12;
pub(super) const POLLFD: u64 = 8;
pub(super) const ITIMERVAL: u64 = 32;
pub(super) const ITIMERSPEC: u64 = 32;
/// The kernel's `struct sigaction` (handler, flags, restorer, 8-byte mask).
pub(super) const KSIGACTION: u64 = 32;
pub(super) const STACK_T: u64 = 24;
pub(super) const TIMEX: u64 = 208;
/// The kernel's `struct termios` (not glibc's 60-byte one).
pub(super) const KTERMIOS: u64 = 36;
pub(super) const KTERMIO: u64 = 18;
pub(super) const TERMIOS2: u64 = 44;
pub(super) const WINSIZE: u64 = 8;
pub(super) const FLOCK: u64 = 32;
pub(super) const F_OWNER_EX: u64 = 8;
pub(super) const IFREQ: u64 = 40;
pub(super) const MSGHDR: u64 = 56;
pub(super) const MMSGHDR: u64 = 64;
pub(super) const IOVEC: u64 = 16;
pub(super) const CAP_DATA: u64 = 12;
pub(super) const SOCKADDR_STORAGE: u64 = 128;
/// The kernel refuses more iovecs than this (UIO_MAXIOV).
const UIO_MAXIOV: u64 = 1024;

const EMU: ReplayRule = ReplayRule::Always(Replay::Emulate);
const EXE: ReplayRule = ReplayRule::Always(Replay::Execute);
const EXIT: ReplayRule = ReplayRule::Always(Replay::NoReturn);
const EXEC: ReplayRule = ReplayRule::Always(Replay::Exec);

/// `bufs![(arg, Len)...]`: plain buffers at argument addresses.
macro_rules! bufs {
    ($(($arg:expr, $($len:tt)+)),* $(,)?) => {
        Access::Bufs(&[$(Buf { arg: $arg, len: Len::$($len)+ }),*])
    };
}

macro_rules! access_or_none {
    () => {
        Access::None
    };
    ($e:expr) => {
        $e
    };
}

/// `sc!(name(arg kinds) => replay, w: writes, r: reads)`.
/// clone writes the child's tid at `parent_tid` in the parent (the write
/// into the child, CLONE_CHILD_SETTID, is the replayer's business).
fn clone_writes(
    args: &[u64; 6],
    _result: i64,
    _mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    if args[0] & libc::CLONE_PARENT_SETTID as u64 != 0 {
        Ok(vec![(args[2], 4)])
    } else {
        Ok(Vec::new())
    }
}

macro_rules! sc {
    ($name:ident ($($a:ident),*) => $replay:expr $(, w: $w:expr)? $(, r: $r:expr)? $(,)?) => {
        Spec {
            nr: Sysno::$name as i64,
            name: Sysno::$name.name(),
            args: &[$(Arg::$a),*],
            replay: $replay,
            writes: access_or_none!($($w)?),
            reads: access_or_none!($($r)?),
        }
    };
}

/// Every supported syscall, sorted by number.
#[rustfmt::skip]
pub static TABLE: &[Spec] = &[
    sc!(read(Fd, Ptr, Size) => EMU, w: bufs![(1, Result)]),
    sc!(write(Fd, Ptr, Size) => EMU, r: bufs![(1, Arg(2))]),
    sc!(open(Path, Hex, Hex) => EMU),
    sc!(close(Fd) => EMU),
    sc!(stat(Path, Ptr) => EMU, w: bufs![(1, Fixed(STAT))]),
    sc!(fstat(Fd, Ptr) => EMU, w: bufs![(1, Fixed(STAT))]),
    sc!(lstat(Path, Ptr) => EMU, w: bufs![(1, Fixed(STAT))]),
    sc!(poll(Ptr, Size, Int) => EMU, w: bufs![(0, ArgTimes(1, POLLFD))]),
    sc!(lseek(Fd, Int, Int) => EMU),
    sc!(mmap(Ptr, Size, Hex, Hex, Fd, Hex) => ReplayRule::Always(Replay::Mmap)),
    sc!(mprotect(Ptr, Size, Hex) => EXE),
    sc!(munmap(Ptr, Size) => EXE),
    sc!(brk(Ptr) => EXE),
    sc!(rt_sigaction(Signal, Ptr, Ptr, Size) => EXE, w: bufs![(2, Fixed(KSIGACTION))]),
    sc!(rt_sigprocmask(Int, Ptr, Ptr, Size) => EXE, w: bufs![(2, Arg(3))]),
    sc!(rt_sigreturn() => EXE),
    sc!(ioctl(Fd, Hex, Hex) => EMU, w: Access::Custom(ioctl_writes)),
    sc!(pread64(Fd, Ptr, Size, Int) => EMU, w: bufs![(1, Result)]),
    sc!(pwrite64(Fd, Ptr, Size, Int) => EMU, r: bufs![(1, Arg(2))]),
    sc!(readv(Fd, Ptr, Int) => EMU, w: Access::Custom(readv_writes)),
    sc!(writev(Fd, Ptr, Int) => EMU, r: Access::Custom(writev_reads)),
    sc!(access(Path, Hex) => EMU),
    sc!(pipe(Ptr) => EMU, w: bufs![(0, Fixed(8))]),
    sc!(select(Int, Ptr, Ptr, Ptr, Ptr) => EMU, w: Access::Custom(select_writes)),
    sc!(sched_yield() => EMU),
    sc!(mremap(Ptr, Size, Size, Hex, Ptr) => ReplayRule::Always(Replay::Mremap)),
    sc!(msync(Ptr, Size, Hex) => EMU),
    sc!(mincore(Ptr, Size, Ptr) => EMU, w: Access::Custom(mincore_writes)),
    sc!(madvise(Ptr, Size, Int) => EXE),
    sc!(dup(Fd) => EMU),
    sc!(dup2(Fd, Fd) => EMU),
    sc!(pause() => EMU),
    sc!(nanosleep(Ptr, Ptr) => EMU, w: bufs![(1, Fixed(TIMESPEC))]),
    sc!(getitimer(Int, Ptr) => EMU, w: bufs![(1, Fixed(ITIMERVAL))]),
    sc!(alarm(Size) => EMU),
    sc!(setitimer(Int, Ptr, Ptr) => EMU, w: bufs![(2, Fixed(ITIMERVAL))]),
    sc!(getpid() => EMU),
    sc!(sendfile(Fd, Fd, Ptr, Size) => EMU, w: bufs![(2, Fixed(8))]),
    sc!(socket(Int, Hex, Int) => EMU),
    sc!(connect(Fd, Ptr, Size) => EMU),
    sc!(accept(Fd, Ptr, Ptr) => EMU, w: bufs![(1, DerefU32(2)), (2, Fixed(4))]),
    sc!(sendto(Fd, Ptr, Size, Hex, Ptr, Size) => EMU, r: bufs![(1, Arg(2))]),
    sc!(recvfrom(Fd, Ptr, Size, Hex, Ptr, Ptr) => EMU,
        w: bufs![(1, Result), (4, DerefU32(5)), (5, Fixed(4))]),
    sc!(sendmsg(Fd, Ptr, Hex) => EMU, r: Access::Custom(sendmsg_reads)),
    sc!(recvmsg(Fd, Ptr, Hex) => EMU, w: Access::Custom(recvmsg_writes)),
    sc!(shutdown(Fd, Int) => EMU),
    sc!(bind(Fd, Ptr, Size) => EMU),
    sc!(listen(Fd, Int) => EMU),
    sc!(getsockname(Fd, Ptr, Ptr) => EMU, w: bufs![(1, DerefU32(2)), (2, Fixed(4))]),
    sc!(getpeername(Fd, Ptr, Ptr) => EMU, w: bufs![(1, DerefU32(2)), (2, Fixed(4))]),
    sc!(socketpair(Int, Hex, Int, Ptr) => EMU, w: bufs![(3, Fixed(8))]),
    sc!(setsockopt(Fd, Int, Int, Ptr, Size) => EMU, r: bufs![(3, Arg(4))]),
    sc!(getsockopt(Fd, Int, Int, Ptr, Ptr) => EMU, w: bufs![(3, DerefU32(4)), (4, Fixed(4))]),
    sc!(clone(Hex, Ptr, Ptr, Ptr, Ptr) => ReplayRule::Always(Replay::Clone), w: Access::Custom(clone_writes)),
    sc!(fork() => ReplayRule::Always(Replay::Clone)),
    sc!(vfork() => ReplayRule::Always(Replay::Clone)),
    sc!(execve(Path, Ptr, Ptr) => EXEC),
    sc!(exit(Int) => EXIT),
    sc!(wait4(Int, Ptr, Hex, Ptr) => EMU, w: bufs![(1, Fixed(4)), (3, Fixed(RUSAGE))]),
    sc!(kill(Int, Signal) => EMU),
    sc!(uname(Ptr) => EMU, w: bufs![(0, Fixed(UTSNAME))]),
    sc!(fcntl(Fd, Int, Hex) => ReplayRule::ByArgs(fcntl_replay), w: Access::Custom(fcntl_writes)),
    sc!(flock(Fd, Hex) => EMU),
    sc!(fsync(Fd) => EMU),
    sc!(fdatasync(Fd) => EMU),
    sc!(truncate(Path, Int) => EMU),
    sc!(ftruncate(Fd, Int) => EMU),
    sc!(getdents(Fd, Ptr, Size) => EMU, w: bufs![(1, Result)]),
    sc!(getcwd(Ptr, Size) => EMU, w: bufs![(0, Result)]),
    sc!(chdir(Path) => EMU),
    sc!(fchdir(Fd) => EMU),
    sc!(rename(Path, Path) => EMU),
    sc!(mkdir(Path, Hex) => EMU),
    sc!(rmdir(Path) => EMU),
    sc!(creat(Path, Hex) => EMU),
    sc!(link(Path, Path) => EMU),
    sc!(unlink(Path) => EMU),
    sc!(symlink(Path, Path) => EMU),
    sc!(readlink(Path, Ptr, Size) => EMU, w: bufs![(1, Result)]),
    sc!(chmod(Path, Hex) => EMU),
    sc!(fchmod(Fd, Hex) => EMU),
    sc!(chown(Path, Int, Int) => EMU),
    sc!(fchown(Fd, Int, Int) => EMU),
    sc!(lchown(Path, Int, Int) => EMU),
    sc!(umask(Hex) => EMU),
    sc!(gettimeofday(Ptr, Ptr) => EMU, w: bufs![(0, Fixed(TIMEVAL)), (1, Fixed(TIMEZONE))]),
    sc!(getrlimit(Int, Ptr) => EMU, w: bufs![(1, Fixed(RLIMIT))]),
    sc!(getrusage(Int, Ptr) => EMU, w: bufs![(1, Fixed(RUSAGE))]),
    sc!(sysinfo(Ptr) => EMU, w: bufs![(0, Fixed(SYSINFO))]),
    sc!(times(Ptr) => EMU, w: bufs![(0, Fixed(TMS))]),
    sc!(getuid() => EMU),
    sc!(getgid() => EMU),
    sc!(setuid(Int) => EMU),
    sc!(setgid(Int) => EMU),
    sc!(geteuid() => EMU),
    sc!(getegid() => EMU),
    sc!(setpgid(Int, Int) => EMU),
    sc!(getppid() => EMU),
    sc!(getpgrp() => EMU),
    sc!(setsid() => EMU),
    sc!(setreuid(Int, Int) => EMU),
    sc!(setregid(Int, Int) => EMU),
    sc!(getgroups(Int, Ptr) => EMU, w: Access::Custom(getgroups_writes)),
    sc!(setgroups(Size, Ptr) => EMU),
    sc!(setresuid(Int, Int, Int) => EMU),
    sc!(getresuid(Ptr, Ptr, Ptr) => EMU, w: bufs![(0, Fixed(4)), (1, Fixed(4)), (2, Fixed(4))]),
    sc!(setresgid(Int, Int, Int) => EMU),
    sc!(getresgid(Ptr, Ptr, Ptr) => EMU, w: bufs![(0, Fixed(4)), (1, Fixed(4)), (2, Fixed(4))]),
    sc!(getpgid(Int) => EMU),
    sc!(setfsuid(Int) => EMU),
    sc!(setfsgid(Int) => EMU),
    sc!(getsid(Int) => EMU),
    sc!(capget(Ptr, Ptr) => EMU, w: Access::Custom(capget_writes)),
    sc!(capset(Ptr, Ptr) => EMU),
    sc!(rt_sigpending(Ptr, Size) => EMU, w: bufs![(0, Arg(1))]),
    sc!(rt_sigtimedwait(Ptr, Ptr, Ptr, Size) => EMU, w: bufs![(1, Fixed(SIGINFO))]),
    sc!(rt_sigqueueinfo(Int, Signal, Ptr) => EMU),
    sc!(rt_sigsuspend(Ptr, Size) => EMU),
    sc!(sigaltstack(Ptr, Ptr) => EXE, w: bufs![(1, Fixed(STACK_T))]),
    sc!(utime(Path, Ptr) => EMU),
    sc!(mknod(Path, Hex, Hex) => EMU),
    sc!(personality(Hex) => EMU),
    sc!(statfs(Path, Ptr) => EMU, w: bufs![(1, Fixed(STATFS))]),
    sc!(fstatfs(Fd, Ptr) => EMU, w: bufs![(1, Fixed(STATFS))]),
    sc!(getpriority(Int, Int) => EMU),
    sc!(setpriority(Int, Int, Int) => EMU),
    sc!(sched_setparam(Int, Ptr) => EMU),
    sc!(sched_getparam(Int, Ptr) => EMU, w: bufs![(1, Fixed(4))]),
    sc!(sched_setscheduler(Int, Int, Ptr) => EMU),
    sc!(sched_getscheduler(Int) => EMU),
    sc!(sched_get_priority_max(Int) => EMU),
    sc!(sched_get_priority_min(Int) => EMU),
    sc!(sched_rr_get_interval(Int, Ptr) => EMU, w: bufs![(1, Fixed(TIMESPEC))]),
    sc!(mlock(Ptr, Size) => EMU),
    sc!(munlock(Ptr, Size) => EMU),
    sc!(mlockall(Hex) => EMU),
    sc!(munlockall() => EMU),
    sc!(prctl(Int, Hex, Hex, Hex, Hex) => ReplayRule::ByArgs(prctl_replay), w: Access::Custom(prctl_writes)),
    sc!(arch_prctl(Hex, Hex) => ReplayRule::ByArgs(arch_prctl_replay), w: Access::Custom(arch_prctl_writes)),
    sc!(adjtimex(Ptr) => EMU, w: bufs![(0, Fixed(TIMEX))]),
    sc!(setrlimit(Int, Ptr) => EMU),
    sc!(chroot(Path) => EMU),
    sc!(sync() => EMU),
    sc!(gettid() => EMU),
    sc!(readahead(Fd, Int, Size) => EMU),
    sc!(setxattr(Path, Path, Ptr, Size, Hex) => EMU, r: bufs![(2, Arg(3))]),
    sc!(lsetxattr(Path, Path, Ptr, Size, Hex) => EMU, r: bufs![(2, Arg(3))]),
    sc!(fsetxattr(Fd, Path, Ptr, Size, Hex) => EMU, r: bufs![(2, Arg(3))]),
    sc!(getxattr(Path, Path, Ptr, Size) => EMU, w: Access::Custom(getxattr_writes)),
    sc!(lgetxattr(Path, Path, Ptr, Size) => EMU, w: Access::Custom(getxattr_writes)),
    sc!(fgetxattr(Fd, Path, Ptr, Size) => EMU, w: Access::Custom(getxattr_writes)),
    sc!(listxattr(Path, Ptr, Size) => EMU, w: Access::Custom(listxattr_writes)),
    sc!(llistxattr(Path, Ptr, Size) => EMU, w: Access::Custom(listxattr_writes)),
    sc!(flistxattr(Fd, Ptr, Size) => EMU, w: Access::Custom(listxattr_writes)),
    sc!(removexattr(Path, Path) => EMU),
    sc!(lremovexattr(Path, Path) => EMU),
    sc!(fremovexattr(Fd, Path) => EMU),
    sc!(tkill(Int, Signal) => EMU),
    sc!(time(Ptr) => EMU, w: bufs![(0, Fixed(8))]),
    sc!(futex(Ptr, Hex, Int, Hex, Ptr, Int) => EMU, w: Access::Custom(futex_writes)),
    sc!(sched_setaffinity(Int, Size, Ptr) => EMU),
    sc!(sched_getaffinity(Int, Size, Ptr) => EMU, w: bufs![(2, Result)]),
    sc!(epoll_create(Int) => EMU),
    sc!(getdents64(Fd, Ptr, Size) => EMU, w: bufs![(1, Result)]),
    sc!(set_tid_address(Ptr) => ReplayRule::Always(Replay::ExecuteKeepResult)),
    sc!(restart_syscall() => EMU),
    sc!(fadvise64(Fd, Int, Size, Int) => EMU),
    sc!(timer_create(Int, Ptr, Ptr) => EMU, w: bufs![(2, Fixed(4))]),
    sc!(timer_settime(Int, Hex, Ptr, Ptr) => EMU, w: bufs![(3, Fixed(ITIMERSPEC))]),
    sc!(timer_gettime(Int, Ptr) => EMU, w: bufs![(1, Fixed(ITIMERSPEC))]),
    sc!(timer_getoverrun(Int) => EMU),
    sc!(timer_delete(Int) => EMU),
    sc!(clock_gettime(Int, Ptr) => EMU, w: bufs![(1, Fixed(TIMESPEC))]),
    sc!(clock_getres(Int, Ptr) => EMU, w: bufs![(1, Fixed(TIMESPEC))]),
    sc!(clock_nanosleep(Int, Hex, Ptr, Ptr) => EMU, w: bufs![(3, Fixed(TIMESPEC))]),
    sc!(exit_group(Int) => EXIT),
    sc!(epoll_wait(Fd, Ptr, Int, Int) => EMU, w: bufs![(1, ResultTimes(EPOLL_EVENT))]),
    sc!(epoll_ctl(Fd, Int, Fd, Ptr) => EMU),
    sc!(tgkill(Int, Int, Signal) => EMU),
    sc!(utimes(Path, Ptr) => EMU),
    sc!(waitid(Int, Int, Ptr, Hex, Ptr) => EMU, w: bufs![(2, Fixed(SIGINFO)), (4, Fixed(RUSAGE))]),
    sc!(ioprio_set(Int, Int, Int) => EMU),
    sc!(ioprio_get(Int, Int) => EMU),
    sc!(inotify_init() => EMU),
    sc!(inotify_add_watch(Fd, Path, Hex) => EMU),
    sc!(inotify_rm_watch(Fd, Int) => EMU),
    sc!(openat(DirFd, Path, Hex, Hex) => EMU),
    sc!(mkdirat(DirFd, Path, Hex) => EMU),
    sc!(mknodat(DirFd, Path, Hex, Hex) => EMU),
    sc!(fchownat(DirFd, Path, Int, Int, Hex) => EMU),
    sc!(futimesat(DirFd, Path, Ptr) => EMU),
    sc!(newfstatat(DirFd, Path, Ptr, Hex) => EMU, w: bufs![(2, Fixed(STAT))]),
    sc!(unlinkat(DirFd, Path, Hex) => EMU),
    sc!(renameat(DirFd, Path, DirFd, Path) => EMU),
    sc!(linkat(DirFd, Path, DirFd, Path, Hex) => EMU),
    sc!(symlinkat(Path, DirFd, Path) => EMU),
    sc!(readlinkat(DirFd, Path, Ptr, Size) => EMU, w: bufs![(2, Result)]),
    sc!(fchmodat(DirFd, Path, Hex) => EMU),
    sc!(faccessat(DirFd, Path, Hex) => EMU),
    sc!(pselect6(Int, Ptr, Ptr, Ptr, Ptr, Ptr) => EMU, w: Access::Custom(select_writes)),
    sc!(ppoll(Ptr, Size, Ptr, Ptr, Size) => EMU,
        w: bufs![(0, ArgTimes(1, POLLFD)), (2, Fixed(TIMESPEC))]),
    sc!(set_robust_list(Ptr, Size) => EXE),
    sc!(get_robust_list(Int, Ptr, Ptr) => EMU, w: bufs![(1, Fixed(8)), (2, Fixed(8))]),
    sc!(splice(Fd, Ptr, Fd, Ptr, Size, Hex) => EMU, w: bufs![(1, Fixed(8)), (3, Fixed(8))]),
    sc!(tee(Fd, Fd, Size, Hex) => EMU),
    sc!(sync_file_range(Fd, Int, Int, Hex) => EMU),
    sc!(utimensat(DirFd, Path, Ptr, Hex) => EMU),
    sc!(epoll_pwait(Fd, Ptr, Int, Int, Ptr, Size) => EMU, w: bufs![(1, ResultTimes(EPOLL_EVENT))]),
    sc!(signalfd(Fd, Ptr, Size) => EMU),
    sc!(timerfd_create(Int, Hex) => EMU),
    sc!(eventfd(Size) => EMU),
    sc!(fallocate(Fd, Hex, Int, Int) => EMU),
    sc!(timerfd_settime(Fd, Hex, Ptr, Ptr) => EMU, w: bufs![(3, Fixed(ITIMERSPEC))]),
    sc!(timerfd_gettime(Fd, Ptr) => EMU, w: bufs![(1, Fixed(ITIMERSPEC))]),
    sc!(accept4(Fd, Ptr, Ptr, Hex) => EMU, w: bufs![(1, DerefU32(2)), (2, Fixed(4))]),
    sc!(signalfd4(Fd, Ptr, Size, Hex) => EMU),
    sc!(eventfd2(Size, Hex) => EMU),
    sc!(epoll_create1(Hex) => EMU),
    sc!(dup3(Fd, Fd, Hex) => EMU),
    sc!(pipe2(Ptr, Hex) => EMU, w: bufs![(0, Fixed(8))]),
    sc!(inotify_init1(Hex) => EMU),
    sc!(preadv(Fd, Ptr, Int, Int, Int) => EMU, w: Access::Custom(readv_writes)),
    sc!(pwritev(Fd, Ptr, Int, Int, Int) => EMU, r: Access::Custom(writev_reads)),
    sc!(rt_tgsigqueueinfo(Int, Int, Signal, Ptr) => EMU),
    sc!(recvmmsg(Fd, Ptr, Size, Hex, Ptr) => EMU, w: Access::Custom(recvmmsg_writes)),
    sc!(prlimit64(Int, Int, Ptr, Ptr) => EMU, w: bufs![(3, Fixed(RLIMIT))]),
    sc!(syncfs(Fd) => EMU),
    sc!(sendmmsg(Fd, Ptr, Size, Hex) => EMU,
        w: Access::Custom(sendmmsg_writes), r: Access::Custom(sendmmsg_reads)),
    sc!(getcpu(Ptr, Ptr, Ptr) => EMU, w: bufs![(0, Fixed(4)), (1, Fixed(4))]),
    sc!(sched_setattr(Int, Ptr, Hex) => EMU),
    sc!(sched_getattr(Int, Ptr, Size, Hex) => EMU, w: bufs![(1, Arg(2))]),
    sc!(renameat2(DirFd, Path, DirFd, Path, Hex) => EMU),
    sc!(seccomp(Int, Hex, Ptr) => ReplayRule::ByArgs(seccomp_replay), w: Access::Custom(seccomp_writes)),
    sc!(getrandom(Ptr, Size, Hex) => EMU, w: bufs![(0, Result)]),
    sc!(memfd_create(Path, Hex) => EMU),
    sc!(execveat(DirFd, Path, Ptr, Ptr, Hex) => EXEC),
    sc!(membarrier(Int, Hex, Int) => EMU),
    sc!(mlock2(Ptr, Size, Hex) => EMU),
    sc!(copy_file_range(Fd, Ptr, Fd, Ptr, Size, Hex) => EMU, w: bufs![(1, Fixed(8)), (3, Fixed(8))]),
    sc!(preadv2(Fd, Ptr, Int, Int, Int, Hex) => EMU, w: Access::Custom(readv_writes)),
    sc!(pwritev2(Fd, Ptr, Int, Int, Int, Hex) => EMU, r: Access::Custom(writev_reads)),
    sc!(statx(DirFd, Path, Hex, Hex, Ptr) => EMU, w: bufs![(4, Fixed(STATX))]),
    // The CPU number the kernel writes into the rseq area differs between
    // machines and runs: glibc falls back to plain code when denied.
    sc!(rseq(Ptr, Size, Hex, Hex) => ReplayRule::Always(Replay::Deny(libc::ENOSYS))),
    // clone3 is refused so that libc falls back to clone, whose arguments
    // sit in registers rather than in a versioned struct.
    sc!(clone3(Ptr, Size) => ReplayRule::Always(Replay::Deny(libc::ENOSYS))),
    sc!(close_range(Fd, Size, Hex) => EMU),
    sc!(openat2(DirFd, Path, Ptr, Size) => EMU),
    sc!(faccessat2(DirFd, Path, Hex, Hex) => EMU),
    sc!(epoll_pwait2(Fd, Ptr, Int, Ptr, Ptr, Size) => EMU, w: bufs![(1, ResultTimes(EPOLL_EVENT))]),
    sc!(fchmodat2(DirFd, Path, Hex, Hex) => EMU),
    // rrpipe's own, made by its preload library (see `rrpipe_syscallbuf`):
    // skipped by the kernel, answered by rrpipe.
    Spec {
        nr: rrpipe_syscallbuf::SYS_REGISTER_BUFFER,
        name: "rrpipe_register_buffer",
        args: &[Arg::Ptr, Arg::Size],
        replay: ReplayRule::Always(Replay::Deny(0)),
        writes: Access::None,
        reads: Access::None,
    },
    Spec {
        nr: rrpipe_syscallbuf::SYS_DIVERGED,
        name: "rrpipe_diverged",
        args: &[Arg::Int, Arg::Int],
        replay: ReplayRule::Always(Replay::Deny(libc::ENOSYS)),
        writes: Access::None,
        reads: Access::None,
    },
];

/// The row for `nr`, through an array indexed by number built on first use.
pub(super) fn lookup(nr: i64) -> Option<&'static Spec> {
    static INDEX: OnceLock<Vec<Option<&'static Spec>>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let max = TABLE.iter().map(|s| s.nr).max().unwrap_or(0) as usize;
        let mut v = vec![None; max + 1];
        for s in TABLE {
            v[s.nr as usize] = Some(s);
        }
        v
    });
    usize::try_from(nr)
        .ok()
        .and_then(|i| index.get(i).copied().flatten())
}

// ---------------------------------------------------------------------------
// Tracee memory helpers.

fn read_mem(mem: &dyn MemRead, addr: u64, len: u64, what: &str) -> Result<Vec<u8>, String> {
    let bytes = mem
        .read_bytes(addr, len as usize)
        .map_err(|e| format!("cannot read {what} at {addr:#x}: {e}"))?;
    if (bytes.len() as u64) < len {
        return Err(format!("cannot read {what} at {addr:#x}: short read"));
    }
    Ok(bytes)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

/// The (base, len) pairs of an iovec array in tracee memory.
fn iovecs(mem: &dyn MemRead, addr: u64, count: u64) -> Result<Vec<(u64, u64)>, String> {
    if addr == 0 || count == 0 || count > UIO_MAXIOV {
        // The kernel refuses more than UIO_MAXIOV: nothing is accessed.
        return Ok(Vec::new());
    }
    let raw = read_mem(mem, addr, count * IOVEC, "iovec array")?;
    Ok(raw
        .chunks_exact(IOVEC as usize)
        .map(|c| (u64_at(c, 0), u64_at(c, 8)))
        .collect())
}

/// The first `total` bytes of a scatter list: what a transfer of `total`
/// bytes touched.
fn truncate_iovecs(iovs: Vec<(u64, u64)>, total: u64) -> Vec<(u64, u64)> {
    let mut left = total;
    let mut out = Vec::new();
    for (base, len) in iovs {
        if left == 0 {
            break;
        }
        let n = len.min(left);
        out.push((base, n));
        left -= n;
    }
    out
}

fn non_negative(result: i64) -> u64 {
    result.max(0) as u64
}

// ---------------------------------------------------------------------------
// Custom accesses.

/// readv, preadv, preadv2: the iovecs, filled up to the result.
fn readv_writes(
    args: &[u64; 6],
    result: i64,
    mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    if result <= 0 {
        return Ok(Vec::new());
    }
    Ok(truncate_iovecs(
        iovecs(mem, args[1], args[2])?,
        non_negative(result),
    ))
}

/// writev, pwritev, pwritev2: the whole buffers the program hands over.
fn writev_reads(
    args: &[u64; 6],
    _result: i64,
    mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    iovecs(mem, args[1], args[2])
}

/// What the kernel writes for one received message whose header is at
/// `hdr`, `received` bytes of data: the name, the data, the control buffer
/// and the header's msg_namelen, msg_controllen and msg_flags.
fn msghdr_writes(mem: &dyn MemRead, hdr: u64, received: u64) -> Result<Vec<(u64, u64)>, String> {
    let raw = read_mem(mem, hdr, MSGHDR, "msghdr")?;
    let name = u64_at(&raw, 0);
    let namelen = u32_at(&raw, 8) as u64;
    let iov = u64_at(&raw, 16);
    let iovlen = u64_at(&raw, 24);
    let control = u64_at(&raw, 32);
    let controllen = u64_at(&raw, 40);
    // msg_namelen, msg_controllen, msg_flags.
    let mut out = vec![(hdr + 8, 4), (hdr + 40, 8), (hdr + 48, 4)];
    if name != 0 {
        // The kernel stores the full address length, which may exceed what
        // it copied into a short buffer; no address is longer than this.
        out.push((name, namelen.min(SOCKADDR_STORAGE)));
    }
    out.extend(truncate_iovecs(iovecs(mem, iov, iovlen)?, received));
    if control != 0 {
        out.push((control, controllen));
    }
    Ok(out)
}

/// recvmsg(fd, msghdr*, flags).
fn recvmsg_writes(
    args: &[u64; 6],
    result: i64,
    mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    if args[1] == 0 {
        return Ok(Vec::new());
    }
    msghdr_writes(mem, args[1], non_negative(result))
}

/// recvmmsg(fd, mmsghdr*, vlen, flags, timeout*): for each received message
/// its msghdr outputs and msg_len; the remaining timeout.
fn recvmmsg_writes(
    args: &[u64; 6],
    result: i64,
    mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    let mut out = Vec::new();
    let count = non_negative(result).min(args[2]).min(UIO_MAXIOV);
    for i in 0..count {
        let entry = args[1] + i * MMSGHDR;
        let len = u32_at(&read_mem(mem, entry + MSGHDR, 4, "mmsghdr msg_len")?, 0) as u64;
        out.extend(msghdr_writes(mem, entry, len)?);
        out.push((entry + MSGHDR, 4));
    }
    if args[4] != 0 && count > 0 {
        out.push((args[4], TIMESPEC));
    }
    Ok(out)
}

/// sendmsg(fd, msghdr*, flags): the data of its iovecs.
fn sendmsg_reads(
    args: &[u64; 6],
    _result: i64,
    mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    if args[1] == 0 {
        return Ok(Vec::new());
    }
    let raw = read_mem(mem, args[1], MSGHDR, "msghdr")?;
    iovecs(mem, u64_at(&raw, 16), u64_at(&raw, 24))
}

/// sendmmsg(fd, mmsghdr*, vlen, flags): every message's data.
fn sendmmsg_reads(
    args: &[u64; 6],
    _result: i64,
    mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    let mut out = Vec::new();
    for i in 0..args[2].min(UIO_MAXIOV) {
        let raw = read_mem(mem, args[1] + i * MMSGHDR, MSGHDR, "mmsghdr")?;
        out.extend(iovecs(mem, u64_at(&raw, 16), u64_at(&raw, 24))?);
    }
    Ok(out)
}

/// sendmmsg: the msg_len of each message sent.
fn sendmmsg_writes(
    args: &[u64; 6],
    result: i64,
    _mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    let count = non_negative(result).min(args[2]).min(UIO_MAXIOV);
    Ok((0..count)
        .map(|i| (args[1] + i * MMSGHDR + MSGHDR, 4))
        .collect())
}

/// select(nfds, r, w, e, timeval*) and pselect6(nfds, r, w, e, timespec*,
/// sigmask): the three fd sets (whole longs) and the remaining timeout.
fn select_writes(
    args: &[u64; 6],
    _result: i64,
    _mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    let nfds = (args[0] as i32).max(0) as u64;
    let set = nfds.div_ceil(64) * 8;
    // timeval and timespec are both 16 bytes.
    Ok(vec![
        (args[1], set),
        (args[2], set),
        (args[3], set),
        (args[4], TIMEVAL),
    ])
}

/// mincore(addr, len, vec): one byte per page.
fn mincore_writes(
    args: &[u64; 6],
    _result: i64,
    _mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    Ok(vec![(args[2], args[1].div_ceil(4096))])
}

/// getgroups(size, list): nothing when size is 0 (a count query).
fn getgroups_writes(
    args: &[u64; 6],
    result: i64,
    _mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    if args[0] as i32 == 0 {
        return Ok(Vec::new());
    }
    Ok(vec![(args[1], non_negative(result) * 4)])
}

/// getxattr(path|fd, name, value, size): nothing when size is 0.
fn getxattr_writes(
    args: &[u64; 6],
    result: i64,
    _mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    if args[3] == 0 {
        return Ok(Vec::new());
    }
    Ok(vec![(args[2], non_negative(result))])
}

/// listxattr(path|fd, list, size): nothing when size is 0.
fn listxattr_writes(
    args: &[u64; 6],
    result: i64,
    _mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    if args[2] == 0 {
        return Ok(Vec::new());
    }
    Ok(vec![(args[1], non_negative(result))])
}

/// capget(header*, data*): the header's version (the kernel stores its own
/// on a version mismatch) and one (v1) or two (v2, v3) data structs.
fn capget_writes(
    args: &[u64; 6],
    _result: i64,
    mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    let mut out = vec![(args[0], 4)];
    if args[0] != 0 && args[1] != 0 {
        let version = u32_at(&read_mem(mem, args[0], 4, "capget header")?, 0);
        const V1: u32 = 0x1998_0330;
        let n = if version == V1 { 1 } else { 2 };
        out.push((args[1], n * CAP_DATA));
    }
    Ok(out)
}

/// futex: the operations that store into a futex word.
fn futex_writes(
    args: &[u64; 6],
    _result: i64,
    _mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    const FUTEX_CMD_MASK: u64 = !(128 | 256);
    Ok(match args[1] & FUTEX_CMD_MASK {
        // FUTEX_WAKE_OP modifies *uaddr2.
        5 => vec![(args[4], 4)],
        // LOCK_PI, UNLOCK_PI, TRYLOCK_PI, LOCK_PI2 store the owner in *uaddr.
        6 | 7 | 8 | 13 => vec![(args[0], 4)],
        // WAIT_REQUEUE_PI acquires *uaddr2; CMP_REQUEUE_PI may too.
        11 | 12 => vec![(args[0], 4), (args[4], 4)],
        _ => Vec::new(),
    })
}

// ---------------------------------------------------------------------------
// ioctl

/// ioctl requests known by number: (request, name, bytes written at arg 2).
/// The legacy (not `_IOC`-encoded) ones must be here to be supported;
/// encoded ones are here only for their names or when their encoded size is
/// wrong.
pub(super) const IOCTLS: &[(u32, &str, u64)] = &[
    (0x125e, "BLKROGET", 4),
    (0x1260, "BLKGETSIZE", 8),
    (0x1261, "BLKFLSBUF", 0),
    (0x1268, "BLKSSZGET", 4),
    (0x1278, "BLKIOMIN", 4),
    (0x1279, "BLKIOOPT", 4),
    (0x127a, "BLKALIGNOFF", 4),
    (0x127b, "BLKPBSZGET", 4),
    (0x5401, "TCGETS", KTERMIOS),
    (0x5402, "TCSETS", 0),
    (0x5403, "TCSETSW", 0),
    (0x5404, "TCSETSF", 0),
    (0x5405, "TCGETA", KTERMIO),
    (0x5406, "TCSETA", 0),
    (0x5407, "TCSETAW", 0),
    (0x5408, "TCSETAF", 0),
    (0x5409, "TCSBRK", 0),
    (0x540a, "TCXONC", 0),
    (0x540b, "TCFLSH", 0),
    (0x540c, "TIOCEXCL", 0),
    (0x540d, "TIOCNXCL", 0),
    (0x540e, "TIOCSCTTY", 0),
    (0x540f, "TIOCGPGRP", 4),
    (0x5410, "TIOCSPGRP", 0),
    (0x5411, "TIOCOUTQ", 4),
    (0x5412, "TIOCSTI", 0),
    (0x5413, "TIOCGWINSZ", WINSIZE),
    (0x5414, "TIOCSWINSZ", 0),
    (0x5415, "TIOCMGET", 4),
    (0x5416, "TIOCMBIS", 0),
    (0x5417, "TIOCMBIC", 0),
    (0x5418, "TIOCMSET", 0),
    (0x5419, "TIOCGSOFTCAR", 4),
    (0x541a, "TIOCSSOFTCAR", 0),
    (0x541b, "FIONREAD", 4),
    (0x541d, "TIOCCONS", 0),
    (0x5420, "TIOCPKT", 0),
    (0x5421, "FIONBIO", 0),
    (0x5422, "TIOCNOTTY", 0),
    (0x5423, "TIOCSETD", 0),
    (0x5424, "TIOCGETD", 4),
    (0x5425, "TCSBRKP", 0),
    (0x5427, "TIOCSBRK", 0),
    (0x5428, "TIOCCBRK", 0),
    (0x5429, "TIOCGSID", 4),
    (0x5441, "TIOCGPTPEER", 0),
    (0x5450, "FIONCLEX", 0),
    (0x5451, "FIOCLEX", 0),
    (0x5452, "FIOASYNC", 0),
    (0x5456, "TIOCGLCKTRMIOS", KTERMIOS),
    (0x5457, "TIOCSLCKTRMIOS", 0),
    (0x5460, "FIOQSIZE", 8),
    (0x8901, "FIOSETOWN", 0),
    (0x8902, "SIOCSPGRP", 0),
    (0x8903, "FIOGETOWN", 4),
    (0x8904, "SIOCGPGRP", 4),
    (0x8905, "SIOCATMARK", 4),
    (0x8906, "SIOCGSTAMP", TIMEVAL),
    (0x8910, "SIOCGIFNAME", IFREQ),
    (0x8913, "SIOCGIFFLAGS", IFREQ),
    (0x8915, "SIOCGIFADDR", IFREQ),
    (0x8917, "SIOCGIFDSTADDR", IFREQ),
    (0x8919, "SIOCGIFBRDADDR", IFREQ),
    (0x891b, "SIOCGIFNETMASK", IFREQ),
    (0x891d, "SIOCGIFMETRIC", IFREQ),
    (0x8921, "SIOCGIFMTU", IFREQ),
    (0x8927, "SIOCGIFHWADDR", IFREQ),
    (0x8933, "SIOCGIFINDEX", IFREQ),
    (0x4004_9409, "FICLONE", 0),
    (0x4020_940d, "FICLONERANGE", 0),
    (0x402c_542b, "TCSETS2", 0),
    (0x4004_5431, "TIOCSPTLCK", 0),
    (0x8004_5430, "TIOCGPTN", 4),
    (0x8008_6601, "FS_IOC_GETFLAGS", 8),
    (0x4008_6602, "FS_IOC_SETFLAGS", 0),
    (0x8008_1272, "BLKGETSIZE64", 8),
    (0x802c_542a, "TCGETS2", TERMIOS2),
];

/// The name of an ioctl request, when known.
pub(super) fn ioctl_name(cmd: u32) -> Option<&'static str> {
    IOCTLS.iter().find(|i| i.0 == cmd).map(|i| i.1)
}

/// Bytes the kernel writes at arg 2 for request `cmd`; `Err` for a legacy
/// request this table does not know.
pub(super) fn ioctl_write_size(cmd: u32) -> Result<u64, String> {
    if let Some(&(_, _, size)) = IOCTLS.iter().find(|i| i.0 == cmd) {
        return Ok(size);
    }
    const IOC_READ: u32 = 2;
    let dir = cmd >> 30;
    let size = ((cmd >> 16) & 0x3fff) as u64;
    if dir == 0 && size == 0 {
        // Not _IOC-encoded (or _IO with no argument): its effect is unknown.
        return Err(format!("ioctl request {cmd:#x}"));
    }
    Ok(if dir & IOC_READ != 0 { size } else { 0 })
}

/// ioctl(fd, request, arg).
fn ioctl_writes(
    args: &[u64; 6],
    _result: i64,
    _mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    let size = ioctl_write_size(args[1] as u32)?;
    Ok(if size == 0 {
        Vec::new()
    } else {
        vec![(args[2], size)]
    })
}

// ---------------------------------------------------------------------------
// prctl

/// prctl options: (option, name, replay, bytes written at arg 1).
pub(super) const PRCTL_OPS: &[(u64, &str, Replay, u64)] = &[
    (1, "PR_SET_PDEATHSIG", Replay::Execute, 0),
    (2, "PR_GET_PDEATHSIG", Replay::Emulate, 4),
    (3, "PR_GET_DUMPABLE", Replay::Emulate, 0),
    (4, "PR_SET_DUMPABLE", Replay::Execute, 0),
    (7, "PR_GET_KEEPCAPS", Replay::Emulate, 0),
    (15, "PR_SET_NAME", Replay::Execute, 0),
    (16, "PR_GET_NAME", Replay::Emulate, 16),
    (21, "PR_GET_SECCOMP", Replay::Emulate, 0),
    (22, "PR_SET_SECCOMP", Replay::Execute, 0),
    (23, "PR_CAPBSET_READ", Replay::Emulate, 0),
    (25, "PR_GET_TSC", Replay::Emulate, 4),
    // The tracer owns the TSC setting (it traps rdtsc to record it).
    (26, "PR_SET_TSC", Replay::Deny(libc::EINVAL), 0),
    (27, "PR_GET_SECUREBITS", Replay::Emulate, 0),
    (30, "PR_GET_TIMERSLACK", Replay::Emulate, 0),
    (36, "PR_SET_CHILD_SUBREAPER", Replay::Execute, 0),
    (37, "PR_GET_CHILD_SUBREAPER", Replay::Emulate, 4),
    (38, "PR_SET_NO_NEW_PRIVS", Replay::Execute, 0),
    (39, "PR_GET_NO_NEW_PRIVS", Replay::Emulate, 0),
    (41, "PR_SET_THP_DISABLE", Replay::Execute, 0),
    (42, "PR_GET_THP_DISABLE", Replay::Emulate, 0),
    (52, "PR_GET_SPECULATION_CTRL", Replay::Emulate, 0),
    (0x5356_4d41, "PR_SET_VMA", Replay::Execute, 0),
    (0x5961_6d61, "PR_SET_PTRACER", Replay::Emulate, 0),
];

fn prctl_op(args: &[u64; 6]) -> Result<&'static (u64, &'static str, Replay, u64), String> {
    let option = args[0] & 0xffff_ffff;
    PRCTL_OPS
        .iter()
        .find(|op| op.0 == option)
        .ok_or_else(|| format!("prctl option {}", args[0] as i32))
}

fn prctl_replay(args: &[u64; 6]) -> Result<Replay, String> {
    prctl_op(args).map(|op| op.2)
}

fn prctl_writes(
    args: &[u64; 6],
    _result: i64,
    _mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    let op = prctl_op(args)?;
    Ok(if op.3 == 0 {
        Vec::new()
    } else {
        vec![(args[1], op.3)]
    })
}

// ---------------------------------------------------------------------------
// arch_prctl

/// arch_prctl codes: (code, name, replay, bytes written at arg 1).
pub(super) const ARCH_PRCTL_OPS: &[(u64, &str, Replay, u64)] = &[
    (0x1001, "ARCH_SET_GS", Replay::Execute, 0),
    (0x1002, "ARCH_SET_FS", Replay::Execute, 0),
    (0x1003, "ARCH_GET_FS", Replay::Execute, 8),
    (0x1004, "ARCH_GET_GS", Replay::Execute, 8),
    (0x1011, "ARCH_GET_CPUID", Replay::Emulate, 0),
    (0x1012, "ARCH_SET_CPUID", Replay::Emulate, 0),
    (0x1021, "ARCH_GET_XCOMP_SUPP", Replay::Emulate, 8),
    (0x1022, "ARCH_GET_XCOMP_PERM", Replay::Emulate, 8),
    (0x1023, "ARCH_REQ_XCOMP_PERM", Replay::Execute, 0),
    (0x1024, "ARCH_GET_XCOMP_GUEST_PERM", Replay::Emulate, 8),
    (0x1025, "ARCH_REQ_XCOMP_GUEST_PERM", Replay::Execute, 0),
    // The pre-upstream CET interface of glibc 2.28-2.38 (EINVAL upstream):
    // STATUS fills three u64s.
    (0x3001, "ARCH_CET_STATUS", Replay::Emulate, 24),
    (0x3002, "ARCH_CET_DISABLE", Replay::Emulate, 0),
    (0x3003, "ARCH_CET_LOCK", Replay::Emulate, 0),
    (0x4001, "ARCH_GET_UNTAG_MASK", Replay::Emulate, 8),
    (0x4002, "ARCH_ENABLE_TAGGED_ADDR", Replay::Execute, 0),
    (0x4003, "ARCH_GET_MAX_TAG_BITS", Replay::Emulate, 8),
    (0x4004, "ARCH_FORCE_TAGGED_SVA", Replay::Execute, 0),
    (0x5001, "ARCH_SHSTK_ENABLE", Replay::Execute, 0),
    (0x5002, "ARCH_SHSTK_DISABLE", Replay::Execute, 0),
    (0x5003, "ARCH_SHSTK_LOCK", Replay::Execute, 0),
    (0x5004, "ARCH_SHSTK_UNLOCK", Replay::Execute, 0),
    (0x5005, "ARCH_SHSTK_STATUS", Replay::Emulate, 8),
];

fn arch_prctl_op(args: &[u64; 6]) -> Result<&'static (u64, &'static str, Replay, u64), String> {
    let code = args[0] & 0xffff_ffff;
    ARCH_PRCTL_OPS
        .iter()
        .find(|op| op.0 == code)
        .ok_or_else(|| format!("arch_prctl code {code:#x}"))
}

fn arch_prctl_replay(args: &[u64; 6]) -> Result<Replay, String> {
    arch_prctl_op(args).map(|op| op.2)
}

fn arch_prctl_writes(
    args: &[u64; 6],
    _result: i64,
    _mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    let op = arch_prctl_op(args)?;
    Ok(if op.3 == 0 {
        Vec::new()
    } else {
        vec![(args[1], op.3)]
    })
}

// ---------------------------------------------------------------------------
// fcntl

/// fcntl commands: (cmd, name, bytes written at arg 2). All are emulated.
pub(super) const FCNTL_CMDS: &[(u64, &str, u64)] = &[
    (0, "F_DUPFD", 0),
    (1, "F_GETFD", 0),
    (2, "F_SETFD", 0),
    (3, "F_GETFL", 0),
    (4, "F_SETFL", 0),
    (5, "F_GETLK", FLOCK),
    (6, "F_SETLK", 0),
    (7, "F_SETLKW", 0),
    (8, "F_SETOWN", 0),
    (9, "F_GETOWN", 0),
    (10, "F_SETSIG", 0),
    (11, "F_GETSIG", 0),
    (15, "F_SETOWN_EX", 0),
    (16, "F_GETOWN_EX", F_OWNER_EX),
    (17, "F_GETOWNER_UIDS", 8),
    (36, "F_OFD_GETLK", FLOCK),
    (37, "F_OFD_SETLK", 0),
    (38, "F_OFD_SETLKW", 0),
    (1024, "F_SETLEASE", 0),
    (1025, "F_GETLEASE", 0),
    (1026, "F_NOTIFY", 0),
    (1027, "F_DUPFD_QUERY", 0),
    (1028, "F_CREATED_QUERY", 0),
    (1030, "F_DUPFD_CLOEXEC", 0),
    (1031, "F_SETPIPE_SZ", 0),
    (1032, "F_GETPIPE_SZ", 0),
    (1033, "F_ADD_SEALS", 0),
    (1034, "F_GET_SEALS", 0),
    (1035, "F_GET_RW_HINT", 8),
    (1036, "F_SET_RW_HINT", 0),
    (1037, "F_GET_FILE_RW_HINT", 8),
    (1038, "F_SET_FILE_RW_HINT", 0),
];

fn fcntl_cmd(args: &[u64; 6]) -> Result<&'static (u64, &'static str, u64), String> {
    let cmd = args[1] & 0xffff_ffff;
    FCNTL_CMDS
        .iter()
        .find(|c| c.0 == cmd)
        .ok_or_else(|| format!("fcntl command {}", cmd as i32))
}

fn fcntl_replay(args: &[u64; 6]) -> Result<Replay, String> {
    fcntl_cmd(args).map(|_| Replay::Emulate)
}

fn fcntl_writes(
    args: &[u64; 6],
    _result: i64,
    _mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    let cmd = fcntl_cmd(args)?;
    Ok(if cmd.2 == 0 {
        Vec::new()
    } else {
        vec![(args[2], cmd.2)]
    })
}

// ---------------------------------------------------------------------------
// seccomp

fn seccomp_replay(args: &[u64; 6]) -> Result<Replay, String> {
    match args[0] {
        // SET_MODE_STRICT, SET_MODE_FILTER: the filter shapes later execution.
        0 | 1 => Ok(Replay::Execute),
        // GET_ACTION_AVAIL, GET_NOTIF_SIZES: queries.
        2 | 3 => Ok(Replay::Emulate),
        op => Err(format!("seccomp operation {op}")),
    }
}

fn seccomp_writes(
    args: &[u64; 6],
    _result: i64,
    _mem: &dyn MemRead,
) -> Result<Vec<(u64, u64)>, String> {
    seccomp_replay(args)?;
    // SECCOMP_GET_NOTIF_SIZES fills struct seccomp_notif_sizes (3 x u16).
    Ok(if args[0] == 3 {
        vec![(args[2], 6)]
    } else {
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscalls::{ranges, Access};
    use std::collections::HashMap;
    use std::mem::size_of;

    /// Tracee memory as a map of address to bytes.
    struct FakeMem(HashMap<u64, Vec<u8>>);

    impl MemRead for FakeMem {
        fn read_bytes(&self, addr: u64, len: usize) -> std::io::Result<Vec<u8>> {
            for (&base, bytes) in &self.0 {
                if addr >= base && addr + len as u64 <= base + bytes.len() as u64 {
                    let off = (addr - base) as usize;
                    return Ok(bytes[off..off + len].to_vec());
                }
            }
            Err(std::io::Error::from_raw_os_error(libc::EFAULT))
        }
    }

    fn iov_bytes(iovs: &[(u64, u64)]) -> Vec<u8> {
        iovs.iter()
            .flat_map(|&(b, l)| b.to_le_bytes().into_iter().chain(l.to_le_bytes()))
            .collect()
    }

    #[test]
    fn table_sorted_unique_and_named_like_the_kernel() {
        for w in TABLE.windows(2) {
            assert!(
                w[0].nr < w[1].nr,
                "{} and {} out of order",
                w[0].name,
                w[1].name
            );
        }
        for s in TABLE {
            if s.name.starts_with("rrpipe_") {
                // Private numbers, above any the kernel has.
                assert!(Sysno::new(s.nr as usize).is_none(), "{}", s.name);
                continue;
            }
            assert!(s.nr >= 0 && s.nr < 500, "{}", s.name);
            assert_eq!(Sysno::new(s.nr as usize).unwrap().name(), s.name);
            assert!(s.args.len() <= 6, "{}", s.name);
            assert_eq!(lookup(s.nr).unwrap().name, s.name);
        }
        assert!(lookup(-1).is_none());
        assert!(lookup(100_000).is_none());
        for absent in [Sysno::kexec_file_load, Sysno::io_uring_setup, Sysno::ptrace] {
            assert!(lookup(absent as i64).is_none());
        }
    }

    #[test]
    fn buffers_name_existing_arguments() {
        let args = [0x1000u64; 6];
        let mem = FakeMem(HashMap::from([(0x1000, vec![0u8; 4096])]));
        for s in TABLE {
            for access in [&s.writes, &s.reads] {
                if let Access::Bufs(bufs) = access {
                    for b in bufs.iter() {
                        assert!(b.arg < s.args.len(), "{}: buffer at arg {}", s.name, b.arg);
                        assert_eq!(
                            s.args[b.arg],
                            Arg::Ptr,
                            "{}: buffer at a non-pointer",
                            s.name
                        );
                        if let Len::DerefU32(n) | Len::Arg(n) | Len::ArgTimes(n, _) = b.len {
                            assert!(n < s.args.len(), "{}", s.name);
                        }
                    }
                }
            }
            // The writes of every row resolve for plausible arguments, at
            // entry (result 0) and at exit, except the multiplexers whose
            // request 0x1000 is unknown.
            let r = ranges(&s.writes, &args, 0, &mem);
            if !matches!(
                s.name,
                "ioctl" | "prctl" | "arch_prctl" | "fcntl" | "seccomp"
            ) {
                r.unwrap_or_else(|e| panic!("{}: {e}", s.name));
            }
        }
    }

    #[test]
    fn struct_sizes_match_libc() {
        assert_eq!(STAT, size_of::<libc::stat>() as u64);
        assert_eq!(STATX, size_of::<libc::statx>() as u64);
        assert_eq!(STATFS, size_of::<libc::statfs>() as u64);
        assert_eq!(UTSNAME, size_of::<libc::utsname>() as u64);
        assert_eq!(SYSINFO, size_of::<libc::sysinfo>() as u64);
        assert_eq!(RUSAGE, size_of::<libc::rusage>() as u64);
        assert_eq!(TIMESPEC, size_of::<libc::timespec>() as u64);
        assert_eq!(TIMEVAL, size_of::<libc::timeval>() as u64);
        // libc's timezone is opaque; the kernel's is two ints.
        assert_eq!(TIMEZONE, 2 * 4);
        assert_eq!(RLIMIT, size_of::<libc::rlimit>() as u64);
        assert_eq!(TMS, size_of::<libc::tms>() as u64);
        assert_eq!(SIGINFO, size_of::<libc::siginfo_t>() as u64);
        assert_eq!(EPOLL_EVENT, size_of::<libc::epoll_event>() as u64);
        assert_eq!(POLLFD, size_of::<libc::pollfd>() as u64);
        assert_eq!(ITIMERVAL, size_of::<libc::itimerval>() as u64);
        assert_eq!(ITIMERSPEC, size_of::<libc::itimerspec>() as u64);
        assert_eq!(STACK_T, size_of::<libc::stack_t>() as u64);
        assert_eq!(TIMEX, size_of::<libc::timex>() as u64);
        assert_eq!(WINSIZE, size_of::<libc::winsize>() as u64);
        assert_eq!(FLOCK, size_of::<libc::flock>() as u64);
        assert_eq!(MSGHDR, size_of::<libc::msghdr>() as u64);
        assert_eq!(MMSGHDR, size_of::<libc::mmsghdr>() as u64);
        assert_eq!(IOVEC, size_of::<libc::iovec>() as u64);
        assert_eq!(IFREQ, size_of::<libc::ifreq>() as u64);
        assert_eq!(SOCKADDR_STORAGE, size_of::<libc::sockaddr_storage>() as u64);
        assert_eq!(TERMIOS2, size_of::<libc::termios2>() as u64);
        // The kernel's termios: 4 flags, c_line, 19 control characters.
        assert_eq!(KTERMIOS, 4 * 4 + 1 + 19);
        assert_eq!(KSIGACTION, 3 * 8 + 8);
    }

    #[test]
    fn readv_records_the_filled_prefix() {
        let iov = 0x5000;
        let mem = FakeMem(HashMap::from([(
            iov,
            iov_bytes(&[(0x10000, 100), (0x20000, 50), (0x30000, 10)]),
        )]));
        let spec = lookup(Sysno::readv as i64).unwrap();
        let args = [3, iov, 3, 0, 0, 0];
        assert_eq!(
            ranges(&spec.writes, &args, 120, &mem).unwrap(),
            vec![(0x10000, 100), (0x20000, 20)]
        );
        assert_eq!(ranges(&spec.writes, &args, 0, &mem).unwrap(), vec![]);
        assert_eq!(ranges(&spec.writes, &args, -14, &mem).unwrap(), vec![]);
        // writev's inputs are the whole buffers.
        let spec = lookup(Sysno::writev as i64).unwrap();
        assert_eq!(
            ranges(&spec.reads, &args, 0, &mem).unwrap(),
            vec![(0x10000, 100), (0x20000, 50), (0x30000, 10)]
        );
        // An unreadable iovec array is an error, not silence.
        let args = [3, 0xdead000, 3, 0, 0, 0];
        assert!(ranges(&spec.reads, &args, 0, &mem).is_err());
    }

    #[test]
    fn recvmsg_records_name_data_control_and_header_fields() {
        let hdr = 0x7000u64;
        let mut msg = Vec::new();
        msg.extend(0x8000u64.to_le_bytes()); // msg_name
        msg.extend(16u32.to_le_bytes()); // msg_namelen (after)
        msg.extend([0; 4]);
        msg.extend(0x9000u64.to_le_bytes()); // msg_iov
        msg.extend(2u64.to_le_bytes()); // msg_iovlen
        msg.extend(0xa000u64.to_le_bytes()); // msg_control
        msg.extend(24u64.to_le_bytes()); // msg_controllen (after)
        msg.extend([0; 8]); // msg_flags + padding
        assert_eq!(msg.len() as u64, MSGHDR);
        let mem = FakeMem(HashMap::from([
            (hdr, msg),
            (0x9000, iov_bytes(&[(0x10000, 8), (0x20000, 8)])),
        ]));
        let spec = lookup(Sysno::recvmsg as i64).unwrap();
        let got = ranges(&spec.writes, &[3, hdr, 0, 0, 0, 0], 10, &mem).unwrap();
        assert_eq!(
            got,
            vec![
                (hdr + 8, 4),
                (hdr + 40, 8),
                (hdr + 48, 4),
                (0x8000, 16),
                (0x10000, 8),
                (0x20000, 2),
                (0xa000, 24)
            ]
        );
    }

    #[test]
    fn select_and_poll_sizes() {
        let mem = FakeMem(HashMap::new());
        let spec = lookup(Sysno::select as i64).unwrap();
        let got = ranges(&spec.writes, &[65, 0x100, 0, 0x300, 0x400, 0], 1, &mem).unwrap();
        assert_eq!(got, vec![(0x100, 16), (0x300, 16), (0x400, 16)]);
        let spec = lookup(Sysno::poll as i64).unwrap();
        let got = ranges(&spec.writes, &[0x100, 3, 0, 0, 0, 0], 1, &mem).unwrap();
        assert_eq!(got, vec![(0x100, 24)]);
        let spec = lookup(Sysno::mincore as i64).unwrap();
        let got = ranges(&spec.writes, &[0x1000, 4097, 0x200, 0, 0, 0], 0, &mem).unwrap();
        assert_eq!(got, vec![(0x200, 2)]);
    }

    #[test]
    fn ioctl_decoding() {
        let spec = lookup(Sysno::ioctl as i64).unwrap();
        let mem = FakeMem(HashMap::new());
        let at =
            |cmd: u64, result: i64| ranges(&spec.writes, &[1, cmd, 0x7000, 0, 0, 0], result, &mem);
        assert_eq!(at(0x5401, 0).unwrap(), vec![(0x7000, 36)]); // TCGETS
        assert_eq!(at(0x5413, 0).unwrap(), vec![(0x7000, 8)]); // TIOCGWINSZ
        assert_eq!(at(0x541b, 0).unwrap(), vec![(0x7000, 4)]); // FIONREAD
        assert_eq!(at(0x5402, 0).unwrap(), vec![]); // TCSETS
        assert_eq!(at(0x5451, 0).unwrap(), vec![]); // FIOCLEX
        assert_eq!(at(0x4004_9409, 0).unwrap(), vec![]); // FICLONE: _IOW
        assert_eq!(at(0x8004_5430, 0).unwrap(), vec![(0x7000, 4)]); // TIOCGPTN
                                                                    // _IOR('f', 1, long): the encoded size.
        assert_eq!(ioctl_write_size(0x8008_6601).unwrap(), 8);
        // _IOWR(0x94, 60, 24 bytes) unknown to the table: decoded.
        assert_eq!(ioctl_write_size(0xc018_943c).unwrap(), 24);
        // Upper bits of the register are ignored, as the kernel does.
        assert_eq!(at(0xffff_ffff_0000_5401, 0).unwrap(), vec![(0x7000, 36)]);
        // An unknown legacy request is refused, at entry too.
        let err = at(0x54ff, 0).unwrap_err();
        assert_eq!(err, "ioctl request 0x54ff");
        assert_eq!(
            spec.replay_for(&[1, 0x5401, 0, 0, 0, 0]),
            Ok(Replay::Emulate)
        );
    }

    #[test]
    fn multiplexed_replay_rules() {
        let rule = |nr: Sysno, a0: u64, a1: u64| {
            lookup(nr as i64).unwrap().replay_for(&[a0, a1, 0, 0, 0, 0])
        };
        assert_eq!(rule(Sysno::arch_prctl, 0x1002, 0), Ok(Replay::Execute));
        assert_eq!(rule(Sysno::arch_prctl, 0x3001, 0), Ok(Replay::Emulate));
        assert_eq!(
            rule(Sysno::arch_prctl, 0x2001, 0).unwrap_err(),
            "arch_prctl code 0x2001"
        );
        assert_eq!(rule(Sysno::prctl, 15, 0), Ok(Replay::Execute));
        assert_eq!(rule(Sysno::prctl, 16, 0), Ok(Replay::Emulate));
        assert_eq!(rule(Sysno::prctl, 26, 0), Ok(Replay::Deny(libc::EINVAL)));
        assert_eq!(
            rule(Sysno::prctl, 9999, 0).unwrap_err(),
            "prctl option 9999"
        );
        assert_eq!(rule(Sysno::fcntl, 3, 1), Ok(Replay::Emulate));
        assert!(rule(Sysno::fcntl, 3, 4242).is_err());
        assert_eq!(rule(Sysno::rseq, 0, 0), Ok(Replay::Deny(libc::ENOSYS)));
        assert_eq!(rule(Sysno::mmap, 0, 0), Ok(Replay::Mmap));
        assert_eq!(rule(Sysno::exit_group, 0, 0), Ok(Replay::NoReturn));
        assert_eq!(rule(Sysno::execve, 0, 0), Ok(Replay::Exec));

        let mem = FakeMem(HashMap::new());
        let w =
            |nr: Sysno, args: [u64; 6]| ranges(&lookup(nr as i64).unwrap().writes, &args, 0, &mem);
        assert_eq!(
            w(Sysno::prctl, [16, 0x100, 0, 0, 0, 0]).unwrap(),
            vec![(0x100, 16)]
        );
        assert_eq!(w(Sysno::prctl, [15, 0x100, 0, 0, 0, 0]).unwrap(), vec![]);
        assert_eq!(
            w(Sysno::arch_prctl, [0x1003, 0x100, 0, 0, 0, 0]).unwrap(),
            vec![(0x100, 8)]
        );
        assert_eq!(
            w(Sysno::fcntl, [3, 5, 0x100, 0, 0, 0]).unwrap(),
            vec![(0x100, 32)]
        );
        assert_eq!(
            w(Sysno::fcntl, [3, 16, 0x100, 0, 0, 0]).unwrap(),
            vec![(0x100, 8)]
        );
        assert_eq!(w(Sysno::fcntl, [3, 4, 0x800, 0, 0, 0]).unwrap(), vec![]);
        assert_eq!(
            w(Sysno::futex, [0x100, 0x85, 1, 1, 0x200, 0]).unwrap(),
            vec![(0x200, 4)]
        );
        assert_eq!(w(Sysno::futex, [0x100, 0x80, 1, 0, 0, 0]).unwrap(), vec![]);
    }

    #[test]
    fn common_outputs() {
        let mem = FakeMem(HashMap::from([(0x600, 16u32.to_le_bytes().to_vec())]));
        let w = |nr: Sysno, args: [u64; 6], result: i64| {
            ranges(&lookup(nr as i64).unwrap().writes, &args, result, &mem).unwrap()
        };
        assert_eq!(
            w(Sysno::fstat, [3, 0x100, 0, 0, 0, 0], 0),
            vec![(0x100, 144)]
        );
        assert_eq!(
            w(Sysno::read, [3, 0x100, 4096, 0, 0, 0], 832),
            vec![(0x100, 832)]
        );
        assert_eq!(w(Sysno::time, [0, 0, 0, 0, 0, 0], 1234), vec![]);
        assert_eq!(
            w(Sysno::accept, [3, 0x500, 0x600, 0, 0, 0], 4),
            vec![(0x500, 16), (0x600, 4)]
        );
        assert_eq!(w(Sysno::getgroups, [0, 0x100, 0, 0, 0, 0], 3), vec![]);
        assert_eq!(
            w(Sysno::getgroups, [8, 0x100, 0, 0, 0, 0], 3),
            vec![(0x100, 12)]
        );
        assert_eq!(
            w(Sysno::epoll_wait, [3, 0x100, 8, -1i64 as u64, 0, 0], 2),
            vec![(0x100, 24)]
        );
        assert_eq!(
            w(Sysno::rt_sigprocmask, [0, 0, 0x100, 8, 0, 0], 0),
            vec![(0x100, 8)]
        );
    }
}
