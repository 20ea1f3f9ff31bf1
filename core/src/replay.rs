//! Replay: start the recorded program again in an identical address space
//! and drive it through the recorded events, one by one. Emulated syscalls
//! are skipped with PTRACE_SYSEMU and their recorded results and memory
//! written back; address-space syscalls are run again and checked. Every
//! event is checked (syscall number, arguments, path strings, registers)
//! and the first difference stops replay with a report.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rrpipe_plugin_api::trace::{read_header, EventReader, TraceHeader};
use rrpipe_plugin_api::{
    flags, AnchorInfo, Event, EventData, EventKind, ExecInfo, Mode, Regs, SyscallInfo,
};
use rrpipe_syscallbuf as abi;

use crate::cli::ReplayOptions;
use crate::config::PluginSpec;
use crate::error::{Error, Result};
use crate::patch::{self, Site};
use crate::pipeline::Pipeline;
use crate::ptrace::{is_fault, Resume, Stop, Task};
use crate::session::Session;
use crate::syscalls::{self, Replay};
use crate::{anchor, cpus, exec, rdtsc, remote, sigframe, spawn, tracedir};

mod buffer;

pub fn run(opts: &ReplayOptions) -> Result<i32> {
    let dir = tracedir::resolve(opts.trace.as_deref())?;
    let header = read_header(&dir)?;
    let mut events = EventReader::open(&dir)?;
    let first = events
        .next_event()?
        .ok_or_else(|| Error::BadTrace(format!("{}: the trace has no events", dir.display())))?;
    let EventData::Exec(exec_info) = &first.data else {
        return Err(Error::BadTrace(
            "the trace does not start with an exec".into(),
        ));
    };

    let allowed = cpus::allowed();
    let cpu = opts
        .tracer
        .cpu
        .map(|c| c as usize)
        .or_else(|| {
            allowed
                .contains(&(header.cpu as usize))
                .then_some(header.cpu as usize)
        })
        .unwrap_or(allowed[0]);
    let workers: Vec<usize> = allowed.iter().copied().filter(|&c| c != cpu).collect();
    let workers = (!workers.is_empty()).then_some(workers);

    let mut specs = Vec::new();
    if opts.tracer.redirect_output {
        specs.push(PluginSpec {
            name: "output-redirect".into(),
            path: None,
            required: false,
            ..PluginSpec::default()
        });
    }
    specs.extend(opts.plugins.iter().cloned());
    let pipeline = Pipeline::start(&specs, Mode::Replay, &dir, workers.as_deref())?;
    cpus::pin_current_thread(cpu)?;

    let stage = ExecStage::new(&dir, exec_info)?;
    let devnull = std::fs::File::open("/dev/null").map_err(|e| Error::internal("/dev/null", e))?;
    let task = spawn::spawn(&stage.spawn_spec(&header, cpu, devnull.as_raw_fd())?)?;
    let initial = first.header.tid;
    let mut tasks = HashMap::new();
    tasks.insert(initial, RepTask::new(task));
    let page = exec::PageSetup {
        mode: if header.syscall_buffer {
            abi::MODE_REPLAY
        } else {
            abi::MODE_OFF
        },
        console: Default::default(),
    };
    let mut replayer = Replayer {
        page,
        tasks,
        cur: initial,
        initial,
        initial_status: None,
        lingering: HashMap::new(),
        doomed: HashMap::new(),
        session: Session::new(pipeline),
        dir,
        stage,
    };
    let outcome = replayer.replay(first, &mut events);
    let lingering = std::mem::take(&mut replayer.lingering).into_values();
    crate::ptrace::kill_all(replayer.tasks.drain().map(|(_, t)| t.task).chain(lingering));
    let (_, finished) = replayer.session.pipeline.finish();
    let code = outcome?;
    finished?;
    Ok(code)
}

/// A private directory holding a link to the saved executable under a
/// relative path exactly as long as the recorded one, with the same base
/// name: the kernel copies the path onto the new stack and names the task
/// after it, so the same length keeps every stack address identical and
/// the same name keeps `comm`.
struct ExecStage {
    dir: PathBuf,
    relative: String,
}

