//! Copies of tracee memory for plugins that asked for them in `wants`,
//! taken while the task is stopped at the event.

use std::io;

use rrpipe_plugin_api::{EventHeader, MemoryRequest, ProcessState, Region, Snapshot};

use crate::pipeline::SnapshotSource;
use crate::ptrace::Task;
use crate::syscalls;

/// A stopped task as a source of snapshots.
pub struct TaskMemory<'a> {
    pub task: &'a Task,
    /// Stack pointers of the tasks (see `Session::stack_pointers`).
    pub stack_pointers: Vec<u64>,
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
                // Each thread's stack below its red zone is dead memory,
                // which replay's anchor trampolines and signal frames may
                // leave different: left out.
                let rsps = &self.stack_pointers;
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
                        let start = rsps
                            .iter()
                            .filter(|&&sp| (m.start..m.end).contains(&sp))
                            .map(|&sp| sp.saturating_sub(128).max(m.start))
                            .min()
                            .unwrap_or(m.start);
                        add_readable(self.task, start, m.end, m, &mut regions)?;
                    }
                }
                if *request == MemoryRequest::Core {
                    process = Some(ProcessState {
                        maps: maps.into(),
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
) -> io::Result<()> {
    if let Ok(data) = task.read_mem(start, (end - start) as usize) {
        regions.push(Region {
            mapping: Some(mapping.clone()).into(),
            addr: start,
            data: data.into(),
        });
        return Ok(());
    }
    let mut run: Option<(u64, Vec<u8>)> = None;
    let mut at = start;
    while at < end {
        let next = ((at / 4096) + 1) * 4096;
        let next = next.min(end);
        match task.read_mem(at, (next - at) as usize) {
            Ok(page) => run.get_or_insert_with(|| (at, Vec::new())).1.extend(page),
            Err(_) => {
                if let Some((addr, data)) = run.take() {
                    regions.push(Region {
                        mapping: Some(mapping.clone()).into(),
                        addr,
                        data: data.into(),
                    });
                }
            }
        }
        at = next;
    }
    if let Some((addr, data)) = run {
        regions.push(Region {
            mapping: Some(mapping.clone()).into(),
            addr,
            data: data.into(),
        });
    }
    Ok(())
}
