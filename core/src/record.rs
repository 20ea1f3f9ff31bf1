//! Recording: run the program under ptrace, stop at every syscall, signal
//! and trapped instruction, and turn each into an event carrying what
//! replay needs to reproduce it.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rrpipe_plugin_api::trace::{write_header, TraceHeader};
use rrpipe_plugin_api::{
    flags, AbortInfo, AnchorInfo, BlockedInfo, EventData, ExitInfo, MemBlock, Mode, PreemptInfo,
    RdtscInfo, Regs, SavedFile, SignalInfo, SyscallInfo,
};

use crate::cli::RecordOptions;
use crate::config::PluginSpec;
use crate::error::{Error, Result};
use crate::pipeline::Pipeline;
use crate::ptrace::{is_fault, Resume, Stop, Task};
use crate::sched::{Preempter, TickSource};
use crate::session::Session;
use crate::syscalls::{self, Access, Arg, Replay};
use crate::tracedir::{self, FileSaver};
use crate::{anchor, exec, rdtsc, sigframe, spawn};
use nix::unistd::Pid;

/// Longest path string captured from a syscall argument.
const MAX_PATH: usize = 4096;

/// Records `opts.program`; returns the exit status rrpipe should give (the
/// program's).
pub fn run(opts: &RecordOptions) -> Result<i32> {
    let argv = opts.program.clone();
    let filename = resolve_program(&argv[0])?;
    let env: Vec<String> = std::env::vars_os()
        .map(|(k, v)| {
            let mut s = k.to_string_lossy().into_owned();
            s.push('=');
            s.push_str(&v.to_string_lossy());
            s
        })
        .collect();
    let cwd = std::env::current_dir().map_err(|e| Error::internal("current directory", e))?;
    let allowed = spawn::allowed_cpus();
    let cpu = opts.tracer.cpu.map(|c| c as usize).unwrap_or(allowed[0]);
    let workers: Vec<usize> = allowed.iter().copied().filter(|&c| c != cpu).collect();
    let workers = (!workers.is_empty()).then_some(workers);

    let dir = tracedir::create(opts.output.as_deref())?;
    let header = TraceHeader {
        rrpipe_version: env!("CARGO_PKG_VERSION").to_string(),
        exe: filename.clone(),
        argv: argv.clone(),
        env: env.clone(),
        cwd: cwd.to_string_lossy().into_owned(),
        cpu: cpu as u32,
        recorded_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    write_header(&dir, &header).map_err(|e| Error::internal("write trace header", e))?;

    let mut specs = vec![PluginSpec {
        name: TRACE_WRITER.into(),
        path: None,
        required: true,
        ..PluginSpec::default()
    }];
    specs.extend(opts.plugins.iter().cloned());
    let pipeline = Pipeline::start(&specs, Mode::Record, &dir, workers.as_deref())?;
    let saver = FileSaver::new(&dir, workers.clone());
    spawn::pin_current_thread(cpu)?;

    let cstr = |s: &str| {
        CString::new(s).map_err(|_| Error::Usage(format!("argument contains NUL: {s:?}")))
    };
    let spec = spawn::SpawnSpec {
        filename: cstr(&filename)?,
        argv: argv.iter().map(|a| cstr(a)).collect::<Result<_>>()?,
        env: env.iter().map(|a| cstr(a)).collect::<Result<_>>()?,
        cwd: None,
        cpu,
        no_core_dump: false,
        stdin: None,
    };
    let task = spawn::spawn(&spec)?;
    forward_interruptions_to(task.tid.as_raw());
    let mut rec = Recorder::new(task, Session::new(pipeline), saver);
    rec.wait_all = opts.tracer.wait_all;
    rec.native_affinity = affinity_mask(&allowed);
    let outcome = rec.record(&filename, &argv);
    rec.finish(&dir, outcome)
}

/// Syscall results meaning "interrupted by a signal, to be restarted"
/// (-ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND,
/// -ERESTART_RESTARTBLOCK).
const RESTART_CODES: [i64; 4] = [-512, -513, -514, -516];

/// A CPU list as the kernel's cpumask bytes.
fn affinity_mask(cpus: &[usize]) -> Vec<u8> {
    let mut mask = vec![0u8; std::mem::size_of::<libc::cpu_set_t>()];
    for &c in cpus {
        if c / 8 < mask.len() {
            mask[c / 8] |= 1 << (c % 8);
        }
    }
    mask
}

/// The recorded program's pid, for the interruption handler.
static TRACEE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // A terminal's Ctrl-C reaches the whole foreground group, the program
    // included: nothing to do. A signal sent to rrpipe alone (kill, a
    // supervisor's SIGTERM) is passed on, so the program sees what it
    // would have seen, and the recording ends the way the program does.
    // SAFETY: the kernel hands a valid siginfo; kill is async-signal-safe.
    unsafe {
        if (*info).si_code <= 0 {
            let pid = TRACEE.load(std::sync::atomic::Ordering::Relaxed);
            if pid > 0 {
                libc::kill(pid, sig);
            }
        }
    }
}

