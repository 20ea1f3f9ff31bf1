//! Recording syscalls: at entry, what the table says about the call (refused,
//! may block, writes memory); at exit, the result and the memory the kernel
//! wrote, as one event.

use rrpipe_plugin_api::{flags, BlockedInfo, EventData, MemBlock, SavedFile, SyscallInfo};

use std::path::Path;

use super::{is_write, read_argv, Pending, Recorder, State, MAX_PATH, RESTART_CODES};
use crate::error::{Error, Result};
use crate::exec;
use crate::ptrace::Resume;
use crate::syscalls::{self, Access, Arg, Replay};

impl Recorder {
    pub(super) fn syscall_entry(&mut self, tid: i32) -> Result<()> {
        if self.restarts_held(tid)? {
            self.forget_restarted_return(tid);
        }
        if std::mem::take(&mut self.t_mut(tid).restarting) {
            // The kernel restarting (maybe as restart_syscall) a syscall
            // whose return was forgotten: the same wait, already announced
            // by its Blocked event, with the same pending entry.
            let nr = self
                .t(tid)
                .pending
                .as_ref()
                .map_or(-1, |p| p.regs.orig_rax as i64);
            if syscalls::may_block(nr) && self.tasks.len() > 1 {
                // It may wait again: others run meanwhile.
                if self.current == Some(tid) {
                    self.current = None;
                }
                let t = self.t_mut(tid);
                t.state = State::InKernel;
                return t.task.resume(Resume::Syscall, 0);
            }
            return self.run_task_if_current(tid);
        }
        // The syscalls it made without a stop come first, in order.
        let fallback = self.flush_buffer(tid)?;
        // Signals moved from user code to this syscall are re-sent: the
        // kernel delivers them as it returns (see `signal_at_anchor`).
        let preempted = self.t(tid).preempt_pending;
        self.resend_kept(tid, preempted)?;
        let task = &self.t(tid).task;
        let mut regs = task.regs()?;
        let nr = regs.orig_rax as i64;
        let args = regs.syscall_args();
        if fallback.is_some_and(|call| call != (nr, args)) {
            return Err(Error::Internal(format!(
                "task {tid}: the preload library announced {fallback:?}, then made syscall {nr}"
            )));
        }
        let event_flags = if fallback.is_some() {
            flags::BUFFER_FALLBACK
        } else {
            0
        };
        // For the syscall's own event, at its exit.
        let pending_flags = event_flags | self.console_flags(tid, nr, &args);
        let spec = syscalls::lookup(nr).ok_or_else(|| {
            self.unsupported(tid, format!("syscall {} (number {nr})", syscalls::name(nr)))
        })?;
        let replay = spec
            .replay_for(&args)
            .map_err(|what| self.unsupported(tid, format!("{what} in {}", spec.name)))?;
        if let Access::Custom(_) = spec.writes {
            // Custom accessors refuse what they cannot describe (an unknown
            // ioctl request): better now than after it ran.
            syscalls::ranges(&spec.writes, &args, 0, task)
                .map_err(|what| self.unsupported(tid, format!("{what} in {}", spec.name)))?;
        }
        let mut inputs = Vec::new();
        for (i, kind) in spec.args.iter().enumerate() {
            if *kind == Arg::Path && args[i] != 0 {
                if let Ok(s) = task.read_cstring(args[i], MAX_PATH) {
                    inputs.push(MemBlock {
                        addr: args[i],
                        data: s.into(),
                    });
                }
            }
        }
        match replay {
            Replay::NoReturn => {
                let info = SyscallInfo {
                    regs,
                    inputs: inputs.into(),
                    outputs: Vec::new().into(),
                    file: None.into(),
                };
                self.emit_flagged(tid, EventData::Syscall(info), 0, event_flags)?;
                return self.run_task_if_current(tid);
            }
            Replay::Deny(_) => {
                let entry = regs;
                regs.orig_rax = u64::MAX; // skipped by the kernel
                task.set_regs(&regs)?;
                self.t_mut(tid).pending = Some(Pending {
                    regs: entry,
                    inputs,
                    replay,
                    argv: Vec::new(),
                    flags: pending_flags,
                });
            }
            _ => {
                let argv = if replay == Replay::Exec {
                    read_argv(task, regs.rsi)?
                } else {
                    Vec::new()
                };
                self.t_mut(tid).pending = Some(Pending {
                    regs,
                    inputs,
                    replay,
                    argv,
                    flags: pending_flags,
                })
            }
        }
        let preempted = std::mem::take(&mut self.t_mut(tid).preempt_pending);
        if (syscalls::may_block(nr) || preempted) && self.tasks.len() > 1 {
            // A scheduling point: others run while this one waits.
            self.emit_flagged(
                tid,
                EventData::Blocked(BlockedInfo { regs }),
                0,
                event_flags,
            )?;
            let t = self.t_mut(tid);
            t.state = State::InKernel;
            t.task.resume(Resume::Syscall, 0)?;
            if self.current == Some(tid) {
                self.current = None;
            }
            return Ok(());
        }
        self.run_task_if_current(tid)
    }

