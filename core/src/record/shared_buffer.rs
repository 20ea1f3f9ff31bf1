//! Record: syscall buffers shared with the tracer. When a thread registers
//! its buffer, rrpipe puts memory of its own (a memfd, mapped on both
//! sides) in place of the thread's mapping, so that each stop reads the
//! buffer's header and copies its records with plain memory accesses
//! instead of a `process_vm_readv` (a kernel copy of every record, ~0.5 ms
//! per 3 MiB here) and writes the emptied header without a syscall.
//!
//! The thread's mapping (wrapper stack and buffer) is replaced whole, at
//! its registration's exit: it was mapped by the traced `mmap` just before
//! and nothing has written it yet, and the new one reads zeros as well.
//! The program may see the memfd in `/proc/self/maps`; replay keeps the
//! anonymous mapping, whose contents are rrpipe's there too (left out of
//! every comparison). A forked child would share its parent's: before its
//! first instruction it gets a private mapping again, with the parent's
//! header and stat cache as they were at the fork (`unshare`), and is read
//! the remote way. Anything failing on the way leaves the remote way.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use rrpipe_syscallbuf as abi;

use crate::exec::{PAGE_SCRATCH, PAGE_SYSCALL};
use crate::ptrace::Task;
use crate::remote;

/// A thread's syscall-buffer mapping, mapped into rrpipe too.
pub(super) struct SharedBuffer {
    /// rrpipe's view of the whole mapping (stack, then buffer).
    local: *mut u8,
    /// The tracee's address of the buffer (after the stack).
    pub buffer: u64,
    /// The time of the registration event: a later registration at the
    /// same address (after an exec) is another buffer.
    pub since: u64,
}

// SAFETY: the mapping is rrpipe's for as long as the value lives.
unsafe impl Send for SharedBuffer {}

impl Drop for SharedBuffer {
    fn drop(&mut self) {
        // SAFETY: mapped by `install`, unmapped once.
        unsafe { libc::munmap(self.local.cast(), abi::MAPPING_SIZE) };
    }
}

impl SharedBuffer {
    /// Leaves rrpipe's mapping in place, for when the recording is over:
    /// rrpipe's exit unmaps it with everything else, where an munmap now
    /// would interrupt the plugins' CPU to flush its TLB, and wait for it
    /// (~0.1 ms, see `cpus`).
    pub fn leave_mapped(self) {
        std::mem::forget(self);
    }

    /// Replaces the mapping of `task`'s buffer at `buffer` (just
    /// registered) with one shared with rrpipe. `None`: it stays as it was.
    pub fn install(task: &Task, buffer: u64, since: u64) -> Option<SharedBuffer> {
        let base = buffer.checked_sub(abi::STACK_SIZE as u64)?;
        // SAFETY: plain syscalls; the name is a valid C string.
        let fd = unsafe {
            let raw = libc::memfd_create(c"rrpipe-syscall-buffer".as_ptr(), libc::MFD_CLOEXEC);
            if raw < 0 {
                return None;
            }
            OwnedFd::from_raw_fd(raw)
        };
        // SAFETY: sizing and mapping our own descriptor.
        let local = unsafe {
            if libc::ftruncate(fd.as_raw_fd(), abi::MAPPING_SIZE as i64) != 0 {
                return None;
            }
            let p = libc::mmap(
                std::ptr::null_mut(),
                abi::MAPPING_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            );
            if p == libc::MAP_FAILED {
                return None;
            }
            p.cast::<u8>()
        };
        let shared = SharedBuffer {
            local,
            buffer,
            since,
        };
        let path = format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd());
        remote::write_cstring(task, PAGE_SCRATCH, &path).ok()?;
        let call = |nr: i64, args: &[u64]| remote::syscall_from_user(task, PAGE_SYSCALL, nr, args);
        let flags = (libc::O_RDWR | libc::O_CLOEXEC) as u64;
        let tfd = call(
            libc::SYS_openat,
            &[libc::AT_FDCWD as u64, PAGE_SCRATCH, flags, 0],
        )
        .ok()?;
        if tfd < 0 {
            return None;
        }
        let mapped = call(
            libc::SYS_mmap,
            &[
                base,
                abi::MAPPING_SIZE as u64,
                (libc::PROT_READ | libc::PROT_WRITE) as u64,
                (libc::MAP_SHARED | libc::MAP_FIXED) as u64,
                tfd as u64,
                0,
            ],
        );
        let _ = call(libc::SYS_close, &[tfd as u64]);
        (mapped.ok()? as u64 == base).then_some(shared)
    }

    fn header_ptr(&self) -> *mut abi::Header {
        // SAFETY: the header lies inside the mapping.
        unsafe { self.local.add(abi::STACK_SIZE).cast() }
    }

    /// The buffer's header (the thread is stopped).
    pub fn header(&self) -> abi::Header {
        // SAFETY: inside the mapping; volatile: the tracee writes it.
        unsafe { std::ptr::read_volatile(self.header_ptr()) }
    }

    pub fn set_header(&self, header: &abi::Header) {
        // SAFETY: as `header`.
        unsafe { std::ptr::write_volatile(self.header_ptr(), *header) }
    }

    /// The first `len` bytes of records (at most [`abi::CAPACITY`]).
    pub fn records(&self, len: usize) -> &[u8] {
        let len = len.min(abi::CAPACITY);
        // SAFETY: inside the mapping, which lives as long as `self`.
        unsafe {
            std::slice::from_raw_parts(self.local.add(abi::STACK_SIZE + abi::HEADER_SIZE), len)
        }
    }

    /// What a forked child keeps of this mapping: the stat cache at its
    /// bottom and the header, as they are now (at the fork's event).
    pub fn fork_image(&self) -> ForkImage {
        // SAFETY: inside the mapping.
        let cache =
            unsafe { std::slice::from_raw_parts(self.local, abi::STAT_CACHE_SIZE) }.to_vec();
        ForkImage {
            buffer: self.buffer,
            cache,
            header: self.header(),
        }
    }
}

