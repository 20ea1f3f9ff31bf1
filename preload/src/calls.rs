//! The libc entry points this library replaces. Each decides, from its
//! arguments alone (so that replay decides alike), whether the call can be
//! buffered, and otherwise makes it traced; a decision that depends on
//! the world (what kind of file a descriptor is) is made in record and
//! logged as a fallback record when it goes the traced way.
//!
//! Variadic C functions (`open`, `fcntl`, `ioctl`) are defined with their
//! optional argument as a plain one: on x86_64 it arrives in the same
//! register either way.

use core::ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void};

use crate::stat_cache;
use crate::syscall::{call, console, libc_result, traced, untraced, Outcome};

pub use crate::dir::{
    closedir, dirfd, fdopendir, opendir, readdir, readdir64, readdir64_r, readdir_r, rewinddir,
    seekdir, telldir,
};

type SizeT = usize;
type SsizeT = isize;
type OffT = i64;

const STAT_SIZE: usize = core::mem::size_of::<libc::stat>();
const STATX_SIZE: usize = 256;
/// Offset of `stx_mode` (a `u16`) in `struct statx`.
const STATX_MODE: usize = 0x1c;
const TIMESPEC_SIZE: usize = 16;
const FICLONE: c_ulong = 0x4004_9409;

fn a(args: &[u64]) -> [u64; 6] {
    let mut out = [0u64; 6];
    out[..args.len()].copy_from_slice(args);
    out
}

/// The file type bits of `fd`, untraced (None: no such descriptor).
unsafe fn file_type(fd: c_int) -> Option<(u32, u64, u64)> {
    // Not zeroed: `zeroed` may call libc's memset (AVX in some variants),
    // and this runs in record only (see `syscall::differ`).
    let mut st = core::mem::MaybeUninit::<libc::stat>::uninit();
    let r = untraced(libc::SYS_fstat, a(&[fd as u64, st.as_mut_ptr() as u64]));
    if r != 0 {
        return None;
    }
    let st = st.assume_init();
    Some((st.st_mode & libc::S_IFMT, st.st_dev, st.st_ino))
}

/// Files whose reads and writes never wait for another program.
fn never_waits(kind: u32) -> bool {
    kind == libc::S_IFREG || kind == libc::S_IFDIR || kind == libc::S_IFBLK
}

// --- read and write -------------------------------------------------------

/// read: regular files directly; anything else (pipes, sockets, terminals)
/// only when data is already there (`RWF_NOWAIT`), else traced, where
/// rrpipe lets other tasks run while it waits.
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: SizeT) -> SsizeT {
    let args = a(&[fd as u64, buf as u64, n as u64]);
    let r = call(libc::SYS_read, args, buf as u64, n, |data| {
        let direct = match file_type(fd) {
            None => true,
            Some((kind, _, _)) => never_waits(kind),
        };
        let r = if direct {
            untraced(libc::SYS_read, a(&[fd as u64, data as u64, n as u64]))
        } else {
            let iov = libc::iovec {
                iov_base: data.cast(),
                iov_len: n,
            };
            let r = untraced(
                libc::SYS_preadv2,
                a(&[
                    fd as u64,
                    &iov as *const libc::iovec as u64,
                    1,
                    u64::MAX,
                    0,
                    libc::RWF_NOWAIT as u64,
                ]),
            );
            if r == -(libc::EAGAIN as i64) || r == -(libc::EOPNOTSUPP as i64) {
                return Outcome::Fallback;
            }
            r
        };
        Outcome::Done(r, r.max(0) as usize)
    });
    libc_result(r) as SsizeT
}

pub unsafe extern "C" fn __read(fd: c_int, buf: *mut c_void, n: SizeT) -> SsizeT {
    read(fd, buf, n)
}

extern "C" {
    fn __chk_fail() -> !;
}

/// The `_FORTIFY_SOURCE` read.
pub unsafe extern "C" fn __read_chk(fd: c_int, buf: *mut c_void, n: SizeT, size: SizeT) -> SsizeT {
    if n > size {
        __chk_fail();
    }
    read(fd, buf, n)
}

/// write: buffered to regular files other than rrpipe's own stdout and
/// stderr; everything else traced.
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, n: SizeT) -> SsizeT {
    let args = a(&[fd as u64, buf as u64, n as u64]);
    let r = call(libc::SYS_write, args, 0, 0, |_| match file_type(fd) {
        Some((kind, dev, ino)) if kind == libc::S_IFREG && !console().contains(&(dev, ino)) => {
            Outcome::Done(untraced(libc::SYS_write, args), 0)
        }
        _ => Outcome::Fallback,
    });
    libc_result(r) as SsizeT
}

