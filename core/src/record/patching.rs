//! Record: patching the libc syscall site a task just returned from (see
//! `crate::patch`), and the flag that tells replay to do the same.

use rrpipe_plugin_api::flags;

use super::Recorder;
use crate::error::{Error, Result};
use crate::patch::{self, Site};

impl Recorder {
    /// Patches the site of the syscall `nr` task `tid` just returned from,
    /// when it can; returns the flag for its event (0 if not patched). The
    /// task then resumes at the stub's displaced check.
    pub(super) fn patch_site(&mut self, tid: i32, nr: i64) -> Result<u32> {
        if !self.buffering || !patch::PATCHABLE.contains(&nr) {
            return Ok(0);
        }
        let Some(area) = self.session.patch_area(tid) else {
            return Ok(0);
        };
        let task = &self.tasks[&tid].task;
        let mut regs = task.regs()?;
        let Some(site) = Site::before(task, regs.rip) else {
            return Ok(0);
        };
        if !self.alone_in_address_space(tid) {
            return Ok(0);
        }
        let applied = patch::apply(task, &area, &site).map_err(|e| {
            Error::internal(
                format!("patch the syscall at {:#x} in task {tid}", site.at),
                e,
            )
        })?;
        let Some(resume) = applied else {
            return Ok(0);
        };
        regs.rip = resume;
        task.set_regs(&regs)?;
        self.t_mut(tid).resumed_regs = Some(regs);
        Ok(flags::PATCHED)
    }

    /// Whether no other task of the recording shares task `tid`'s memory
    /// (threads, `CLONE_VM` children, a vfork parent): only then may the
    /// bytes under the site change (see `crate::patch`).
    fn alone_in_address_space(&self, tid: i32) -> bool {
        self.tasks
            .keys()
            .all(|&other| other == tid || !crate::ptrace::share_memory(tid, other))
    }
}