impl ExecStage {
    fn new(trace_dir: &Path, info: &ExecInfo) -> Result<ExecStage> {
        let dir = std::env::temp_dir().join(format!("rrpipe-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::internal(format!("create {}", dir.display()), e))?;
        let mut stage = ExecStage {
            dir,
            relative: String::new(),
        };
        stage.relative = stage.stage(trace_dir, info)?;
        Ok(stage)
    }

    /// Links the saved executable of `info` into the stage; returns the
    /// path to hand execve, relative to the stage (every replayed process
    /// has it as working directory: the program's chdir calls are emulated).
    fn stage(&self, trace_dir: &Path, info: &ExecInfo) -> Result<String> {
        let saved = exec::saved_copy(info, info.exe.as_str()).ok_or_else(|| {
            Error::BadTrace(format!("trace lacks the saved executable {}", info.exe))
        })?;
        let target = trace_dir.join(saved.in_trace.as_str());
        let filename = info.filename.as_str();
        let base = filename.rsplit('/').next().unwrap_or(filename);
        let relative = match filename.len() - base.len() {
            0 => base.to_string(),
            // "/prog": no relative path is that short; the layout check
            // after exec reports it if the stack moved.
            1 => format!("./{base}"),
            n => {
                // n-1 bytes of directories, then "/base".
                let mut pad = String::new();
                while pad.len() < n - 1 {
                    if !pad.is_empty() {
                        pad.push('/');
                    }
                    let take = (n - 1 - pad.len()).min(200);
                    pad.push_str(&"d".repeat(take));
                }
                format!("{pad}/{base}")
            }
        };
        let link = self.dir.join(&relative);
        std::fs::create_dir_all(link.parent().unwrap_or(&self.dir))
            .map_err(|e| Error::internal(format!("create {}", self.dir.display()), e))?;
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link)
            .map_err(|e| Error::internal(format!("link {}", link.display()), e))?;
        Ok(relative)
    }

    fn spawn_spec(&self, header: &TraceHeader, cpu: usize, stdin: i32) -> Result<spawn::SpawnSpec> {
        let cstr = |s: &str| {
            CString::new(s)
                .map_err(|_| Error::BadTrace(format!("NUL byte in recorded string {s:?}")))
        };
        Ok(spawn::SpawnSpec {
            filename: cstr(&self.relative)?,
            argv: header.argv.iter().map(|a| cstr(a)).collect::<Result<_>>()?,
            env: header.env.iter().map(|a| cstr(a)).collect::<Result<_>>()?,
            cwd: Some(cstr(&self.dir.to_string_lossy())?),
            cpu,
            no_core_dump: true,
            stdin: Some(stdin),
        })
    }
}

impl Drop for ExecStage {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A replayed task, known by its recorded tid.
struct RepTask {
    task: Task,
    /// Signal to deliver at the next resume.
    signal: i32,
    /// Stopped at the entry of the syscall of its next event (a `Blocked`
    /// event brought it there).
    at_entry: bool,
    /// Inside a vfork: it comes back when its child execs or exits.
    in_kernel: bool,
    /// Its `Buffered` events up to its next recorded stop, dispatched to
    /// plugins once it gets there (where record dispatched them).
    batch: Vec<Event>,
    /// Bytes of records loaded into its syscall buffer for the stretch it
    /// is running (see `load_buffer`).
    loaded: Option<u32>,
}

impl RepTask {
    fn new(task: Task) -> RepTask {
        RepTask {
            task,
            signal: 0,
            at_entry: false,
            in_kernel: false,
            batch: Vec::new(),
            loaded: None,
        }
    }
}

struct Replayer {
    /// What the preload library finds in the rrpipe page.
    page: exec::PageSetup,
    /// By recorded tid.
    tasks: HashMap<i32, RepTask>,
    /// The task of the event being replayed.
    cur: i32,
    initial: i32,
    initial_status: Option<i32>,
    /// Group leaders that exited before their threads (by recorded tid).
    lingering: HashMap<i32, Task>,
    /// Tasks (by recorded tid) whose death by SIGKILL the trace has
    /// reached while other threads of their process have events left,
    /// with their process (the replay's thread-group id); the tasks are
    /// kept in `lingering`, stopped at their last event, until their
    /// process is killed (see `doom`).
    doomed: HashMap<i32, i32>,
    session: Session,
    dir: PathBuf,
    stage: ExecStage,
}

impl Replayer {
    fn task(&self) -> &Task {
        &self.tasks[&self.cur].task
    }

    fn dispatch(&mut self, event: Event) -> Result<()> {
        let task = &self.tasks[&self.cur].task;
        self.session.dispatch(event, task)
    }

    fn t_mut(&mut self) -> &mut RepTask {
        self.tasks.get_mut(&self.cur).expect("known task")
    }

    fn diverged(&self, event: &Event, detail: String) -> Error {
        Error::Divergence {
            time: event.header.time,
            tid: event.header.tid,
            detail,
        }
    }

