//! A dump policy for the memory-dump plugin: write a core file when a task
//! receives a hardware fault signal.
//!
//! Why: a fault is where a crash becomes visible, and a core file taken at
//! the faulting instruction (before a handler or the default action runs)
//! is what a debugger needs. Faults recur by themselves at the same
//! instruction in replay, at the same global time, so replaying with this
//! policy dumps the same instant again, as often as wanted, into another
//! directory.
//!
//! By default the fault signals are SIGSEGV, SIGBUS, SIGFPE and SIGILL,
//! those the CPU raises for the instruction that just ran. SIGTRAP may be
//! added (a breakpoint or single-step trap); other signals are refused,
//! since they are not faults and this policy would mislead by naming them
//! so. The cause in the dump's name is `fault-<SIGNAME>`.
//!
//! ```toml
//! [[plugin]]
//! name = "memory-dump"
//! [[plugin.config.policy]]
//! path = "examples/target/debug/libfault_policy.so"   # relative to this TOML file
//! config = { signals = ["SIGSEGV", "SIGBUS"] }         # optional
//! ```

use rrpipe_plugin_api::{DumpPolicy, EventHeader, EventKind, PluginContext, PluginError};
use serde::Deserialize;

/// The signals this policy knows, with their x86_64 numbers; the first four
/// are the default set.
const FAULTS: [(&str, i32); 5] = [
    ("SIGSEGV", 11),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGILL", 4),
    ("SIGTRAP", 5),
];
const DEFAULT_COUNT: usize = 4;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Signal names (`SIGSEGV` or `SEGV`).
    signals: Option<Vec<String>>,
}

struct Fault {
    /// (name, number) of the signals that dump.
    signals: Vec<(&'static str, i32)>,
}

impl DumpPolicy for Fault {
    fn dump_at(&mut self, h: &EventHeader) -> Option<String> {
        if h.kind != EventKind::Signal {
            return None;
        }
        self.signals
            .iter()
            .find(|(_, n)| *n == h.signal)
            .map(|(name, _)| format!("fault-{name}"))
    }
}

fn lookup(name: &str) -> Result<(&'static str, i32), PluginError> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    FAULTS
        .iter()
        .find(|(n, _)| *n == full)
        .copied()
        .ok_or_else(|| {
            let known: Vec<&str> = FAULTS.iter().map(|(n, _)| *n).collect();
            PluginError::new(format!(
                "bad configuration: {name:?} is not a fault signal (one of {})",
                known.join(", ")
            ))
        })
}

fn create(ctx: &PluginContext) -> Result<Fault, PluginError> {
    let config: Config = ctx.config()?;
    let signals = match config.signals {
        None => FAULTS[..DEFAULT_COUNT].to_vec(),
        Some(names) if names.is_empty() => {
            return Err(PluginError::new(
                "bad configuration: `signals` is empty, so nothing would ever be dumped",
            ))
        }
        Some(names) => names
            .iter()
            .map(|n| lookup(n))
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(Fault { signals })
}

rrpipe_plugin_api::export_dump_policy!("fault-policy", create);

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(kind: EventKind, signo: i32) -> EventHeader {
        EventHeader {
            time: 3,
            tid: 100,
            kind,
            syscall: -1,
            args: [0; 6],
            result: 0,
            signal: signo,
            flags: 0,
        }
    }

    #[test]
    fn default_set_is_the_hardware_faults() {
        let mut p = Fault {
            signals: FAULTS[..DEFAULT_COUNT].to_vec(),
        };
        let sig = |n| signal(EventKind::Signal, n);
        assert_eq!(p.dump_at(&sig(11)).as_deref(), Some("fault-SIGSEGV"));
        assert_eq!(p.dump_at(&sig(7)).as_deref(), Some("fault-SIGBUS"));
        assert_eq!(p.dump_at(&sig(8)).as_deref(), Some("fault-SIGFPE"));
        assert_eq!(p.dump_at(&sig(4)).as_deref(), Some("fault-SIGILL"));
        assert_eq!(p.dump_at(&sig(5)), None, "SIGTRAP only when asked for");
        assert_eq!(p.dump_at(&sig(15)), None);
        // The exit that follows a fatal fault carries the signal too.
        assert_eq!(p.dump_at(&signal(EventKind::Exit, 11)), None);
    }

    #[test]
    fn names_are_looked_up_with_or_without_sig() {
        assert_eq!(lookup("segv").unwrap(), ("SIGSEGV", 11));
        assert_eq!(lookup("SIGTRAP").unwrap(), ("SIGTRAP", 5));
        assert!(lookup("SIGTERM")
            .unwrap_err()
            .0
            .contains("not a fault signal"));
    }
}
