//! Shows a syscall the way strace does:
//! `openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3`.
//!
//! The argument kinds come from the table; a few syscalls get their flag
//! words, modes and operation codes decoded by name.

use super::table::{ARCH_PRCTL_OPS, FCNTL_CMDS, PRCTL_OPS};
use super::{lookup, Arg, Replay, ReplayRule};

/// One syscall as a line: name, the arguments its row declares, and the
/// result (`-1 ENOENT (No such file or directory)` for errors, `?` for
/// those that do not return). `inputs` are the strings the recorder
/// captured for `Path` arguments, by address.
pub fn format_call(nr: i64, args: &[u64; 6], inputs: &[(u64, Vec<u8>)], result: i64) -> String {
    let spec = lookup(nr);
    let (name, kinds): (String, &[Arg]) = match spec {
        Some(s) => (s.name.to_string(), s.args),
        None => (super::name(nr), &[Arg::Hex; 6]),
    };
    let shown = shown_args(&name, kinds.len(), args);
    let mut out = format!("{name}(");
    for (i, kind) in kinds.iter().take(shown).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match special_arg(&name, i, args) {
            Some(s) => out.push_str(&s),
            None => out.push_str(&format_arg(*kind, args[i], inputs)),
        }
    }
    out.push_str(") = ");
    let no_return = matches!(
        spec.map(|s| s.replay),
        Some(ReplayRule::Always(Replay::NoReturn))
    );
    if no_return {
        out.push('?');
    } else {
        out.push_str(&format_result(&name, result));
    }
    out
}

/// open and openat show their mode only when they may create a file.
fn shown_args(name: &str, declared: usize, args: &[u64; 6]) -> usize {
    let creates = |flags: u64| flags & (libc::O_CREAT | libc::O_TMPFILE) as u64 != 0;
    match name {
        "open" if !creates(args[1]) => 2,
        "openat" if !creates(args[2]) => 3,
        _ => declared,
    }
}

fn format_arg(kind: Arg, v: u64, inputs: &[(u64, Vec<u8>)]) -> String {
    match kind {
        Arg::Int => (v as i64).to_string(),
        Arg::Size => v.to_string(),
        Arg::Hex => hex(v),
        Arg::Ptr => ptr(v),
        Arg::Fd => (v as i32).to_string(),
        Arg::DirFd => dirfd(v),
        Arg::Path => match inputs.iter().find(|(addr, _)| *addr == v) {
            Some((_, bytes)) => quote(bytes),
            None => ptr(v),
        },
        Arg::Signal => signal_name(v as i32),
    }
}

fn hex(v: u64) -> String {
    if v == 0 {
        "0".to_string()
    } else {
        format!("{v:#x}")
    }
}

fn ptr(v: u64) -> String {
    if v == 0 {
        "NULL".to_string()
    } else {
        format!("{v:#x}")
    }
}

fn dirfd(v: u64) -> String {
    match v as i32 {
        libc::AT_FDCWD => "AT_FDCWD".to_string(),
        fd => fd.to_string(),
    }
}

/// A string argument in double quotes, escaped like C.
pub(crate) fn quote(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\r' => s.push_str("\\r"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    s
}

/// `SIGSEGV`, `SIGRT_3`, or the number.
pub(crate) fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) if (32..=64).contains(&sig) => format!("SIGRT_{}", sig - 32),
        Err(_) => sig.to_string(),
    }
}

/// `ENOENT (No such file or directory)`, or the number.
pub(crate) fn errno_text(errno: i32) -> String {
    let e = syscalls::Errno::new(errno);
    let name = e
        .name()
        .map(str::to_string)
        .unwrap_or_else(|| errno.to_string());
    // glibc's wording, as strace prints; the kernel's for its internal
    // restart codes, which glibc does not know.
    let libc_text = std::io::Error::from_raw_os_error(errno).to_string();
    let libc_text = libc_text
        .strip_suffix(&format!(" (os error {errno})"))
        .unwrap_or(&libc_text)
        .to_string();
    let text = if libc_text.starts_with("Unknown error") {
        e.description().map(str::to_string).unwrap_or(libc_text)
    } else {
        libc_text
    };
    format!("{name} ({text})")
}

