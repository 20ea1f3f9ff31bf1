//! Recording: run the program under ptrace, stop at every syscall, signal
//! and trapped instruction, and turn each into an event carrying what
//! replay needs to reproduce it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rrpipe_plugin_api::trace::{write_header, TraceHeader};
use rrpipe_plugin_api::{flags, AbortInfo, BlockedInfo, EventData, ExitInfo, MemBlock, Mode, Regs};

use crate::cli::RecordOptions;
use crate::config::PluginSpec;
use crate::error::{Error, Result};
use crate::pipeline::Pipeline;
use crate::ptrace::{Resume, Stop, Task};
use crate::sched::{Preempter, TickSource};
use crate::session::Session;
use crate::syscalls::Replay;
use crate::tracedir::{self, FileSaver};
use crate::{cpus, exec, spawn};
use nix::unistd::Pid;
use rrpipe_syscallbuf as abi;
use shared_buffer::{ForkImage, SharedBuffer};

mod buffer;
mod patching;
mod shared_buffer;
mod signals;
mod syscall_stops;

/// Longest path string captured from a syscall argument.
const MAX_PATH: usize = 4096;

/// Records `opts.program`; returns the exit status rrpipe should give (the
/// program's).
pub fn run(opts: &RecordOptions) -> Result<i32> {
    let argv = opts.program.clone();
    let filename = resolve_program(&argv[0])?;
    let mut env: Vec<String> = std::env::vars_os()
        .map(|(k, v)| {
            let mut s = k.to_string_lossy().into_owned();
            s.push('=');
            s.push_str(&v.to_string_lossy());
            s
        })
        .collect();
    if opts.tracer.syscall_buffer {
        preload(&mut env, opts.tracer.filter_lib.as_deref())?;
    }
    let cwd = std::env::current_dir().map_err(|e| Error::internal("current directory", e))?;
    let allowed = cpus::allowed();
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
        syscall_buffer: opts.tracer.syscall_buffer,
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
    cpus::pin_current_thread(cpu)?;

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
    rec.buffering = opts.tracer.syscall_buffer;
    rec.page.mode = if rec.buffering {
        abi::MODE_RECORD
    } else {
        abi::MODE_OFF
    };
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
    use std::sync::atomic::{AtomicU32, Ordering};
    /// SIGINTs and SIGTERMs sent to rrpipe alone so far.
    static STOPS: AtomicU32 = AtomicU32::new(0);
    // A terminal's Ctrl-C reaches the whole foreground group, the program
    // included: nothing to do. A signal sent to rrpipe alone (kill, a
    // supervisor's SIGTERM) is passed on, so the program sees what it
    // would have seen, and the recording ends the way the program does.
    // A second SIGINT or SIGTERM means the first did not end it (the
    // program ignores it, or is stuck): the program is killed (SIGKILL),
    // and the recording ends as it does for a program killed from outside,
    // with a trace that replays up to there. A third one ends rrpipe.
    // SAFETY: the kernel hands a valid siginfo; kill, write and _exit are
    // async-signal-safe, and so are atomics; errno is restored.
    unsafe {
        if (*info).si_code > 0 {
            return;
        }
        let pid = TRACEE.load(Ordering::Relaxed);
        if pid <= 0 {
            return;
        }
        let errno = *libc::__errno_location();
        let before = match sig {
            libc::SIGINT | libc::SIGTERM => STOPS.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        let say = |msg: &[u8]| libc::write(2, msg.as_ptr().cast(), msg.len());
        match before {
            0 => {
                libc::kill(pid, sig);
            }
            1 => {
                say(b"rrpipe: interrupted again: killing the recorded program\n");
                libc::kill(pid, libc::SIGKILL);
            }
            _ => {
                // Even that did not end it (its other processes, with
                // --wait, or rrpipe itself is stuck): give up. The kernel
                // kills the tracees with their tracer (PTRACE_O_EXITKILL);
                // the trace is left incomplete.
                say(b"rrpipe: interrupted a third time: exiting, the trace is incomplete\n");
                libc::_exit(128 + sig);
            }
        }
        *libc::__errno_location() = errno;
    }
}

/// Ctrl-C, SIGTERM and SIGHUP stop the program, not the recorder: the
/// recorder records how the program reacts and completes the trace. A
/// second SIGINT or SIGTERM sent to rrpipe kills the program, a third
/// ends rrpipe (see `forward`).
fn forward_interruptions_to(pid: i32) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    TRACEE.store(pid, std::sync::atomic::Ordering::Relaxed);
    let action = SigAction::new(
        SigHandler::SigAction(forward),
        SaFlags::SA_SIGINFO | SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only makes async-signal-safe calls.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// Puts the syscall-buffering library first in the program's
/// `LD_PRELOAD` (kept in the trace's environment, so replay loads it too).
fn preload(env: &mut Vec<String>, chosen: Option<&Path>) -> Result<()> {
    let lib = match chosen {
        Some(path) if path.is_file() => path.to_path_buf(),
        Some(path) => {
            return Err(Error::Config(format!(
                "filter_lib {}: no such file",
                path.display()
            )))
        }
        None => crate::plugin_search::find_library("preload", &crate::plugin_search::search_dirs())
            .map_err(|_| {
                Error::Config(
                    "syscall buffering needs librrpipe_preload.so next to rrpipe (build the workspace), or --filter-lib=PATH; --no-syscall-buffer records without it".into(),
                )
            })?,
    };
    let lib = std::fs::canonicalize(&lib).unwrap_or(lib);
    let lib = lib.to_string_lossy();
    if lib.contains([':', ' ']) {
        return Err(Error::Config(format!(
            "filter_lib {lib}: LD_PRELOAD cannot name a path with ':' or spaces"
        )));
    }
    match env.iter_mut().find(|v| v.starts_with("LD_PRELOAD=")) {
        Some(v) if v.len() > "LD_PRELOAD=".len() => {
            *v = format!("LD_PRELOAD={lib}:{}", &v["LD_PRELOAD=".len()..]);
        }
        Some(v) => *v = format!("LD_PRELOAD={lib}"),
        None => env.push(format!("LD_PRELOAD={lib}")),
    }
    Ok(())
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
    /// Event flags known at entry (`BUFFER_FALLBACK`, and for a write to
    /// rrpipe's own output `STDOUT` or `STDERR`, kept if it wrote).
    flags: u32,
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
    /// Its exit stop (`PTRACE_EVENT_EXIT`) was seen: its `Exit` event is
    /// recorded (or deliberately left out, see `killed_by_exec_of_sibling`).
    exit_seen: bool,
    /// Its process (thread group id), known from its first stop on: a
    /// SIGKILL ends the whole process, and a task may already be gone,
    /// with its /proc entry, when rrpipe learns it was killed.
    process: i32,
}

impl RecTask {
    fn new(task: Task, state: State) -> RecTask {
        RecTask {
            process: task.tid.as_raw(),
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
            exit_seen: false,
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
    /// Syscall buffering: the seccomp filter is in place, so user code
    /// runs with PTRACE_CONT and syscalls stop at PTRACE_EVENT_SECCOMP.
    buffering: bool,
    /// What the preload library finds in the rrpipe page.
    page: exec::PageSetup,
    /// Syscall buffers mapped into rrpipe too, by task (see
    /// `shared_buffer`).
    shared: HashMap<i32, SharedBuffer>,
    /// Forked children, by tid, that share their parent's buffer mapping
    /// until their first stop gives them their own.
    unshare: HashMap<i32, (i32, ForkImage)>,
    /// Tasks of a process that a SIGKILL is ending: from the first death
    /// of one of them seen, every event of theirs shows the kill's work
    /// (other threads' deaths, which clear their tid words; the task's
    /// own run to wherever the kill found it) and is flagged
    /// `flags::AT_DEATH`.
    dying: HashSet<i32>,
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
        let console = [identity(1), identity(2)];
        Recorder {
            console,
            tasks,
            current: None,
            initial: tid,
            initial_status: None,
            session,
            saver,
            ticks: Box::new(Preempter::new()),
            wait_all: false,
            native_affinity: Vec::new(),
            buffering: false,
            page: exec::PageSetup {
                mode: abi::MODE_OFF,
                console: console.map(|c| c.unwrap_or((u64::MAX, u64::MAX))),
            },
            shared: HashMap::new(),
            unshare: HashMap::new(),
            dying: HashSet::new(),
        }
    }

    fn t(&self, tid: i32) -> &RecTask {
        &self.tasks[&tid]
    }

    fn t_mut(&mut self, tid: i32) -> &mut RecTask {
        self.tasks.get_mut(&tid).expect("known task")
    }

    fn emit(&mut self, tid: i32, data: EventData, result: i64) -> Result<()> {
        self.emit_flagged(tid, data, result, 0)
    }

    /// Emits an event of task `tid`, after the syscalls it buffered since
    /// its last one.
    fn emit_flagged(&mut self, tid: i32, data: EventData, result: i64, flags: u32) -> Result<()> {
        if !matches!(data, EventData::Exec(_)) {
            // (An exec's entry flushed the old image's buffer.)
            self.flush_buffer(tid)?;
        }
        self.dispatch_now(tid, data, result, flags)
    }

    /// Emits an event of task `tid` as it is, without first reporting the
    /// syscalls it buffered (which `emit_flagged` does): for the buffer's
    /// own event, a return held from an earlier stop, and a task whose
    /// memory is gone.
    fn dispatch_now(&mut self, tid: i32, data: EventData, result: i64, flags: u32) -> Result<()> {
        let mut event = self.session.next_event(tid, data, result);
        event.header.flags = flags;
        if self.dying.contains(&tid) {
            event.header.flags |= flags::AT_DEATH;
        }
        let task = &self.tasks[&tid].task;
        self.session.dispatch(event, task)
    }

    /// Emits the return held for task `tid` (see `RecTask::held`), if any.
    fn emit_held(&mut self, tid: i32) -> Result<()> {
        match self.t_mut(tid).held.take() {
            Some((data, result, flags)) => self.dispatch_now(tid, data, result, flags),
            None => Ok(()),
        }
    }

    /// For a task that dies: emits the return held for it unless it is a
    /// restart code (a restart it will never make); whether one was held.
    fn emit_held_before_death(&mut self, tid: i32) -> Result<bool> {
        let Some((data, result, flags)) = self.t_mut(tid).held.take() else {
            return Ok(false);
        };
        if !RESTART_CODES.contains(&result) {
            self.dispatch_now(tid, data, result, flags)?;
        }
        Ok(true)
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
                let how = self.to_next_syscall();
                let t = self.t_mut(tid);
                let signal = std::mem::take(&mut t.signal);
                t.state = State::Running;
                t.task.resume(how, signal)?;
                self.current = Some(tid);
                return Ok(());
            }
            self.dispatch_now(tid, data, result, flags)?;
        }
        let how = match &self.t(tid).pending {
            // At a syscall's entry: on to its exit.
            Some(_) if !self.t(tid).restarting => Resume::Syscall,
            _ => self.to_next_syscall(),
        };
        let t = self.t_mut(tid);
        let signal = std::mem::take(&mut t.signal);
        t.state = State::Running;
        t.task.resume(how, signal)?;
        self.current = Some(tid);
        Ok(())
    }

    /// How to resume a task in user code so that it stops at its next
    /// traced syscall's entry: with the seccomp filter in place, PTRACE_CONT
    /// (PTRACE_SYSCALL would stop at the buffered ones too).
    fn to_next_syscall(&self) -> Resume {
        if self.buffering {
            Resume::Cont
        } else {
            Resume::Syscall
        }
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
        exec::prepare(&self.t(tid).task, &self.page)?;
        if self.buffering {
            exec::install_seccomp_filter(&self.t(tid).task)?;
        }
        let info = exec::capture(
            &self.tasks[&tid].task,
            Regs::default(),
            filename,
            argv,
            &mut self.saver,
        )?;
        self.emit(tid, EventData::Exec(info), 0)?;
        let started = self.run_task(tid);
        self.survive(started)?;
        let mut last = tid;
        loop {
            if self.current.is_none() {
                if let Some(next) = self.next_stopped(last) {
                    last = next;
                    let ran = self
                        .run_parked(next)
                        .and_then(|()| self.resend_set_aside(next));
                    self.survive(ran)?;
                    if let Some(outcome) = self.over() {
                        return Ok(outcome);
                    }
                    if self.current.is_none() {
                        // It ended instead: the next one.
                        continue;
                    }
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
                if matches!(stop, Stop::Exited(_) | Stop::Killed(_)) {
                    // The end of a task whose creation was never seen
                    // (killed with its parent at its birth): nothing of
                    // it is recorded.
                    continue;
                }
                // A new task whose creation event has not been seen yet.
                slot.insert(RecTask::new(Task::new(pid)?, State::Starting));
            }
            let handled = self
                .handle(tid, stop)
                .and_then(|()| self.resend_set_aside(tid));
            self.survive(handled)?;
            if let Some(outcome) = self.over() {
                return Ok(outcome);
            }
        }
        Ok(self.initial_status.unwrap_or(Outcome::Exited(0)))
    }

    /// When the initial process has ended (and rrpipe does not wait for
    /// the others): the recording ends with it; the other tasks are killed.
    fn over(&mut self) -> Option<Outcome> {
        let outcome = self.initial_status.filter(|_| !self.wait_all)?;
        crate::ptrace::kill_all(
            std::mem::take(&mut self.tasks)
                .into_values()
                .map(|t| t.task),
        );
        Some(outcome)
    }

    /// Lets parked task `tid` run, unless it reported a stop while parked:
    /// only a task killed meanwhile (SIGKILL from outside, or its process
    /// ending in another thread) does, at its exit stop, which is handled
    /// then. Resumed from there without a look, it would die before its
    /// exit stop had been seen, with the calls it buffered since its last
    /// stop (see `died`).
    fn run_parked(&mut self, tid: i32) -> Result<()> {
        match crate::ptrace::try_wait(self.t(tid).task.tid)? {
            Some(stop) => self.handle(tid, stop),
            None => self.run_task(tid),
        }
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
            Stop::SyscallEntry | Stop::Event(libc::PTRACE_EVENT_SECCOMP) => self.syscall_entry(tid),
            Stop::SyscallExit => {
                self.syscall_exit(tid)?;
                self.continue_or_park(tid)
            }
            Stop::Signal(sig) => {
                if self.t(tid).state == State::Starting && sig == libc::SIGSTOP {
                    // The stop every new task starts with.
                    self.unshare_buffer(tid)?;
                    let regs = self.t(tid).task.regs()?;
                    let process = crate::ptrace::tgid_of(tid).unwrap_or(tid);
                    let t = self.t_mut(tid);
                    t.process = process;
                    t.state = State::Stopped;
                    t.resumed_regs = Some(regs);
                    return Ok(());
                }
                if self.ticks.take_fired(tid, sig) {
                    return self.preempt(tid);
                }
                // A real signal after a restart code: the kernel's handler
                // logic decides, in replay too.
                self.emit_held(tid)?;
                let deliver = self.signal(tid, sig)?;
                self.t_mut(tid).signal = deliver;
                if let Some(next) = self.t_mut(tid).next_stop.take() {
                    return self.handle(tid, next);
                }
                self.continue_or_park(tid)
            }
            Stop::Event(libc::PTRACE_EVENT_EXIT) => {
                // (Its memory is still there: the flush of its buffered
                // calls before the event below finds them, however it
                // ends, killed by SIGKILL included.)
                let t = self.t_mut(tid);
                t.exit_seen = true;
                t.task.clear_gone();
                let info = self.t(tid).task.exit_info()?;
                let result = info.code as i64;
                let sigkilled = info.signal == libc::SIGKILL;
                let own_death = !self.killed_by_exec_of_sibling(tid);
                if own_death && sigkilled {
                    self.mark_process_dying(tid);
                    self.return_before_death(tid)?;
                }
                if own_death {
                    // (Threads that an exec in their process kills die as
                    // part of that exec, in replay too: no event of theirs.
                    // Nor has a task whose creation the trace lacks, its
                    // parent killed inside the clone.)
                    if self.session.created(tid) {
                        self.emit(tid, EventData::Exit(info), 0.max(result))?;
                    }
                    if self.tasks.len() == 1 {
                        // The last event: the plugins and the file saver
                        // thread finish while the program's exit tears its
                        // memory down.
                        self.saver.close();
                        self.session.pipeline.no_more_events();
                    }
                }
                if self.current == Some(tid) {
                    self.current = None;
                }
                // (Every thread is traced: a task alone has no threads
                // left, unless a SIGKILL caught its process inside a clone,
                // whose new thread rrpipe has not seen yet. Waiting for the
                // leader alone would then wait for ever: the new thread
                // sits in its first stop, for rrpipe.)
                let waits_for_threads =
                    (self.tasks.len() > 1 || sigkilled) && self.t(tid).task.leads_other_threads();
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
                // (A thread or vfork child shares the memory itself: its
                // first stop tells.)
                self.forget_stale_shared(tid);
                if let Some(image) = self.shared.get(&tid).map(|s| s.fork_image()) {
                    self.unshare.insert(child, (tid, image));
                    if self.t(child).state != State::Starting {
                        // Its first stop came before this event: it has
                        // not run since.
                        self.unshare_buffer(child)?;
                    }
                }
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
            Stop::Exited(code) => self.died(tid, Outcome::Exited(code)),
            Stop::Killed(sig) => self.died(tid, Outcome::Killed(sig)),
        }
    }

    /// Goes on after an error of handling a stop (`outcome`) when the error
    /// came from a task found gone (see `Task::gone`): killed by SIGKILL
    /// (from outside, or by a second interruption of rrpipe) between two
    /// of rrpipe's ptrace calls, so that one of them failed with ESRCH.
    /// No more calls are made on it until its end is reported, and that
    /// is handled now: its `Exit` event (signal 9) is recorded like any
    /// other end. Any other error stays the recording's error.
    fn survive(&mut self, mut outcome: Result<()>) -> Result<()> {
        loop {
            let Err(e) = outcome else {
                return Ok(());
            };
            let gone = self
                .tasks
                .iter()
                .find(|(_, t)| t.task.gone())
                .map(|(&tid, _)| tid);
            let Some(tid) = gone.filter(|_| matches!(e, Error::Internal(_))) else {
                return Err(e);
            };
            outcome = self.killed_while_held(tid);
        }
    }

    /// Task `tid` left the stop rrpipe held it in: it was killed. What was
    /// under way for it is dropped, but for the syscall it was in or had
    /// returned from (see `return_before_death`); it waits for nothing
    /// and runs no more. Its exit stop, or its end when the kernel reports
    /// none, comes next: it is waited for and handled before anyone else
    /// runs, as a task's end always is.
    fn killed_while_held(&mut self, tid: i32) -> Result<()> {
        let t = self.t_mut(tid);
        t.task.clear_gone();
        t.state = State::InKernel;
        t.next_stop = None;
        t.signal = 0;
        t.requeued.clear();
        t.deferred.clear();
        t.preempt_pending = false;
        t.restarting = false;
        if self.current == Some(tid) {
            self.current = None;
        }
        match self.t(tid).task.wait_gone()? {
            Some(stop) => self.handle(tid, stop),
            // Released without an end to report: it died of the SIGKILL
            // that took it out of its stop.
            None => self.died(tid, Outcome::Killed(libc::SIGKILL)),
        }
    }

    /// Task `tid` ended (`outcome`, as `waitpid` reports it). Normally its
    /// exit stop came first and recorded its `Exit` event. Without one,
    /// the task was killed (SIGKILL) while rrpipe held it in a stop, and
    /// reached its exit stop before rrpipe resumed it from what it took
    /// for the stop it held, which let it die there: its `Exit` event is
    /// recorded now. Its memory is gone with it: the syscalls it buffered
    /// since its last stop cannot be read any more, and are lost (replay,
    /// which ends the task at its last recorded event, does not miss
    /// them: the task made no traced syscall after them).
    fn died(&mut self, tid: i32, outcome: Outcome) -> Result<()> {
        let t = self.t(tid);
        let exec_elsewhere = self.tasks.iter().any(|(&other, t)| {
            other != tid && t.pending.as_ref().is_some_and(|p| p.replay == Replay::Exec)
        });
        // (Not for a task that never stopped once: it has no events;
        // replay leaves a task it created and never sees again to the
        // end. Nor for one whose creation the trace lacks, its parent
        // killed inside the clone (see `Session::created`): replay never
        // makes it. Nor for a thread that an exec in another thread of
        // its process may have killed: that death is part of the exec,
        // see `killed_by_exec_of_sibling`, whose test needs the living
        // task.)
        if !t.exit_seen
            && t.state != State::Starting
            && self.session.created(tid)
            && !exec_elsewhere
        {
            if matches!(outcome, Outcome::Killed(libc::SIGKILL)) {
                self.mark_process_dying(tid);
            }
            // A return it was to be told when it next ran, known already
            // (see `return_before_death`).
            self.emit_held_before_death(tid)?;
            let info = match outcome {
                Outcome::Exited(code) => ExitInfo { code, signal: 0 },
                Outcome::Killed(signal) => ExitInfo { code: 0, signal },
            };
            let result = info.code.max(0) as i64;
            self.dispatch_now(tid, EventData::Exit(info), result, 0)?;
        }
        self.ended(tid, outcome)
    }

    /// Task `tid` dies of a SIGKILL, which ends its whole process: its
    /// threads' events are flagged from now on (see `dying`).
    fn mark_process_dying(&mut self, tid: i32) {
        let process = self.t(tid).process;
        let threads = self.tasks.iter().filter(|(_, t)| t.process == process);
        self.dying.extend(threads.map(|(&other, _)| other));
    }

    /// Whether another thread of `tid`'s process is inside an execve, which
    /// kills every other thread.
    fn killed_by_exec_of_sibling(&self, tid: i32) -> bool {
        // (The tasks first: reading /proc costs a dozen syscalls, and most
        // exits have no exec under way anywhere.)
        let mut execing = self.tasks.iter().filter(|(&other, t)| {
            other != tid && t.pending.as_ref().is_some_and(|p| p.replay == Replay::Exec)
        });
        let Some(first) = execing.next() else {
            return false;
        };
        let group = crate::ptrace::tgid_of(tid);
        group.is_some()
            && std::iter::once(first)
                .chain(execing)
                .any(|(&other, _)| crate::ptrace::tgid_of(other) == group)
    }

    fn ended(&mut self, tid: i32, outcome: Outcome) -> Result<()> {
        self.tasks.remove(&tid);
        self.dying.remove(&tid);
        self.unshare.remove(&tid);
        if self.current == Some(tid) {
            self.current = None;
        }
        if tid == self.initial {
            self.initial_status = Some(outcome);
        }
        // The recording's last task keeps its entry: `finish` leaves the
        // mapping in place, as it does every one left.
        let last = self.tasks.is_empty() || (tid == self.initial && !self.wait_all);
        if !last {
            self.shared.remove(&tid);
        }
        Ok(())
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
        for (_, shared) in std::mem::take(&mut self.shared) {
            shared.leave_mapped();
        }
        // The plugins finish on their CPUs while this thread saves the last
        // files on the program's (`FileSaver::finish` tells the saver
        // thread there are no more: each wake-up of another CPU takes tens
        // of µs in a VM).
        self.session.pipeline.no_more_events();
        let files = self.saver.finish();
        let (mut components, plugins) = self.session.pipeline.finish();
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