    fn replay(&mut self, first: Event, events: &mut EventReader) -> Result<i32> {
        let EventData::Exec(info) = &first.data else {
            unreachable!()
        };
        exec::prepare(self.task(), &self.page)?;
        if let Err(detail) = exec::restore(self.task(), info, &self.dir)? {
            return Err(self.diverged(&first, detail));
        }
        self.dispatch(first)?;
        let debug = std::env::var_os("RRPIPE_DEBUG").is_some();
        // The event after a `Buffered` one, read early (see
        // `reported_before_others`).
        let mut ahead: Option<Option<Event>> = None;
        loop {
            let next = match ahead.take() {
                Some(next) => next,
                None => events.next_event()?,
            };
            let Some(event) = next else {
                // Threads whose death by SIGKILL the trace has, but not
                // that of the last thread of their process: their process
                // is killed now, as it was (see `doom`).
                let groups: std::collections::BTreeSet<i32> =
                    self.doomed.values().copied().collect();
                for group in groups {
                    self.kill_group(group)?;
                }
                if let Some(leader) = self.lingering.remove(&self.initial) {
                    // Its threads are gone: the process's status is here.
                    self.initial_status = Some(loop {
                        match leader.wait()? {
                            Stop::Exited(code) => break code,
                            Stop::Killed(sig) => break 128 + sig,
                            _ => leader.resume(Resume::Cont, 0)?,
                        }
                    });
                }
                return self.initial_status.ok_or_else(|| {
                    Error::BadTrace(format!(
                        "the trace ends after event {} before the program exited (was the recording killed?)",
                        self.session.time
                    ))
                });
            };
            if debug {
                eprintln!(
                    "replay: event {} tid {} {:?} nr {}",
                    event.header.time, event.header.tid, event.header.kind, event.header.syscall
                );
            }
            if !self.tasks.contains_key(&event.header.tid) {
                return Err(Error::BadTrace(format!(
                    "event {} belongs to task {}, which the trace never created",
                    event.header.time, event.header.tid
                )));
            }
            self.cur = event.header.tid;
            if event.header.kind == EventKind::Buffered {
                // Made by the preload library from its buffer: what it needs
                // is loaded before the task runs to its next stop.
                self.t_mut().batch.push(event);
                let next = events.next_event()?;
                if self.reported_before_others(next.as_ref()) {
                    self.run_to_reporting_entry()?;
                }
                ahead = Some(next);
                continue;
            }
            self.load_buffer(&event)?;
            match &event.data {
                EventData::Syscall(info) => self.syscall(&event, info)?,
                EventData::Blocked(info) => self.blocked(&event, &info.regs)?,
                EventData::Preempt(info) => {
                    match info.anchor.as_ref().into_option() {
                        Some(anchor) => self.run_to_anchor(&event, &info.regs, anchor)?,
                        None => {
                            let regs = self.task().regs()?;
                            self.check_regs(&event, &info.regs, &regs)?;
                        }
                    }
                    self.dispatch(event)?;
                }
                EventData::Rdtsc(info) => {
                    self.run_to_signal(&event, libc::SIGSEGV, &info.regs)?;
                    let insn = rdtsc::decode(self.task(), info.regs.rip).ok_or_else(|| {
                        self.diverged(&event, format!("no rdtsc at {:#x}", info.regs.rip))
                    })?;
                    let aux = info.aux.into_option();
                    self.task()
                        .set_regs(&rdtsc::emulate(&info.regs, insn, info.tsc, aux))?;
                    self.dispatch(event)?;
                }
                EventData::Signal(info) => {
                    if let Some(anchor) = info.anchor.as_ref().into_option() {
                        self.run_to_anchor(&event, &info.regs, anchor)?;
                    }
                    if !is_fault(info.signo) || info.code <= 0 {
                        // Sent by someone (a task, the kernel for a child's
                        // exit, a user): replay sends it again.
                        self.task().tgkill(info.signo)?;
                    }
                    self.run_to_signal(&event, info.signo, &info.regs)?;
                    self.task().set_siginfo(&info.siginfo)?;
                    if info.handler_frame.is_empty() {
                        self.t_mut().signal = info.signo;
                    } else {
                        self.enter_handler(&event, info.signo, &info.handler_frame)?;
                    }
                    self.dispatch(event)?;
                }
                EventData::Exit(info) => {
                    let (code, signal) = (info.code, info.signal);
                    if signal == libc::SIGKILL {
                        if self.doom(&event)? {
                            continue;
                        }
                        if let Some(status) = self.kill_here()? {
                            // Gone without an exit stop.
                            self.dispatch(event)?;
                            self.tasks.remove(&self.cur);
                            if self.cur == self.initial {
                                self.initial_status = Some(status);
                            }
                            continue;
                        }
                    } else {
                        self.resume_to(&event, Resume::Syscall, |s| {
                            matches!(s, Stop::Event(libc::PTRACE_EVENT_EXIT))
                        })?;
                    }
                    let now = self.task().exit_info()?;
                    let seen = (now.code, now.signal);
                    if seen != (code, signal) {
                        return Err(self.diverged(
                            &event,
                            format!("recorded exit (code {code}, signal {signal}), replay exits with {seen:?}"),
                        ));
                    }
                    self.dispatch(event)?;
                    if self.task().leads_other_threads() {
                        // A leader that called pthread_exit: the process
                        // lives on in its threads, and ends with the last.
                        self.task().resume(Resume::Cont, 0)?;
                        let t = self.tasks.remove(&self.cur).expect("known task");
                        self.lingering.insert(self.cur, t.task);
                        continue;
                    }
                    let t = self.tasks.remove(&self.cur).expect("known task");
                    t.task.resume(Resume::Cont, 0)?;
                    let status = loop {
                        match t.task.wait()? {
                            Stop::Killed(sig) => break 128 + sig,
                            Stop::Exited(code) => break code,
                            // Signals racing with the exit.
                            _ => t.task.resume(Resume::Cont, 0)?,
                        }
                    };
                    if self.cur == self.initial {
                        self.initial_status = Some(status);
                    }
                }
                EventData::Abort(info) => {
                    let (reason, code) = (info.reason.to_string(), info.exit_code);
                    self.dispatch(event)?;
                    eprintln!(
                        "rrpipe: replay reached the end of an interrupted recording: {reason}"
                    );
                    return Ok(code);
                }
                EventData::Exec(info) => self.exec(&event, info)?,
                EventData::Buffered(_) => {
                    return Err(Error::BadTrace(format!(
                        "event {}: buffered syscalls under a {:?} header",
                        event.header.time, event.header.kind
                    )))
                }
            }
        }
    }

    /// Whether the current task's `Buffered` events so far were reported at
    /// the entry of a syscall after which other tasks' events come (`next`
    /// is another task's): the recorder reports a task's buffered calls
    /// right before its next event, or at a syscall's entry, and the
    /// syscall's own event follows at once unless the task was killed
    /// inside it (a syscall that may wait has its `Blocked` event first).
    /// The kill's events come next then: other threads' returns and
    /// deaths. Not for calls read at the task's death (`flags::AT_DEATH`).
    fn reported_before_others(&self, next: Option<&Event>) -> bool {
        let t = &self.tasks[&self.cur];
        !t.at_entry
            && !t.in_kernel
            && t.batch
                .iter()
                .any(|e| e.header.flags & flags::AT_DEATH == 0)
            && next.is_some_and(|n| n.header.tid != self.cur)
    }