fn format_result(name: &str, result: i64) -> String {
    if (-4095..0).contains(&result) {
        return format!("-1 {}", errno_text(-result as i32));
    }
    match name {
        "mmap" | "mremap" | "brk" => format!("{:#x}", result as u64),
        _ => result.to_string(),
    }
}

/// Names for the bits of `v` from `table` (in order; multi-bit entries
/// first), the rest in hex; `zero` when nothing is set.
fn flags(v: u64, table: &[(u64, &str)], zero: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut rest = v;
    for &(bits, name) in table {
        if bits != 0 && rest & bits == bits {
            parts.push(name.to_string());
            rest &= !bits;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    if parts.is_empty() {
        zero.to_string()
    } else {
        parts.join("|")
    }
}

/// A value from a list of names, else decimal.
fn one_of(v: u64, table: &[(u64, &str)]) -> String {
    table
        .iter()
        .find(|e| e.0 == v)
        .map(|e| e.1.to_string())
        .unwrap_or_else(|| (v as i64).to_string())
}

const OPEN_FLAGS: &[(u64, &str)] = &[
    (0o20200000, "O_TMPFILE"),
    (0o4010000, "O_SYNC"),
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o400, "O_NOCTTY"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o10000, "O_DSYNC"),
    (0o20000, "O_ASYNC"),
    (0o40000, "O_DIRECT"),
    (0o100000, "O_LARGEFILE"),
    (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"),
    (0o10000000, "O_PATH"),
];

fn open_flags(v: u64) -> String {
    let v = v & 0xffff_ffff;
    let mode = match v & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    };
    let rest = flags(v & !3, OPEN_FLAGS, "");
    if rest.is_empty() {
        mode.to_string()
    } else {
        format!("{mode}|{rest}")
    }
}

/// O_CLOEXEC / O_NONBLOCK style flags (pipe2, dup3, eventfd2, accept4...).
const FD_FLAGS: &[(u64, &str)] = &[(0o2000000, "O_CLOEXEC"), (0o4000, "O_NONBLOCK")];

const PROT: &[(u64, &str)] = &[
    (0x1, "PROT_READ"),
    (0x2, "PROT_WRITE"),
    (0x4, "PROT_EXEC"),
    (0x0100_0000, "PROT_GROWSDOWN"),
    (0x0200_0000, "PROT_GROWSUP"),
];

const MAP_FLAGS: &[(u64, &str)] = &[
    (0x03, "MAP_SHARED_VALIDATE"),
    (0x01, "MAP_SHARED"),
    (0x02, "MAP_PRIVATE"),
    (0x10, "MAP_FIXED"),
    (0x20, "MAP_ANONYMOUS"),
    (0x40, "MAP_32BIT"),
    (0x100, "MAP_GROWSDOWN"),
    (0x800, "MAP_DENYWRITE"),
    (0x1000, "MAP_EXECUTABLE"),
    (0x2000, "MAP_LOCKED"),
    (0x4000, "MAP_NORESERVE"),
    (0x8000, "MAP_POPULATE"),
    (0x10000, "MAP_NONBLOCK"),
    (0x20000, "MAP_STACK"),
    (0x40000, "MAP_HUGETLB"),
    (0x80000, "MAP_SYNC"),
    (0x100000, "MAP_FIXED_NOREPLACE"),
];

const AT_FLAGS: &[(u64, &str)] = &[
    (0x100, "AT_SYMLINK_NOFOLLOW"),
    (0x400, "AT_SYMLINK_FOLLOW"),
    (0x800, "AT_NO_AUTOMOUNT"),
    (0x1000, "AT_EMPTY_PATH"),
    (0x2000, "AT_STATX_FORCE_SYNC"),
    (0x4000, "AT_STATX_DONT_SYNC"),
    (0x8000, "AT_RECURSIVE"),
];

const CLOCKS: &[(u64, &str)] = &[
    (0, "CLOCK_REALTIME"),
    (1, "CLOCK_MONOTONIC"),
    (2, "CLOCK_PROCESS_CPUTIME_ID"),
    (3, "CLOCK_THREAD_CPUTIME_ID"),
    (4, "CLOCK_MONOTONIC_RAW"),
    (5, "CLOCK_REALTIME_COARSE"),
    (6, "CLOCK_MONOTONIC_COARSE"),
    (7, "CLOCK_BOOTTIME"),
    (8, "CLOCK_REALTIME_ALARM"),
    (9, "CLOCK_BOOTTIME_ALARM"),
    (11, "CLOCK_TAI"),
];

const MADVICE: &[(u64, &str)] = &[
    (0, "MADV_NORMAL"),
    (1, "MADV_RANDOM"),
    (2, "MADV_SEQUENTIAL"),
    (3, "MADV_WILLNEED"),
    (4, "MADV_DONTNEED"),
    (8, "MADV_FREE"),
    (9, "MADV_REMOVE"),
    (10, "MADV_DONTFORK"),
    (11, "MADV_DOFORK"),
    (12, "MADV_MERGEABLE"),
    (13, "MADV_UNMERGEABLE"),
    (14, "MADV_HUGEPAGE"),
    (15, "MADV_NOHUGEPAGE"),
    (16, "MADV_DONTDUMP"),
    (17, "MADV_DODUMP"),
    (18, "MADV_WIPEONFORK"),
    (19, "MADV_KEEPONFORK"),
    (20, "MADV_COLD"),
    (21, "MADV_PAGEOUT"),
    (22, "MADV_POPULATE_READ"),
    (23, "MADV_POPULATE_WRITE"),
    (24, "MADV_DONTNEED_LOCKED"),
    (25, "MADV_COLLAPSE"),
];

const FUTEX_OPS: &[(u64, &str)] = &[
    (0, "FUTEX_WAIT"),
    (1, "FUTEX_WAKE"),
    (2, "FUTEX_FD"),
    (3, "FUTEX_REQUEUE"),
    (4, "FUTEX_CMP_REQUEUE"),
    (5, "FUTEX_WAKE_OP"),
    (6, "FUTEX_LOCK_PI"),
    (7, "FUTEX_UNLOCK_PI"),
    (8, "FUTEX_TRYLOCK_PI"),
    (9, "FUTEX_WAIT_BITSET"),
    (10, "FUTEX_WAKE_BITSET"),
    (11, "FUTEX_WAIT_REQUEUE_PI"),
    (12, "FUTEX_CMP_REQUEUE_PI"),
    (13, "FUTEX_LOCK_PI2"),
];

fn futex_op(v: u64) -> String {
    let mut s = one_of(v & 0x7f, FUTEX_OPS);
    if v & 128 != 0 {
        s.push_str("_PRIVATE");
    }
    if v & 256 != 0 {
        s.push_str("|FUTEX_CLOCK_REALTIME");
    }
    let rest = v & !0x1ff;
    if rest != 0 {
        s.push_str(&format!("|{rest:#x}"));
    }
    s
}

const ADDRESS_FAMILIES: &[(u64, &str)] = &[
    (0, "AF_UNSPEC"),
    (1, "AF_UNIX"),
    (2, "AF_INET"),
    (10, "AF_INET6"),
    (16, "AF_NETLINK"),
    (17, "AF_PACKET"),
];

fn socket_type(v: u64) -> String {
    const TYPES: &[(u64, &str)] = &[
        (1, "SOCK_STREAM"),
        (2, "SOCK_DGRAM"),
        (3, "SOCK_RAW"),
        (4, "SOCK_RDM"),
        (5, "SOCK_SEQPACKET"),
        (10, "SOCK_PACKET"),
    ];
    const FLAGS: &[(u64, &str)] = &[(0o2000000, "SOCK_CLOEXEC"), (0o4000, "SOCK_NONBLOCK")];
    let base = one_of(v & 0xf, TYPES);
    let rest = flags(v & !0xf & 0xffff_ffff, FLAGS, "");
    if rest.is_empty() {
        base
    } else {
        format!("{base}|{rest}")
    }
}

const RLIMITS: &[(u64, &str)] = &[
    (0, "RLIMIT_CPU"),
    (1, "RLIMIT_FSIZE"),
    (2, "RLIMIT_DATA"),
    (3, "RLIMIT_STACK"),
    (4, "RLIMIT_CORE"),
    (5, "RLIMIT_RSS"),
    (6, "RLIMIT_NPROC"),
    (7, "RLIMIT_NOFILE"),
    (8, "RLIMIT_MEMLOCK"),
    (9, "RLIMIT_AS"),
    (10, "RLIMIT_LOCKS"),
    (11, "RLIMIT_SIGPENDING"),
    (12, "RLIMIT_MSGQUEUE"),
    (13, "RLIMIT_NICE"),
    (14, "RLIMIT_RTPRIO"),
    (15, "RLIMIT_RTTIME"),
];

fn mode(v: u64) -> String {
    match v & 0o7777_7777 {
        0 => "0".to_string(),
        m => format!("0{m:o}"),
    }
}

fn name_from(v: u64, table: &[(u64, &str, Replay, u64)]) -> Option<String> {
    table.iter().find(|e| e.0 == v).map(|e| e.1.to_string())
}

/// Decoded forms of particular arguments of particular syscalls.
fn special_arg(name: &str, i: usize, args: &[u64; 6]) -> Option<String> {
    let v = args[i];
    Some(match (name, i) {
        ("open", 1) | ("openat", 2) => open_flags(v),
        ("open", 2)
        | ("openat", 3)
        | ("creat", 1)
        | ("mkdir", 1)
        | ("mkdirat", 2)
        | ("chmod", 1)
        | ("fchmod", 1)
        | ("fchmodat", 2)
        | ("fchmodat2", 2)
        | ("umask", 0)
        | ("mknod", 1)
        | ("mknodat", 2) => mode(v),
        ("mmap", 2) | ("mprotect", 2) => flags(v, PROT, "PROT_NONE"),
        ("mmap", 3) => flags(v & 0xffff_ffff, MAP_FLAGS, "0"),
        ("mremap", 3) => flags(
            v,
            &[
                (1, "MREMAP_MAYMOVE"),
                (2, "MREMAP_FIXED"),
                (4, "MREMAP_DONTUNMAP"),
            ],
            "0",
        ),
        ("madvise", 2) => one_of(v, MADVICE),
        ("access", 1) | ("faccessat", 2) | ("faccessat2", 2) => {
            flags(v, &[(4, "R_OK"), (2, "W_OK"), (1, "X_OK")], "F_OK")
        }
        ("lseek", 2) => one_of(
            v,
            &[
                (0, "SEEK_SET"),
                (1, "SEEK_CUR"),
                (2, "SEEK_END"),
                (3, "SEEK_DATA"),
                (4, "SEEK_HOLE"),
            ],
        ),
        ("unlinkat", 2) => flags(v, &[(0x200, "AT_REMOVEDIR")], "0"),
        ("faccessat2", 3) => flags(
            v,
            &[(0x200, "AT_EACCESS"), (0x100, "AT_SYMLINK_NOFOLLOW")],
            "0",
        ),
        ("newfstatat", 3)
        | ("statx", 2)
        | ("fchownat", 4)
        | ("linkat", 4)
        | ("utimensat", 3)
        | ("execveat", 4)
        | ("fchmodat2", 3) => flags(v, AT_FLAGS, "0"),
        ("pipe2", 1)
        | ("dup3", 2)
        | ("eventfd2", 1)
        | ("epoll_create1", 0)
        | ("inotify_init1", 0)
        | ("accept4", 3)
        | ("signalfd4", 3)
        | ("timerfd_create", 1) => flags(v, FD_FLAGS, "0"),
        ("fcntl", 1) => FCNTL_CMDS
            .iter()
            .find(|c| c.0 == v & 0xffff_ffff)
            .map(|c| c.1.to_string())
            .unwrap_or_else(|| (v as i32).to_string()),
        ("ioctl", 1) => super::table::ioctl_name(v as u32)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{:#x}", v as u32)),
        ("prctl", 0) => {
            name_from(v & 0xffff_ffff, PRCTL_OPS).unwrap_or_else(|| (v as i32).to_string())
        }
        ("arch_prctl", 0) => name_from(v & 0xffff_ffff, ARCH_PRCTL_OPS).unwrap_or_else(|| hex(v)),
        ("rt_sigprocmask", 0) => one_of(
            v,
            &[(0, "SIG_BLOCK"), (1, "SIG_UNBLOCK"), (2, "SIG_SETMASK")],
        ),
        ("clock_gettime", 0)
        | ("clock_getres", 0)
        | ("clock_nanosleep", 0)
        | ("timer_create", 0)
        | ("timerfd_create", 0) => one_of(v, CLOCKS),
        ("clock_nanosleep", 1) => flags(v, &[(1, "TIMER_ABSTIME")], "0"),
        ("futex", 1) => futex_op(v),
        ("socket", 0) | ("socketpair", 0) => one_of(v, ADDRESS_FAMILIES),
        ("socket", 1) | ("socketpair", 1) => socket_type(v),
        ("getrlimit", 0) | ("setrlimit", 0) | ("prlimit64", 1) => one_of(v, RLIMITS),
        ("epoll_ctl", 1) => one_of(
            v,
            &[
                (1, "EPOLL_CTL_ADD"),
                (2, "EPOLL_CTL_DEL"),
                (3, "EPOLL_CTL_MOD"),
            ],
        ),
        ("shutdown", 1) => one_of(v, &[(0, "SHUT_RD"), (1, "SHUT_WR"), (2, "SHUT_RDWR")]),
        ("flock", 1) => flags(
            v,
            &[
                (1, "LOCK_SH"),
                (2, "LOCK_EX"),
                (4, "LOCK_NB"),
                (8, "LOCK_UN"),
            ],
            "0",
        ),
        ("wait4", 2) | ("waitid", 3) => flags(
            v,
            &[
                (1, "WNOHANG"),
                (2, "WUNTRACED"),
                (4, "WEXITED"),
                (8, "WCONTINUED"),
                (0x0100_0000, "WNOWAIT"),
                (0x2000_0000, "__WNOTHREAD"),
                (0x4000_0000, "__WALL"),
                (0x8000_0000, "__WCLONE"),
            ],
            "0",
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use syscalls::Sysno;

    fn call(nr: Sysno, args: [u64; 6], inputs: &[(u64, &[u8])], result: i64) -> String {
        let inputs: Vec<(u64, Vec<u8>)> = inputs.iter().map(|(a, b)| (*a, b.to_vec())).collect();
        format_call(nr as i64, &args, &inputs, result)
    }

    const AT_FDCWD: u64 = -100i64 as u64;

    #[test]
    fn open_family() {
        let flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
        assert_eq!(
            call(
                Sysno::openat,
                [AT_FDCWD, 0x1000, flags, 0, 0, 0],
                &[(0x1000, b"/etc/passwd")],
                3
            ),
            r#"openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3"#
        );
        let flags = (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u64;
        assert_eq!(
            call(
                Sysno::openat,
                [AT_FDCWD, 0x1000, flags, 0o644, 0, 0],
                &[(0x1000, b"out")],
                4
            ),
            r#"openat(AT_FDCWD, "out", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 4"#
        );
        assert_eq!(
            call(
                Sysno::open,
                [0x1000, 0, 0, 0, 0, 0],
                &[(0x1000, b"/nonexistent")],
                -2
            ),
            r#"open("/nonexistent", O_RDONLY) = -1 ENOENT (No such file or directory)"#
        );
        // No captured string: the pointer.
        assert_eq!(
            call(Sysno::stat, [0x2000, 0x3000, 0, 0, 0, 0], &[], 0),
            "stat(0x2000, 0x3000) = 0"
        );
    }

    #[test]
    fn read_mmap_and_friends() {
        assert_eq!(
            call(Sysno::read, [3, 0x7ffe_1234_5678, 4096, 0, 0, 0], &[], 832),
            "read(3, 0x7ffe12345678, 4096) = 832"
        );
        assert_eq!(
            call(Sysno::mmap, [0, 8192, 3, 0x22, u64::MAX, 0], &[], 0x7fff_f7fc_1000),
            "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7fc1000"
        );
        assert_eq!(
            call(Sysno::mmap, [0, 1 << 40, 0, 0x22, u64::MAX, 0], &[], -12),
            "mmap(NULL, 1099511627776, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = -1 ENOMEM (Cannot allocate memory)"
        );
        assert_eq!(call(Sysno::exit_group, [0; 6], &[], 0), "exit_group(0) = ?");
        assert_eq!(
            call(Sysno::rt_sigaction, [2, 0x100, 0, 8, 0, 0], &[], 0),
            "rt_sigaction(SIGINT, 0x100, NULL, 8) = 0"
        );
        assert_eq!(
            call(Sysno::kill, [42, 34, 0, 0, 0, 0], &[], 0),
            "kill(42, SIGRT_2) = 0"
        );
        assert_eq!(
            call(Sysno::ioctl, [1, 0x5401, 0x100, 0, 0, 0], &[], -25),
            "ioctl(1, TCGETS, 0x100) = -1 ENOTTY (Inappropriate ioctl for device)"
        );
        assert_eq!(
            call(
                Sysno::arch_prctl,
                [0x1002, 0x7fff_f7d8_a740, 0, 0, 0, 0],
                &[],
                0
            ),
            "arch_prctl(ARCH_SET_FS, 0x7ffff7d8a740) = 0"
        );
        assert_eq!(
            call(
                Sysno::access,
                [0x1000, 4, 0, 0, 0, 0],
                &[(0x1000, b"/etc/ld.so.preload")],
                -2
            ),
            r#"access("/etc/ld.so.preload", R_OK) = -1 ENOENT (No such file or directory)"#
        );
        assert_eq!(
            call(Sysno::futex, [0x1000, 0x81, 1, 0, 0, 0], &[], 0),
            "futex(0x1000, FUTEX_WAKE_PRIVATE, 1, 0, NULL, 0) = 0"
        );
        assert_eq!(
            call(Sysno::brk, [0; 6], &[], 0x555555559000),
            "brk(NULL) = 0x555555559000"
        );
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(quote(b"a\"b\\c\n\x01\xff"), r#""a\"b\\c\n\x01\xff""#);
        assert_eq!(
            call(
                Sysno::unlink,
                [0x10, 0, 0, 0, 0, 0],
                &[(0x10, b"we\tird")],
                0
            ),
            r#"unlink("we\tird") = 0"#
        );
    }

    #[test]
    fn unknown_and_unsupported_syscalls() {
        assert_eq!(
            format_call(999, &[1, 2, 3, 4, 5, 6], &[], -38),
            "syscall_999(0x1, 0x2, 0x3, 0x4, 0x5, 0x6) = -1 ENOSYS (Function not implemented)"
        );
        assert_eq!(
            format_call(
                Sysno::kexec_file_load as i64,
                &[3, 4, 0, 0, 0x7f00, 0],
                &[],
                -1
            ),
            "kexec_file_load(0x3, 0x4, 0, 0, 0x7f00, 0) = -1 EPERM (Operation not permitted)"
        );
    }

    #[test]
    fn errno_texts() {
        assert_eq!(
            errno_text(libc::EAGAIN),
            "EAGAIN (Resource temporarily unavailable)"
        );
        assert!(
            errno_text(512).starts_with("ERESTARTSYS ("),
            "{}",
            errno_text(512)
        );
        assert_eq!(signal_name(11), "SIGSEGV");
        assert_eq!(signal_name(0), "0");
    }
}
