//! Record only: the paths this thread's buffered stats found to name a
//! regular file, a directory or a block device, in its current stretch of
//! buffered calls, so that a read-only open of one of them goes untraced
//! without the stat that otherwise rules out a FIFO (whose open would wait
//! for a writer). Programs that copy or read many files stat each one just
//! before opening it (`cp`: `lstat`, then `open(O_NOFOLLOW)`), and that
//! second path walk was a third of what a buffered open cost.
//!
//! What the library knows holds for one stretch: every syscall of the
//! program that could change what a path names (rename, unlink, mknod,
//! symlink, chdir, ...) is traced, and the tracer starts a new stretch
//! (`Header::stretch`) at each stop after a buffered call. Only absolute
//! paths and paths relative to the working directory are kept: a
//! directory descriptor could be closed and its number reused without a
//! stop. Another process could still swap a FIFO in between the program's
//! stat and its open; the open would then wait untraced, as the program's
//! own check-then-open already races.
//!
//! The cache lives at the bottom of the thread's mapping
//! ([`abi::STAT_CACHE_SIZE`]), which replay never writes and memory
//! comparisons leave out. Like all record-only code it calls no libc
//! (see `syscall::differ`): the loops below read and write through
//! volatile accesses, which the compiler cannot turn into `memcpy` or
//! `bcmp` calls.

use core::ffi::{c_char, c_int};
use core::ptr::{read_volatile, write_volatile};

use rrpipe_syscallbuf as abi;

use crate::syscall::current_buffer;

/// Longest path kept (longer ones are stat'ed again).
const PATH_MAX: usize = 240;
const ENTRIES: usize = 8;

#[repr(C)]
struct Entry {
    stretch: u32,
    /// 0: empty.
    len: u32,
    /// [`keyable`]'s hash of the path: most entries differ from a path of
    /// the same length (`cp -r`'s all have one) only in their last bytes.
    hash: u32,
    path: [u8; PATH_MAX],
}

#[repr(C)]
struct Cache {
    /// The entry to replace next.
    next: u32,
    reserved: u32,
    entries: [Entry; ENTRIES],
}

const _: () = assert!(core::mem::size_of::<Cache>() <= abi::STAT_CACHE_SIZE);

/// This thread's cache and the current stretch.
unsafe fn cache() -> Option<(*mut Cache, u32)> {
    let buf = current_buffer()?;
    let header = buf as *const abi::Header;
    let stretch = read_volatile(core::ptr::addr_of!((*header).stretch));
    Some((buf.sub(abi::STACK_SIZE) as *mut Cache, stretch))
}

/// The length and hash (FNV-1a) of `path` if it can be kept: not empty,
/// not too long, and not relative to a directory descriptor.
unsafe fn keyable(dirfd: c_int, path: *const c_char) -> Option<(usize, u32)> {
    if path.is_null() {
        return None;
    }
    let p = path as *const u8;
    let mut len = 0;
    let mut hash = 0x811c_9dc5u32;
    loop {
        let byte = read_volatile(p.add(len));
        if byte == 0 {
            break;
        }
        hash = (hash ^ byte as u32).wrapping_mul(0x0100_0193);
        len += 1;
        if len > PATH_MAX {
            return None;
        }
    }
    let absolute = len > 0 && read_volatile(p) == b'/';
    (len > 0 && (absolute || dirfd == libc::AT_FDCWD)).then_some((len, hash))
}

/// Notes that `path` (relative to `dirfd`) named a file whose open cannot
/// wait, as a stat of it just found.
pub unsafe fn remember(dirfd: c_int, path: *const c_char) {
    let (Some((len, hash)), Some((cache, stretch))) = (keyable(dirfd, path), cache()) else {
        return;
    };
    let next = read_volatile(core::ptr::addr_of!((*cache).next));
    let e = core::ptr::addr_of_mut!((*cache).entries[next as usize % ENTRIES]);
    let src = path as *const u8;
    let dst = core::ptr::addr_of_mut!((*e).path) as *mut u8;
    for i in 0..len {
        write_volatile(dst.add(i), read_volatile(src.add(i)));
    }
    write_volatile(core::ptr::addr_of_mut!((*e).len), len as u32);
    write_volatile(core::ptr::addr_of_mut!((*e).hash), hash);
    write_volatile(core::ptr::addr_of_mut!((*e).stretch), stretch);
    write_volatile(core::ptr::addr_of_mut!((*cache).next), next.wrapping_add(1));
}

/// Whether a stat in this stretch found that `path` (relative to `dirfd`)
/// names a file whose open cannot wait.
pub unsafe fn cannot_wait(dirfd: c_int, path: *const c_char) -> bool {
    let (Some((len, hash)), Some((cache, stretch))) = (keyable(dirfd, path), cache()) else {
        return false;
    };
    let p = path as *const u8;
    (0..ENTRIES).any(|i| {
        let e = core::ptr::addr_of!((*cache).entries[i]);
        read_volatile(core::ptr::addr_of!((*e).hash)) == hash
            && read_volatile(core::ptr::addr_of!((*e).len)) as usize == len
            && read_volatile(core::ptr::addr_of!((*e).stretch)) == stretch
            && (0..len).all(|k| {
                read_volatile((core::ptr::addr_of!((*e).path) as *const u8).add(k))
                    == read_volatile(p.add(k))
            })
    })
}
