//! rrpipe: record an unmodified Linux x86_64 program once, replay the very
//! same execution as often as you like, and watch both through plugins.
//!
//! One module per concept: `ptrace` is a stopped task, `syscalls` the table
//! of what each syscall does, `record` and `replay` the two sessions,
//! `exec` the address space a program starts with, `tracedir` where traces
//! live, `pipeline` the plugin host, `cli`/`config` the front door.

pub mod cli;
pub mod config;
pub mod dump;
pub mod error;
pub mod pipeline;
pub mod syscalls;

pub use error::{Error, Result};