    /// Runs the current task over its buffered calls to the syscall entry
    /// where record reported them (see `reported_before_others`): they
    /// reach the plugins there, in the trace's order, with the memory and
    /// the tasks of that moment. The task stays at that entry, reached
    /// under `PTRACE_SYSEMU`: the only event of its that can follow is the
    /// return of a syscall replay emulates (see the recorder's
    /// `return_before_death`), or its death.
    fn run_to_reporting_entry(&mut self) -> Result<()> {
        let last = self.t_mut().batch.last().cloned().expect("a batch");
        self.load_buffer(&last)?;
        self.resume_to(&last, Resume::Sysemu, |s| s == Stop::SyscallEntry)?;
        self.t_mut().at_entry = true;
        Ok(())
    }

    /// Ends the current task the way its recorded `Exit` event says it
    /// ended, by SIGKILL, and brings it to its exit stop; returns its
    /// status instead when it ended without one.
    ///
    /// SIGKILL is never reported at a signal-delivery stop, so no `Signal`
    /// event precedes such an end, and nothing sends it in replay: not
    /// whoever killed the task from outside (another process, rrpipe's
    /// second interruption), not a `kill` call of the program's own,
    /// which replay emulates. Replay kills the task itself, where it
    /// stands: at its last recorded event before the end. That is the
    /// boundary the trace can place; where exactly the kill came after it
    /// (in user code, in the middle of a syscall whose return the trace
    /// does not have, or of a stretch of buffered calls) is not recorded,
    /// and the task does not run there. The calls it buffered since that
    /// event are not made again: their events reach the plugins at the
    /// exit stop (see `dispatch_batch_at_death`). Nothing the program did
    /// after its last event can be seen: it printed nothing more (writes
    /// to rrpipe's output are traced), and it is dead. (A task the kernel is killing anyway,
    /// a thread whose process another thread's SIGKILL ended, is at its
    /// exit stop already: the SIGKILL changes nothing there.)
    ///
    /// SIGKILL ends the whole process: when other threads of the current
    /// task's process have events left, it is killed with the last of
    /// them (see `doom`), and the threads the trace ended before are
    /// brought to their end then.
    fn kill_here(&mut self) -> Result<Option<i32>> {
        let t = self.t_mut();
        t.signal = 0;
        t.loaded = None;
        t.at_entry = false;
        t.in_kernel = false;
        let group = crate::ptrace::tgid_of(self.task().tid.as_raw());
        self.task().tgkill(libc::SIGKILL)?;
        let ended = loop {
            match self.task().wait()? {
                Stop::Event(libc::PTRACE_EVENT_EXIT) => break None,
                Stop::Killed(sig) => break Some(128 + sig),
                Stop::Exited(code) => break Some(code),
                // A stop it had reached before the signal (a syscall's
                // return that a vfork parent was let go to): on to the
                // end.
                _ => self.task().resume(Resume::Cont, 0)?,
            }
        };
        if let Some(group) = group {
            self.end_doomed(group)?;
        }
        self.dispatch_batch_at_death()?;
        Ok(ended)
    }

    /// Sends the plugins the current task's `Buffered` events that its
    /// death by SIGKILL leaves undelivered: the calls it buffered after
    /// its last event, which it does not make again. Record may have
    /// reported them at its death too, or at the entry of a syscall the
    /// kill then ended (and other threads' events may have come between):
    /// either way, replay can show them only where the task stands now,
    /// so they are marked `flags::AT_DEATH`, and plugins that compare the
    /// program's state with the recording's leave them out.
    fn dispatch_batch_at_death(&mut self) -> Result<()> {
        let t = self.t_mut();
        t.loaded = None;
        for mut e in std::mem::take(&mut t.batch) {
            e.header.flags |= flags::AT_DEATH;
            let task = &self.tasks[&self.cur].task;
            self.session.dispatch(e, task)?;
        }
        Ok(())
    }

    /// At the recorded death by SIGKILL of the current task: when other
    /// threads of its process have not ended yet in replay, the trace has
    /// events of theirs after this one (their syscalls that completed
    /// before the kill reached them, see the recorder's
    /// `return_before_death`), which they could not replay if their
    /// process died now. The task is not killed then, but stopped for
    /// good where it stands, at its last event (its events, this one
    /// included, reach the plugins now), and its process is
    /// killed with its last thread (or at the end of the trace). Returns
    /// whether it was so doomed.
    fn doom(&mut self, event: &Event) -> Result<bool> {
        let Some(group) = crate::ptrace::tgid_of(self.task().tid.as_raw()) else {
            return Ok(false);
        };
        let others = self.tasks.iter().any(|(&rec, t)| {
            rec != self.cur && crate::ptrace::tgid_of(t.task.tid.as_raw()) == Some(group)
        });
        if !others {
            return Ok(false);
        }
        self.dispatch_batch_at_death()?;
        self.dispatch(event.clone())?;
        let t = self.tasks.remove(&self.cur).expect("known task");
        self.doomed.insert(self.cur, group);
        self.lingering.insert(self.cur, t.task);
        Ok(true)
    }

