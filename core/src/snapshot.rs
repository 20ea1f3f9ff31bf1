//! Copies of tracee memory for plugins that asked for them in `wants`,
//! taken while the task is stopped at the event.

use std::io;

use rrpipe_plugin_api::{EventHeader, MemoryRequest, ProcessState, Region, Snapshot};

use crate::deadmem::DeadMemory;
use crate::pipeline::SnapshotSource;
use crate::ptrace::Task;
use crate::syscalls;

/// A stopped task as a source of snapshots.
pub struct TaskMemory<'a> {
    pub task: &'a Task,
    /// What to leave out (see `deadmem`), worked out on first use.
    pub dead: &'a dyn std::ops::Deref<Target = DeadMemory>,
}

impl SnapshotSource for TaskMemory<'_> {
    fn snapshot(&self, header: &EventHeader, request: &MemoryRequest) -> io::Result<Snapshot> {
        let regs = self.task.regs().map_err(io::Error::other)?;
        let mut process = None;
        let mut regions = Vec::new();
        let task = self.task;
        let add = |regions: &mut Vec<Region>, addr: u64, len: u64| -> io::Result<()> {
            let data = task.read_mem(addr, len as usize)?;
            regions.push(Region {
                mapping: None.into(),
                addr,
                data: data.into(),
            });
            Ok(())
        };
        match request {
            MemoryRequest::None => {}
            MemoryRequest::Ranges(ranges) => {
                for r in ranges.iter() {
                    add(&mut regions, r.start, r.len)?;
                }
            }
            MemoryRequest::SyscallInputs => {
                if let Some(spec) = syscalls::lookup(header.syscall) {
                    let ranges =
                        syscalls::ranges(&spec.reads, &header.args, header.result, self.task)
                            .map_err(io::Error::other)?;
                    for (addr, len) in ranges {
                        add(&mut regions, addr, len)?;
                    }
                }
            }
            MemoryRequest::AllReadable | MemoryRequest::Core => {
                // Dead stack, which replay may leave different: left out.
                let maps = self.task.mappings()?;
                for m in &maps {
                    let readable = m.prot & libc::PROT_READ as u32 != 0;
                    // [vvar] is kernel data that differs between runs and
                    // faults on some pages; [vsyscall] is not readable.
                    let special =
                        matches!(m.name.as_str(), "[vvar]" | "[vvar_vclock]" | "[vsyscall]");
                    // The rrpipe page is the tracer's scratch, not the program's.
                    let ours = m.start == crate::exec::RRPIPE_PAGE;
                    if readable && !special && !ours {
                        for (start, end) in self.dead.live_parts(m.start, m.end) {
                            add_readable(self.task, start, end, m, &mut regions);
                        }
                    }
                }
                if *request == MemoryRequest::Core {
                    process = Some(ProcessState {
                        maps: self.dead.program_maps(maps).into(),
                        fpregs: self.task.fpregs().map_err(io::Error::other)?.into(),
                        auxv: self.task.auxv()?.into(),
                    });
                }
            }
        }
        Ok(Snapshot {
            regs,
            regions: regions.into(),
            process: process.into(),
        })
    }
}

/// Copies `[start, end)` of a mapping; pages that cannot be read (a file
/// mapping past the end of its file) are left out, splitting the region.
fn add_readable(
    task: &Task,
    start: u64,
    end: u64,
    mapping: &rrpipe_plugin_api::Mapping,
    regions: &mut Vec<Region>,
) {
    let mut at = start;
    while at < end {
        // Usually the whole rest of the mapping, in one read.
        let data = task.read_mem_prefix(at, (end - at) as usize);
        let read = data.len() as u64;
        if read > 0 {
            regions.push(Region {
                mapping: Some(mapping.clone()).into(),
                addr: at,
                data: data.into(),
            });
        }
        at += read;
        if at < end {
            // The page at `at` cannot be read: skip it.
            at = ((at / 4096 + 1) * 4096).min(end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    use std::io::Write;

    /// A mapping of a one-byte file three pages long: the two pages past
    /// the end of the file cannot be read, by any means.
    #[test]
    fn unreadable_pages_split_regions_and_stop_reads() {
        let path = std::env::temp_dir().join(format!("rrpipe-snap-{}", std::process::id()));
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"x").unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        // Page 0: file data; 1 and 2: past its end; 3: anonymous memory.
        // SAFETY: fresh mappings, only used by the child.
        let base = unsafe {
            let base = libc::mmap(
                std::ptr::null_mut(),
                4 * 4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(base, libc::MAP_FAILED);
            let file = libc::mmap(
                base,
                3 * 4096,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_FIXED,
                std::os::fd::AsRawFd::as_raw_fd(&f),
                0,
            );
            assert_eq!(file, base);
            base.cast::<u8>().add(3 * 4096).write_bytes(7, 4096);
            base as u64
        };
        // SAFETY: the child only makes async-signal-safe calls.
        let child = match unsafe { fork() }.unwrap() {
            ForkResult::Child => unsafe {
                libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
                libc::raise(libc::SIGSTOP);
                libc::_exit(0);
            },
            ForkResult::Parent { child } => child,
        };
        assert!(matches!(
            waitpid(child, None).unwrap(),
            WaitStatus::Stopped(_, _)
        ));
        let task = Task::new(child).unwrap();

        let prefix = task.read_mem_prefix(base, 4 * 4096);
        assert_eq!(prefix.len(), 4096);
        assert_eq!(prefix[0], b'x');
        assert!(prefix[1..].iter().all(|&b| b == 0));
        assert!(task.read_mem(base, 2 * 4096).is_err());
        assert!(task.read_mem_prefix(base + 4096, 4096).is_empty());
        assert_eq!(task.read_mem(base + 3 * 4096 + 8, 8).unwrap(), [7; 8]);

        let mapping = rrpipe_plugin_api::Mapping {
            start: base,
            end: base + 4 * 4096,
            prot: (libc::PROT_READ) as u32,
            shared: false,
            offset: 0,
            dev: 0,
            inode: 0,
            name: "".into(),
        };
        let mut regions = Vec::new();
        add_readable(&task, base + 100, base + 4 * 4096, &mapping, &mut regions);
        let got: Vec<(u64, usize)> = regions.iter().map(|r| (r.addr, r.data.len())).collect();
        assert_eq!(got, [(base + 100, 4096 - 100), (base + 3 * 4096, 4096)]);
        assert!(regions[1].data.iter().all(|&b| b == 7));

        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(child, None);
        // SAFETY: our own mapping, no longer used.
        unsafe { libc::munmap(base as *mut libc::c_void, 4 * 4096) };
    }
}
