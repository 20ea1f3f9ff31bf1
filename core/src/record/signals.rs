//! Recording signals and scheduling points: deliveries at syscall
//! boundaries or moved to anchors, handler frames, trapped instructions
//! (rdtsc, cpuid), and preemption of tasks that run too long.

use rrpipe_plugin_api::{AnchorInfo, EventData, PreemptInfo, RdtscInfo, Regs, SignalInfo};

use super::{Pending, Recorder, State, RESTART_CODES};
use crate::error::{Error, Result};
use crate::ptrace::{is_fault, Resume, Stop};
use crate::syscalls::{self, Replay};
use crate::{anchor, rdtsc, sigframe};

impl Recorder {
    /// If `tid` stopped on a trapped rdtsc/rdtscp: reads the counter, steps
    /// over the instruction, records it; returns the registers after it.
    pub(super) fn trapped_rdtsc(&mut self, tid: i32) -> Result<Option<Regs>> {
        let task = &self.t(tid).task;
        let regs = task.regs()?;
        let Some(insn) = rdtsc::decode(task, regs.rip) else {
            return Ok(None);
        };
        let (tsc, aux) = rdtsc::read_counter(insn);
        let after = rdtsc::emulate(&regs, insn, tsc, aux);
        task.set_regs(&after)?;
        let info = RdtscInfo {
            regs,
            tsc,
            aux: aux.into(),
        };
        self.emit(tid, EventData::Rdtsc(info), 0)?;
        Ok(Some(after))
    }

    /// A signal-delivery stop; returns the signal to deliver.
    pub(super) fn signal(&mut self, tid: i32, sig: i32) -> Result<i32> {
        if sig == libc::SIGSEGV {
            if let Some(after) = self.trapped_rdtsc(tid)? {
                self.t_mut(tid).resumed_regs = Some(after);
                return Ok(0);
            }
            if self.t(tid).task.emulate_cpuid()? {
                // No event: the task ran user code since it was resumed.
                self.t_mut(tid).resumed_regs = None;
                return Ok(0);
            }
        }
        let task = &self.t(tid).task;
        let regs = task.regs()?;
        let Ok(si) = task.siginfo() else {
            // A group-stop (SIGSTOP and friends), not a delivery.
            return Ok(0);
        };
        // SAFETY: siginfo_t is plain data, 128 bytes.
        let mut raw = unsafe {
            std::slice::from_raw_parts(
                &si as *const libc::siginfo_t as *const u8,
                std::mem::size_of::<libc::siginfo_t>(),
            )
        }
        .to_vec();
        let t = self.t_mut(tid);
        if let Some(i) = t.requeued.iter().position(|(s, _)| *s == sig) {
            let (_, original) = t.requeued.remove(i);
            // Our own re-sending of a signal moved to a syscall boundary:
            // the program gets the original siginfo.
            t.task.set_siginfo(&original)?;
            raw = original;
        }
        let fault = is_fault(sig) && si.si_code > 0;
        let at_boundary = fault || t.resumed_regs == Some(regs);
        if !at_boundary {
            // It interrupted user code at an instant replay cannot find.
            return self.signal_at_anchor(tid, sig, raw);
        }
        self.deliver(tid, regs, sig, raw, None)
    }

    /// Records the delivery of `sig` (with siginfo `raw`) at `regs`;
    /// returns the signal to resume with.
    pub(super) fn deliver(
        &mut self,
        tid: i32,
        regs: Regs,
        sig: i32,
        raw: Vec<u8>,
        anchor: Option<AnchorInfo>,
    ) -> Result<i32> {
        // SAFETY: 128 bytes of a siginfo_t, as the kernel gave them.
        let si: libc::siginfo_t =
            unsafe { std::ptr::read_unaligned(raw.as_ptr() as *const libc::siginfo_t) };
        let (caught, _) = self.disposition(tid, sig)?;
        let mut info = SignalInfo {
            regs,
            signo: sig,
            code: si.si_code,
            errno: si.si_errno,
            addr: unsafe { si.si_addr() } as u64,
            fatal: self.is_fatal(tid, sig)?,
            siginfo: raw.into(),
            anchor: anchor.into(),
            handler_frame: Default::default(),
        };
        self.t_mut(tid).resumed_regs = None;
        if !caught {
            self.emit(tid, EventData::Signal(info), 0)?;
            return Ok(sig);
        }
        // Into the handler now, to keep its frame (see `sigframe`): the kernel builds the frame and stops the step at
        // the handler's first instruction, before any of it runs.
        let task = &self.t(tid).task;
        task.resume(Resume::Step, sig)?;
        match task.wait()? {
            Stop::Signal(libc::SIGTRAP) => {
                let entry = task.regs()?;
                info.handler_frame = sigframe::frame(task, &entry)
                    .and_then(|(addr, len)| task.read_mem(addr, len))
                    .map_err(|e| Error::internal("read a signal frame", e))?
                    .into();
                self.t_mut(tid).resumed_regs = Some(entry);
            }
            // The frame could not be built (the kernel forces a SIGSEGV),
            // or the task was killed: replay, delivering the signal at its
            // next resume, meets the same stop.
            other => self.t_mut(tid).next_stop = Some(other),
        }
        self.emit(tid, EventData::Signal(info), 0)?;
        Ok(0)
    }

