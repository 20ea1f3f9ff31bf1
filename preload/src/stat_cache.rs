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
//! symlink, chdir, ...) is traced (`mkdir`, buffered, only makes a name
//! that did not exist), and the tracer starts a new stretch
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
//! (see `syscall::differ`): the loops below write and compare the cache
//! through volatile accesses, which the compiler cannot turn into `memcpy`
//! or `bcmp` calls, and read the program's path a word at a time.

use core::ffi::{c_char, c_int};
use core::ptr::{read_volatile, write_volatile};

use rrpipe_syscallbuf as abi;

use crate::syscall::current_buffer;

/// Longest path kept (longer ones are stat'ed again), in 8-byte words.
const PATH_WORDS: usize = 30;
const PATH_MAX: usize = PATH_WORDS * 8;
const ENTRIES: usize = 8;

#[repr(C)]
struct Entry {
    stretch: u32,
    /// 0: empty.
    len: u32,
    /// [`Key::hash`]: most entries differ from a path of the same length
    /// (`cp -r`'s all have one) only in their last bytes.
    hash: u64,
    /// The path, a word at a time (the last word zero-padded).
    path: [u64; PATH_WORDS],
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

/// A path as the cache compares it.
struct Key {
    path: *const u8,
    len: usize,
    /// The length and the last eight bytes (or all of them): the same for
    /// the same path wherever it lies in memory.
    hash: u64,
}

impl Key {
    /// `path` if it can be kept: not empty, not too long, and not relative
    /// to a directory descriptor. The scan reads aligned words (which
    /// never cross into the next page), not bytes: cp -r's paths made
    /// byte loops a third of the library's time.
    unsafe fn of(dirfd: c_int, path: *const c_char) -> Option<Key> {
        if path.is_null() {
            return None;
        }
        let p = path as *const u8;
        let len = word_strlen(p, PATH_MAX)?;
        let absolute = len > 0 && read_volatile(p) == b'/';
        if len == 0 || !(absolute || dirfd == libc::AT_FDCWD) {
            return None;
        }
        let tail = if len >= 8 {
            core::ptr::read_unaligned(p.add(len - 8) as *const u64)
        } else {
            word_at(p, 0, len)
        };
        Some(Key {
            path: p,
            len,
            hash: tail ^ (len as u64).rotate_left(56),
        })
    }

    /// Word `i` of the path, zero-padded past its end.
    unsafe fn word(&self, i: usize) -> u64 {
        let at = i * 8;
        if at + 8 <= self.len {
            core::ptr::read_unaligned(self.path.add(at) as *const u64)
        } else {
            word_at(self.path, at, self.len)
        }
    }

    fn words(&self) -> usize {
        self.len.div_ceil(8)
    }
}

/// The bytes `[at, min(at + 8, len))` of `p` as a little-endian word,
/// zero-padded.
unsafe fn word_at(p: *const u8, at: usize, len: usize) -> u64 {
    let mut w = 0u64;
    for k in 0..(len - at).min(8) {
        w |= (read_volatile(p.add(at + k)) as u64) << (8 * k);
    }
    w
}

/// The length of the NUL-terminated string at `p`, if under `max`.
unsafe fn word_strlen(p: *const u8, max: usize) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let start = p as usize;
    let mut at = start & !7;
    // Bytes before the string in its first word count as non-zero.
    let before = start - at;
    let mut w = read_volatile(at as *const u64) | ((1u64 << (8 * before)) - 1);
    loop {
        let zeros = w.wrapping_sub(LOW) & !w & HIGH;
        if zeros != 0 {
            let len = at + (zeros.trailing_zeros() / 8) as usize - start;
            return (len <= max).then_some(len);
        }
        at += 8;
        if at - start > max {
            return None;
        }
        w = read_volatile(at as *const u64);
    }
}

/// Notes that `path` (relative to `dirfd`) named a file whose open cannot
/// wait, as a stat of it just found.
pub unsafe fn remember(dirfd: c_int, path: *const c_char) {
    let (Some(key), Some((cache, stretch))) = (Key::of(dirfd, path), cache()) else {
        return;
    };
    let next = read_volatile(core::ptr::addr_of!((*cache).next));
    let e = core::ptr::addr_of_mut!((*cache).entries[next as usize % ENTRIES]);
    let dst = core::ptr::addr_of_mut!((*e).path) as *mut u64;
    for i in 0..key.words() {
        write_volatile(dst.add(i), key.word(i));
    }
    write_volatile(core::ptr::addr_of_mut!((*e).len), key.len as u32);
    write_volatile(core::ptr::addr_of_mut!((*e).hash), key.hash);
    write_volatile(core::ptr::addr_of_mut!((*e).stretch), stretch);
    write_volatile(core::ptr::addr_of_mut!((*cache).next), next.wrapping_add(1));
}

/// Whether a stat in this stretch found that `path` (relative to `dirfd`)
/// names a file whose open cannot wait.
pub unsafe fn cannot_wait(dirfd: c_int, path: *const c_char) -> bool {
    let (Some(key), Some((cache, stretch))) = (Key::of(dirfd, path), cache()) else {
        return false;
    };
    (0..ENTRIES).any(|i| {
        let e = core::ptr::addr_of!((*cache).entries[i]);
        read_volatile(core::ptr::addr_of!((*e).hash)) == key.hash
            && read_volatile(core::ptr::addr_of!((*e).len)) as usize == key.len
            && read_volatile(core::ptr::addr_of!((*e).stretch)) == stretch
            && (0..key.words()).all(|k| {
                read_volatile((core::ptr::addr_of!((*e).path) as *const u64).add(k)) == key.word(k)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_same_wherever_the_path_lies() {
        let paths: [&[u8]; 4] = [
            b"/a",
            b"/dev/shm/cpb/dst/d04/f058",
            b"relative/path/1234",
            b"/x",
        ];
        for path in paths {
            let mut keys = Vec::new();
            for offset in 0..16 {
                // A 16-aligned buffer, the path at `offset`, then NUL and junk.
                let mut buf = [0x55u64; 8];
                let bytes = buf.as_mut_ptr() as *mut u8;
                // SAFETY: within `buf` (64 bytes).
                let key = unsafe {
                    core::ptr::copy_nonoverlapping(path.as_ptr(), bytes.add(offset), path.len());
                    *bytes.add(offset + path.len()) = 0;
                    assert_eq!(word_strlen(bytes.add(offset), PATH_MAX), Some(path.len()));
                    let key = Key::of(libc::AT_FDCWD, bytes.add(offset) as *const c_char).unwrap();
                    (
                        key.hash,
                        key.len,
                        (0..key.words()).map(|i| key.word(i)).collect::<Vec<_>>(),
                    )
                };
                keys.push(key);
            }
            assert!(
                keys.windows(2).all(|w| w[0] == w[1]),
                "{:?}",
                String::from_utf8_lossy(path)
            );
        }
    }

    #[test]
    fn long_and_relative_to_a_directory_are_not_kept() {
        let long = [b'a'; PATH_MAX + 8];
        let mut buf = long.to_vec();
        buf.push(0);
        // SAFETY: NUL-terminated buffers.
        unsafe {
            assert!(Key::of(libc::AT_FDCWD, buf.as_ptr() as *const c_char).is_none());
            assert!(Key::of(3, c"rel".as_ptr()).is_none());
            assert!(Key::of(3, c"/abs".as_ptr()).is_some());
            assert!(Key::of(libc::AT_FDCWD, c"".as_ptr()).is_none());
        }
    }
}
