//! rrpipe plugin `output-redirect`: during replay, prints what the program
//! wrote to its stdout and stderr when it was recorded.
//!
//! Replay does not execute the program's writes (their results come from the
//! trace), so without this plugin a replay is silent. For each successful
//! `write`, `pwrite64`, `writev`, `pwritev` or `pwritev2` to fd 1 or 2, it
//! asks for the syscall's input buffers, and writes the first `result` bytes
//! of them to rrpipe's own fd 1 or 2, flushing after each event so that the
//! two streams interleave as they did.
//!
//! While recording it asks for nothing: the program really writes.
//!
//! Configuration (both optional, default `true`):
//!
//! ```toml
//! [[plugin]]
//! name = "output-redirect"
//! stdout = true   # false: do not print what the program wrote to stdout
//! stderr = false  # false: do not print what the program wrote to stderr
//! ```

use std::io::Write;

use rrpipe_plugin_api::{
    flags, Event, EventHeader, EventKind, Handler, MemoryRequest, Mode, Plugin, PluginContext,
    PluginError, Request, Snapshot,
};
use serde::Deserialize;

rrpipe_plugin_api::export_plugin!("output-redirect", create);

const SYS_WRITE: i64 = 1;
const SYS_PWRITE64: i64 = 18;
const SYS_WRITEV: i64 = 20;
const SYS_PWRITEV: i64 = 296;
const SYS_PWRITEV2: i64 = 328;

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// Print the program's stdout.
    stdout: bool,
    /// Print the program's stderr.
    stderr: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            stdout: true,
            stderr: true,
        }
    }
}

/// Whether `header` is a successful write to a stream this plugin prints.
fn selects(config: &Config, header: &EventHeader) -> bool {
    header.kind == EventKind::Syscall
        && matches!(
            header.syscall,
            SYS_WRITE | SYS_PWRITE64 | SYS_WRITEV | SYS_PWRITEV | SYS_PWRITEV2
        )
        && header.result > 0
        && ((header.flags & flags::STDOUT != 0 && config.stdout)
            || (header.flags & flags::STDERR != 0 && config.stderr))
}

struct Printer;

impl Handler for Printer {
    fn on_event(&mut self, event: &Event, snapshot: Option<&Snapshot>) -> Result<(), PluginError> {
        let snapshot = snapshot.ok_or_else(|| {
            PluginError::new(format!(
                "event {}: no memory came with the write",
                event.header.time
            ))
        })?;
        let mut left = usize::try_from(event.header.result).unwrap_or(0);
        let mut bytes = Vec::with_capacity(left);
        for region in snapshot.regions.iter() {
            if left == 0 {
                break;
            }
            let take = left.min(region.data.len());
            bytes.extend_from_slice(&region.data[..take]);
            left -= take;
        }
        let to_stderr = event.header.flags & flags::STDERR != 0;
        let written = if to_stderr {
            let mut err = std::io::stderr().lock();
            err.write_all(&bytes).and_then(|()| err.flush())
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes).and_then(|()| out.flush())
        };
        written.map_err(|e| {
            let stream = if to_stderr { "stderr" } else { "stdout" };
            PluginError::new(format!("cannot write to {stream}: {e}"))
        })
    }
}

fn create(ctx: &PluginContext) -> Result<Plugin, PluginError> {
    let config: Config = ctx.config()?;
    let mode = ctx.mode;
    Ok(
        Plugin::new(Printer).with_selector(move |header: &EventHeader| {
            if mode == Mode::Replay && selects(&config, header) {
                Request::with_memory(MemoryRequest::SyscallInputs)
            } else {
                Request::SKIP
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(syscall: i64, fd: u64, result: i64) -> EventHeader {
        EventHeader {
            time: 1,
            tid: 1,
            kind: EventKind::Syscall,
            syscall,
            args: [fd, 0x1000, 5, 0, 0, 0],
            result,
            signal: 0,
            flags: match fd {
                1 => flags::STDOUT,
                2 => flags::STDERR,
                _ => 0,
            },
        }
    }

    #[test]
    fn selects_successful_writes_to_stdout_and_stderr() {
        let all = Config::default();
        for nr in [
            SYS_WRITE,
            SYS_PWRITE64,
            SYS_WRITEV,
            SYS_PWRITEV,
            SYS_PWRITEV2,
        ] {
            assert!(selects(&all, &write(nr, 1, 5)));
            assert!(selects(&all, &write(nr, 2, 5)));
            assert!(!selects(&all, &write(nr, 3, 5)));
            assert!(!selects(&all, &write(nr, 1, 0)));
            assert!(!selects(&all, &write(nr, 1, -9)));
        }
        assert!(!selects(&all, &write(0, 1, 5)));
        let mut signal = write(SYS_WRITE, 1, 5);
        signal.kind = EventKind::Signal;
        assert!(!selects(&all, &signal));
        let quiet = Config {
            stdout: false,
            stderr: true,
        };
        assert!(!selects(&quiet, &write(SYS_WRITE, 1, 5)));
        assert!(selects(&quiet, &write(SYS_WRITE, 2, 5)));
    }

    #[test]
    fn configuration_keys() {
        let parse = |text: &str| toml_config(text).map(|c| (c.stdout, c.stderr));
        assert_eq!(parse("").unwrap(), (true, true));
        assert_eq!(parse("stderr = false").unwrap(), (true, false));
        assert!(parse("stdout = 1").is_err());
        assert!(parse("colour = true").is_err());
    }

    fn toml_config(text: &str) -> Result<Config, PluginError> {
        PluginContext {
            name: "output-redirect".into(),
            mode: Mode::Replay,
            trace_dir: "/tmp".into(),
            config_toml: text.into(),
            config_dir: "".into(),
        }
        .config()
    }
}