pub unsafe extern "C" fn __write(fd: c_int, buf: *const c_void, n: SizeT) -> SsizeT {
    write(fd, buf, n)
}

pub unsafe extern "C" fn pread64(fd: c_int, buf: *mut c_void, n: SizeT, off: OffT) -> SsizeT {
    let args = a(&[fd as u64, buf as u64, n as u64, off as u64]);
    let r = call(
        libc::SYS_pread64,
        args,
        buf as u64,
        n,
        |data| match file_type(fd) {
            Some((kind, _, _)) if !never_waits(kind) => Outcome::Fallback,
            _ => {
                let r = untraced(
                    libc::SYS_pread64,
                    a(&[fd as u64, data as u64, n as u64, off as u64]),
                );
                Outcome::Done(r, r.max(0) as usize)
            }
        },
    );
    libc_result(r) as SsizeT
}

pub unsafe extern "C" fn pread(fd: c_int, buf: *mut c_void, n: SizeT, off: OffT) -> SsizeT {
    pread64(fd, buf, n, off)
}

pub unsafe extern "C" fn pwrite64(fd: c_int, buf: *const c_void, n: SizeT, off: OffT) -> SsizeT {
    let args = a(&[fd as u64, buf as u64, n as u64, off as u64]);
    let r = call(libc::SYS_pwrite64, args, 0, 0, |_| match file_type(fd) {
        Some((kind, dev, ino)) if kind == libc::S_IFREG && !console().contains(&(dev, ino)) => {
            Outcome::Done(untraced(libc::SYS_pwrite64, args), 0)
        }
        _ => Outcome::Fallback,
    });
    libc_result(r) as SsizeT
}

pub unsafe extern "C" fn pwrite(fd: c_int, buf: *const c_void, n: SizeT, off: OffT) -> SsizeT {
    pwrite64(fd, buf, n, off)
}

// --- opening and closing --------------------------------------------------

/// openat: buffered unless the path names a FIFO or a device (whose open
/// may wait for the other end). Unless the program's own stat just told
/// (`stat_cache`: then one plain open, as the program made it), checked
/// with a non-blocking open for writing or an untraced stat first.
pub unsafe extern "C" fn openat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    let mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        mode
    } else {
        0
    };
    let args = a(&[dirfd as u64, path as u64, flags as u64, mode as u64]);
    let r = call(libc::SYS_openat, args, 0, 0, |_| {
        if opening_cannot_wait(flags) || stat_cache::cannot_wait(dirfd, path) {
            return Outcome::Done(untraced(libc::SYS_openat, args), 0);
        }
        if let Some(fd) = open_for_writing_without_waiting(dirfd, path, flags, mode) {
            return fd;
        }
        let mut st = core::mem::MaybeUninit::<libc::stat>::uninit();
        let s = untraced(
            libc::SYS_newfstatat,
            a(&[dirfd as u64, path as u64, st.as_mut_ptr() as u64, 0]),
        );
        if s == 0 && !never_waits(st.assume_init().st_mode & libc::S_IFMT) {
            return Outcome::Fallback;
        }
        Outcome::Done(untraced(libc::SYS_openat, args), 0)
    });
    libc_result(r) as c_int
}

/// Opens that cannot wait for the other end of a FIFO or a device,
/// whatever the path names (so no stat first): of a directory, of a path
/// only, non-blocking ones, and those that must create a new file.
fn opening_cannot_wait(flags: c_int) -> bool {
    flags & (libc::O_DIRECTORY | libc::O_PATH | libc::O_NONBLOCK) != 0
        || flags & libc::O_TMPFILE == libc::O_TMPFILE
        || flags & (libc::O_CREAT | libc::O_EXCL) == libc::O_CREAT | libc::O_EXCL
}