/// A forked child's share of its parent's buffer mapping (see
/// [`SharedBuffer::fork_image`]).
pub(super) struct ForkImage {
    buffer: u64,
    cache: Vec<u8>,
    header: abi::Header,
}

impl ForkImage {
    /// Gives the child, stopped before its first instruction, a private
    /// mapping with the image in place of the one it shares with its
    /// parent. Fails only when the child cannot be changed (it is gone).
    pub fn unshare(&self, child: &Task) -> crate::error::Result<()> {
        let base = self.buffer - abi::STACK_SIZE as u64;
        let r = remote::syscall_from_user(
            child,
            PAGE_SYSCALL,
            libc::SYS_mmap,
            &[
                base,
                abi::MAPPING_SIZE as u64,
                (libc::PROT_READ | libc::PROT_WRITE) as u64,
                (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED) as u64,
                u64::MAX,
                0,
            ],
        )?;
        let fail = |e: std::io::Error| crate::error::Error::internal("unshare a syscall buffer", e);
        if r as u64 != base {
            return Err(crate::error::Error::Internal(format!(
                "cannot give task {} its own syscall buffer (mmap returned {r})",
                child.tid
            )));
        }
        child.write_mem(base, &self.cache).map_err(fail)?;
        child
            .write_mem(self.buffer, &self.header.to_bytes())
            .map_err(fail)
    }
}

impl super::Recorder {
    /// Drops task `tid`'s shared buffer if it is no longer the buffer the
    /// session knows (one of an earlier image, or released): what remains
    /// in `shared` for `tid` is then current.
    pub(super) fn forget_stale_shared(&mut self, tid: i32) {
        let current = self.session.buffer_registration(tid);
        if self
            .shared
            .get(&tid)
            .is_some_and(|s| current != Some((s.buffer, s.since)))
        {
            self.shared.remove(&tid);
        }
    }

    /// After task `tid`'s registration event (`register_buffer`): its
    /// buffer mapping becomes shared with rrpipe, when that works.
    pub(super) fn share_registered_buffer(&mut self, tid: i32) {
        let Some((buffer, since)) = self.session.buffer_registration(tid) else {
            return;
        };
        let task = &self.tasks[&tid].task;
        match SharedBuffer::install(task, buffer, since) {
            Some(shared) => {
                self.shared.insert(tid, shared);
            }
            None => {
                self.shared.remove(&tid);
            }
        }
    }

    /// At a new task's first stop: a forked child that still shares its
    /// parent's buffer mapping gets its own (see [`ForkImage`]).
    pub(super) fn unshare_buffer(&mut self, tid: i32) -> crate::error::Result<()> {
        let Some((parent, image)) = self.unshare.remove(&tid) else {
            return Ok(());
        };
        if crate::ptrace::share_memory(tid, parent) {
            // A thread, or a vfork child: the same memory, rightly.
            return Ok(());
        }
        image.unshare(&self.tasks[&tid].task)
    }
}
