//! Directory streams (`opendir`, `readdir`, ...) built on this library's
//! buffered `openat`, `getdents64`, `lseek` and `close`.
//!
//! libc's own directory functions make their syscalls from inside libc,
//! where no preloaded wrapper sees them: every `opendir` was an open, a
//! stat, two or more getdents and a close, each traced. `ls -laR` of a
//! documentation tree made 4,000 of them; a recursive copy a hundred per
//! twenty directories. A `DIR` here is this library's own structure, so
//! every directory function a program can reach is defined here, and libc
//! never sees one of these streams (libc's internal users, `scandir`,
//! `glob`, `nftw`, open their own).
//!
//! Layouts and behaviour follow glibc: on x86_64 `struct dirent` is
//! `struct dirent64` (the kernel's `linux_dirent64`), entries are handed
//! out in place in the stream's buffer, `telldir` is the offset the last
//! entry returned gave (its `d_off`), and the end of a directory leaves
//! `errno` as it was. Like glibc's, a stream is not meant to be read by two
//! threads at once.

use core::ffi::{c_char, c_int, c_long};
use core::ptr;

use crate::calls::{close, fcntl, fstat, getdents64, lseek, openat};
use crate::syscall::{errno, set_errno};

/// Bytes of directory entries read at once (glibc reads 32 KiB too).
const BUF: usize = 32 * 1024;

/// What a `DIR *` points to.
#[repr(C, align(8))]
pub struct Dir {
    fd: c_int,
    /// Bytes of entries in `buf`.
    len: usize,
    /// Offset of the next entry in `buf`.
    at: usize,
    /// `d_off` of the last entry returned.
    pos: c_long,
    buf: [u8; BUF],
}

/// Offsets in a `linux_dirent64`: d_ino u64, d_off i64, d_reclen u16,
/// d_type u8, d_name.
const D_OFF: usize = 8;
const D_RECLEN: usize = 16;

std::thread_local! {
    /// A stream's memory kept from a failed `opendir` for the next one.
    static SPARE: core::cell::Cell<*mut Dir> = const { core::cell::Cell::new(ptr::null_mut()) };
}

/// Memory for a stream. Taken first thing, before any wrapped call: the
/// allocator may make traced syscalls (`brk`, `mmap`, `getrandom`), whose
/// registers rrpipe compares between record and replay, and a wrapped call
/// leaves different values in registers in the two (record made the
/// syscall, replay read its record). For the same reason a failed open
/// keeps the memory for the next stream instead of freeing it.
unsafe fn allocate() -> *mut Dir {
    let spare = SPARE.with(|s| s.replace(ptr::null_mut()));
    if !spare.is_null() {
        return spare;
    }
    libc::malloc(core::mem::size_of::<Dir>()).cast::<Dir>()
}

/// `d` (from `allocate`) was not needed: kept for the next stream.
unsafe fn keep(d: *mut Dir) {
    let old = SPARE.with(|s| s.replace(d));
    if !old.is_null() {
        // Never: one spare at a time, taken before each new stream.
        libc::free(old.cast());
    }
}

/// Makes `d` (from `allocate`) a stream of `fd`.
unsafe fn start(d: *mut Dir, fd: c_int) -> *mut Dir {
    ptr::addr_of_mut!((*d).fd).write(fd);
    ptr::addr_of_mut!((*d).len).write(0);
    ptr::addr_of_mut!((*d).at).write(0);
    ptr::addr_of_mut!((*d).pos).write(0);
    d
}

pub unsafe extern "C" fn opendir(name: *const c_char) -> *mut Dir {
    let d = allocate();
    if d.is_null() {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    }
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_DIRECTORY | libc::O_CLOEXEC;
    let fd = openat(libc::AT_FDCWD, name, flags, 0);
    if fd < 0 {
        keep(d);
        return ptr::null_mut();
    }
    start(d, fd)
}