    /// Brings the doomed tasks of process `group`, killed, to their end:
    /// each non-leader is reaped; a leader is left lingering (its end is
    /// reported after its threads').
    fn end_doomed(&mut self, group: i32) -> Result<()> {
        let mine: Vec<i32> = self
            .doomed
            .iter()
            .filter(|&(_, &g)| g == group)
            .map(|(&rec, _)| rec)
            .collect();
        for rec in mine {
            self.doomed.remove(&rec);
            let Some(task) = self.lingering.remove(&rec) else {
                continue;
            };
            loop {
                match task.wait()? {
                    Stop::Event(libc::PTRACE_EVENT_EXIT) if task.tid.as_raw() == group => {
                        task.resume(Resume::Cont, 0)?;
                        self.lingering.insert(rec, task);
                        break;
                    }
                    Stop::Killed(_) | Stop::Exited(_) => break,
                    _ => task.resume(Resume::Cont, 0)?,
                }
            }
        }
        Ok(())
    }

    /// At the end of the trace: kills process `group`, which has doomed
    /// tasks, and brings all its tasks to their end (threads without an
    /// end in the trace too, which would keep its leader's end from being
    /// reported).
    fn kill_group(&mut self, group: i32) -> Result<()> {
        let Some((&rec, _)) = self.doomed.iter().find(|&(_, &g)| g == group) else {
            return Ok(());
        };
        if let Some(task) = self.lingering.get(&rec) {
            task.tgkill(libc::SIGKILL)?;
        }
        let rest: Vec<i32> = self
            .tasks
            .iter()
            .filter(|(_, t)| crate::ptrace::tgid_of(t.task.tid.as_raw()) == Some(group))
            .map(|(&rec, _)| rec)
            .collect();
        for rec in rest {
            let t = self.tasks.remove(&rec).expect("known task");
            self.doomed.insert(rec, group);
            self.lingering.insert(rec, t.task);
        }
        self.end_doomed(group)
    }

    /// Runs the current task to the recorded anchor state `regs` (a signal
    /// it had pending is delivered first).
    fn run_to_anchor(&mut self, event: &Event, regs: &Regs, anchor: &AnchorInfo) -> Result<()> {
        let pending = std::mem::take(&mut self.t_mut().signal);
        let dead = self.session.dead_memory(Some((self.cur, regs.rsp)));
        match anchor::run_to(self.task(), regs, anchor, pending, &dead)? {
            Ok(()) => self.arrived(event),
            Err(detail) => Err(self.diverged(event, detail)),
        }
    }

    /// A task entered a syscall that may wait for others: bring it to the
    /// entry and leave it there (a vfork-like clone runs right away, since
    /// the child's events come before the parent's return).
    fn blocked(&mut self, event: &Event, recorded: &Regs) -> Result<()> {
        let nr = recorded.orig_rax as i64;
        let spec = syscalls::lookup(nr).ok_or_else(|| {
            Error::BadTrace(format!(
                "the trace has syscall {nr}, unknown to this rrpipe"
            ))
        })?;
        let replay = spec
            .replay_for(&recorded.syscall_args())
            .map_err(Error::BadTrace)?;
        let how = if matches!(replay, Replay::Emulate | Replay::Deny(_)) {
            Resume::Sysemu
        } else {
            Resume::Syscall
        };
        self.resume_to(event, how, |s| s == Stop::SyscallEntry)?;
        let regs = self.task().regs()?;
        self.check_regs(event, recorded, &regs)?;
        // Plugins see it at the entry, as in record.
        self.dispatch(event.clone())?;
        if replay == Replay::Clone {
            self.clone_child(event, recorded, event.header.result as i32)?;
            self.task().resume(Resume::Syscall, 0)?;
            self.t_mut().in_kernel = true;
        } else {
            self.t_mut().at_entry = true;
        }
        Ok(())
    }

    /// The parent is at a clone's entry: runs it up to the creation of the
    /// child, which becomes `recorded_child`.
    fn clone_child(&mut self, event: &Event, entry: &Regs, recorded_child: i32) -> Result<()> {
        self.task().resume(Resume::Syscall, 0)?;
        let stop = self.task().wait()?;
        if !matches!(
            stop,
            Stop::Event(
                libc::PTRACE_EVENT_CLONE | libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK
            )
        ) {
            return Err(self.diverged(event, format!("clone created no task: {stop:?}")));
        }
        let child = nix::unistd::Pid::from_raw(self.task().event_msg()? as i32);
        let (_, first) = crate::ptrace::wait_for(child)?;
        if first != Stop::Signal(libc::SIGSTOP) {
            return Err(Error::Internal(format!(
                "new task {child} first stopped with {first:?}"
            )));
        }
        let task = Task::new(child)?;
        let flags = if entry.orig_rax as i64 == libc::SYS_clone {
            entry.rdi
        } else {
            0
        };
        if flags & libc::CLONE_CHILD_SETTID as u64 != 0 && entry.r10 != 0 {
            // The kernel wrote the replay's tid into the child: the program
            // knows the recorded one.
            task.write_mem(entry.r10, &(recorded_child as u32).to_le_bytes())
                .map_err(|e| Error::internal("write child tid", e))?;
        }
        self.tasks.insert(recorded_child, RepTask::new(task));
        Ok(())
    }