    /// Moves a signal that interrupted user code to the next anchor (or the
    /// next syscall, whichever comes first) and delivers it there.
    pub(super) fn signal_at_anchor(&mut self, tid: i32, sig: i32, raw: Vec<u8>) -> Result<i32> {
        let Some((regs, anchor)) = self.step_to_anchor(tid)? else {
            // A syscall comes first: deliver it right after that syscall.
            self.t(tid).task.tgkill(sig)?;
            self.t_mut(tid).requeued.push((sig, raw));
            self.resend_deferred(tid)?;
            return Ok(0);
        };
        // Stopped by a step: deliver the signal from here.
        self.t(tid).task.set_siginfo(&raw)?;
        let deliver = self.deliver(tid, regs, sig, raw, Some(anchor))?;
        self.resend_deferred(tid)?;
        Ok(deliver)
    }

    /// Re-sends the signals that came while `tid` was being stepped; each
    /// gets its original siginfo back when it is delivered.
    pub(super) fn resend_deferred(&mut self, tid: i32) -> Result<()> {
        for (sig, raw) in std::mem::take(&mut self.t_mut(tid).deferred) {
            self.t(tid).task.tgkill(sig)?;
            self.t_mut(tid).requeued.push((sig, raw));
        }
        Ok(())
    }

    /// Steps a task stopped in user code to an anchor: the first eligible
    /// instruction, reached a second time when it loops (to learn what
    /// changes between passes, which replay's trampoline checks first).
    /// None when a syscall comes first.
    pub(super) fn step_to_anchor(&mut self, tid: i32) -> Result<Option<(Regs, AnchorInfo)>> {
        const MAX_STEPS: u32 = 100_000;
        let mut steps = 0;
        loop {
            let task = &self.tasks[&tid].task;
            let regs = task.regs()?;
            if anchor::at_syscall(task, regs.rip) {
                return Ok(None);
            }
            let eligible = if self.session.in_wrapper(tid, regs.rsp) {
                None
            } else {
                anchor::eligible(task, regs.rip)
            };
            if let Some(found) = eligible {
                let first_ops = anchor::operand_values(task, &regs, &found);
                let Some((again, path)) = self.step_back_to(tid, regs.rip, &mut steps)? else {
                    return Ok(None);
                };
                if !found.entered_only_at_start(&path) {
                    // The loop jumps into the middle of the bytes a patch
                    // would cover: look further.
                    continue;
                }
                let task = &self.tasks[&tid].task;
                let changed = anchor::operand_values(task, &again, &found) != first_ops;
                let precheck = anchor::precheck_between(&regs, &again, changed);
                let dead = self.session.dead_memory(Some((tid, again.rsp)));
                let anchor = anchor::capture(task, &again, &found, precheck, &dead)?;
                return Ok(Some((again, anchor)));
            }
            if steps >= MAX_STEPS {
                return Err(Error::Internal(format!(
                    "no anchor instruction within {MAX_STEPS} steps of {:#x}",
                    regs.rip
                )));
            }
            self.step(tid, &mut steps)?;
        }
    }

