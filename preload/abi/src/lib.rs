//! The contract between rrpipe's tracer and its preload library
//! (`librrpipe_preload.so`): where the untraced syscall instruction is,
//! the private syscalls the library makes, and the layout of each thread's
//! syscall buffer. Both sides compile this one file, so they cannot
//! disagree; nothing here may allocate or panic (the library runs inside
//! any program, in signal handlers too).
//!
//! # Protocol
//!
//! Every thread that makes a buffered call gets a buffer (an anonymous
//! mapping it creates with an ordinary, traced `mmap`) and announces it
//! with the traced syscall [`SYS_REGISTER_BUFFER`]. A buffer starts with a
//! [`Header`]; [`Record`]s follow, each with the bytes the syscall wrote.
//!
//! *Record.* A wrapper makes its syscall through [`UNTRACED_SYSCALL`],
//! which the seccomp filter rrpipe installs lets through without a stop,
//! lets the kernel write into the record's data, copies the data to where
//! the program asked for it and appends the record. At the thread's next
//! stop (any traced syscall, signal, exit) the tracer reads the records,
//! turns each into an event and empties the buffer. When a call cannot be
//! buffered for a reason replay could not know (it would block, or the
//! tracer asked for a stop with [`Header::force_traced`]), the wrapper
//! appends a [`FALLBACK`] record and makes the syscall traced.
//!
//! *Replay.* Before the thread runs to its next recorded stop, the tracer
//! fills its buffer with that stretch's records. Wrappers make no syscall:
//! each checks that the next record is its own call (or reports
//! [`SYS_DIVERGED`]), copies the recorded data and returns the recorded
//! result; a [`FALLBACK`] record sends it to the traced path, as in record.
//! Decisions both sessions can make alike (buffer busy or full) need no
//! record.
//!
//! *Release.* When the thread ends (`pthread_exit` or a return from its
//! start routine: a pthread key's destructor), the library unmaps the
//! whole mapping ([`MAPPING_SIZE`] from [`STACK_SIZE`] below the buffer)
//! with a traced `munmap` from the thread's own stack, in both sessions;
//! the tracer takes the records still in the buffer at that syscall's entry
//! and forgets the buffer at its event. The thread's later calls go traced.
//!
//! *Patching.* Syscalls that libc makes internally (loading locales,
//! stdio's writes) pass no wrapper. [`SYS_REGISTER_BUFFER`] also names the
//! library's patch area and its hook trampoline. When such a syscall of
//! one of the calls the hook handles comes from a `syscall` instruction
//! followed by libc's error check (`cmp $-4096, %rax`), and nothing else
//! runs in that address space, the tracer writes a stub into the next
//! [`PATCH_SLOT_SIZE`] slot of the area (the count of slots used is the
//! area's first `u64`) and overwrites the instruction and the check with a
//! jump to it, at that syscall's exit in record and at its event (flagged)
//! in replay. The stub calls the trampoline, which runs the call as its
//! wrapper would, then does the displaced check and jumps back.
#![no_std]

/// Where rrpipe maps its page in every tracee (see `core/src/exec.rs`).
pub const PAGE: u64 = 0x7000_0000;
/// `syscall; ret` at the start of the rrpipe page: call it with the
/// syscall number in rax and the arguments in rdi, rsi, rdx, r10, r8, r9.
pub const UNTRACED_SYSCALL: u64 = PAGE;
/// The instruction pointer the kernel sees for a syscall made through
/// [`UNTRACED_SYSCALL`] (the address after the instruction): the one
/// address rrpipe's seccomp filter lets through untraced.
pub const UNTRACED_IP: u64 = UNTRACED_SYSCALL + 2;
/// A `u32` in the rrpipe page: [`MODE_OFF`], [`MODE_RECORD`] or [`MODE_REPLAY`].
pub const PAGE_MODE: u64 = PAGE + 0x40;
/// Four `u64`s in the rrpipe page: (device, inode) of rrpipe's stdout,
/// then of its stderr. Writes to them stay traced: replay prints them.
pub const PAGE_CONSOLE: u64 = PAGE + 0x48;

pub const MODE_OFF: u32 = 0;
pub const MODE_RECORD: u32 = 1;
pub const MODE_REPLAY: u32 = 2;