    /// An exec by the program: run it on the saved executable, staged under
    /// a path as long as the recorded one, then restore the recorded image.
    fn exec(&mut self, event: &Event, info: &ExecInfo) -> Result<()> {
        let leader = event.header.tid;
        if info.caller_tid != 0 {
            // A non-leader thread exec'd and took the leader's tid.
            self.cur = info.caller_tid;
            if !self.tasks.contains_key(&self.cur) {
                return Err(Error::BadTrace(format!(
                    "exec by task {}, which the trace never created",
                    self.cur
                )));
            }
        }
        self.resume_to(event, Resume::Syscall, |s| s == Stop::SyscallEntry)?;
        let mut regs = self.task().regs()?;
        self.check_regs(event, &info.regs, &regs)?;
        let relative = self.stage.stage(&self.dir, info)?;
        remote::write_cstring(self.task(), exec::PAGE_SCRATCH, &relative)?;
        regs.rdi = exec::PAGE_SCRATCH;
        self.task().set_regs(&regs)?;
        let leader_pid = self.tasks[&leader].task.tid;
        // The exec stop comes under the leader's pid; the other threads of
        // the process die on the way. Only they are waited for: other
        // processes' stops (a vfork parent let go by this exec) stay queued
        // for their own turn.
        let group = crate::ptrace::tgid_of(self.task().tid.as_raw());
        let mut threads: Vec<nix::unistd::Pid> = self
            .tasks
            .values()
            .map(|t| t.task.tid)
            .filter(|t| group.is_some() && crate::ptrace::tgid_of(t.as_raw()) == group)
            .collect();
        if !threads.contains(&leader_pid) {
            threads.push(leader_pid);
        }
        self.task().resume(Resume::Syscall, 0)?;
        'exec: loop {
            for &pid in &threads {
                // (A thread that exec'd loses its tid: ECHILD for it.)
                let Ok(Some(stop)) = crate::ptrace::try_wait(pid) else {
                    continue;
                };
                match stop {
                    Stop::Event(libc::PTRACE_EVENT_EXEC) if pid == leader_pid => break 'exec,
                    Stop::Exited(_) | Stop::Killed(_) => {
                        self.tasks
                            .retain(|&rec, t| t.task.tid != pid || rec == self.cur);
                    }
                    _ if pid == self.task().tid => {
                        return Err(self.diverged(
                            event,
                            format!("exec of {} failed: {stop:?}", info.filename),
                        ))
                    }
                    _ => {
                        let _ = nix::sys::ptrace::cont(pid, None);
                    }
                }
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        if self.cur != leader {
            let mut caller = self.tasks.remove(&self.cur).expect("known task");
            caller.task = Task::new(leader_pid)?;
            self.tasks.insert(leader, caller);
            self.cur = leader;
        }
        self.t_mut().task.reopen_mem()?;
        self.task().resume(Resume::Syscall, 0)?;
        let stop = self.task().wait()?;
        if stop != Stop::SyscallExit {
            return Err(Error::Internal(format!("exec did not complete: {stop:?}")));
        }
        exec::prepare(self.task(), &self.page)?;
        if let Err(detail) = exec::restore(self.task(), info, &self.dir)? {
            return Err(self.diverged(event, detail));
        }
        self.dispatch(event.clone())
    }

    /// Resumes until a stop `want` accepts, skipping the syscall-exit stops
    /// of syscalls that were emulated. Anything else is a divergence.
    fn resume_to(
        &mut self,
        event: &Event,
        how: Resume,
        want: impl Fn(Stop) -> bool,
    ) -> Result<Stop> {
        loop {
            let signal = std::mem::take(&mut self.t_mut().signal);
            self.task().resume(how, signal)?;
            let stop = self.task().wait()?;
            if stop == Stop::SyscallEntry {
                let regs = self.task().regs()?;
                if regs.orig_rax as i64 == abi::SYS_DIVERGED {
                    return Err(self.diverged(
                        event,
                        format!(
                            "before {}, the program made a buffered {} that the recording does not have there",
                            describe(event),
                            syscalls::name(regs.rdi as i64)
                        ),
                    ));
                }
            }
            if want(stop) {
                self.arrived(event)?;
                return Ok(stop);
            }
            match stop {
                Stop::SyscallExit => continue,
                // Signals the replay itself causes (SIGCHLD when a replayed
                // child really exits) are not the program's: recorded ones
                // are sent again at their recorded place.
                Stop::Signal(sig) if !is_fault(sig) => continue,
                Stop::SyscallEntry => {
                    let regs = self.task().regs()?;
                    return Err(self.diverged(
                        event,
                        format!(
                            "expected {}, but the program entered syscall {} at rip {:#x}",
                            describe(event),
                            syscalls::name(regs.orig_rax as i64),
                            regs.rip
                        ),
                    ));
                }
                other => {
                    return Err(self.diverged(
                        event,
                        format!(
                            "expected {}, but the program stopped with {other:?}",
                            describe(event)
                        ),
                    ))
                }
            }
        }
    }

    /// Delivers `signo` with one step, which stops at the handler's first
    /// instruction, and writes the recorded frame over the new one (see
    /// `sigframe`).
    fn enter_handler(&mut self, event: &Event, signo: i32, recorded: &[u8]) -> Result<()> {
        let task = self.task();
        task.resume(Resume::Step, signo)?;
        let stop = task.wait()?;
        if stop != Stop::Signal(libc::SIGTRAP) {
            return Err(self.diverged(
                event,
                format!(
                    "entering the handler of signal {signo}, the program stopped with {stop:?}"
                ),
            ));
        }
        let entry = task.regs()?;
        let (addr, len) =
            sigframe::frame(task, &entry).map_err(|e| Error::internal("read a signal frame", e))?;
        if len != recorded.len() {
            return Err(self.diverged(
                event,
                format!(
                    "the handler's signal frame at {addr:#x} is {len} bytes, {} when recorded",
                    recorded.len()
                ),
            ));
        }
        task.write_mem(addr, recorded)
            .map_err(|e| Error::internal("write a signal frame", e))
    }

    fn run_to_signal(&mut self, event: &Event, signo: i32, recorded: &Regs) -> Result<()> {
        self.resume_to(event, Resume::Sysemu, |s| s == Stop::Signal(signo))?;
        let regs = self.task().regs()?;
        self.check_regs(event, recorded, &regs)
    }

    fn check_regs(&self, event: &Event, recorded: &Regs, now: &Regs) -> Result<()> {
        let (a, b) = (recorded.to_array(), now.to_array());
        if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
            return Err(self.diverged(
                event,
                format!(
                    "at {}: register {} was {:#x} when recorded, is {:#x} now (rip {:#x})",
                    describe(event),
                    Regs::NAMES[i],
                    a[i],
                    b[i],
                    now.rip
                ),
            ));
        }
        Ok(())
    }