    /// Lets a task that is in the middle of a syscall go on into the kernel.
    pub(super) fn run_task_if_current(&mut self, tid: i32) -> Result<()> {
        if self.current == Some(tid) {
            self.run_task(tid)
        } else {
            let t = self.t_mut(tid);
            t.state = State::InKernel;
            t.task.resume(Resume::Syscall, 0)
        }
    }

    pub(super) fn syscall_exit(&mut self, tid: i32) -> Result<()> {
        let Some(p) = self.t_mut(tid).pending.take() else {
            // The exit of a syscall whose entry we did not see (the first
            // execve's, consumed by spawn): nothing to record.
            return Ok(());
        };
        let nr = p.regs.orig_rax as i64;
        let result = match self.syscall_result(tid, &p) {
            Ok(result) => result,
            Err(e) => {
                // Kept for the task's exit stop, if it was killed meanwhile
                // (see `return_before_death`).
                self.t_mut(tid).pending = Some(p);
                return Err(e);
            }
        };
        let failed = (-4095..0).contains(&result);
        if p.replay == Replay::Exec && !failed && std::mem::take(&mut self.t_mut(tid).execed) {
            return self.exec_done(tid, p);
        }
        let (outputs, file) = match self.syscall_outputs(tid, &p, result) {
            Ok(found) => found,
            Err(e) => {
                self.t_mut(tid).pending = Some(p);
                return Err(e);
            }
        };
        let info = SyscallInfo {
            regs: p.regs,
            inputs: p.inputs.into(),
            outputs: outputs.into(),
            file: file.into(),
        };
        let flags = if result > 0 {
            p.flags
        } else {
            p.flags & !(flags::STDOUT | flags::STDERR)
        };
        let restart = RESTART_CODES.contains(&result);
        if self.current != Some(tid) || restart {
            // (A restart code means a signal is pending: the kernel either
            // restarts the syscall (the signal was our preemption, which is
            // suppressed) or hands it to a handler. The next stop decides.)
            //
            // It returned from a syscall that waited while another task
            // ran: its event comes when it next runs. Events are emitted
            // only while no other task runs user code, so plugins' memory
            // snapshots are the same in replay (and a vfork parent, let go
            // by its child's exec, returns after the child's events, the
            // order replay can follow).
            self.t_mut(tid).held = Some((EventData::Syscall(info), result, flags));
            return Ok(());
        }
        let patched = match self.patch_site(tid, nr) {
            Ok(flag) => flag,
            // Killed meanwhile (from outside): the syscall ran, and its
            // event goes in before the death; its site stays unpatched,
            // in replay too (no `PATCHED` flag). Lost, its output went
            // missing from replay.
            Err(_) if self.t(tid).task.gone() => 0,
            Err(e) => return Err(e),
        };
        self.dispatch_now(tid, EventData::Syscall(info), result, flags | patched)?;
        if nr == rrpipe_syscallbuf::SYS_REGISTER_BUFFER && result == 0 && self.buffering {
            self.share_registered_buffer(tid);
        }
        Ok(())
    }

    /// The result of the syscall `p` that task `tid` returned from (set
    /// for a denied one).
    fn syscall_result(&mut self, tid: i32, p: &Pending) -> Result<i64> {
        let task = &self.t(tid).task;
        let mut regs = task.regs()?;
        if let Replay::Deny(errno) = p.replay {
            regs.rax = (-(errno as i64)) as u64;
            task.set_regs(&regs)?;
        }
        self.t_mut(tid).resumed_regs = Some(regs);
        Ok(regs.rax as i64)
    }

