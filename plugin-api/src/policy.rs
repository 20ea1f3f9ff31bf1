//! Dump policies: when the memory dumper (`plugins/memory-dump`) dumps.
//!
//! A policy looks at each event's [`EventHeader`] on the tracer thread,
//! while the tracee is stopped, and names a cause when the dumper should
//! write a core file of the task right then. It runs in phase 1 of the
//! plugin contract (see [`crate::plugin`]), so it must be cheap: the
//! memory is copied only for the events it picks.
//!
//! The dumper's own `dump_on` and `dump_at` options are policies; others
//! come from libraries that export one with [`export_dump_policy!`](crate::export_dump_policy)
//! (or, next to a plugin, with `export_plugin!(name, ctor, dump_policy = ctor)`),
//! named in the dumper's configuration:
//!
//! ```toml
//! [[plugin]]
//! name = "memory-dump"
//! [[plugin.config.policy]]
//! path = "libbig_write_policy.so"     # relative to this TOML file
//! config = { fd = 3, bytes = 1024 }
//! ```
//!
//! A policy sees the same events with the same global times in record and
//! in replay, so a deterministic policy dumps at the same instants in both.

// The sabi_trait macro defines impls inside generated items.
#![allow(non_local_definitions)]

use std::path::Path;

use abi_stable::sabi_trait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RBox, ROption, RResult, RString};

use crate::event::EventHeader;
use crate::library;
use crate::plugin::{guarded, PluginContext, PluginError};

/// Decides at which events a core file is written.
pub trait DumpPolicy: Send + 'static {
    /// The cause of a dump at this event, or `None`. The cause becomes part
    /// of the dump's file name: keep it short (letters, digits, `-`, `_`;
    /// anything else is replaced).
    fn dump_at(&mut self, header: &EventHeader) -> Option<String>;
}

impl<F: FnMut(&EventHeader) -> Option<String> + Send + 'static> DumpPolicy for F {
    fn dump_at(&mut self, header: &EventHeader) -> Option<String> {
        self(header)
    }
}

/// The policy as the dumper calls it across the library boundary.
#[sabi_trait]
pub trait FfiDumpPolicy: Send {
    #[sabi(last_prefix_field)]
    fn dump_at(&mut self, header: &EventHeader) -> RResult<ROption<RString>, RString>;
}

struct PolicyAdapter(Box<dyn DumpPolicy>);

impl FfiDumpPolicy for PolicyAdapter {
    fn dump_at(&mut self, header: &EventHeader) -> RResult<ROption<RString>, RString> {
        match guarded(|| self.0.dump_at(header)) {
            Ok(cause) => RResult::ROk(cause.map(RString::from).into()),
            Err(m) => RResult::RErr(m),
        }
    }
}

/// A policy as it crosses the boundary.
pub type FfiPolicyBox = FfiDumpPolicy_TO<'static, RBox<()>>;

/// Wraps a policy for the boundary.
#[doc(hidden)]
pub fn into_ffi(policy: impl DumpPolicy) -> FfiPolicyBox {
    FfiDumpPolicy_TO::from_value(PolicyAdapter(Box::new(policy)), TD_Opaque)
}

/// Runs a policy constructor on the library's side of the boundary, with
/// panics caught. Used by the export macros.
#[doc(hidden)]
pub fn create_with<P: DumpPolicy>(
    ctx: &PluginContext,
    ctor: fn(&PluginContext) -> Result<P, PluginError>,
) -> RResult<FfiPolicyBox, RString> {
    match guarded(|| ctor(ctx)) {
        Ok(Ok(p)) => RResult::ROk(into_ffi(p)),
        Ok(Err(e)) => RResult::RErr(RString::from(e.0)),
        Err(m) => RResult::RErr(m),
    }
}

/// A policy loaded from a library, callable as a [`DumpPolicy`] whose
/// failures (errors and panics on its side) come back as errors.
pub struct LoadedPolicy {
    /// The library's own name, for messages.
    pub name: String,
    inner: FfiPolicyBox,
}

impl LoadedPolicy {
    /// Asks the policy about one event.
    pub fn dump_at(&mut self, header: &EventHeader) -> Result<Option<String>, PluginError> {
        match self.inner.dump_at(header) {
            RResult::ROk(cause) => Ok(cause.into_option().map(String::from)),
            RResult::RErr(e) => Err(PluginError(format!("policy {}: {e}", self.name))),
        }
    }
}