/// Opens for writing (`O_WRONLY`, `O_RDWR`) with `O_NONBLOCK` added, then
/// clears it: one path walk instead of the stat-then-open's two, the
/// largest part of what an untraced open cost. A FIFO without a reader
/// then fails with `ENXIO` instead of waiting (and the call goes traced,
/// having done nothing); with a reader, the blocking open would not have
/// waited either; a file with a conflicting lease gives `EAGAIN` (traced,
/// where the open waits for the lease). Read-only opens keep the stat: a
/// non-blocking open of a FIFO for reading succeeds where the program's
/// would wait for a writer, and undoing it would be seen by the writer.
/// `None`: not applicable to these flags.
unsafe fn open_for_writing_without_waiting(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> Option<Outcome> {
    // O_ASYNC is ignored by open but not by F_SETFL, and O_DIRECT changes
    // what a FIFO is: those keep the stat.
    let writes = matches!(flags & libc::O_ACCMODE, libc::O_WRONLY | libc::O_RDWR);
    if !writes || flags & (libc::O_ASYNC | libc::O_DIRECT) != 0 {
        return None;
    }
    let nonblocking = flags | libc::O_NONBLOCK;
    let args = a(&[dirfd as u64, path as u64, nonblocking as u64, mode as u64]);
    let fd = untraced(libc::SYS_openat, args);
    if fd == -(libc::ENXIO as i64) || fd == -(libc::EAGAIN as i64) {
        return Some(Outcome::Fallback);
    }
    if fd >= 0 {
        // The status flags the program asked for (F_SETFL changes only
        // O_APPEND, O_ASYNC, O_DIRECT, O_NOATIME and O_NONBLOCK).
        untraced(
            libc::SYS_fcntl,
            a(&[fd as u64, libc::F_SETFL as u64, flags as u64]),
        );
    }
    Some(Outcome::Done(fd, 0))
}

pub unsafe extern "C" fn openat64(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    openat(dirfd, path, flags, mode)
}

pub unsafe extern "C" fn __openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    openat(dirfd, path, flags, 0)
}

pub unsafe extern "C" fn __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    openat(dirfd, path, flags, 0)
}

pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    openat(libc::AT_FDCWD, path, flags, mode)
}

pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    openat(libc::AT_FDCWD, path, flags, mode)
}

pub unsafe extern "C" fn __open_2(path: *const c_char, flags: c_int) -> c_int {
    openat(libc::AT_FDCWD, path, flags, 0)
}

pub unsafe extern "C" fn __open64_2(path: *const c_char, flags: c_int) -> c_int {
    openat(libc::AT_FDCWD, path, flags, 0)
}

/// Result-only syscalls that never wait: buffered as they are.
unsafe fn simple(nr: i64, args: [u64; 6]) -> i64 {
    call(nr, args, 0, 0, |_| Outcome::Done(untraced(nr, args), 0))
}

pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    libc_result(simple(libc::SYS_close, a(&[fd as u64]))) as c_int
}

pub unsafe extern "C" fn __close(fd: c_int) -> c_int {
    close(fd)
}

/// mkdirat: result-only, and it never waits for another program. It
/// changes nothing the stat cache holds: it makes a name that did not
/// exist, and fails on one that does (`cp -r` makes a directory per
/// directory it copies; traced, each was a stop and ended a stretch).
pub unsafe extern "C" fn mkdirat(dirfd: c_int, path: *const c_char, mode: c_uint) -> c_int {
    let args = a(&[dirfd as u64, path as u64, mode as u64]);
    libc_result(simple(libc::SYS_mkdirat, args)) as c_int
}

/// mkdir: as mkdirat (libc makes it the older syscall).
pub unsafe extern "C" fn mkdir(path: *const c_char, mode: c_uint) -> c_int {
    let args = a(&[path as u64, mode as u64]);
    libc_result(simple(libc::SYS_mkdir, args)) as c_int
}

// --- file status ----------------------------------------------------------

/// A syscall that writes one fixed-size structure at `dest` (argument
/// `dest_arg`) when it succeeds.
unsafe fn fills(nr: i64, args: [u64; 6], dest_arg: usize, size: usize) -> i64 {
    writes(
        nr,
        args,
        dest_arg,
        size,
        |r, _| if r == 0 { size } else { 0 },
    )
}

/// A call that writes up to `n` bytes (its result) at argument `buf_arg`.
unsafe fn fills_result(nr: i64, args: [u64; 6], buf_arg: usize, n: usize) -> i64 {
    writes(nr, args, buf_arg, n, |r, _| r.max(0) as usize)
}