    /// The time slice of `tid` ended (the preempter stopped it): let the
    /// next task run, at a point replay can find.
    pub(super) fn preempt(&mut self, tid: i32) -> Result<()> {
        let restarts = matches!(
            self.t(tid).held,
            Some((_, result, _)) if RESTART_CODES.contains(&result)
        );
        if restarts {
            // The stop came too late: it interrupted a syscall the task was
            // waiting in. Suppressed, the kernel restarts that syscall, so
            // as far as the program (and replay) can tell, it never
            // returned: forget the return and let it wait again.
            let t = self.t_mut(tid);
            if let Some((EventData::Syscall(info), _, _)) = t.held.take() {
                let nr = info.regs.orig_rax as i64;
                let replay = syscalls::lookup(nr)
                    .and_then(|spec| spec.replay_for(&info.regs.syscall_args()).ok())
                    .unwrap_or(Replay::Emulate);
                t.pending = Some(Pending {
                    regs: info.regs,
                    inputs: info.inputs.into_vec(),
                    replay,
                    argv: Vec::new(),
                    flags: 0,
                });
            }
            t.resumed_regs = None;
            t.restarting = true;
            if self.current == Some(tid) {
                return self.run_task(tid);
            }
            let how = self.to_next_syscall();
            let t = self.t_mut(tid);
            t.state = State::InKernel;
            return t.task.resume(how, 0);
        }
        let others = self
            .tasks
            .iter()
            .any(|(&t, rt)| t != tid && rt.state == State::Stopped);
        if !others || self.current != Some(tid) {
            return self.continue_or_park(tid);
        }
        let regs = self.t(tid).task.regs()?;
        let info = if self.t(tid).resumed_regs == Some(regs) {
            PreemptInfo {
                regs,
                anchor: None.into(),
            }
        } else {
            match self.step_to_anchor(tid)? {
                Some((regs, anchor)) => PreemptInfo {
                    regs,
                    anchor: Some(anchor).into(),
                },
                None => {
                    // Switch at its next syscall instead.
                    self.t_mut(tid).preempt_pending = true;
                    self.resend_deferred(tid)?;
                    return self.continue_or_park(tid);
                }
            }
        };
        self.emit(tid, EventData::Preempt(info), 0)?;
        self.resend_deferred(tid)?;
        let t = self.t_mut(tid);
        t.resumed_regs = None;
        t.state = State::Stopped;
        self.current = None;
        Ok(())
    }

    /// Single-steps `tid` once (emulating a trapped rdtsc on the way).
    pub(super) fn step(&mut self, tid: i32, steps: &mut u32) -> Result<()> {
        *steps += 1;
        let task = &self.tasks[&tid].task;
        let rip = task.regs()?.rip;
        task.resume(Resume::Step, 0)?;
        match task.wait()? {
            Stop::Signal(libc::SIGTRAP) => Ok(()),
            Stop::Signal(libc::SIGSEGV) if rdtsc::decode(task, rip).is_some() => {
                self.trapped_rdtsc(tid).map(drop)
            }
            Stop::Signal(sig) => {
                // Another signal came meanwhile (a timer ticking on): keep
                // it for later, and step on.
                if !self.ticks.take_fired(tid, sig) {
                    if let Ok(si) = task.siginfo() {
                        // SAFETY: siginfo_t is plain data, 128 bytes.
                        let raw = unsafe {
                            std::slice::from_raw_parts(
                                &si as *const libc::siginfo_t as *const u8,
                                std::mem::size_of::<libc::siginfo_t>(),
                            )
                        }
                        .to_vec();
                        self.t_mut(tid).deferred.push((sig, raw));
                    }
                }
                Ok(())
            }
            other => Err(Error::Internal(format!(
                "stepping task {tid} to an anchor: {other:?}"
            ))),
        }
    }

    /// Steps until the task is back at `rip`; None if a syscall comes
    /// first or it takes too long (then the caller falls back). Returns the
    /// registers there and every instruction address on the way.
    pub(super) fn step_back_to(
        &mut self,
        tid: i32,
        rip: u64,
        steps: &mut u32,
    ) -> Result<Option<(Regs, Vec<u64>)>> {
        const LOOP_LIMIT: u32 = 10_000;
        let start = *steps;
        let mut path = vec![rip];
        loop {
            self.step(tid, steps)?;
            let task = &self.tasks[&tid].task;
            let regs = task.regs()?;
            path.push(regs.rip);
            if regs.rip == rip {
                return Ok(Some((regs, path)));
            }
            if anchor::at_syscall(task, regs.rip) || *steps - start > LOOP_LIMIT {
                return Ok(None);
            }
        }
    }

    /// (caught by a handler, ignored) for `sig` in `tid`.
    pub(super) fn disposition(&self, tid: i32, sig: i32) -> Result<(bool, bool)> {
        self.t(tid)
            .task
            .signal_disposition(sig)
            .map_err(|e| Error::internal("read signal disposition", e))
    }

    pub(super) fn is_fatal(&self, tid: i32, sig: i32) -> Result<bool> {
        let (caught, ignored) = self.disposition(tid, sig)?;
        let ignored_by_default = matches!(
            sig,
            libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH | libc::SIGCONT
        );
        Ok(!caught && !ignored && !ignored_by_default)
    }
}
