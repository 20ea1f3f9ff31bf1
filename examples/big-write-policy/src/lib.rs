//! A dump policy for the memory-dump plugin: write a core file when a task
//! writes more than `bytes` bytes to file descriptor `fd` in one syscall.
//!
//! Why: an oversized write is often the first visible sign of a corrupted
//! length or buffer, and the core file taken at that very syscall shows the
//! program's state before anything else happens. Because a policy sees the
//! same events at the same global times in record and in replay, the replay
//! dumps at the same instant as the recording did.
//!
//! The syscalls watched are those whose first argument is the descriptor
//! and whose result is the number of bytes written: `write`, `pwrite64`,
//! `writev`, `pwritev` and `pwritev2`. A dump fires when the result (bytes
//! actually written, not asked for) is greater than `bytes`; the cause in
//! the dump's name is `big-write`.
//!
//! Configuration (both keys optional; `fd` defaults to 1, stdout, and
//! `bytes` to 1024):
//!
//! ```toml
//! [[plugin]]
//! name = "memory-dump"
//! [[plugin.config.policy]]
//! path = "examples/target/debug/libbig_write_policy.so"   # relative to this TOML file
//! config = { fd = 3, bytes = 1024 }
//! ```

use rrpipe_plugin_api::{DumpPolicy, EventHeader, EventKind, PluginContext, PluginError};
use serde::Deserialize;

/// x86_64 numbers of the syscalls that write a count of bytes to the
/// descriptor in their first argument.
const WRITES: [i64; 5] = [
    1,   // write
    18,  // pwrite64
    20,  // writev
    296, // pwritev
    328, // pwritev2
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    fd: i32,
    bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config { fd: 1, bytes: 1024 }
    }
}

struct BigWrite(Config);

impl DumpPolicy for BigWrite {
    fn dump_at(&mut self, h: &EventHeader) -> Option<String> {
        let fires = h.kind == EventKind::Syscall
            && WRITES.contains(&h.syscall)
            // The kernel reads the descriptor as an int.
            && h.args[0] as u32 as i32 == self.0.fd
            && h.result > 0
            && h.result as u64 > self.0.bytes;
        fires.then(|| "big-write".to_string())
    }
}

fn create(ctx: &PluginContext) -> Result<BigWrite, PluginError> {
    let config: Config = ctx.config()?;
    if config.fd < 0 {
        return Err(PluginError::new(format!(
            "bad configuration: fd must be 0 or more, not {}",
            config.fd
        )));
    }
    Ok(BigWrite(config))
}

rrpipe_plugin_api::export_dump_policy!("big-write-policy", create);

#[cfg(test)]
mod tests {
    use super::*;

    fn write(nr: i64, fd: u64, result: i64) -> EventHeader {
        EventHeader {
            time: 7,
            tid: 100,
            kind: EventKind::Syscall,
            syscall: nr,
            args: [fd, 0, 0, 0, 0, 0],
            result,
            signal: 0,
            flags: 0,
        }
    }

    #[test]
    fn fires_only_above_the_threshold_on_the_chosen_fd() {
        let mut p = BigWrite(Config { fd: 3, bytes: 1024 });
        assert_eq!(p.dump_at(&write(1, 3, 2000)).as_deref(), Some("big-write"));
        assert_eq!(p.dump_at(&write(20, 3, 1025)).as_deref(), Some("big-write"));
        assert_eq!(p.dump_at(&write(1, 3, 1024)), None);
        assert_eq!(p.dump_at(&write(1, 4, 2000)), None);
        assert_eq!(p.dump_at(&write(1, 3, -9)), None);
        assert_eq!(p.dump_at(&write(0, 3, 2000)), None, "read is not a write");
        let mut blocked = write(1, 3, 2000);
        blocked.kind = EventKind::Blocked;
        assert_eq!(p.dump_at(&blocked), None);
    }
}
