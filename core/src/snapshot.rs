//! Copies of tracee memory for plugins that asked for them in `wants`,
//! taken while the task is stopped at the event.

use std::io;

use rrpipe_plugin_api::{EventHeader, MemoryRequest, Region, Snapshot};

use crate::pipeline::SnapshotSource;
use crate::ptrace::Task;
use crate::syscalls;

/// A stopped task as a source of snapshots.
pub struct TaskMemory<'a> {
    pub task: &'a Task,
}

impl SnapshotSource for TaskMemory<'_> {
    fn snapshot(&self, header: &EventHeader, request: &MemoryRequest) -> io::Result<Snapshot> {
        let regs = self
            .task
            .regs()
            .map_err(|e| io::Error::other(e.to_string()))?;
        let mut regions = Vec::new();
        let mut add = |addr: u64, len: u64, mapping| -> io::Result<()> {
            let data = self.task.read_mem(addr, len as usize)?;
            regions.push(Region {
                mapping,
                addr,
                data: data.into(),
            });
            Ok(())
        };
        match request {
            MemoryRequest::None => {}
            MemoryRequest::Ranges(ranges) => {
                for r in ranges.iter() {
                    add(r.start, r.len, None.into())?;
                }
            }
            MemoryRequest::SyscallInputs => {
                if let Some(spec) = syscalls::lookup(header.syscall) {
                    let ranges =
                        syscalls::ranges(&spec.reads, &header.args, header.result, self.task)
                            .map_err(io::Error::other)?;
                    for (addr, len) in ranges {
                        add(addr, len, None.into())?;
                    }
                }
            }
            MemoryRequest::AllReadable => {
                for m in self.task.mappings()? {
                    let readable = m.prot & libc::PROT_READ as u32 != 0;
                    // [vvar] is kernel data that differs between runs and
                    // faults on some pages; [vsyscall] is not readable.
                    let special =
                        matches!(m.name.as_str(), "[vvar]" | "[vvar_vclock]" | "[vsyscall]");
                    if readable && !special {
                        let (start, len) = (m.start, m.end - m.start);
                        add(start, len, Some(m).into())?;
                    }
                }
            }
        }
        Ok(Snapshot {
            regs,
            regions: regions.into(),
        })
    }
}
