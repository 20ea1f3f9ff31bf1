//! Recording: run the program under ptrace, stop at every syscall, signal
//! and trapped instruction, and turn each into an event carrying what
//! replay needs to reproduce it.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rrpipe_plugin_api::trace::{write_header, TraceHeader};
use rrpipe_plugin_api::{
    AbortInfo, EventData, ExitInfo, MemBlock, Mode, RdtscInfo, Regs, SavedFile, SignalInfo,
    SyscallInfo,
};

use crate::cli::RecordOptions;
use crate::config::PluginSpec;
use crate::error::{exit_code, Error, Result};
use crate::pipeline::Pipeline;
use crate::ptrace::{Resume, Stop, Task};
use crate::session::Session;
use crate::syscalls::{self, Access, Arg, Replay};
use crate::tracedir::{self, FileSaver};
use crate::{exec, rdtsc, spawn};

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
        name: "trace-writer".into(),
        path: None,
        required: true,
        config_toml: String::new(),
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
    let mut rec = Recorder {
        task,
        session: Session::new(pipeline),
        saver,
        pending: None,
    };
    let outcome = rec.record(&filename, &argv);
    rec.finish(&dir, outcome)
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
}

struct Recorder {
    task: Task,
    session: Session,
    saver: FileSaver,
    pending: Option<Pending>,
}

/// How the recorded program ended.
enum Outcome {
    Exited(i32),
    Killed(i32),
}

impl Recorder {
    fn tid(&self) -> i32 {
        self.task.tid.as_raw()
    }

    fn emit(&mut self, data: EventData, result: i64) -> Result<()> {
        let event = self.session.next_event(self.tid(), data, result);
        self.session.dispatch(event, &self.task)
    }

    fn unsupported(&self, what: String) -> Error {
        Error::Unsupported {
            what,
            time: self.session.time + 1,
            tid: self.tid(),
        }
    }

    fn record(&mut self, filename: &str, argv: &[String]) -> Result<Outcome> {
        exec::prepare(&self.task)?;
        let info = exec::capture(&self.task, filename, argv, &mut self.saver)?;
        self.emit(EventData::Exec(info), 0)?;
        let mut signal = 0;
        loop {
            self.task.resume(Resume::Syscall, signal)?;
            signal = 0;
            match self.task.wait()? {
                Stop::SyscallEntry => self.syscall_entry()?,
                Stop::SyscallExit => self.syscall_exit()?,
                Stop::Signal(sig) => signal = self.signal(sig)?,
                Stop::Event(libc::PTRACE_EVENT_EXIT) => {
                    let status = self.task.event_msg()? as i32;
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
                    self.emit(EventData::Exit(info), result)?;
                }
                Stop::Event(_) => {}
                Stop::Exited(code) => return Ok(Outcome::Exited(code)),
                Stop::Killed(sig) => return Ok(Outcome::Killed(sig)),
            }
        }
    }