/// A syscall that writes up to `max` bytes at argument `dest_arg` into the
/// program's memory: the kernel writes into the record instead, `kept`
/// says how many of those bytes the result covers (given the result and
/// the bytes; record only), the wrapper copies them.
unsafe fn writes(
    nr: i64,
    args: [u64; 6],
    dest_arg: usize,
    max: usize,
    kept: impl FnOnce(i64, *const u8) -> usize,
) -> i64 {
    let dest = args[dest_arg];
    if dest == 0 || max == 0 {
        return simple(nr, args);
    }
    call(nr, args, dest, max, |data| {
        let mut real = args;
        real[dest_arg] = data as u64;
        let r = untraced(nr, real);
        Outcome::Done(r, kept(r, data))
    })
}

pub unsafe extern "C" fn fstatat(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut libc::stat,
    flags: c_int,
) -> c_int {
    let args = a(&[dirfd as u64, path as u64, buf as u64, flags as u64]);
    let r = writes(libc::SYS_newfstatat, args, 2, STAT_SIZE, |r, st| {
        if r != 0 {
            return 0;
        }
        let mode = core::mem::offset_of!(libc::stat, st_mode);
        if never_waits(core::ptr::read_volatile(st.add(mode) as *const u32) & libc::S_IFMT) {
            stat_cache::remember(dirfd, path);
        }
        STAT_SIZE
    });
    libc_result(r) as c_int
}

pub unsafe extern "C" fn fstatat64(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut libc::stat,
    flags: c_int,
) -> c_int {
    fstatat(dirfd, path, buf, flags)
}

pub unsafe extern "C" fn stat(path: *const c_char, buf: *mut libc::stat) -> c_int {
    fstatat(libc::AT_FDCWD, path, buf, 0)
}

pub unsafe extern "C" fn stat64(path: *const c_char, buf: *mut libc::stat) -> c_int {
    fstatat(libc::AT_FDCWD, path, buf, 0)
}

pub unsafe extern "C" fn lstat(path: *const c_char, buf: *mut libc::stat) -> c_int {
    fstatat(libc::AT_FDCWD, path, buf, libc::AT_SYMLINK_NOFOLLOW)
}

pub unsafe extern "C" fn lstat64(path: *const c_char, buf: *mut libc::stat) -> c_int {
    lstat(path, buf)
}

pub unsafe extern "C" fn fstat(fd: c_int, buf: *mut libc::stat) -> c_int {
    let args = a(&[fd as u64, buf as u64]);
    libc_result(fills(libc::SYS_fstat, args, 1, STAT_SIZE)) as c_int
}

pub unsafe extern "C" fn fstat64(fd: c_int, buf: *mut libc::stat) -> c_int {
    fstat(fd, buf)
}

pub unsafe extern "C" fn statx(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: c_uint,
    buf: *mut c_void,
) -> c_int {
    let args = a(&[
        dirfd as u64,
        path as u64,
        flags as u64,
        mask as u64,
        buf as u64,
    ]);
    let r = writes(libc::SYS_statx, args, 4, STATX_SIZE, |r, stx| {
        if r != 0 {
            return 0;
        }
        let got = core::ptr::read_volatile(stx as *const u32); // stx_mask
        let mode = core::ptr::read_volatile(stx.add(STATX_MODE) as *const u16) as u32;
        if got & libc::STATX_TYPE != 0 && never_waits(mode & libc::S_IFMT) {
            stat_cache::remember(dirfd, path);
        }
        STATX_SIZE
    });
    libc_result(r) as c_int
}

pub unsafe extern "C" fn access(path: *const c_char, mode: c_int) -> c_int {
    libc_result(simple(libc::SYS_access, a(&[path as u64, mode as u64]))) as c_int
}

pub unsafe extern "C" fn faccessat(
    dirfd: c_int,
    path: *const c_char,
    mode: c_int,
    flags: c_int,
) -> c_int {
    let args = a(&[dirfd as u64, path as u64, mode as u64, flags as u64]);
    let nr = if flags == 0 {
        libc::SYS_faccessat
    } else {
        libc::SYS_faccessat2
    };
    libc_result(simple(nr, args)) as c_int
}

pub unsafe extern "C" fn readlinkat(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut c_char,
    n: SizeT,
) -> SsizeT {
    let args = a(&[dirfd as u64, path as u64, buf as u64, n as u64]);
    libc_result(fills_result(libc::SYS_readlinkat, args, 2, n)) as SsizeT
}

pub unsafe extern "C" fn readlink(path: *const c_char, buf: *mut c_char, n: SizeT) -> SsizeT {
    readlinkat(libc::AT_FDCWD, path, buf, n)
}