/// Loads the dump policy exported by the library at `path` and creates it
/// with `ctx` (whose `config_toml` is the policy's own table). Refuses a
/// library built against another interface, or one that exports no policy.
pub fn load(path: &Path, ctx: &PluginContext) -> Result<LoadedPolicy, PluginError> {
    let module = library::load(path).map_err(PluginError)?;
    let name = module.name().to_string();
    let create = match module.create_policy() {
        Some(create) => create,
        None => {
            return Err(PluginError(format!(
                "{} (library {name}) exports no dump policy \
                 (policies export one with rrpipe_plugin_api::export_dump_policy!)",
                path.display()
            )))
        }
    };
    match create(ctx) {
        RResult::ROk(inner) => Ok(LoadedPolicy { name, inner }),
        RResult::RErr(e) => Err(PluginError(format!("policy {name}: {e}"))),
    }
}

/// An event named the seed's way in `--dump_on`: a syscall by number or
/// name (`0`, `read`), a signal by `-N` (`-11`) or by name (`SIGSEGV`).
/// Parsed here so that the command line (which checks it) and the memory
/// dumper (which acts on it) read it identically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A completed syscall with this x86_64 number.
    Syscall(i64),
    /// The delivery of this signal.
    Signal(i32),
}

impl Trigger {
    pub fn parse(s: &str) -> Result<Trigger, String> {
        let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if let Some(sig) = s.strip_prefix('-') {
            return match sig.parse::<i32>() {
                Ok(n @ 1..=64) if all_digits(sig) => Ok(Trigger::Signal(n)),
                _ => Err("expected a signal number from 1 to 64 after '-'".into()),
            };
        }
        if all_digits(s) {
            return match s.parse::<usize>().ok().and_then(syscalls::Sysno::new) {
                Some(nr) => Ok(Trigger::Syscall(nr.id() as i64)),
                None => Err("no x86_64 syscall has this number".into()),
            };
        }
        if s.starts_with("SIG") {
            return signal_number(s)
                .map(Trigger::Signal)
                .ok_or_else(|| "unknown signal name".into());
        }
        match s.parse::<syscalls::Sysno>() {
            Ok(nr) => Ok(Trigger::Syscall(nr.id() as i64)),
            Err(()) => Err(
                "expected a syscall number or name, -SIGNUM, or a signal name such as SIGCHLD"
                    .into(),
            ),
        }
    }

    /// Whether the event is this trigger's.
    pub fn matches(self, header: &EventHeader) -> bool {
        use crate::event::EventKind;
        match self {
            Trigger::Syscall(nr) => header.kind == EventKind::Syscall && header.syscall == nr,
            Trigger::Signal(sig) => header.kind == EventKind::Signal && header.signal == sig,
        }
    }

    /// A cause for dump file names: the syscall's or the signal's name.
    pub fn cause(self) -> String {
        match self {
            Trigger::Syscall(nr) => syscalls::Sysno::new(nr as usize)
                .map(|s| s.name().to_string())
                .unwrap_or_else(|| format!("syscall{nr}")),
            Trigger::Signal(sig) => signal_name(sig),
        }
    }
}

/// The x86_64 Linux signals by name, numbered from 1.
const SIGNALS: [&str; 31] = [
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// `SIGSEGV` → 11 (also `SIGIOT`, `SIGPOLL`, `SIGRTMIN+N`).
pub fn signal_number(name: &str) -> Option<i32> {
    match name {
        "SIGIOT" => return Some(6),
        "SIGPOLL" => return Some(29),
        _ => {}
    }
    if let Some(n) = name.strip_prefix("SIGRTMIN+") {
        return n.parse::<i32>().ok().map(|n| 34 + n).filter(|&s| s <= 64);
    }
    SIGNALS
        .iter()
        .position(|&s| s == name)
        .map(|i| i as i32 + 1)
}

/// 11 → `SIGSEGV`; real-time signals as `SIGRTMIN+N`.
pub fn signal_name(sig: i32) -> String {
    match sig {
        1..=31 => SIGNALS[sig as usize - 1].to_string(),
        34..=64 => format!("SIGRTMIN+{}", sig - 34),
        _ => format!("SIG{sig}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_in_every_spelling() {
        assert_eq!(Trigger::parse("0"), Ok(Trigger::Syscall(0)));
        assert_eq!(Trigger::parse("read"), Ok(Trigger::Syscall(0)));
        assert_eq!(Trigger::parse("79"), Ok(Trigger::Syscall(79)));
        assert_eq!(Trigger::parse("-11"), Ok(Trigger::Signal(11)));
        assert_eq!(Trigger::parse("SIGCHLD"), Ok(Trigger::Signal(17)));
        assert_eq!(Trigger::parse("SIGRTMIN+2"), Ok(Trigger::Signal(36)));
        for bad in ["-0", "-65", "-x", "99999", "SIGNOPE", "frobnicate", ""] {
            assert!(Trigger::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Trigger::Signal(11).cause(), "SIGSEGV");
        assert_eq!(Trigger::Syscall(0).cause(), "read");
        for sig in 1..=64 {
            if sig != 32 && sig != 33 {
                assert_eq!(signal_number(&signal_name(sig)), Some(sig), "{sig}");
            }
        }
    }
}