    fn syscall(&mut self, event: &Event, info: &SyscallInfo) -> Result<()> {
        let nr = info.regs.orig_rax as i64;
        let args = info.regs.syscall_args();
        let spec = syscalls::lookup(nr).ok_or_else(|| {
            Error::BadTrace(format!(
                "the trace has syscall {nr}, unknown to this rrpipe"
            ))
        })?;
        let replay = spec.replay_for(&args).map_err(Error::BadTrace)?;
        let result = event.header.result;
        let failed = (-4095..0).contains(&result);
        if std::mem::take(&mut self.t_mut().in_kernel) {
            // A vfork parent, let go by its child's exec or exit (earlier
            // events): its return is here.
            let stop = self.task().wait()?;
            if stop != Stop::SyscallExit {
                return Err(self.diverged(event, format!("vfork did not return: {stop:?}")));
            }
            let mut after = self.task().regs()?;
            after.rax = result as u64;
            self.task().set_regs(&after)?;
            self.write_outputs(event, spec.name, info)?;
            return self.dispatch(event.clone());
        }
        let emulate = matches!(replay, Replay::Emulate | Replay::Deny(_))
            || (failed
                && matches!(
                    replay,
                    Replay::Mmap | Replay::Mremap | Replay::Clone | Replay::Exec
                ));
        let how = if emulate {
            Resume::Sysemu
        } else {
            Resume::Syscall
        };
        let regs = if std::mem::take(&mut self.t_mut().at_entry) {
            // Brought to the entry and checked by its `Blocked` event.
            self.task().regs()?
        } else {
            self.resume_to(event, how, |s| s == Stop::SyscallEntry)?;
            let regs = self.task().regs()?;
            self.check_regs(event, &info.regs, &regs)?;
            regs
        };
        for input in info.inputs.iter() {
            let now = self
                .task()
                .read_cstring(input.addr, input.data.len() + 1)
                .unwrap_or_default();
            if now[..] != input.data[..] {
                return Err(self.diverged(
                    event,
                    format!(
                        "{} argument was {:?} when recorded, is {:?} now",
                        spec.name,
                        String::from_utf8_lossy(&input.data),
                        String::from_utf8_lossy(&now)
                    ),
                ));
            }
        }
        if emulate {
            let mut after = regs;
            after.rax = result as u64;
            if let Replay::Deny(_) = replay {
                // Record skipped it by setting orig_rax to -1: the same
                // registers now.
                after.orig_rax = u64::MAX;
            }
            self.task().set_regs(&after)?;
            for out in info.outputs.iter() {
                self.task().write_mem(out.addr, &out.data).map_err(|e| {
                    self.diverged(
                        event,
                        format!("cannot write {} output at {:#x}: {e}", spec.name, out.addr),
                    )
                })?;
            }
        } else {
            match replay {
                Replay::NoReturn => {}
                Replay::Mmap => self.mmap(event, info)?,
                Replay::Mremap => self.mremap(event, &regs)?,
                Replay::Clone => {
                    self.clone_child(event, &info.regs, result as i32)?;
                    self.task().resume(Resume::Syscall, 0)?;
                    let stop = self.task().wait()?;
                    if stop != Stop::SyscallExit {
                        return Err(self.diverged(event, format!("clone did not return: {stop:?}")));
                    }
                    let mut after = self.task().regs()?;
                    after.rax = result as u64;
                    self.task().set_regs(&after)?;
                    self.write_outputs(event, spec.name, info)?;
                }
                Replay::ExecuteKeepResult => {
                    self.execute_unchecked(event, None)?;
                    let mut after = self.task().regs()?;
                    after.rax = result as u64;
                    self.task().set_regs(&after)?;
                }
                _ => self.execute(event, None)?,
            }
        }
        // The kernel wrote the outputs of executed syscalls itself.
        let _ = args;
        if event.header.flags & flags::PATCHED != 0 {
            self.patch_site(event)?;
        }
        self.dispatch(event.clone())
    }

    /// Patches the syscall site the task stopped after, as record did at
    /// this event (see `crate::patch`): the same memory, the same slot.
    fn patch_site(&mut self, event: &Event) -> Result<()> {
        let task = self.task();
        let mut regs = task.regs()?;
        let area = self.session.patch_area(event.header.tid);
        let site = Site::before(task, regs.rip);
        let (Some(area), Some(site)) = (area, site) else {
            return Err(self.diverged(
                event,
                format!(
                    "the syscall site before {:#x} was patched when recorded, and cannot be now",
                    regs.rip
                ),
            ));
        };
        let applied = patch::apply(task, &area, &site).map_err(|e| {
            self.diverged(
                event,
                format!("cannot patch the syscall at {:#x}: {e}", site.at),
            )
        })?;
        let Some(resume) = applied else {
            return Err(self.diverged(
                event,
                format!("no room to patch the syscall at {:#x}", site.at),
            ));
        };
        regs.rip = resume;
        task.set_regs(&regs)
    }