/// `register_buffer(addr, size, patch_area, patch_area_size, trampoline)`:
/// the calling thread's buffer, and the library's patch area and hook
/// trampoline (see *Patching*; 0 for none). Traced; returns 0, or -ENOSYS
/// when no rrpipe is listening.
pub const SYS_REGISTER_BUFFER: i64 = 1000;
/// `diverged(nr, index)`: in replay, a wrapper met a call the recording
/// does not have at this point. Traced; rrpipe stops replay with a report.
pub const SYS_DIVERGED: i64 = 1001;

/// Size of each thread's buffer, header included.
pub const BUFFER_SIZE: usize = 256 * 1024;
/// Below each buffer, in the same mapping, the stack the library's
/// wrappers run on: what they leave there differs between record and
/// replay, and rrpipe leaves the whole mapping out of memory comparisons.
pub const STACK_SIZE: usize = 64 * 1024;
/// The whole mapping: `STACK_SIZE` of stack, then the buffer (whose
/// address is what the library registers).
pub const MAPPING_SIZE: usize = STACK_SIZE + BUFFER_SIZE;
/// The lowest bytes of the stack area, which the wrappers' stack never
/// reaches (they use a few KiB): the library's record-only cache of paths
/// it saw to be regular files, which spares a read-only open the stat that
/// rules out a FIFO. Left out of memory comparisons with the rest of the
/// mapping, as replay never writes it.
pub const STAT_CACHE_SIZE: usize = 4096;

/// The syscalls the library's hook runs as their wrappers do, so the ones
/// whose libc call sites the tracer patches (x86_64 numbers): `read`,
/// `write`, `pread64`, `openat`, `close`, `newfstatat`, `lseek`,
/// `getdents64`. The hook sends any other number down the traced path.
pub const PATCHABLE: [i64; 8] = [0, 1, 17, 257, 3, 262, 8, 217];

/// Bytes of the library's patch area (executable, written only by the
/// tracer): a `u64` count of slots used, padding to
/// [`PATCH_HEADER_SIZE`], then the slots.
pub const PATCH_AREA_SIZE: usize = 8192;
/// Where the patch area's slots start.
pub const PATCH_HEADER_SIZE: usize = 64;
/// Bytes of one stub.
pub const PATCH_SLOT_SIZE: usize = 32;

/// At the start of every buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Bytes of records after the header: appended so far (record), or
    /// consumed so far (replay).
    pub used: u32,
    /// Replay: bytes of records the tracer loaded for this stretch.
    pub avail: u32,
    /// Nonzero while a wrapper works on the buffer: a wrapper entered from
    /// a signal handler then takes the traced path.
    pub locked: u32,
    /// Record: set by the tracer (nonzero) to have the thread's next
    /// buffered call take the traced path, with a [`FALLBACK`] record, so
    /// that the thread stops at a syscall soon: a signal that interrupted
    /// a stretch of buffered calls is delivered after that syscall. The
    /// library clears it when it takes that path. Unused in replay, which
    /// follows the records.
    pub force_traced: u32,
    /// Record: how many times the tracer has emptied the buffer (at every
    /// stop of the thread after a buffered call). The library's record-only
    /// knowledge of the file system (see [`STAT_CACHE_SIZE`]) holds within
    /// one stretch of buffered calls: any syscall of the program that could
    /// change what it knows (chdir, rename, mknod, ...) is traced, hence
    /// ends the stretch.
    pub stretch: u32,
    pub reserved: u32,
}

pub const HEADER_SIZE: usize = core::mem::size_of::<Header>();

/// One buffered syscall; `data_len` bytes of data follow it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Bytes of this record and its data, a multiple of 8.
    pub size: u32,
    /// [`FALLBACK`] or 0.
    pub flags: u32,
    pub nr: i64,
    pub args: [u64; 6],
    /// The raw result (-errno on failure).
    pub result: i64,
    /// Where the program got the data (0: nowhere).
    pub dest: u64,
    pub data_len: u64,
}

pub const RECORD_SIZE: usize = core::mem::size_of::<Record>();

/// The call went to the traced path after this record; the record carries
/// no result.
pub const FALLBACK: u32 = 1;

/// Bytes a record with `data_len` bytes of data takes.
pub const fn record_size(data_len: usize) -> usize {
    (RECORD_SIZE + data_len + 7) & !7
}

