//! The stable interface between the rrpipe host and its plugins, and the
//! plugin author's guide.
//!
//! A plugin is a `cdylib` that the host (`rrpipe record`, `rrpipe replay`)
//! loads at run time. It receives the events of the execution, in order,
//! with the same global times in record and in replay, and may ask for
//! copies of the tracee's memory at those instants. It never sees ptrace:
//! the tracee is stopped for it, and copies are made for it.
//!
//! # Events
//!
//! Every [`Event`] has a fixed-size [`EventHeader`] (global time, tid,
//! [`EventKind`], syscall number, arguments and result, signal, flags) and
//! an [`EventData`] with the rest. The kinds: `Exec` (a task replaced its
//! program; the first starts every trace), `Syscall` (completed), `Blocked`
//! (entered a syscall that may wait for another task), `Preempt` (the
//! scheduler switched tasks inside user code), `Signal` (delivered), `Rdtsc`
//! (a trapped time-stamp read), `Exit` and `Abort` (recording stopped
//! early). [`Time`] counts events across all tasks from 1: a time names the
//! same instant in record and in replay.
//!
//! # The two-phase contract
//!
//! 1. [`Selector::wants`] runs on the tracer thread while the tracee is
//!    stopped. It sees only the header and must be cheap: every stop waits
//!    for it. It answers with a [`Request`]: skip the event, take it, or
//!    take it with a copy of memory ([`MemoryRequest`]: the syscall's input
//!    buffers, given ranges, all readable memory, or a whole core image).
//!    Memory must be asked for here: once the tracee runs on, it is gone.
//! 2. [`Handler::on_event`] runs on the plugin's own worker thread with the
//!    event and its [`Snapshot`]. Slow work (disk, hashing, compression)
//!    belongs here. The channel between the phases is bounded, so a slow
//!    handler slows the tracee down rather than growing memory.
//!    [`Handler::finish`] is called once after the last event and returns
//!    the files the plugin added to the trace directory.
//!
//! A plugin without a selector of its own ([`Plugin::new`]) takes every
//! event without memory; [`Plugin::with_request`] makes another fixed
//! request of every event. Either is cheaper than a selector answering the
//! same for all: a stretch of buffered syscalls is offered to a selector
//! once per call, while a fixed request is taken once per event.
//!
//! # Snapshots
//!
//! A [`Snapshot`] holds the task's registers and the copied [`Region`]s.
//! Whole-memory requests leave out what is not program state and would
//! differ between record and replay: each thread's stack below its red zone
//! (128 bytes under the stack pointer), `[vvar]`, and rrpipe's own page.
//! Two snapshots of the same event, in record and in replay, are therefore
//! equal, which is what lets a checksum or a core dump be compared.
//!
//! # Configuration
//!
//! A plugin's table from the TOML file reaches it as text in
//! [`PluginContext::config_toml`]; [`PluginContext::config`] deserializes
//! it into your own `serde` type (use `#[serde(deny_unknown_fields)]`, so
//! that a typo is an error rather than a silently ignored key), and
//! [`PluginContext::resolve`] resolves a path from it against the TOML
//! file's directory. [`PluginContext::mode`] says whether this is a
//! recording or a replay, and [`PluginContext::trace_dir`] where the trace
//! is.
//!
//! ```toml
//! [[plugin]]
//! name = "count"                       # librrpipe_count.so, libcount.so or count.so
//! path = "target/debug/libcount.so"    # or an explicit file
//! required = false                     # true: a failure stops the session
//! [plugin.config]
//! verbose = true
//! ```
//!
//! # Errors and panics
//!
//! Return a [`PluginError`] (one line) from the constructor, `on_event` or
//! `finish`. A panic anywhere in the plugin is caught on the plugin's side
//! of the boundary and becomes an error. Either way the host names the
//! plugin on stderr and disables it; the recording or replay goes on and
//! the trace stays whole. A plugin configured `required = true` stops the
//! session cleanly instead (exit code 79), as a failed checksum must.
//!
//! # The ABI rule
//!
//! Build the plugin against the `rrpipe-plugin-api` of the rrpipe that will
//! load it. The host checks, before calling anything, that the plugin was
//! built against the same [`INTERFACE_VERSION`] and that every type
//! crossing the boundary has the same layout (abi_stable's check); a
//! plugin built against another interface is refused with a one-line error
//! telling you to rebuild. Nothing else is required: any Rust compiler
//! version, any crate versions of your own. (The layout check is skipped
//! only for a plugin whose [`library::interface_fingerprint`] is the
//! host's: built from the very same compilation of this crate, as the
//! plugins that come with rrpipe are.)
//!
//! # Example
//!
//! A plugin that counts syscalls per task and prints the counts at the end
//! (`Cargo.toml`: `crate-type = ["cdylib"]`, dependencies
//! `rrpipe-plugin-api`, `abi_stable = "0.11"`):
//!
//! ```
//! use std::collections::BTreeMap;
//! use rrpipe_plugin_api::*;
//!
//! #[derive(Default)]
//! struct Count(BTreeMap<i32, u64>);
//!
//! impl Handler for Count {
//!     fn on_event(&mut self, e: &Event, _: Option<&Snapshot>) -> Result<(), PluginError> {
//!         // Buffered syscalls arrive as one event per stretch of calls.
//!         let calls = match &e.data {
//!             EventData::Buffered(b) => b.calls().count() as u64,
//!             _ => 1,
//!         };
//!         *self.0.entry(e.header.tid).or_default() += calls;
//!         Ok(())
//!     }
//!     fn finish(&mut self) -> Result<Vec<String>, PluginError> {
//!         self.0.iter().for_each(|(tid, n)| eprintln!("{tid}: {n} syscalls"));
//!         Ok(Vec::new()) // no files added to the trace
//!     }
//! }
//!
//! fn create(_: &PluginContext) -> Result<Plugin, PluginError> {
//!     let syscalls = |h: &EventHeader| match h.kind {
//!         EventKind::Syscall => Request::EVENT,
//!         _ => Request::SKIP,
//!     };
//!     Ok(Plugin::new(Count::default()).with_selector(syscalls))
//! }
//!
//! export_plugin!("count", create);
//! ```
//!
//! `examples/syscall-count` in the repository is a complete crate of this
//! kind. A library may also provide a dump policy for the memory dumper
//! (see [`policy`]); `examples/big-write-policy` and
//! `examples/fault-policy` are two.

pub mod event;
pub mod library;
pub mod plugin;
pub mod policy;
#[cfg(feature = "trace")]
pub mod trace;

pub use abi_stable;
pub use event::*;
pub use plugin::{
    Handler, MemoryRequest, Mode, Plugin, PluginContext, PluginError, ProcessState, Range, Region,
    Request, Selector, Snapshot, INTERFACE_VERSION,
};
pub use policy::DumpPolicy;

#[cfg(test)]
mod tests {
    /// The README shows the same example as this crate's documentation,
    /// which `cargo test --doc` compiles: the README cannot drift.
    #[test]
    fn readme_example_is_the_documented_one() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("```rust\n")
            .expect("a rust block in the README")
            + 8;
        let len = readme[start..].find("```").unwrap();
        let shown = &readme[start..start + len];
        let doc: String = include_str!("lib.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//!"))
            .map(|l| format!("{}\n", l.strip_prefix(' ').unwrap_or(l)))
            .collect();
        assert!(
            doc.contains(shown),
            "the README's plugin example differs from the crate documentation's"
        );
    }
}