/// A stream for an open descriptor, which must be a directory not open
/// for writing only (glibc's checks: ENOTDIR, EINVAL).
pub unsafe extern "C" fn fdopendir(fd: c_int) -> *mut Dir {
    let d = allocate();
    if d.is_null() {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    }
    let mut st = core::mem::MaybeUninit::<libc::stat>::uninit();
    if fstat(fd, st.as_mut_ptr()) < 0 {
        keep(d);
        return ptr::null_mut();
    }
    if st.assume_init().st_mode & libc::S_IFMT != libc::S_IFDIR {
        keep(d);
        set_errno(libc::ENOTDIR);
        return ptr::null_mut();
    }
    let flags = fcntl(fd, libc::F_GETFL, 0);
    if flags < 0 || flags & libc::O_ACCMODE == libc::O_WRONLY {
        keep(d);
        if flags >= 0 {
            set_errno(libc::EINVAL);
        }
        return ptr::null_mut();
    }
    start(d, fd)
}

/// The next entry, in place in the stream's buffer; null at the end
/// (errno untouched) or on an error (errno set).
unsafe fn next(d: *mut Dir) -> *mut u8 {
    let d = &mut *d;
    if d.at >= d.len {
        let n = getdents64(d.fd, d.buf.as_mut_ptr().cast(), BUF);
        if n <= 0 {
            return ptr::null_mut();
        }
        d.len = n as usize;
        d.at = 0;
    }
    if d.at + D_RECLEN + 2 > d.len {
        // A torn entry (only a corrupt trace in replay could give one).
        d.at = d.len;
        return ptr::null_mut();
    }
    let entry = d.buf.as_mut_ptr().add(d.at);
    let reclen = u16::from_ne_bytes([d.buf[d.at + D_RECLEN], d.buf[d.at + D_RECLEN + 1]]);
    let mut off = [0u8; 8];
    off.copy_from_slice(&d.buf[d.at + D_OFF..d.at + D_OFF + 8]);
    d.pos = i64::from_ne_bytes(off);
    d.at += (reclen as usize).max(1);
    entry
}

pub unsafe extern "C" fn readdir(d: *mut Dir) -> *mut libc::dirent {
    next(d).cast()
}

pub unsafe extern "C" fn readdir64(d: *mut Dir) -> *mut libc::dirent64 {
    next(d).cast()
}

/// The deprecated reentrant form: the entry is copied into `entry`.
pub unsafe extern "C" fn readdir_r(
    d: *mut Dir,
    entry: *mut libc::dirent,
    result: *mut *mut libc::dirent,
) -> c_int {
    let saved = errno();
    set_errno(0);
    let e = next(d);
    if e.is_null() {
        let err = errno();
        set_errno(saved);
        *result = ptr::null_mut();
        return err;
    }
    set_errno(saved);
    let reclen = u16::from_ne_bytes([*e.add(D_RECLEN), *e.add(D_RECLEN + 1)]) as usize;
    let n = reclen.min(core::mem::size_of::<libc::dirent>());
    ptr::copy_nonoverlapping(e, entry.cast::<u8>(), n);
    *result = entry;
    0
}

pub unsafe extern "C" fn readdir64_r(
    d: *mut Dir,
    entry: *mut libc::dirent64,
    result: *mut *mut libc::dirent64,
) -> c_int {
    readdir_r(d, entry.cast(), result.cast())
}

pub unsafe extern "C" fn closedir(d: *mut Dir) -> c_int {
    if d.is_null() {
        set_errno(libc::EINVAL);
        return -1;
    }
    // Freed before the wrapped close (see `allocate`).
    let fd = (*d).fd;
    libc::free(d.cast());
    close(fd)
}

pub unsafe extern "C" fn dirfd(d: *mut Dir) -> c_int {
    (*d).fd
}

pub unsafe extern "C" fn rewinddir(d: *mut Dir) {
    seekdir(d, 0);
}

pub unsafe extern "C" fn seekdir(d: *mut Dir, pos: c_long) {
    // Like glibc: no error is reported; errno is left as it was.
    let saved = errno();
    if lseek((*d).fd, pos, libc::SEEK_SET) >= 0 {
        (*d).len = 0;
        (*d).at = 0;
        (*d).pos = pos;
    }
    set_errno(saved);
}

pub unsafe extern "C" fn telldir(d: *mut Dir) -> c_long {
    (*d).pos
}