    fn syscall_entry(&mut self) -> Result<()> {
        let mut regs = self.task.regs()?;
        let nr = regs.orig_rax as i64;
        let args = regs.syscall_args();
        let spec = syscalls::lookup(nr).ok_or_else(|| {
            self.unsupported(format!("syscall {} (number {nr})", syscalls::name(nr)))
        })?;
        let replay = spec
            .replay_for(&args)
            .map_err(|what| self.unsupported(format!("{what} in {}", spec.name)))?;
        if let Access::Custom(_) = spec.writes {
            // Custom accessors refuse what they cannot describe (an unknown
            // ioctl request): better now than after it ran.
            syscalls::ranges(&spec.writes, &args, 0, &self.task)
                .map_err(|what| self.unsupported(format!("{what} in {}", spec.name)))?;
        }
        if replay == Replay::Exec {
            return Err(self.unsupported(format!(
                "{} from a traced program (process trees are not recorded yet)",
                spec.name
            )));
        }
        let mut inputs = Vec::new();
        for (i, kind) in spec.args.iter().enumerate() {
            if *kind == Arg::Path && args[i] != 0 {
                if let Ok(s) = self.task.read_cstring(args[i], MAX_PATH) {
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
                self.emit(EventData::Syscall(info), 0)?;
            }
            Replay::Deny(_) => {
                let entry = regs;
                regs.orig_rax = u64::MAX; // skipped by the kernel
                self.task.set_regs(&regs)?;
                self.pending = Some(Pending {
                    regs: entry,
                    inputs,
                    replay,
                });
            }
            _ => {
                self.pending = Some(Pending {
                    regs,
                    inputs,
                    replay,
                })
            }
        }
        Ok(())
    }

    fn syscall_exit(&mut self) -> Result<()> {
        let Some(p) = self.pending.take() else {
            // The exit of a syscall whose entry we did not see (only the
            // first execve's, consumed by spawn): nothing to record.
            return Ok(());
        };
        let nr = p.regs.orig_rax as i64;
        let args = p.regs.syscall_args();
        let spec = syscalls::lookup(nr).expect("entry checked the table");
        let mut regs = self.task.regs()?;
        if let Replay::Deny(errno) = p.replay {
            regs.rax = (-(errno as i64)) as u64;
            self.task.set_regs(&regs)?;
        }
        let result = regs.rax as i64;
        let failed = (-4095..0).contains(&result);
        let mut outputs = Vec::new();
        let mut file = None;
        if !failed {
            let ranges = syscalls::ranges(&spec.writes, &args, result, &self.task)
                .map_err(|e| Error::Internal(format!("{} output: {e}", spec.name)))?;
            for (addr, len) in ranges {
                let data = self.task.read_mem(addr, len as usize).map_err(|e| {
                    Error::Internal(format!("{} output at {addr:#x}+{len}: {e}", spec.name))
                })?;
                outputs.push(MemBlock {
                    addr,
                    data: data.into(),
                });
            }
            if p.replay == Replay::Mmap && args[3] & libc::MAP_ANONYMOUS as u64 == 0 {
                file = self.save_mapped_file(&args)?;
            }
        }
        let info = SyscallInfo {
            regs: p.regs,
            inputs: p.inputs.into(),
            outputs: outputs.into(),
            file: file.into(),
        };
        self.emit(EventData::Syscall(info), result)
    }

    fn save_mapped_file(&mut self, args: &[u64; 6]) -> Result<Option<SavedFile>> {
        let fd = args[4] as i32;
        let link = format!("/proc/{}/fd/{fd}", self.tid());
        let original = std::fs::read_link(&link)
            .map_err(|e| Error::internal(format!("mapped fd {fd}"), e))?
            .to_string_lossy()
            .into_owned();
        let shared_writable =
            args[3] & libc::MAP_SHARED as u64 != 0 && args[2] & libc::PROT_WRITE as u64 != 0;
        self.saver
            .save(&original, Path::new(&link), shared_writable)
    }

    /// A signal-delivery stop; returns the signal to deliver.
    fn signal(&mut self, sig: i32) -> Result<i32> {
        let regs = self.task.regs()?;
        if sig == libc::SIGSEGV {
            if let Some(insn) = rdtsc::decode(&self.task, regs.rip) {
                let (tsc, aux) = rdtsc::read_counter(insn);
                self.task.set_regs(&rdtsc::emulate(&regs, insn, tsc, aux))?;
                let info = RdtscInfo {
                    regs,
                    tsc,
                    aux: aux.into(),
                };
                self.emit(EventData::Rdtsc(info), 0)?;
                return Ok(0);
            }
        }
        let Ok(si) = self.task.siginfo() else {
            // A group-stop (SIGSTOP and friends), not a delivery.
            return Ok(0);
        };
        let info = SignalInfo {
            regs,
            signo: sig,
            code: si.si_code,
            errno: si.si_errno,
            addr: unsafe { si.si_addr() } as u64,
            fatal: self.is_fatal(sig)?,
        };
        self.emit(EventData::Signal(info), 0)?;
        Ok(sig)
    }

    fn is_fatal(&self, sig: i32) -> Result<bool> {
        let (caught, ignored) = self
            .task
            .signal_disposition(sig)
            .map_err(|e| Error::internal("read signal disposition", e))?;
        let ignored_by_default = matches!(
            sig,
            libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH | libc::SIGCONT
        );
        Ok(!caught && !ignored && !ignored_by_default)
    }

    /// Ends the recording, whatever happened: the trace is completed so that
    /// it replays up to where it stops.
    fn finish(mut self, dir: &Path, outcome: Result<Outcome>) -> Result<i32> {
        let result = match outcome {
            Ok(Outcome::Exited(code)) => Ok(code),
            Ok(Outcome::Killed(sig)) => Ok(128 + sig),
            Err(e) => {
                let code = e.exit_code();
                if matches!(e, Error::Unsupported { .. }) || code == exit_code::INTERRUPTED {
                    let info = AbortInfo {
                        reason: e.to_string().into(),
                        exit_code: code,
                    };
                    // The task is stopped at the syscall entry: its state is
                    // valid for plugins.
                    let _ = self.emit(EventData::Abort(info), 0);
                }
                self.task.kill();
                Err(e)
            }
        };
        let events = self.session.time;
        let plugins = self.session.pipeline.finish();
        let files = self.saver.finish();
        let complete = result.is_ok() || matches!(result, Err(Error::Unsupported { .. }));
        let mut components = Vec::new();
        let finish_error = match (plugins, files) {
            (Ok(p), Ok(f)) => {
                components = p;
                components.push(rrpipe_plugin_api::trace::ManifestEntry {
                    name: "rrpipe".into(),
                    files: [
                        rrpipe_plugin_api::trace::HEADER_FILE.to_string(),
                        rrpipe_plugin_api::trace::MANIFEST_FILE.to_string(),
                    ]
                    .into_iter()
                    .chain(f)
                    .collect(),
                });
                None
            }
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
