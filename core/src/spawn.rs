//! Starting a program under ptrace, identically in record and replay: no
//! ASLR, pinned to one CPU, `rdtsc` trapping, then execve. The task comes
//! back stopped at the exit of that execve, before its first instruction.

use std::ffi::CString;
use std::os::fd::RawFd;

use nix::sys::ptrace::Options;
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::ptrace::{Resume, Stop, Task};

/// Everything the child needs, prepared before it starts: until its execve
/// it may only make syscalls (it shares rrpipe's memory, see [`spawn`]).
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

/// Starts the program; returns the task stopped at the exit of its execve.
///
/// The child shares rrpipe's memory until its execve (`clone(CLONE_VM)`,
/// as `posix_spawn` does) instead of being a fork: a fork copies rrpipe's
/// page tables and write-protects every page of its heap, so that each
/// later first write to one (the syscall records of every flush) faulted
/// and interrupted the plugin threads' CPU to flush its TLB: ~0.3 ms of a
/// 25 ms recording of `cp -r`.
pub fn spawn(spec: &SpawnSpec) -> Result<Task> {
    let mut argv: Vec<*const libc::c_char> = spec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = spec.env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let mut cpuset: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(spec.cpu, &mut cpuset) };
    let child = Child {
        spec,
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cpuset,
    };
    // The child's stack until its execve; it needs well under a page.
    let mut stack = vec![0u64; CHILD_STACK / 8];
    // SAFETY: the stack outlives the child's use of it (it is freed after
    // the child stopped past its execve, or exited); `child` likewise.
    let pid = unsafe {
        let top = stack.as_mut_ptr().add(stack.len()).cast::<libc::c_void>();
        libc::clone(
            run_child,
            top,
            libc::CLONE_VM | libc::SIGCHLD,
            &child as *const Child as *mut libc::c_void,
        )
    };
    if pid < 0 {
        return Err(Error::internal("clone", std::io::Error::last_os_error()));
    }
    let task = wait_for_exec(Pid::from_raw(pid), spec);
    if task.is_err() {
        // It may not have reached its execve: gone before its stack is.
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::__WALL),
        );
    }
    drop(stack);
    task
}

/// Bytes of stack for the child between clone and execve.
const CHILD_STACK: usize = 64 * 1024;

/// What the child needs, prepared before clone.
struct Child<'a> {
    spec: &'a SpawnSpec,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cpuset: libc::cpu_set_t,
}

/// The child until its execve. It shares rrpipe's memory (and its thread
/// pointer, hence libc's `errno`, which only the tracer thread, blocked in
/// its wait, could read): nothing here allocates, locks or unwinds; only
/// syscalls on memory prepared before the clone.
extern "C" fn run_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Child` that `spawn` keeps alive.
    let child = unsafe { &*(arg as *const Child) };
    let spec = child.spec;
    unsafe {
        let persona = libc::personality(0xffff_ffff);
        libc::personality((persona | libc::ADDR_NO_RANDOMIZE) as libc::c_ulong);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &child.cpuset);
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
        libc::execve(spec.filename.as_ptr(), child.argv, child.envp);
        libc::_exit(127)
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