/// Ctrl-C, SIGTERM and SIGHUP stop the program, not the recorder: the
/// recorder records how the program reacts and completes the trace.
fn forward_interruptions_to(pid: i32) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    TRACEE.store(pid, std::sync::atomic::Ordering::Relaxed);
    let action = SigAction::new(
        SigHandler::SigAction(forward),
        SaFlags::SA_SIGINFO | SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only makes an async-signal-safe call.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// Finds the program like a shell does: a name with a slash is a path,
/// otherwise it is looked up in PATH.
fn resolve_program(name: &str) -> Result<String> {
    let executable =
        |p: &Path| p.is_file() && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok();
    if name.contains('/') {
        return if executable(Path::new(name)) {
            Ok(name.to_string())
        } else {
            Err(Error::ProgramNotFound(name.to_string()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| executable(p))
        .map(|p: PathBuf| String::from_utf8_lossy(p.as_os_str().as_bytes()).into_owned())
        .ok_or_else(|| Error::ProgramNotFound(format!("{name} (not in PATH)")))
}

/// A syscall between its entry and exit stops.
struct Pending {
    regs: Regs,
    inputs: Vec<MemBlock>,
    replay: Replay,
    /// execve's argv, read at entry (the old image is gone at exit).
    argv: Vec<String>,
}

/// Where a task is in the serialized schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Stopped at an event; runs when scheduled.
    Stopped,
    /// The one task running user code.
    Running,
    /// Inside a syscall that may wait for others; its exit stop will come
    /// while other tasks run.
    InKernel,
    /// Created by clone/fork; its first stop has not arrived yet.
    Starting,
}

struct RecTask {
    task: Task,
    pending: Option<Pending>,
    state: State,
    /// Signal to deliver when it next resumes.
    signal: i32,
    /// An execve is under way (its exec event stop was seen).
    execed: bool,
    /// The registers it was resumed with after an event, while it has not
    /// run user code since: a signal stop with these registers is at a
    /// deterministic point.
    resumed_regs: Option<Regs>,
    /// A signal re-sent by rrpipe to move it to a syscall boundary, with
    /// the siginfo it originally had.
    requeued: Vec<(i32, Vec<u8>)>,
    /// Signals that arrived while it was being stepped to an anchor,
    /// re-sent once the step is over.
    deferred: Vec<(i32, Vec<u8>)>,
    /// Its time slice ended at a point the scheduler could not use: switch
    /// at its next syscall.
    preempt_pending: bool,
    /// The tid it had before an exec from a non-leader thread gave it the
    /// leader's.
    caller: i32,
    /// Its interrupted syscall is being restarted by the kernel.
    restarting: bool,
    /// Its syscall's return, to emit when it next runs.
    held: Option<(EventData, i64, u32)>,
    /// A stop already waited for while handling another (stepping into a
    /// signal handler met something else), to handle next.
    next_stop: Option<Stop>,
}

impl RecTask {
    fn new(task: Task, state: State) -> RecTask {
        RecTask {
            task,
            pending: None,
            state,
            signal: 0,
            execed: false,
            resumed_regs: None,
            requeued: Vec::new(),
            deferred: Vec::new(),
            preempt_pending: false,
            caller: 0,
            held: None,
            restarting: false,
            next_stop: None,
        }
    }
}

/// Records a tree of tasks, one running user code at a time: the running
/// task keeps the CPU until it enters a syscall that may wait for another
/// task; then the next stopped task (round robin) runs. Every decision is
/// visible in the trace as the order of events, which replay follows.
struct Recorder {
    /// (device, inode) of rrpipe's own stdout and stderr: writes reaching
    /// them are what replay's output redirector prints.
    console: [Option<(u64, u64)>; 2],
    tasks: BTreeMap<i32, RecTask>,
    current: Option<i32>,
    initial: i32,
    /// The initial process's status once it ended.
    initial_status: Option<Outcome>,
    session: Session,
    saver: FileSaver,
    ticks: Box<dyn TickSource>,
    /// Go on until every task has exited (`--wait`).
    wait_all: bool,
    /// rrpipe's CPU mask before it pinned itself, as sched_getaffinity
    /// writes it: what the program would see natively.
    native_affinity: Vec<u8>,
}

/// How the recorded program ended.
#[derive(Clone, Copy)]
enum Outcome {
    Exited(i32),
    Killed(i32),
}

impl Recorder {
    fn new(task: Task, session: Session, saver: FileSaver) -> Recorder {
        let tid = task.tid.as_raw();
        let mut tasks = BTreeMap::new();
        tasks.insert(tid, RecTask::new(task, State::Stopped));
        let identity = |fd: i32| {
            nix::sys::stat::fstat(fd)
                .ok()
                .map(|st| (st.st_dev, st.st_ino))
        };
        Recorder {
            console: [identity(1), identity(2)],
            tasks,
            current: None,
            initial: tid,
            initial_status: None,
            session,
            saver,
            ticks: Box::new(Preempter::new()),
            wait_all: false,
            native_affinity: Vec::new(),
        }
    }

    fn t(&self, tid: i32) -> &RecTask {
        &self.tasks[&tid]
    }

    fn t_mut(&mut self, tid: i32) -> &mut RecTask {
        self.tasks.get_mut(&tid).expect("known task")
    }

    fn emit(&mut self, tid: i32, data: EventData, result: i64) -> Result<()> {
        let event = self.session.next_event(tid, data, result);
        let task = &self.tasks[&tid].task;
        self.session.dispatch(event, task)
    }

    fn unsupported(&self, tid: i32, what: String) -> Error {
        Error::Unsupported {
            what,
            time: self.session.time + 1,
            tid,
        }
    }

    /// Lets task `tid` run (it becomes or stays the current task).
    fn run_task(&mut self, tid: i32) -> Result<()> {
        let held = self.t_mut(tid).held.take();
        if let Some((data, result, flags)) = held {
            if RESTART_CODES.contains(&result) {
                // Decided at its next stop (see `syscall_exit`).
                self.t_mut(tid).held = Some((data, result, flags));
                let t = self.t_mut(tid);
                let signal = std::mem::take(&mut t.signal);
                t.state = State::Running;
                t.task.resume(Resume::Syscall, signal)?;
                self.current = Some(tid);
                return Ok(());
            }
            let mut event = self.session.next_event(tid, data, result);
            event.header.flags = flags;
            let task = &self.tasks[&tid].task;
            self.session.dispatch(event, task)?;
        }
        let t = self.t_mut(tid);
        let signal = std::mem::take(&mut t.signal);
        t.state = State::Running;
        t.task.resume(Resume::Syscall, signal)?;
        self.current = Some(tid);
        Ok(())
    }

    /// The stopped task after `after` in tid order, wrapping around.
    fn next_stopped(&self, after: i32) -> Option<i32> {
        let stopped = |(&tid, t): (&i32, &RecTask)| (t.state == State::Stopped).then_some(tid);
        self.tasks
            .range(after + 1..)
            .find_map(stopped)
            .or_else(|| self.tasks.range(..=after).find_map(stopped))
    }

    fn record(&mut self, filename: &str, argv: &[String]) -> Result<Outcome> {
        let tid = self.initial;
        exec::prepare(&self.t(tid).task)?;
        let info = exec::capture(
            &self.tasks[&tid].task,
            Regs::default(),
            filename,
            argv,
            &mut self.saver,
        )?;
        self.emit(tid, EventData::Exec(info), 0)?;
        self.run_task(tid)?;
        let mut last = tid;
        loop {
            if self.current.is_none() {
                if let Some(next) = self.next_stopped(last) {
                    last = next;
                    self.run_task(next)?;
                }
            }
            if self.tasks.is_empty() {
                break;
            }
            let contended = self.current.filter(|&c| {
                self.tasks
                    .iter()
                    .any(|(&t, rt)| t != c && rt.state == State::Stopped)
            });
            self.ticks.set(contended);
            let (pid, stop) = crate::ptrace::wait_any()?;
            let tid = pid.as_raw();
            if let std::collections::btree_map::Entry::Vacant(slot) = self.tasks.entry(tid) {
                // A new task whose creation event has not been seen yet.
                slot.insert(RecTask::new(Task::new(pid)?, State::Starting));
            }
            self.handle(tid, stop)?;
            if let Some(outcome) = self.initial_status.filter(|_| !self.wait_all) {
                // The initial process ended: the recording ends with it.
                crate::ptrace::kill_all(
                    std::mem::take(&mut self.tasks)
                        .into_values()
                        .map(|t| t.task),
                );
                return Ok(outcome);
            }
        }
        Ok(self.initial_status.unwrap_or(Outcome::Exited(0)))
    }

    /// Resumes `tid` after an event if it is the running task; otherwise it
    /// waits, stopped, for its turn.
    fn continue_or_park(&mut self, tid: i32) -> Result<()> {
        if self.current == Some(tid) {
            self.run_task(tid)
        } else {
            self.t_mut(tid).state = State::Stopped;
            Ok(())
        }
    }

    fn handle(&mut self, tid: i32, stop: Stop) -> Result<()> {
        match stop {
            Stop::SyscallEntry => self.syscall_entry(tid),
            Stop::SyscallExit => {
                self.syscall_exit(tid)?;
                self.continue_or_park(tid)
            }
            Stop::Signal(sig) => {
                if self.t(tid).state == State::Starting && sig == libc::SIGSTOP {
                    // The stop every new task starts with.
                    let regs = self.t(tid).task.regs()?;
                    let t = self.t_mut(tid);
                    t.state = State::Stopped;
                    t.resumed_regs = Some(regs);
                    return Ok(());
                }
                if self.ticks.take_fired(tid, sig) {
                    return self.preempt(tid);
                }
                if let Some((data, result, flags)) = self.t_mut(tid).held.take() {
                    // A real signal after a restart code: the kernel's
                    // handler logic decides, in replay too.
                    let mut event = self.session.next_event(tid, data, result);
                    event.header.flags = flags;
                    let task = &self.tasks[&tid].task;
                    self.session.dispatch(event, task)?;
                }
                let deliver = self.signal(tid, sig)?;
                self.t_mut(tid).signal = deliver;
                if let Some(next) = self.t_mut(tid).next_stop.take() {
                    return self.handle(tid, next);
                }
                self.continue_or_park(tid)
            }
            Stop::Event(libc::PTRACE_EVENT_EXIT) => {
                let status = self.t(tid).task.event_msg()? as i32;
                let info = if libc::WIFSIGNALED(status) {
                    ExitInfo {
                        code: 0,
                        signal: libc::WTERMSIG(status),
                    }
                } else {
                    ExitInfo {
                        code: libc::WEXITSTATUS(status),
                        signal: 0,
                    }
                };
                let result = info.code as i64;
                if !self.killed_by_exec_of_sibling(tid) {
                    // (Threads that an exec in their process kills die as
                    // part of that exec, in replay too: no event of theirs.)
                    self.emit(tid, EventData::Exit(info), 0.max(result))?;
                }
                if self.current == Some(tid) {
                    self.current = None;
                }
                let waits_for_threads = self.t(tid).task.leads_other_threads();
                let t = self.t_mut(tid);
                t.state = State::InKernel;
                t.task.resume(Resume::Cont, 0)?;
                if waits_for_threads {
                    // A group leader lingers until its last thread exits.
                    return Ok(());
                }
                // Let it finish dying before anyone else runs: the kernel
                // clears its CLONE_CHILD_CLEARTID word and wakes joiners on
                // the way out, which others must not see half done.
                loop {
                    match self.t(tid).task.wait()? {
                        Stop::Exited(code) => return self.ended(tid, Outcome::Exited(code)),
                        Stop::Killed(sig) => return self.ended(tid, Outcome::Killed(sig)),
                        _ => self.t(tid).task.resume(Resume::Cont, 0)?,
                    }
                }
            }
            Stop::Event(
                ev
                @ (libc::PTRACE_EVENT_CLONE | libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK),
            ) => {
                let child = self.t(tid).task.event_msg()? as i32;
                self.tasks.entry(child).or_insert(RecTask::new(
                    Task::new(Pid::from_raw(child))?,
                    State::Starting,
                ));
                if ev == libc::PTRACE_EVENT_VFORK {
                    // The parent sleeps in the kernel until the child execs
                    // or exits, and the child runs next: a scheduling point,
                    // which tells replay the child's tid before its events.
                    let regs = self.t(tid).pending.as_ref().map(|p| p.regs);
                    if let Some(regs) = regs {
                        self.emit(tid, EventData::Blocked(BlockedInfo { regs }), child as i64)?;
                    }
                    let t = self.t_mut(tid);
                    t.state = State::InKernel;
                    t.task.resume(Resume::Syscall, 0)?;
                    if self.current == Some(tid) {
                        self.current = None;
                    }
                    Ok(())
                } else {
                    self.t(tid).task.resume(Resume::Syscall, 0)
                }
            }
            Stop::Event(libc::PTRACE_EVENT_EXEC) => {
                let former = self.t(tid).task.event_msg()? as i32;
                if former != tid {
                    // A thread other than the leader exec'd: it takes the
                    // leader's tid, and the leader is gone.
                    if let Some(mut caller) = self.tasks.remove(&former) {
                        caller.task = Task::new(Pid::from_raw(tid))?;
                        caller.caller = former;
                        self.tasks.insert(tid, caller);
                    }
                    if self.current == Some(former) {
                        self.current = Some(tid);
                    }
                }
                let t = self.t_mut(tid);
                t.execed = true;
                t.task.reopen_mem()?;
                t.task.resume(Resume::Syscall, 0)
            }
            Stop::Event(_) => self.t(tid).task.resume(Resume::Syscall, 0),
            Stop::Exited(code) => self.ended(tid, Outcome::Exited(code)),
            Stop::Killed(sig) => self.ended(tid, Outcome::Killed(sig)),
        }
    }

    /// Whether another thread of `tid`'s process is inside an execve, which
    /// kills every other thread.
    fn killed_by_exec_of_sibling(&self, tid: i32) -> bool {
        let group = crate::ptrace::tgid_of(tid);
        group.is_some()
            && self.tasks.iter().any(|(&other, t)| {
                other != tid
                    && t.pending.as_ref().is_some_and(|p| p.replay == Replay::Exec)
                    && crate::ptrace::tgid_of(other) == group
            })
    }

    fn ended(&mut self, tid: i32, outcome: Outcome) -> Result<()> {
        self.tasks.remove(&tid);
        if self.current == Some(tid) {
            self.current = None;
        }
        if tid == self.initial {
            self.initial_status = Some(outcome);
        }
        Ok(())
    }

    fn syscall_entry(&mut self, tid: i32) -> Result<()> {
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
        let task = &self.t(tid).task;
        let mut regs = task.regs()?;
        let nr = regs.orig_rax as i64;
        let args = regs.syscall_args();
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
                self.emit(tid, EventData::Syscall(info), 0)?;
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
                })
            }
        }
        let preempted = std::mem::take(&mut self.t_mut(tid).preempt_pending);
        if (syscalls::may_block(nr) || preempted) && self.tasks.len() > 1 {
            // A scheduling point: others run while this one waits.
            self.emit(tid, EventData::Blocked(BlockedInfo { regs }), 0)?;
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
    fn run_task_if_current(&mut self, tid: i32) -> Result<()> {
        if self.current == Some(tid) {
            self.run_task(tid)
        } else {
            let t = self.t_mut(tid);
            t.state = State::InKernel;
            t.task.resume(Resume::Syscall, 0)
        }
    }

    fn syscall_exit(&mut self, tid: i32) -> Result<()> {
        let Some(p) = self.t_mut(tid).pending.take() else {
            // The exit of a syscall whose entry we did not see (the first
            // execve's, consumed by spawn): nothing to record.
            return Ok(());
        };
        let task = &self.t(tid).task;
        let nr = p.regs.orig_rax as i64;
        let args = p.regs.syscall_args();
        let spec = syscalls::lookup(nr).expect("entry checked the table");
        let mut regs = task.regs()?;
        if let Replay::Deny(errno) = p.replay {
            regs.rax = (-(errno as i64)) as u64;
            task.set_regs(&regs)?;
        }
        let result = regs.rax as i64;
        self.t_mut(tid).resumed_regs = Some(regs);
        let failed = (-4095..0).contains(&result);
        if p.replay == Replay::Exec && !failed && std::mem::take(&mut self.t_mut(tid).execed) {
            return self.exec_done(tid, p);
        }
        let task = &self.t(tid).task;
        let mut outputs = Vec::new();
        let mut file = None;
        if nr == libc::SYS_sched_getaffinity && result > 0 {
            // The program is pinned to rrpipe's CPU; it is told the CPUs it
            // would have had natively.
            let n = (result as usize).min(self.native_affinity.len());
            task.write_mem(args[2], &self.native_affinity[..n])
                .map_err(|e| Error::internal("rewrite sched_getaffinity", e))?;
        }
        if !failed {
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
        let info = SyscallInfo {
            regs: p.regs,
            inputs: p.inputs.into(),
            outputs: outputs.into(),
            file: file.into(),
        };
        let flags = if result > 0 && is_write(nr) {
            self.console_flags(tid, args[0] as i32)
        } else {
            0
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
        let mut event = self
            .session
            .next_event(tid, EventData::Syscall(info), result);
        event.header.flags = flags;
        let task = &self.tasks[&tid].task;
        self.session.dispatch(event, task)
    }

    /// Which of rrpipe's own output streams fd `fd` of task `tid` is.
    fn console_flags(&self, tid: i32, fd: i32) -> u32 {
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
    fn exec_done(&mut self, tid: i32, p: Pending) -> Result<()> {
        let task = &self.tasks[&tid].task;
        exec::prepare(task)?;
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

    fn save_mapped_file(&mut self, tid: i32, args: &[u64; 6]) -> Result<Option<SavedFile>> {
        let fd = args[4] as i32;
        let link = format!("/proc/{tid}/fd/{fd}");
        let original = std::fs::read_link(&link)
            .map_err(|e| Error::internal(format!("mapped fd {fd}"), e))?
            .to_string_lossy()
            .into_owned();
        let shared_writable =
            args[3] & libc::MAP_SHARED as u64 != 0 && args[2] & libc::PROT_WRITE as u64 != 0;
        self.saver
            .save(&original, Path::new(&link), shared_writable)
    }

    /// If `tid` stopped on a trapped rdtsc/rdtscp: reads the counter, steps
    /// over the instruction, records it; returns the registers after it.
    fn trapped_rdtsc(&mut self, tid: i32) -> Result<Option<Regs>> {
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
    fn signal(&mut self, tid: i32, sig: i32) -> Result<i32> {
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
    fn deliver(
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
    fn signal_at_anchor(&mut self, tid: i32, sig: i32, raw: Vec<u8>) -> Result<i32> {
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
    fn resend_deferred(&mut self, tid: i32) -> Result<()> {
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
    fn step_to_anchor(&mut self, tid: i32) -> Result<Option<(Regs, AnchorInfo)>> {
        const MAX_STEPS: u32 = 100_000;
        let mut steps = 0;
        loop {
            let task = &self.tasks[&tid].task;
            let regs = task.regs()?;
            if anchor::at_syscall(task, regs.rip) {
                return Ok(None);
            }
            if let Some(found) = anchor::eligible(task, regs.rip) {
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
    fn preempt(&mut self, tid: i32) -> Result<()> {
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
                });
            }
            t.resumed_regs = None;
            t.restarting = true;
            if self.current == Some(tid) {
                return self.run_task(tid);
            }
            let t = self.t_mut(tid);
            t.state = State::InKernel;
            return t.task.resume(Resume::Syscall, 0);
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
    fn step(&mut self, tid: i32, steps: &mut u32) -> Result<()> {
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
    fn step_back_to(
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
    fn disposition(&self, tid: i32, sig: i32) -> Result<(bool, bool)> {
        self.t(tid)
            .task
            .signal_disposition(sig)
            .map_err(|e| Error::internal("read signal disposition", e))
    }

    fn is_fatal(&self, tid: i32, sig: i32) -> Result<bool> {
        let (caught, ignored) = self.disposition(tid, sig)?;
        let ignored_by_default = matches!(
            sig,
            libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH | libc::SIGCONT
        );
        Ok(!caught && !ignored && !ignored_by_default)
    }

    /// Ends the recording, whatever happened: the trace is completed so that
    /// it replays up to where it stops.
    fn finish(mut self, dir: &Path, outcome: Result<Outcome>) -> Result<i32> {
        let mut aborted = false;
        let result = match outcome {
            Ok(Outcome::Exited(code)) => Ok(code),
            Ok(Outcome::Killed(sig)) => Ok(128 + sig),
            Err(e) => {
                // Stops that leave the trace whole: it ends with an Abort
                // event, which replay reaches and stops at, with the same
                // message and exit code. The task is still stopped at the
                // event that stopped the recording: its state is valid for
                // plugins.
                let stopped_at = match &e {
                    Error::Unsupported { tid, .. } => Some(*tid),
                    Error::Plugin { name, .. } if name != TRACE_WRITER => {
                        Some(self.session.last_tid)
                    }
                    _ => None,
                };
                if let Some(tid) = stopped_at.filter(|t| self.tasks.contains_key(t)) {
                    let info = AbortInfo {
                        reason: e.to_string().into(),
                        exit_code: e.exit_code(),
                    };
                    // A failed required plugin makes this an error too.
                    let _ = self.emit(tid, EventData::Abort(info), 0);
                    aborted = true;
                }
                crate::ptrace::kill_all(
                    std::mem::take(&mut self.tasks)
                        .into_values()
                        .map(|t| t.task),
                );
                Err(e)
            }
        };
        let events = self.session.time;
        let (mut components, plugins) = self.session.pipeline.finish();
        let files = self.saver.finish();
        let complete = result.is_ok() || aborted;
        if let Ok(f) = &files {
            components.push(rrpipe_plugin_api::trace::ManifestEntry {
                name: "rrpipe".into(),
                files: [
                    rrpipe_plugin_api::trace::HEADER_FILE.to_string(),
                    rrpipe_plugin_api::trace::MANIFEST_FILE.to_string(),
                ]
                .into_iter()
                .chain(f.iter().cloned())
                .collect(),
            });
        }
        let finish_error = match (plugins, files) {
            (Ok(()), Ok(_)) => None,
            // Already the recording's error when it stopped it.
            (Err(_), Ok(_)) if aborted => None,
            (Err(e), _) | (_, Err(e)) => Some(e),
        };
        tracedir::write_manifest(dir, complete && finish_error.is_none(), events, components)?;
        match (result, finish_error) {
            (Err(e), _) => Err(e),
            (Ok(_), Some(e)) => Err(e),
            (Ok(code), None) => Ok(code),
        }
    }
}

/// The plugin that writes the event stream: without it there is no trace.
const TRACE_WRITER: &str = "trace-writer";

/// Syscalls that write a buffer to a file descriptor.
fn is_write(nr: i64) -> bool {
    matches!(
        nr,
        libc::SYS_write
            | libc::SYS_writev
            | libc::SYS_pwrite64
            | libc::SYS_pwritev
            | libc::SYS_pwritev2
    )
}

/// Reads a NULL-terminated argv array from tracee memory.
fn read_argv(task: &Task, at: u64) -> Result<Vec<String>> {
    let mut argv = Vec::new();
    for i in 0..4096u64 {
        let raw = task
            .read_mem(at + i * 8, 8)
            .map_err(|e| Error::internal("read execve argv", e))?;
        let ptr = u64::from_le_bytes(raw[..8].try_into().unwrap());
        if ptr == 0 {
            break;
        }
        let s = task
            .read_cstring(ptr, MAX_PATH)
            .map_err(|e| Error::internal("read execve argument", e))?;
        argv.push(String::from_utf8_lossy(&s).into_owned());
    }
    Ok(argv)
}
