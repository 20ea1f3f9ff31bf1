//! An rrpipe plugin written the way a third party would write one: it counts
//! the syscalls each task made, by name, and prints one table at the end.
//!
//! It exists to show the plugin contract end to end with the least code,
//! and to make replay's faithfulness visible: replay presents the same
//! events with the same tids, so the table of a replay is byte for byte the
//! table of its recording. Its selector asks for `Syscall` headers only and
//! never for memory, so it costs the tracee next to nothing. Syscalls the
//! preload library buffered come as one `Buffered` event per stretch,
//! which the host offers to the selector call by call (as `Syscall`
//! headers): the handler counts each call in it.
//!
//! Build it with `cargo build --manifest-path examples/Cargo.toml` and load
//! it by path (relative to the TOML file), in record or in replay:
//!
//! ```toml
//! [[plugin]]
//! name = "syscall-count"
//! path = "examples/target/debug/librrpipe_syscall_count.so"
//! [plugin.config]
//! output = "counts.txt"   # relative to this TOML file; left out: stderr
//! ```
//!
//! The table: a header line, one `tid syscall count` row per task and
//! syscall name (sorted by tid, then name), then the total. Syscalls the
//! `syscalls` crate cannot name show as `syscall_<number>`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use rrpipe_plugin_api::{
    Event, EventData, EventHeader, EventKind, Handler, Plugin, PluginContext, PluginError, Request, Snapshot,
};
use serde::Deserialize;
use syscalls::Sysno;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Where the table goes, relative to the TOML file; stderr when unset.
    output: Option<PathBuf>,
}

/// Where the table is written, opened when the plugin is created so that an
/// unwritable path stops the session before the program runs, not after.
enum Sink {
    File { path: PathBuf, file: File },
    Stderr,
}

struct SyscallCount {
    counts: BTreeMap<(i32, &'static str), u64>,
    /// Numbers the `syscalls` crate does not know, kept apart so that the
    /// common case borrows a static name instead of allocating.
    unknown: BTreeMap<(i32, i64), u64>,
    sink: Sink,
}

impl SyscallCount {
    fn count(&mut self, tid: i32, nr: i64) {
        match usize::try_from(nr).ok().and_then(Sysno::new) {
            Some(sysno) => *self.counts.entry((tid, sysno.name())).or_default() += 1,
            None => *self.unknown.entry((tid, nr)).or_default() += 1,
        }
    }

    fn table(&self) -> String {
        let mut rows: Vec<(i32, String, u64)> = self
            .counts
            .iter()
            .map(|(&(tid, name), &n)| (tid, name.to_string(), n))
            .chain(
                self.unknown
                    .iter()
                    .map(|(&(tid, nr), &n)| (tid, format!("syscall_{nr}"), n)),
            )
            .collect();
        rows.sort();
        let mut out = format!("{:>8}  {:<24}  {:>8}\n", "tid", "syscall", "count");
        let mut total = 0;
        for (tid, name, n) in rows {
            total += n;
            out.push_str(&format!("{tid:>8}  {name:<24}  {n:>8}\n"));
        }
        out.push_str(&format!("{:>8}  {:<24}  {total:>8}\n", "total", ""));
        out
    }
}

impl Handler for SyscallCount {
    fn on_event(&mut self, event: &Event, _: Option<&Snapshot>) -> Result<(), PluginError> {
        let h = &event.header;
        match &event.data {
            EventData::Syscall(_) => self.count(h.tid, h.syscall),
            // Syscall buffering: the calls a thread made without a stop,
            // reported together.
            EventData::Buffered(info) => {
                for call in info.calls() {
                    let call = call.map_err(|e| PluginError::new(e.to_string()))?;
                    self.count(h.tid, call.nr);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<Vec<String>, PluginError> {
        let table = self.table();
        match &mut self.sink {
            Sink::File { path, file } => file
                .write_all(table.as_bytes())
                .and_then(|()| file.flush())
                .map_err(|e| PluginError::new(format!("cannot write {}: {e}", path.display())))?,
            Sink::Stderr => {
                // One write, so that the table is not interleaved with
                // the host's own messages.
                let _ = std::io::stderr().lock().write_all(table.as_bytes());
            }
        }
        // The table is not part of the trace: nothing to add to its manifest.
        Ok(Vec::new())
    }
}

fn wants(header: &EventHeader) -> Request {
    if header.kind == EventKind::Syscall {
        Request::EVENT
    } else {
        Request::SKIP
    }
}

fn create(ctx: &PluginContext) -> Result<Plugin, PluginError> {
    let config: Config = ctx.config()?;
    let sink = match config.output {
        Some(output) => {
            let path = ctx.resolve(output);
            let file = File::create(&path)
                .map_err(|e| PluginError::new(format!("cannot create {}: {e}", path.display())))?;
            Sink::File { path, file }
        }
        None => Sink::Stderr,
    };
    let counter = SyscallCount {
        counts: BTreeMap::new(),
        unknown: BTreeMap::new(),
        sink,
    };
    Ok(Plugin::new(counter).with_selector(wants))
}

rrpipe_plugin_api::export_plugin!("syscall-count", create);

#[cfg(test)]
mod tests {
    use super::*;

    fn header(tid: i32, syscall: i64) -> EventHeader {
        EventHeader {
            time: 1,
            tid,
            kind: EventKind::Syscall,
            syscall,
            args: [0; 6],
            result: 0,
            signal: 0,
            flags: 0,
        }
    }

    #[test]
    fn table_is_sorted_by_tid_then_name_and_totals() {
        let mut c = SyscallCount {
            counts: BTreeMap::new(),
            unknown: BTreeMap::new(),
            sink: Sink::Stderr,
        };
        for (tid, nr) in [(20, 1), (10, 231), (10, 1), (20, 1), (10, 9999)] {
            let ev = Event {
                header: header(tid, nr),
                data: rrpipe_plugin_api::EventData::Exit(rrpipe_plugin_api::ExitInfo {
                    code: 0,
                    signal: 0,
                }),
            };
            c.on_event(&ev, None).unwrap();
        }
        let rows: Vec<Vec<String>> = c
            .table()
            .lines()
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect();
        let expect = [
            vec!["tid", "syscall", "count"],
            vec!["10", "exit_group", "1"],
            vec!["10", "syscall_9999", "1"],
            vec!["10", "write", "1"],
            vec!["20", "write", "2"],
            vec!["total", "5"],
        ];
        assert_eq!(rows, expect);
    }

    #[test]
    fn selector_takes_syscalls_only_without_memory() {
        assert_eq!(wants(&header(1, 1)), Request::EVENT);
        let mut h = header(1, -1);
        h.kind = EventKind::Blocked;
        assert_eq!(wants(&h), Request::SKIP);
    }
}