    /// Writes the memory a syscall wrote when recorded.
    fn write_outputs(&self, event: &Event, name: &str, info: &SyscallInfo) -> Result<()> {
        for out in info.outputs.iter() {
            self.task().write_mem(out.addr, &out.data).map_err(|e| {
                self.diverged(
                    event,
                    format!("cannot write {name} output at {:#x}: {e}", out.addr),
                )
            })?;
        }
        Ok(())
    }

    /// Runs the syscall at the entry stop with `changed` registers (if any)
    /// and checks the result.
    fn execute(&mut self, event: &Event, changed: Option<Regs>) -> Result<()> {
        let result = self.execute_unchecked(event, changed)?;
        if result != event.header.result {
            return Err(self.diverged(
                event,
                format!(
                    "{} returned {:#x} when recorded, {:#x} now",
                    describe(event),
                    event.header.result,
                    result
                ),
            ));
        }
        Ok(())
    }

    /// Runs the syscall at the entry stop with `changed` registers (if any)
    /// and puts the program's argument registers back; returns the result.
    fn execute_unchecked(&mut self, event: &Event, changed: Option<Regs>) -> Result<i64> {
        let original = self.task().regs()?;
        if let Some(r) = changed {
            self.task().set_regs(&r)?;
        }
        self.task().resume(Resume::Syscall, 0)?;
        let stop = self.task().wait()?;
        if stop != Stop::SyscallExit {
            return Err(self.diverged(
                event,
                format!("{} did not complete: {stop:?}", describe(event)),
            ));
        }
        let mut after = self.task().regs()?;
        let result = after.rax as i64;
        if changed.is_some() {
            after.rdi = original.rdi;
            after.rsi = original.rsi;
            after.rdx = original.rdx;
            after.r10 = original.r10;
            after.r8 = original.r8;
            after.r9 = original.r9;
            self.task().set_regs(&after)?;
        }
        Ok(result)
    }

    fn mmap(&mut self, event: &Event, info: &SyscallInfo) -> Result<()> {
        let regs = self.task().regs()?;
        let args = info.regs.syscall_args();
        let addr = event.header.result as u64;
        let fixed = if args[3] & libc::MAP_FIXED as u64 != 0 {
            libc::MAP_FIXED
        } else {
            libc::MAP_FIXED_NOREPLACE
        } as u64;
        let keep = !(libc::MAP_SHARED
            | libc::MAP_SHARED_VALIDATE
            | libc::MAP_FIXED
            | libc::MAP_FIXED_NOREPLACE) as u64;
        let mut changed = regs;
        changed.rdi = addr;
        match info.file.as_ref().into_option() {
            Some(saved) => {
                let path = self.dir.join(saved.in_trace.as_str());
                remote::write_cstring(self.task(), exec::PAGE_SCRATCH, &path.to_string_lossy())?;
                let fd = remote::syscall_at_entry(
                    self.task(),
                    libc::SYS_openat,
                    &[
                        libc::AT_FDCWD as u64,
                        exec::PAGE_SCRATCH,
                        (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
                    ],
                )?;
                if fd < 0 {
                    return Err(Error::BadTrace(format!(
                        "cannot open saved file {} (errno {})",
                        path.display(),
                        -fd
                    )));
                }
                // Private in replay: the saved copy must never be written.
                changed.r10 = (args[3] & keep) | libc::MAP_PRIVATE as u64 | fixed;
                changed.r8 = fd as u64;
                self.execute(event, Some(changed))?;
                remote::syscall_from_user(
                    self.task(),
                    self.task().regs()?.rip - 2,
                    libc::SYS_close,
                    &[fd as u64],
                )?;
            }
            None => {
                let anonymous = args[3] & libc::MAP_ANONYMOUS as u64 != 0;
                let mut flags =
                    (args[3] & !(libc::MAP_FIXED | libc::MAP_FIXED_NOREPLACE) as u64) | fixed;
                if !anonymous {
                    // A device mapping (/dev/zero): anonymous memory, with
                    // the contents it had recorded as outputs if any.
                    flags = (flags & keep) | (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
                    changed.r8 = u64::MAX;
                }
                changed.r10 = flags;
                self.execute(event, Some(changed))?;
            }
        }
        Ok(())
    }

    fn mremap(&mut self, event: &Event, regs: &Regs) -> Result<()> {
        let old = regs.rdi;
        let new = event.header.result as u64;
        if new == old {
            return self.execute(event, None);
        }
        let mut changed = *regs;
        changed.r10 = regs.r10 | (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64;
        changed.r8 = new;
        self.execute(event, Some(changed))
    }
}

/// What an event is, for messages.
fn describe(event: &Event) -> String {
    match &event.data {
        EventData::Syscall(_) => format!("syscall {}", syscalls::name(event.header.syscall)),
        EventData::Signal(s) => format!("signal {}", s.signo),
        EventData::Rdtsc(_) => "rdtsc".to_string(),
        EventData::Exit(_) => "exit".to_string(),
        EventData::Exec(_) => "exec".to_string(),
        EventData::Blocked(_) => format!("syscall {}", syscalls::name(event.header.syscall)),
        EventData::Preempt(_) => "preemption".to_string(),
        EventData::Abort(_) => "end of recording".to_string(),
        EventData::Buffered(_) => "buffered syscalls".to_string(),
    }
}
