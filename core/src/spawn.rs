//! Starting a program under ptrace, identically in record and replay: no
//! ASLR, pinned to one CPU, `rdtsc` trapping, then execve. The task comes
//! back stopped at the exit of that execve, before its first instruction.

use std::ffi::CString;
use std::os::fd::RawFd;

use nix::sys::ptrace::Options;
use nix::unistd::{fork, ForkResult, Pid};

use crate::error::{Error, Result};
use crate::ptrace::{Resume, Stop, Task};

/// Everything the child needs, prepared before fork: after fork only
/// async-signal-safe calls are allowed (the tracer has plugin threads).
pub struct SpawnSpec {
    /// The path handed to execve.
    pub filename: CString,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    /// Working directory of the child, if it must change.
    pub cwd: Option<CString>,
    pub cpu: usize,
    /// Replay: the child must never leave a core file (its fatal signals
    /// are replayed for real).
    pub no_core_dump: bool,
    /// Replay: stdin comes from here, since replay never reads real input.
    pub stdin: Option<RawFd>,
}

/// The ptrace options every tracee gets.
pub fn options() -> Options {
    Options::PTRACE_O_TRACESYSGOOD
        | Options::PTRACE_O_TRACEEXEC
        | Options::PTRACE_O_TRACEEXIT
        | Options::PTRACE_O_EXITKILL
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACESECCOMP
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(|e| Error::internal("cpu set", e))?;
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
        .map_err(|e| Error::internal(format!("pin to cpu {cpu}"), e))
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    match nix::sched::sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..nix::sched::CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => vec![0],
    }
}

/// Forks and execs; returns the task stopped at the exit of its execve.
pub fn spawn(spec: &SpawnSpec) -> Result<Task> {
    let mut argv: Vec<*const libc::c_char> = spec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = spec.env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let mut cpuset: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(spec.cpu, &mut cpuset) };

    // SAFETY: the child only makes raw syscalls on memory prepared above.
    match unsafe { fork() }.map_err(|e| Error::internal("fork", e))? {
        ForkResult::Child => unsafe {
            let persona = libc::personality(0xffff_ffff);
            libc::personality((persona | libc::ADDR_NO_RANDOMIZE) as libc::c_ulong);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &cpuset);
            libc::prctl(libc::PR_SET_TSC, libc::PR_TSC_SIGSEGV, 0, 0, 0);
            // The Rust runtime ignores SIGPIPE in rrpipe; the program gets
            // the default a shell gives it (`yes | head` must end).
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            if spec.no_core_dump {
                // 1, not 0: a core_pattern pipe ignores 0 but honours 1.
                let one = libc::rlimit {
                    rlim_cur: 1,
                    rlim_max: 1,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &one);
            }
            if let Some(fd) = spec.stdin {
                libc::dup2(fd, 0);
            }
            if let Some(cwd) = &spec.cwd {
                if libc::chdir(cwd.as_ptr()) != 0 {
                    libc::_exit(126);
                }
            }
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            // A raw kill, not raise(): raise's own syscalls after the stop
            // would be traced before execve.
            libc::syscall(libc::SYS_kill, libc::getpid(), libc::SIGSTOP);
            libc::execve(spec.filename.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        },
        ForkResult::Parent { child } => {
            let task = wait_for_exec(child, spec)?;
            Ok(task)
        }
    }
}

fn wait_for_exec(child: Pid, spec: &SpawnSpec) -> Result<Task> {
    let filename = spec.filename.to_string_lossy().into_owned();
    let first = nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::__WALL))
        .map_err(|e| Error::internal("waitpid", e))?;
    if !matches!(first, nix::sys::wait::WaitStatus::Stopped(_, _)) {
        return Err(Error::Internal(format!(
            "child did not stop before exec ({first:?})"
        )));
    }
    nix::sys::ptrace::setoptions(child, options())
        .map_err(|e| Error::internal("PTRACE_SETOPTIONS", e))?;
    let mut task = Task::new(child)?;
    let mut execed = false;
    loop {
        task.resume(Resume::Syscall, 0)?;
        match task.wait()? {
            Stop::Event(libc::PTRACE_EVENT_EXEC) => execed = true,
            Stop::SyscallExit if execed => break,
            Stop::SyscallEntry | Stop::SyscallExit | Stop::Signal(_) | Stop::Event(_) => {}
            Stop::Exited(code) => {
                return Err(Error::ProgramNotFound(format!(
                    "{filename}: cannot execute (child exited with {code})"
                )))
            }
            Stop::Killed(sig) => {
                return Err(Error::Internal(format!(
                    "{filename}: killed by signal {sig} before exec"
                )))
            }
        }
    }
    task.reopen_mem()?;
    Ok(task)
}
