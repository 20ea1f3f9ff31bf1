//! Recording signals and scheduling points: deliveries at syscall
//! boundaries or moved to anchors, handler frames, trapped instructions
//! (rdtsc, cpuid), and preemption of tasks that run too long.

use rrpipe_plugin_api::{AnchorInfo, EventData, PreemptInfo, RdtscInfo, Regs, SignalInfo};

use super::{Pending, Recorder, State, RESTART_CODES};
use crate::error::{Error, Result};
use crate::ptrace::{is_fault, Resume, Stop};
use crate::syscalls::{self, Replay};
use crate::{anchor, rdtsc, sigframe};
use rrpipe_syscallbuf as abi;

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
        let mut raw = crate::ptrace::siginfo_bytes(&si);
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
            // It is kept until the syscall's entry stop (`resend_kept`):
            // re-sent now, the kernel would deliver it again as soon as the
            // task resumes, here, where it cannot be recorded, and stepping
            // would find the same syscall ahead again, forever.
            let t = self.t_mut(tid);
            t.deferred.insert(0, (sig, raw));
            return Ok(0);
        };
        // Stopped by a step: deliver the signal from here.
        self.t(tid).task.set_siginfo(&raw)?;
        let deliver = self.deliver(tid, regs, sig, raw, Some(anchor))?;
        self.resend_deferred(tid)?;
        Ok(deliver)
    }

    /// Re-sends the signals that came while `tid` was being stepped (and
    /// those kept for a syscall, see `resend_kept`); each gets its
    /// original siginfo back when it is delivered. A signal below SIGRTMIN
    /// is sent once however many times it came, and not while one re-sent
    /// earlier is still pending: the kernel would have merged them.
    pub(super) fn resend_deferred(&mut self, tid: i32) -> Result<()> {
        for (sig, raw) in std::mem::take(&mut self.t_mut(tid).deferred) {
            self.resend(tid, sig, raw)?;
        }
        Ok(())
    }

    /// Sends `tid` signal `sig` again; it gets its siginfo `raw` back when
    /// it is delivered. Not a signal below SIGRTMIN while one re-sent
    /// earlier is still pending (see `resend_deferred`).
    fn resend(&mut self, tid: i32, sig: i32, raw: Vec<u8>) -> Result<()> {
        let pending = self.t(tid).requeued.iter().any(|(s, _)| *s == sig);
        if sig < libc::SIGRTMIN() && pending {
            return Ok(());
        }
        self.t(tid).task.tgkill(sig)?;
        self.t_mut(tid).requeued.push((sig, raw));
        Ok(())
    }

    /// Re-sends the signals that came while rrpipe ran syscalls in `tid`
    /// for itself (see `crate::remote`), which went on without them. The
    /// end of a time slice is dropped, as while stepping: the task just
    /// runs on. Others are delivered as any signal that comes while the
    /// task runs (before this, a signal there left the task's registers
    /// those of rrpipe's call: a thread whose buffer registration met
    /// rrpipe's preemption saw the call fail, unlike in replay).
    pub(super) fn resend_set_aside(&mut self, tid: i32) -> Result<()> {
        let Some(t) = self.tasks.get(&tid) else {
            return Ok(());
        };
        for (sig, raw) in t.task.take_set_aside() {
            if !self.ticks.take_fired(tid, sig) {
                self.resend(tid, sig, raw)?;
            }
        }
        Ok(())
    }

    /// At a traced syscall's entry stop: the signals kept for this moment
    /// (moved from user code to "after the next syscall") are sent now, so
    /// the kernel delivers them as the syscall returns, a boundary that
    /// `signal` recognises and replay reproduces; and a request that the
    /// next buffered call go traced (`force_traced`) is withdrawn, this
    /// being the stop it asked for.
    pub(super) fn resend_kept(&mut self, tid: i32, preempted: bool) -> Result<()> {
        if self.t(tid).deferred.is_empty() && !preempted {
            return Ok(());
        }
        self.force_traced(tid, false)?;
        self.resend_deferred(tid)
    }

    /// Sets (or clears) the `force_traced` flag of `tid`'s syscall buffer,
    /// if it has one: set, its next buffered call makes its syscall traced,
    /// after a FALLBACK record (replay follows the record and needs nothing
    /// else), so the task stops at that syscall's entry.
    pub(super) fn force_traced(&mut self, tid: i32, on: bool) -> Result<()> {
        let Some(base) = self.session.buffer(tid) else {
            return Ok(());
        };
        let at = base + std::mem::offset_of!(abi::Header, force_traced) as u64;
        self.t(tid)
            .task
            .write_mem(at, &u32::from(on).to_le_bytes())
            .map_err(|e| Error::internal(format!("write the syscall buffer of task {tid}"), e))
    }

    /// Steps a task stopped in user code to an anchor: the first eligible
    /// instruction, reached a second time when it loops (to learn what
    /// changes between passes, which replay's trampoline checks first).
    /// None when a syscall comes first: the task is then at a syscall
    /// instruction that stops, or about to reach one without running any
    /// more of the program's code (see `syscall_ahead`), and its next
    /// buffered call, if any, will go traced (`force_traced`).
    pub(super) fn step_to_anchor(&mut self, tid: i32) -> Result<Option<(Regs, AnchorInfo)>> {
        let mut forced = false;
        let found = self.step_to_anchor_inner(tid, &mut forced)?;
        match self.t(tid).next_stop {
            // A fault on the way: handled next; the rest applies.
            Some(Stop::Signal(_)) | None => {}
            // Killed while being stepped: nothing more to arrange.
            Some(_) => return Ok(None),
        }
        if found.is_none() && !forced {
            // The stepping gave up (no anchor within its limits) or stopped
            // at a traced syscall. In the first case the task runs on to
            // its next syscall, which must not be a buffered call made
            // untraced: the flag sends it down the traced path. (Cleared
            // at the entry stop the signal waits for.)
            let task = &self.t(tid).task;
            let rip = task.regs()?.rip;
            if rip == abi::UNTRACED_SYSCALL || !anchor::at_syscall(task, rip) {
                self.force_traced(tid, true)?;
            }
        } else if found.is_some() && forced {
            // Found beyond the wrapper: the flag is not needed any more,
            // and nothing can have consumed it (that would have been a
            // traced syscall, which ends the stepping).
            self.force_traced(tid, false)?;
        }
        Ok(found)
    }

    fn step_to_anchor_inner(
        &mut self,
        tid: i32,
        forced: &mut bool,
    ) -> Result<Option<(Regs, AnchorInfo)>> {
        const MAX_STEPS: u32 = 100_000;
        let mut steps = 0;
        let start = self.t(tid).task.regs()?;
        let mut inside = self.session.in_wrapper(tid, start.rsp);
        if inside {
            // Stopped inside a wrapper: its buffered call may not have
            // decided yet, and then goes traced.
            self.force_traced(tid, true)?;
            *forced = true;
        }
        loop {
            let task = &self.tasks[&tid].task;
            let regs = task.regs()?;
            if self.syscall_ahead(tid, &regs, &mut inside, forced)? {
                return Ok(None);
            }
            let task = &self.tasks[&tid].task;
            let eligible = if inside {
                None
            } else {
                anchor::eligible(task, regs.rip)
            };
            if let Some(found) = eligible {
                let first_ops = anchor::operand_values(task, &regs, &found);
                let Some((again, path)) = self.step_back_to(tid, regs.rip, &mut steps, forced)?
                else {
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
            if !self.step(tid, &mut steps)? {
                return Ok(None);
            }
        }
    }

    /// Forgets the return with a restart code held for `tid`, whose
    /// syscall the kernel restarts (no signal is delivered there): as far
    /// as the program (and replay) can tell, it never returned. Its entry
    /// is pending again, and the task `restarting`. Whether there was one.
    pub(super) fn forget_restarted_return(&mut self, tid: i32) -> bool {
        let restarts = matches!(
            self.t(tid).held,
            Some((_, result, _)) if RESTART_CODES.contains(&result)
        );
        if !restarts {
            return false;
        }
        if let Some((EventData::Syscall(info), _, _)) = self.t_mut(tid).held.take() {
            let nr = info.regs.orig_rax as i64;
            let args = info.regs.syscall_args();
            let replay = syscalls::lookup(nr)
                .and_then(|spec| spec.replay_for(&args).ok())
                .unwrap_or(Replay::Emulate);
            let flags = self.console_flags(tid, nr, &args);
            self.t_mut(tid).pending = Some(Pending {
                regs: info.regs,
                inputs: info.inputs.into_vec(),
                replay,
                argv: Vec::new(),
                flags,
            });
        }
        let t = self.t_mut(tid);
        t.resumed_regs = None;
        t.restarting = true;
        true
    }

    /// Whether `tid`, at a syscall's entry, is the kernel restarting the
    /// syscall whose return (a restart code) is held for it: the signal
    /// that interrupted the wait was taken by another thread of the
    /// process (a signal sent to a process goes to whichever of its
    /// threads dequeues it first), and none is delivered here.
    pub(super) fn restarts_held(&self, tid: i32) -> Result<bool> {
        let Some((EventData::Syscall(info), result, _)) = &self.t(tid).held else {
            return Ok(false);
        };
        if !RESTART_CODES.contains(result) {
            return Ok(false);
        }
        let regs = self.t(tid).task.regs()?;
        // (-ERESTART_RESTARTBLOCK restarts as restart_syscall.)
        let nr = if *result == -516 {
            libc::SYS_restart_syscall as u64
        } else {
            info.regs.orig_rax
        };
        Ok(regs.orig_rax == nr && regs.rip == info.regs.rip)
    }

    /// The time slice of `tid` ended (the preempter stopped it): let the
    /// next task run, at a point replay can find.
    pub(super) fn preempt(&mut self, tid: i32) -> Result<()> {
        // A stop that came too late: it interrupted a syscall the task was
        // waiting in. Suppressed, the kernel restarts that syscall: let it
        // wait again.
        if self.forget_restarted_return(tid) {
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
                    // Switch at its next syscall instead (where the
                    // signals that came meanwhile are re-sent too).
                    self.t_mut(tid).preempt_pending = true;
                    if let Some(next) = self.t_mut(tid).next_stop.take() {
                        // A fault, or it was killed, while being stepped.
                        return self.handle(tid, next);
                    }
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

    /// Single-steps `tid` once (emulating a trapped rdtsc on the way):
    /// true when the instruction at the old rip has run; false when it
    /// cannot be stepped (it faults) or the task stopped for good (killed:
    /// its exit stop); that stop is kept in `next_stop` for the main loop.
    pub(super) fn step(&mut self, tid: i32, steps: &mut u32) -> Result<bool> {
        *steps += 1;
        let rip = self.tasks[&tid].task.regs()?.rip;
        loop {
            let task = &self.tasks[&tid].task;
            task.resume(Resume::Step, 0)?;
            match task.wait()? {
                Stop::Signal(libc::SIGTRAP) => return Ok(true),
                Stop::Signal(libc::SIGSEGV) if rdtsc::decode(task, rip).is_some() => {
                    return self.trapped_rdtsc(tid).map(|_| true);
                }
                Stop::Signal(sig) => {
                    let si = task.siginfo().ok();
                    if is_fault(sig) && si.is_some_and(|si| si.si_code > 0) {
                        // The instruction faulted (or trapped cpuid): it
                        // would again at every step. The stop is the main
                        // loop's to handle, as if the task had run there.
                        self.t_mut(tid).next_stop = Some(Stop::Signal(sig));
                        return Ok(false);
                    }
                    // Another signal came meanwhile (a timer ticking on):
                    // keep it for later. Its stop came before the
                    // instruction ran (the trap of the previous step, a
                    // synchronous signal, is always reported first), so
                    // step again: counted as a step, the same address
                    // would look like a loop back to it.
                    if !self.ticks.take_fired(tid, sig) {
                        if let Some(si) = si {
                            let raw = crate::ptrace::siginfo_bytes(&si);
                            self.t_mut(tid).deferred.push((sig, raw));
                        }
                    }
                }
                other => {
                    // Killed meanwhile (SIGKILL, from outside or from a
                    // second interruption of rrpipe, see `forward`): the
                    // exit stop is the main loop's to handle, which lets
                    // the task die (left in that stop, it would never be
                    // reaped).
                    self.t_mut(tid).next_stop = Some(other);
                    return Ok(false);
                }
            }
        }
    }

    /// Steps until the task is back at `rip` (an instruction outside the
    /// preload library's wrappers); None if a syscall comes first or it
    /// takes too long (then the caller falls back). Returns the registers
    /// there and every instruction address on the way.
    pub(super) fn step_back_to(
        &mut self,
        tid: i32,
        rip: u64,
        steps: &mut u32,
        forced: &mut bool,
    ) -> Result<Option<(Regs, Vec<u64>)>> {
        const LOOP_LIMIT: u32 = 10_000;
        let start = *steps;
        let mut path = vec![rip];
        let mut inside = false;
        loop {
            if !self.step(tid, steps)? {
                return Ok(None);
            }
            let task = &self.tasks[&tid].task;
            let regs = task.regs()?;
            path.push(regs.rip);
            if regs.rip == rip {
                return Ok(Some((regs, path)));
            }
            if self.syscall_ahead(tid, &regs, &mut inside, forced)? || *steps - start > LOOP_LIMIT {
                return Ok(None);
            }
        }
    }

    /// Whether a task being stepped (now at `regs`) is about to stop at a
    /// syscall without running more of the program's code, so that the
    /// stepping can end:
    ///
    /// - at a syscall instruction other than the preload library's
    ///   untraced one: it stops at the syscall's entry;
    /// - just entered a wrapper of the preload library (its stack pointer
    ///   moved onto the thread's wrapper stack): with `force_traced` set,
    ///   set here, the wrapper makes its syscall traced.
    ///
    /// At the untraced instruction (a wrapper decided to buffer its call
    /// before the flag could tell it otherwise) the answer is no: that
    /// syscall makes no stop, and the signal must not wait for the one
    /// after it, which may never come. The flag is set (the wrapper's next
    /// call goes traced) and the stepping goes on, over the untraced
    /// syscall (the seccomp filter lets it run, and the step stops right
    /// after it), through the rest of the wrapper and into the program's
    /// code, where it may find an anchor; otherwise it ends at the next
    /// wrapper's entry or at a traced syscall. `inside` tracks whether the
    /// previous step was inside a wrapper; `forced` says whether the flag
    /// was set.
    fn syscall_ahead(
        &mut self,
        tid: i32,
        regs: &Regs,
        inside: &mut bool,
        forced: &mut bool,
    ) -> Result<bool> {
        let now_inside = self.session.in_wrapper(tid, regs.rsp);
        let entered = now_inside && !*inside;
        *inside = now_inside;
        if regs.rip == abi::UNTRACED_SYSCALL && self.session.buffer(tid).is_some() {
            if !*forced {
                self.force_traced(tid, true)?;
                *forced = true;
            }
            return Ok(false);
        }
        if anchor::at_syscall(&self.t(tid).task, regs.rip) {
            return Ok(true);
        }
        if entered {
            if !*forced {
                self.force_traced(tid, true)?;
                *forced = true;
            }
            return Ok(true);
        }
        Ok(false)
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
