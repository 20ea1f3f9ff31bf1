//! rrpipe's errors: one type, one line each, one exit code per class.
//!
//! A user scripting rrpipe tells failures apart by exit code; the codes are
//! chosen above the range programs commonly use for themselves (but rrpipe
//! also passes the program's own exit status through, so a program may
//! collide with them; the message on stderr is the authority).

use std::path::PathBuf;

/// Exit codes, documented in the README.
pub mod exit_code {
    /// Bad command line.
    pub const USAGE: i32 = 64;
    /// The trace is corrupt, truncated, or from another format version.
    pub const BAD_TRACE: i32 = 65;
    /// The program or the trace does not exist.
    pub const NOT_FOUND: i32 = 66;
    /// Internal failure (ptrace, I/O).
    pub const INTERNAL: i32 = 70;
    /// The configuration file is malformed or has unknown keys.
    pub const CONFIG: i32 = 78;
    /// A plugin could not be loaded or a required plugin failed.
    pub const PLUGIN: i32 = 79;
    /// Replay diverged from the recording.
    pub const DIVERGENCE: i32 = 80;
    /// The program made a syscall (or ioctl, prctl...) rrpipe cannot record.
    pub const UNSUPPORTED: i32 = 81;
    /// Recording was interrupted (SIGINT/SIGTERM to rrpipe).
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Config(String),
    #[error("program not found: {0}")]
    ProgramNotFound(String),
    #[error("no trace at {}", .0.display())]
    TraceNotFound(PathBuf),
    #[error("{0}")]
    BadTrace(String),
    #[error("plugin {name}: {detail}")]
    Plugin { name: String, detail: String },
    #[error("replay diverged at event {time} (tid {tid}): {detail}")]
    Divergence { time: u64, tid: i32, detail: String },
    #[error("unsupported {what} at event {time} (tid {tid}); recording stopped, the trace up to it replays")]
    Unsupported { what: String, time: u64, tid: i32 },
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => exit_code::USAGE,
            Error::Config(_) => exit_code::CONFIG,
            Error::ProgramNotFound(_) | Error::TraceNotFound(_) => exit_code::NOT_FOUND,
            Error::BadTrace(_) => exit_code::BAD_TRACE,
            Error::Plugin { .. } => exit_code::PLUGIN,
            Error::Divergence { .. } => exit_code::DIVERGENCE,
            Error::Unsupported { .. } => exit_code::UNSUPPORTED,
            Error::Internal(_) => exit_code::INTERNAL,
        }
    }

    /// An internal error with context.
    pub fn internal(context: impl std::fmt::Display, e: impl std::fmt::Display) -> Self {
        Error::Internal(format!("{context}: {e}"))
    }
}

impl From<rrpipe_plugin_api::trace::TraceError> for Error {
    fn from(e: rrpipe_plugin_api::trace::TraceError) -> Self {
        use rrpipe_plugin_api::trace::TraceError;
        match &e {
            TraceError::Io(file, io) if io.kind() == std::io::ErrorKind::NotFound => {
                Error::TraceNotFound(PathBuf::from(file))
            }
            _ => Error::BadTrace(e.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