    /// The memory the syscall `p` of task `tid` wrote, returning `result`,
    /// and the copy of the file it mapped.
    fn syscall_outputs(
        &mut self,
        tid: i32,
        p: &Pending,
        result: i64,
    ) -> Result<(Vec<MemBlock>, Option<SavedFile>)> {
        let task = &self.t(tid).task;
        let nr = p.regs.orig_rax as i64;
        let args = p.regs.syscall_args();
        let spec = syscalls::lookup(nr).expect("entry checked the table");
        let mut outputs = Vec::new();
        let mut file = None;
        if nr == libc::SYS_sched_getaffinity && result > 0 {
            // The program is pinned to rrpipe's CPU; it is told the CPUs it
            // would have had natively.
            let n = (result as usize).min(self.native_affinity.len());
            task.write_mem(args[2], &self.native_affinity[..n])
                .map_err(|e| Error::internal("rewrite sched_getaffinity", e))?;
        }
        if !(-4095..0).contains(&result) {
            let ranges = syscalls::ranges(&spec.writes, &args, result, task)
                .map_err(|e| Error::Internal(format!("{} output: {e}", spec.name)))?;
            for (addr, len) in ranges {
                let data = task.read_mem(addr, len as usize).map_err(|e| {
                    Error::Internal(format!("{} output at {addr:#x}+{len}: {e}", spec.name))
                })?;
                outputs.push(MemBlock {
                    addr,
                    data: data.into(),
                });
            }
            if p.replay == Replay::Mmap && args[3] & libc::MAP_ANONYMOUS as u64 == 0 {
                file = self.save_mapped_file(tid, &args)?;
            }
        }
        Ok((outputs, file))
    }

    /// At the exit stop of task `tid`, killed by SIGKILL: the return of a
    /// syscall it completed, whose event was not recorded yet, is recorded
    /// now, before its death. Its effects happened (a write to the
    /// terminal was seen), and replay, which ends the task at its last
    /// recorded event (see `replay::kill_here`), reproduces them only so.
    /// That is a return held for when the task would run again (it
    /// returned while another task ran), or the syscall it was in: one
    /// that replay emulates and that ran (killed at its entry, or while it
    /// waited, it did not: its registers say `-ENOSYS`, or a restart code
    /// the kill leaves there). Other syscalls (those replay runs again, an
    /// exec, a clone, an mmap) end before the kill, at their entry.
    pub(super) fn return_before_death(&mut self, tid: i32) -> Result<()> {
        if self.emit_held_before_death(tid)? {
            return Ok(());
        }
        let Some(p) = &self.t(tid).pending else {
            return Ok(());
        };
        if p.replay != Replay::Emulate || self.t(tid).restarting {
            return Ok(());
        }
        let entry_nr = p.regs.orig_rax;
        let regs = self.t(tid).task.regs()?;
        let result = regs.rax as i64;
        if regs.orig_rax != entry_nr
            || result == -(libc::ENOSYS as i64)
            || RESTART_CODES.contains(&result)
        {
            return Ok(());
        }
        self.syscall_exit(tid)?;
        // (Held because another task is current.)
        self.emit_held(tid)
    }

    /// Which of rrpipe's own output streams syscall `nr` of task `tid`
    /// writes to, if it is a write (its event is flagged so if it wrote
    /// something). Asked at the syscall's entry: at its exit the program
    /// may be dying already (killed from outside), its descriptors closed,
    /// and its output would then not be shown in replay.
    pub(super) fn console_flags(&self, tid: i32, nr: i64, args: &[u64; 6]) -> u32 {
        if !is_write(nr) {
            return 0;
        }
        let fd = args[0] as i32;
        let Ok(st) = nix::sys::stat::stat(format!("/proc/{tid}/fd/{fd}").as_str()) else {
            return 0;
        };
        let id = Some((st.st_dev, st.st_ino));
        match (id == self.console[0], id == self.console[1]) {
            (true, true) if fd == 2 => flags::STDERR,
            (true, _) => flags::STDOUT,
            (false, true) => flags::STDERR,
            (false, false) => 0,
        }
    }

    /// The program replaced itself: set up and capture the new image.
    pub(super) fn exec_done(&mut self, tid: i32, p: Pending) -> Result<()> {
        let task = &self.tasks[&tid].task;
        exec::prepare(task, &self.page)?;
        let filename = p
            .inputs
            .first()
            .map(|b| String::from_utf8_lossy(&b.data).into_owned())
            .unwrap_or_default();
        let mut info = exec::capture(task, p.regs, &filename, &p.argv, &mut self.saver)?;
        info.caller_tid = std::mem::take(&mut self.t_mut(tid).caller);
        let task = &self.tasks[&tid].task;
        let regs = task.regs()?;
        self.t_mut(tid).resumed_regs = Some(regs);
        self.emit(tid, EventData::Exec(info), 0)
    }

    pub(super) fn save_mapped_file(
        &mut self,
        tid: i32,
        args: &[u64; 6],
    ) -> Result<Option<SavedFile>> {
        let fd = args[4] as i32;
        let link = format!("/proc/{tid}/fd/{fd}");
        let original = || {
            std::fs::read_link(&link)
                .map(|p| p.to_string_lossy().into_owned())
                .map_err(|e| Error::internal(format!("mapped fd {fd}"), e))
        };
        let shared_writable =
            args[3] & libc::MAP_SHARED as u64 != 0 && args[2] & libc::PROT_WRITE as u64 != 0;
        self.saver
            .save_mapped(Path::new(&link), original, shared_writable)
    }
}
