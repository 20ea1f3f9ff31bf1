//! rrpipe: record an unmodified Linux x86_64 program once, replay the very
//! same execution as often as you like, and watch both through plugins.
//!
//! One module per concept: `ptrace` is a stopped task, `syscalls` the table
//! of what each syscall does, `record` and `replay` the two sessions,
//! `exec` the address space a program starts with, `remote` syscalls run on
//! the tracee's behalf, `tracedir` where traces live, `pipeline` the plugin
//! host, `cli`/`config` the front door.

pub mod anchor;
pub mod backlog;
pub mod cli;
pub mod config;
pub mod cpuid;
pub mod cpus;
pub mod deadmem;
pub mod dump;
pub mod error;
pub mod exec;
pub mod mailbox;
pub mod patch;
pub mod pipeline;
pub mod plugin_search;
pub mod ptrace;
pub mod rdtsc;
pub mod record;
pub mod record_pool;
pub mod remote;
pub mod replay;
pub mod sched;
pub mod session;
pub mod sigframe;
pub mod snapshot;
pub mod spawn;
pub mod syscalls;
pub mod tracedir;

pub use error::{Error, Result};

/// Runs a parsed command; returns rrpipe's exit status.
pub fn run(command: cli::Command) -> Result<i32> {
    match command {
        cli::Command::Record(opts) => record::run(&opts),
        cli::Command::Replay(opts) => replay::run(&opts),
        cli::Command::Dump { trace } => {
            let dir = tracedir::resolve(trace.as_deref())?;
            let stdout = std::io::stdout();
            dump::run(&dir, &mut stdout.lock())?;
            Ok(0)
        }
        cli::Command::Info(text) => {
            println!("{text}");
            Ok(0)
        }
    }
}

/// Stack size of rrpipe's own helper threads (file saver, preempter,
/// record pool), which run small loops of their own code: a thread with
/// the default 2 MiB stack cost ~20 µs more to start in a VM, on the
/// tracer's thread. Plugin workers keep the default (plugins' code is
/// anyone's).
pub const HELPER_STACK: usize = 64 * 1024;