pub unsafe extern "C" fn lseek(fd: c_int, off: OffT, whence: c_int) -> OffT {
    libc_result(simple(
        libc::SYS_lseek,
        a(&[fd as u64, off as u64, whence as u64]),
    ))
}

pub unsafe extern "C" fn lseek64(fd: c_int, off: OffT, whence: c_int) -> OffT {
    lseek(fd, off, whence)
}

pub unsafe extern "C" fn getdents64(fd: c_int, buf: *mut c_void, n: SizeT) -> SsizeT {
    let args = a(&[fd as u64, buf as u64, n as u64]);
    libc_result(fills_result(libc::SYS_getdents64, args, 1, n)) as SsizeT
}

// --- extended attributes (`ls -l` asks for ACLs and labels of each file) --

/// The xattr readers: (target, name, value, size) writing the value, and
/// (target, list, size) writing the names; both return the bytes written.
macro_rules! xattr_readers {
    ($(get $get:ident($gt:ident: $gty:ty) = $gnr:ident;)* $(list $list:ident($lt:ident: $lty:ty) = $lnr:ident;)*) => {
        $(
            pub unsafe extern "C" fn $get(
                $gt: $gty,
                name: *const c_char,
                value: *mut c_void,
                size: SizeT,
            ) -> SsizeT {
                let args = a(&[$gt as u64, name as u64, value as u64, size as u64]);
                libc_result(fills_result(libc::$gnr, args, 2, size)) as SsizeT
            }
        )*
        $(
            pub unsafe extern "C" fn $list($lt: $lty, list: *mut c_char, size: SizeT) -> SsizeT {
                let args = a(&[$lt as u64, list as u64, size as u64]);
                libc_result(fills_result(libc::$lnr, args, 1, size)) as SsizeT
            }
        )*
    };
}

xattr_readers! {
    get getxattr(path: *const c_char) = SYS_getxattr;
    get lgetxattr(path: *const c_char) = SYS_lgetxattr;
    get fgetxattr(fd: c_int) = SYS_fgetxattr;
    list listxattr(path: *const c_char) = SYS_listxattr;
    list llistxattr(path: *const c_char) = SYS_llistxattr;
    list flistxattr(fd: c_int) = SYS_flistxattr;
}

// --- copying --------------------------------------------------------------

/// copy_file_range without offsets (with them it updates the program's
/// offsets in place: traced).
pub unsafe extern "C" fn copy_file_range(
    fd_in: c_int,
    off_in: *mut OffT,
    fd_out: c_int,
    off_out: *mut OffT,
    len: SizeT,
    flags: c_uint,
) -> SsizeT {
    let args = a(&[
        fd_in as u64,
        off_in as u64,
        fd_out as u64,
        off_out as u64,
        len as u64,
        flags as u64,
    ]);
    let nr = libc::SYS_copy_file_range;
    let r = if off_in.is_null() && off_out.is_null() {
        simple(nr, args)
    } else {
        traced(nr, args)
    };
    libc_result(r) as SsizeT
}

/// posix_fadvise returns the error number rather than setting errno.
pub unsafe extern "C" fn posix_fadvise(fd: c_int, off: OffT, len: OffT, advice: c_int) -> c_int {
    let r = simple(
        libc::SYS_fadvise64,
        a(&[fd as u64, off as u64, len as u64, advice as u64]),
    );
    if r < 0 {
        -r as c_int
    } else {
        0
    }
}

pub unsafe extern "C" fn posix_fadvise64(fd: c_int, off: OffT, len: OffT, advice: c_int) -> c_int {
    posix_fadvise(fd, off, len, advice)
}

/// ioctl: FICLONE (what `cp` tries first) is result-only; every other
/// request stays traced, where rrpipe knows what it writes.
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: c_ulong) -> c_int {
    let args = a(&[fd as u64, request, arg]);
    let r = if request == FICLONE {
        simple(libc::SYS_ioctl, args)
    } else {
        traced(libc::SYS_ioctl, args)
    };
    libc_result(r) as c_int
}

/// fcntl: the descriptor-flag and duplication commands are result-only;
/// locks and the rest stay traced.
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    let args = a(&[fd as u64, cmd as u64, arg]);
    let r = match cmd {
        libc::F_GETFD
        | libc::F_SETFD
        | libc::F_GETFL
        | libc::F_SETFL
        | libc::F_DUPFD
        | libc::F_DUPFD_CLOEXEC => simple(libc::SYS_fcntl, args),
        _ => traced(libc::SYS_fcntl, args),
    };
    libc_result(r) as c_int
}

pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    fcntl(fd, cmd, arg)
}

// --- time and identity ----------------------------------------------------

pub unsafe extern "C" fn clock_gettime(clock: libc::clockid_t, ts: *mut libc::timespec) -> c_int {
    let args = a(&[clock as u64, ts as u64]);
    libc_result(fills(libc::SYS_clock_gettime, args, 1, TIMESPEC_SIZE)) as c_int
}

pub unsafe extern "C" fn __clock_gettime(clock: libc::clockid_t, ts: *mut libc::timespec) -> c_int {
    clock_gettime(clock, ts)
}

pub unsafe extern "C" fn gettimeofday(tv: *mut libc::timeval, tz: *mut c_void) -> c_int {
    let args = a(&[tv as u64, tz as u64]);
    let r = if tz.is_null() {
        fills(libc::SYS_gettimeofday, args, 0, 16)
    } else {
        traced(libc::SYS_gettimeofday, args)
    };
    libc_result(r) as c_int
}

pub unsafe extern "C" fn time(t: *mut libc::time_t) -> libc::time_t {
    let r = simple(libc::SYS_time, a(&[0]));
    if r >= 0 && !t.is_null() {
        *t = r;
    }
    libc_result(r) as libc::time_t
}

macro_rules! identity {
    ($($name:ident => $nr:ident),* $(,)?) => {$(
                pub unsafe extern "C" fn $name() -> c_long {
            simple(libc::$nr, [0; 6]) as c_long
        }
    )*};
}

identity! {
    getpid => SYS_getpid,
    getppid => SYS_getppid,
    getuid => SYS_getuid,
    geteuid => SYS_geteuid,
    getgid => SYS_getgid,
    getegid => SYS_getegid,
}

// --- signal dispositions ----------------------------------------------------

extern "C" {
    /// libc's own `sigaction` (this library's replaces the `sigaction`
    /// name only).
    fn __sigaction(sig: c_int, act: *const libc::sigaction, oact: *mut libc::sigaction) -> c_int;
}

/// The kernel's `struct sigaction`, which `rt_sigaction` reads and writes.
#[repr(C)]
struct KernelSigaction {
    handler: u64,
    flags: u64,
    restorer: u64,
    mask: u64,
}

/// glibc's internal signals (`SIGCANCEL`, `SIGSETXID`), which its
/// `sigaction` refuses.
const GLIBC_INTERNAL: [c_int; 2] = [32, 33];

/// sigaction: queries (`act` NULL; Python asks about every signal at
/// start-up) are buffered, with libc's conversion from the kernel's
/// structure and libc's errors; changes go to libc's, which adds its
/// signal return trampoline, traced.
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    oact: *mut libc::sigaction,
) -> c_int {
    if !act.is_null() {
        return __sigaction(sig, act, oact);
    }
    if sig <= 0 || sig > 64 || GLIBC_INTERNAL.contains(&sig) {
        crate::syscall::set_errno(libc::EINVAL);
        return -1;
    }
    let mut k = core::mem::MaybeUninit::<KernelSigaction>::uninit();
    let dest = if oact.is_null() {
        0
    } else {
        k.as_mut_ptr() as u64
    };
    let args = a(&[sig as u64, 0, dest, 8]);
    let r = fills(
        libc::SYS_rt_sigaction,
        args,
        2,
        core::mem::size_of::<KernelSigaction>(),
    );
    if r == 0 && !oact.is_null() {
        let k = k.assume_init();
        (*oact).sa_sigaction = k.handler as libc::sighandler_t;
        // libc copies a whole `sigset_t` from its own structure, of which
        // the kernel wrote 8 bytes (the rest is what its stack held,
        // mostly zeros): zeros here.
        let mask = core::ptr::addr_of_mut!((*oact).sa_mask) as *mut u64;
        for i in 0..core::mem::size_of::<libc::sigset_t>() / 8 {
            core::ptr::write_unaligned(mask.add(i), if i == 0 { k.mask } else { 0 });
        }
        (*oact).sa_flags = k.flags as c_int;
        (*oact).sa_restorer = core::mem::transmute::<u64, Option<extern "C" fn()>>(k.restorer);
    }
    libc_result(r) as c_int
}