/// The size and the flags of the record at the start of `bytes` (records
/// and what follows them), if they can be a record's: whole, its data
/// inside it, its size a multiple of 8 within `bytes`. Reads those three
/// fields only: the tracer checks every record of each full buffer (a few
/// thousand), and copying each whole record out cost twice as much.
pub fn record_extent(bytes: &[u8]) -> Option<(usize, u32)> {
    use core::mem::offset_of;
    let head = bytes.get(..RECORD_SIZE)?;
    let u32_at =
        |at: usize| u32::from_ne_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    let size = u32_at(offset_of!(Record, size)) as usize;
    let flags = u32_at(offset_of!(Record, flags));
    let at = offset_of!(Record, data_len);
    let data_len = u64::from_ne_bytes(head[at..at + 8].try_into().ok()?);
    let data_len = usize::try_from(data_len).ok()?;
    let fits = data_len <= bytes.len()
        && size >= record_size(data_len)
        && size <= bytes.len()
        && size.is_multiple_of(8);
    fits.then_some((size, flags))
}

/// Bytes of records a buffer holds.
pub const CAPACITY: usize = BUFFER_SIZE - HEADER_SIZE;

impl Header {
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        // SAFETY: repr(C) plain integers without padding.
        unsafe { core::mem::transmute(*self) }
    }

    pub fn from_bytes(b: &[u8; HEADER_SIZE]) -> Header {
        // SAFETY: every bit pattern is a valid Header.
        unsafe { core::mem::transmute(*b) }
    }
}

impl Record {
    pub fn to_bytes(&self) -> [u8; RECORD_SIZE] {
        // SAFETY: repr(C) plain integers without padding.
        unsafe { core::mem::transmute(*self) }
    }

    /// The record at the start of `bytes`, if they are long enough for
    /// one (its size and data unchecked: see [`record_extent`]).
    pub fn read(bytes: &[u8]) -> Option<Record> {
        let head: [u8; RECORD_SIZE] = bytes.get(..RECORD_SIZE)?.try_into().ok()?;
        // SAFETY: every bit pattern is a valid Record.
        Some(unsafe { core::mem::transmute::<[u8; RECORD_SIZE], Record>(head) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_has_no_padding() {
        assert_eq!(HEADER_SIZE, 6 * 4);
        assert_eq!(RECORD_SIZE, 8 + 8 + 48 + 8 + 8 + 8);
        assert_eq!(record_size(0), RECORD_SIZE);
        assert_eq!(record_size(1), RECORD_SIZE + 8);
    }

    /// `rec` as bytes, then `data_len` bytes of data, then `extra` bytes.
    fn bytes(rec: Record, extra: usize) -> ([u8; 512], usize) {
        let mut b = [0u8; 512];
        b[..RECORD_SIZE].copy_from_slice(&rec.to_bytes());
        let len = RECORD_SIZE + rec.data_len.min(256) as usize + extra;
        (b, len)
    }

    #[test]
    fn extents_check_what_a_record_claims() {
        let plain = Record {
            size: record_size(0) as u32,
            flags: FALLBACK,
            nr: 3,
            ..Record::default()
        };
        let (b, len) = bytes(plain, 0);
        assert_eq!(record_extent(&b[..len]), Some((RECORD_SIZE, FALLBACK)));
        assert_eq!(record_extent(&b[..len - 1]), None, "cut short");

        let with_data = Record {
            size: record_size(5) as u32,
            data_len: 5,
            ..Record::default()
        };
        let (b, len) = bytes(with_data, 3);
        assert_eq!(record_extent(&b[..len]), Some((RECORD_SIZE + 8, 0)));
        assert_eq!(record_extent(&b[..len - 1]), None, "padding cut off");

        let claims = |size: usize, data_len: u64| {
            let rec = Record {
                size: size as u32,
                data_len,
                ..Record::default()
            };
            let (b, len) = bytes(rec, 64);
            record_extent(&b[..len])
        };
        assert_eq!(claims(RECORD_SIZE + 4, 0), None, "not a multiple of 8");
        assert_eq!(claims(RECORD_SIZE, 8), None, "data past the record");
        assert_eq!(claims(RECORD_SIZE + 512, 0), None, "past the bytes");
        assert_eq!(
            claims(RECORD_SIZE + 8, u64::MAX),
            None,
            "absurd data length"
        );
        assert_eq!(claims(0, 0), None, "smaller than a record");
    }
}
