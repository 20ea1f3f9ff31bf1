//! The plugin host: loads the configured plugins and feeds them events.
//!
//! Exactly one thread talks ptrace, and it must never do slow work. So each
//! plugin is split in two (see `rrpipe_plugin_api::plugin`):
//!
//! 1. its *selector* runs here, on the tracer thread, while the tracee is
//!    stopped: it looks at the [`EventHeader`] and says whether it wants the
//!    event and which tracee memory to copy with it. Each distinct memory
//!    request is copied once per event ([`SnapshotSource`]) and shared
//!    between the plugins that asked for it.
//! 2. its *handler* runs on the plugin's own worker thread, fed by a bounded
//!    channel ([`CHANNEL_CAPACITY`] events, and at most
//!    [`backlog::LIMIT`](crate::backlog::LIMIT) bytes of snapshots): a slow
//!    plugin slows the tracee down (back-pressure) instead of growing
//!    memory without bound.
//!
//! A plugin that fails (an error, or a panic, which the plugin-side adapter
//! turns into an error) is named on stderr once and receives nothing more;
//! when it was configured `required`, [`Pipeline::dispatch`] and
//! [`Pipeline::finish`] return [`Error::Plugin`] instead, and the caller
//! stops cleanly. Nothing a plugin does panics the host.
//!
//! Libraries are loaded and checked by `rrpipe_plugin_api::library`, which
//! the memory dumper shares to load dump policies.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use abi_stable::std_types::{RBox, RResult};
use rrpipe_plugin_api::library::{self, one_line};
use rrpipe_plugin_api::plugin::{CreatePlugin, FfiHandler_TO, FfiPlugin, FfiSelector_TO};
use rrpipe_plugin_api::trace::ManifestEntry;
use rrpipe_plugin_api::{
    flags, Event, EventData, EventHeader, EventKind, MemoryRequest, Mode, PluginContext, Request,
    Snapshot,
};

use crate::backlog::Backlog;
use crate::mailbox::{self, Inbox, Mailbox};
use crate::plugin_search::{find_library, search_dirs};
use crate::record_pool::RecordPool;
use crate::{Error, Result};

pub use crate::config::PluginSpec;

/// Batches of events queued to one plugin before the tracer waits for it.
pub const CHANNEL_CAPACITY: usize = 64;

/// Events sent to a worker at once. Waking a worker thread for every event
/// costs a context switch (and, across CPUs, an interrupt) per syscall:
/// about a fifth of the recording time of a syscall-heavy program. With
/// syscall buffering, a thread's stop brings up to a few thousand events at
/// once: 32 per batch still cost a wake-up every 2 µs of buffered calls.
/// A batch also goes once it holds [`BATCH_RECORD_BYTES`] of buffered
/// syscall records.
pub const BATCH: usize = 256;

/// Bytes of `Buffered` records (a full syscall buffer's) after which a
/// batch goes without waiting for [`BATCH`] events. Held back until then,
/// the trace writer's work on a syscall-heavy program piled up until its
/// end, where the user waits for it, and the records' memory could not be
/// reused ([`Pipeline::spare_records`]); sent with every `Buffered` event
/// (most are a few calls before a traced one), waking the worker (an
/// interrupt to another CPU, ~20 µs in a VM) cost more than the batching
/// saved. With 1 MiB, what was left for the end of `cp -r` cost 0.25 ms
/// more than with this.
pub const BATCH_RECORD_BYTES: usize = 1 << 18;

/// Builds the memory a plugin asked for; implemented by the tracer for the
/// stopped tracee.
///
/// For [`MemoryRequest::SyscallInputs`] the regions are the data buffers the
/// syscall reads, in the order it reads them (for `writev`, each `iov_base`
/// buffer of `iov_len` bytes, not the iovec array). Plugins such as
/// output-redirect concatenate them.
pub trait SnapshotSource {
    fn snapshot(&self, header: &EventHeader, request: &MemoryRequest) -> std::io::Result<Snapshot>;
}

/// An event, its snapshot, and the snapshot's size reserved in the
/// plugin's backlog.
type Queued = (Arc<Event>, Option<Arc<Snapshot>>, usize);

/// What travels down a plugin's channel.
enum Msg {
    /// Events, in order.
    Events(Vec<Queued>),
    /// No more events: call `finish` and return its result.
    Finish,
}

/// What a worker thread ends with: the plugin's `finish` result, or `None`
/// when it stopped early (failure recorded in its `failure` cell, or the
/// host dropped its channel).
type WorkerOutcome = Option<std::result::Result<Vec<String>, String>>;

/// One loaded plugin, as the tracer thread sees it.
struct Slot {
    name: String,
    required: bool,
    selector: FfiSelector_TO<'static, RBox<()>>,
    /// The plugin's request for every event, when it declared one: the
    /// selector is then not asked.
    every: Option<Request>,
    /// `None` once the plugin is disabled or finished.
    tx: Option<Mailbox<Msg>>,
    worker: Option<JoinHandle<WorkerOutcome>>,
    /// Set once, by the worker (or the host), with the failure's text.
    failure: Arc<OnceLock<String>>,
    /// The failure was handled (printed, or turned into the fatal error).
    reported: bool,
    backlog: Arc<Backlog>,
    /// Events not yet sent (see [`BATCH`]).
    batch: Vec<Queued>,
    /// Bytes of `Buffered` records in `batch`.
    batch_records: usize,
}

impl Slot {
    fn active(&self) -> bool {
        self.tx.is_some()
    }

    /// Sends the batch, waking the worker only if `urgent` (or asleep, see
    /// [`mailbox`]); `Err` with the reason when the worker has stopped.
    fn flush(&mut self, urgent: bool) -> std::result::Result<(), String> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let Some(tx) = &self.tx else {
            self.batch.clear();
            return Ok(());
        };
        let events = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.batch_records = 0;
        tx.send(Msg::Events(events), urgent).map_err(|_| {
            // The worker stopped: it recorded why before dropping its end.
            self.failure
                .get()
                .cloned()
                .unwrap_or_else(|| "its worker thread stopped".to_string())
        })
    }
}

/// Whether a plugin should see this event now rather than with its batch:
/// the program may wait here for a long time (a blocking syscall, its end),
/// or printed something that replay shows as it goes.
fn is_urgent(event: &Event) -> bool {
    matches!(
        event.header.kind,
        EventKind::Blocked | EventKind::Exit | EventKind::Abort | EventKind::Signal
    ) || event.header.flags & (flags::STDOUT | flags::STDERR) != 0
}

/// Phase 1 for one plugin: whether it wants `event`, with which memory,
/// and the header that asked for the memory (whose syscall a
/// [`MemoryRequest::SyscallInputs`] names).
///
/// A `Buffered` event is offered with its own header, then once per call
/// with a header of its own (kind `Syscall`, flag `BUFFERED` added to the
/// event's flags, the event's time), so that a plugin that follows
/// syscalls sees every one, buffered or not. The plugin gets the event
/// once if it wanted any of them, with the memory the first of those
/// asked for (the same stop, so the same memory).
fn ask(
    selector: &mut FfiSelector_TO<'static, RBox<()>>,
    event: &Event,
) -> std::result::Result<Option<(Request, EventHeader)>, String> {
    let mut chosen: Option<(Request, EventHeader)> = None;
    let mut offer = |header: &EventHeader| -> std::result::Result<(), String> {
        match selector.wants(header) {
            RResult::ROk(req) if req.deliver => match &mut chosen {
                None => chosen = Some((req, *header)),
                Some((first, asked)) if first.memory == MemoryRequest::None => {
                    if req.memory != MemoryRequest::None {
                        *first = req;
                        *asked = *header;
                    }
                }
                Some(_) => {}
            },
            RResult::ROk(_) => {}
            RResult::RErr(e) => return Err(e.into()),
        }
        Ok(())
    };
    offer(&event.header)?;
    if let EventData::Buffered(info) = &event.data {
        for call in info.calls() {
            let Ok(call) = call else { break };
            offer(&EventHeader {
                kind: EventKind::Syscall,
                syscall: call.nr,
                args: call.args,
                result: call.result,
                flags: event.header.flags | flags::BUFFERED,
                ..event.header
            })?;
        }
    }
    Ok(chosen)
}

/// The loaded plugins and their worker threads.
pub struct Pipeline {
    slots: Vec<Slot>,
    /// The first failure of a required plugin: (name, detail).
    fatal: Option<(String, String)>,
    shut_down: bool,
    /// Events handed to workers, freed here once every worker let go:
    /// glibc's allocator locks the tracer's arena when another thread frees
    /// a block from it, and a worker freeing every event made the tracer
    /// wait on that lock about once per buffered syscall.
    retired: std::collections::VecDeque<Arc<Event>>,
    /// The memory of retired `Buffered` events' records, for the next
    /// flushes of syscall buffers.
    records: RecordPool,
    /// `dispatch`'s lists, kept for the next event.
    requests: Vec<(MemoryRequest, EventHeader)>,
    deliveries: Vec<(usize, Option<usize>)>,
}

impl Pipeline {
    /// Loads every plugin (in order), creates it with a
    /// `PluginContext{name, mode, trace_dir, config_toml}`, and starts one
    /// worker thread per plugin behind a bounded channel
    /// ([`CHANNEL_CAPACITY`]).
    ///
    /// All libraries are loaded and checked before any plugin is created, so
    /// a missing or incompatible library leaves no half-created trace files.
    /// Worker threads are pinned to `worker_cpus` when given (the CPUs other
    /// than the tracer's), so hashing and compression do not compete with
    /// the tracee; pinning is a hint, silently skipped when it fails.
    pub fn start(
        specs: &[PluginSpec],
        mode: Mode,
        trace_dir: &Path,
        worker_cpus: Option<&[usize]>,
    ) -> Result<Pipeline> {
        let mut modules = Vec::with_capacity(specs.len());
        for spec in specs {
            let path = match &spec.path {
                Some(p) => p.clone(),
                None => find_library(&spec.name, &search_dirs())?,
            };
            modules.push(load_module(&spec.name, &path)?);
        }
        let mut plugins = Vec::with_capacity(specs.len());
        for (spec, module) in specs.iter().zip(modules) {
            let ctx = PluginContext {
                name: spec.name.as_str().into(),
                mode,
                trace_dir: trace_dir.to_string_lossy().into_owned().into(),
                config_toml: spec.config_toml.as_str().into(),
                config_dir: spec.config_dir.to_string_lossy().into_owned().into(),
            };
            match module(&ctx) {
                RResult::ROk(plugin) => plugins.push((spec.name.clone(), spec.required, plugin)),
                RResult::RErr(e) => {
                    return Err(Error::Plugin {
                        name: spec.name.clone(),
                        detail: one_line(e.as_str()),
                    })
                }
            }
        }
        Pipeline::from_plugins(plugins, worker_cpus)
    }

    /// Starts the workers of already created plugins (also used by tests
    /// with in-process plugins).
    fn from_plugins(
        plugins: Vec<(String, bool, FfiPlugin)>,
        worker_cpus: Option<&[usize]>,
    ) -> Result<Pipeline> {
        let cpus: Option<Arc<[usize]>> = worker_cpus.filter(|c| !c.is_empty()).map(Arc::from);
        let mut slots = Vec::with_capacity(plugins.len());
        for (name, required, plugin) in plugins {
            let FfiPlugin {
                selector,
                every,
                handler,
            } = plugin;
            let failure = Arc::new(OnceLock::new());
            let worker_failure = failure.clone();
            let backlog = Arc::new(Backlog::default());
            let worker_backlog = backlog.clone();
            let cpus = cpus.clone();
            let builder = std::thread::Builder::new().name(format!("rrpipe:{name}"));
            let (tx, worker) = mailbox::spawn(builder, CHANNEL_CAPACITY, move |inbox| {
                if let Some(cpus) = cpus {
                    crate::cpus::pin_to(&cpus);
                }
                let outcome = run_worker(handler, inbox, &worker_failure, &worker_backlog);
                worker_backlog.close();
                outcome
            })
            .map_err(|e| Error::internal(format!("cannot start plugin {name}"), e))?;
            slots.push(Slot {
                name,
                required,
                selector,
                every: every.into_option(),
                tx: Some(tx),
                worker: Some(worker),
                failure,
                reported: false,
                backlog,
                batch: Vec::with_capacity(BATCH),
                batch_records: 0,
            });
        }
        Ok(Pipeline {
            slots,
            fatal: None,
            shut_down: false,
            retired: Default::default(),
            records: RecordPool::new(cpus),
            requests: Vec::new(),
            deliveries: Vec::new(),
        })
    }

    /// Names of the plugins loaded, in configuration order.
    pub fn names(&self) -> Vec<String> {
        self.slots.iter().map(|s| s.name.clone()).collect()
    }

    /// Both phases for one event, called on the tracer thread while the
    /// tracee is stopped: asks each enabled plugin's selector, builds each
    /// distinct requested snapshot once through `source` (shared between
    /// plugins), and sends the event to the plugins that want it (a blocking
    /// send: back-pressure).
    ///
    /// Returns `Err(Error::Plugin)` only when a plugin marked `required` has
    /// failed, now or earlier (workers report asynchronously). Any other
    /// plugin's failure is printed once to stderr and the plugin is disabled.
    /// A snapshot that cannot be built counts as a failure of the plugins
    /// that asked for it.
    pub fn dispatch(&mut self, event: Event, source: &dyn SnapshotSource) -> Result<()> {
        // The plugins still working get the event even after a required
        // one failed: the caller learns of the failure below and stops, and
        // the event stream stays whole up to here (ending with an `Abort`).
        self.poll_failures();

        // Phase 1: who wants it, with which memory. (The lists are kept
        // between events: a buffered syscall's event should cost no
        // allocation beyond its own.)
        let mut requests = std::mem::take(&mut self.requests);
        let mut deliveries = std::mem::take(&mut self.deliveries);
        requests.clear();
        deliveries.clear();
        for i in 0..self.slots.len() {
            if !self.slots[i].active() {
                continue;
            }
            let slot = &mut self.slots[i];
            let answer = match &slot.every {
                Some(req) => Ok(req.deliver.then(|| (req.clone(), event.header))),
                None => ask(&mut slot.selector, &event),
            };
            match answer {
                Ok(Some((req, asked))) => {
                    let snap = match req.memory {
                        MemoryRequest::None => None,
                        memory => {
                            let key = (memory, asked);
                            Some(match requests.iter().position(|r| *r == key) {
                                Some(k) => k,
                                None => {
                                    requests.push(key);
                                    requests.len() - 1
                                }
                            })
                        }
                    };
                    deliveries.push((i, snap));
                }
                Ok(None) => {}
                Err(e) => self.fail(i, e),
            }
        }
        if deliveries.is_empty() {
            self.requests = requests;
            self.deliveries = deliveries;
            self.reclaim(event);
            return self.check_fatal();
        }

        // Each distinct snapshot once.
        let snapshots: Vec<std::result::Result<Arc<Snapshot>, String>> = requests
            .iter()
            .map(|(r, header)| {
                source
                    .snapshot(header, r)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .collect();

        // Phase 2: hand over to the workers.
        let time = event.header.time;
        let urgent = is_urgent(&event);
        let records = match &event.data {
            EventData::Buffered(info) => info.records.len(),
            _ => 0,
        };
        let event = Arc::new(event);
        while self
            .retired
            .front()
            .is_some_and(|e| Arc::strong_count(e) == 1)
        {
            if let Some(Ok(done)) = self.retired.pop_front().map(Arc::try_unwrap) {
                self.reclaim(done);
            }
        }
        self.retired.push_back(event.clone());
        for &(i, snap) in &deliveries {
            let snap = match snap {
                None => None,
                Some(k) => match &snapshots[k] {
                    Ok(s) => Some(s.clone()),
                    Err(e) => {
                        self.fail(
                            i,
                            format!("cannot copy the memory it asked for at event {time}: {e}"),
                        );
                        continue;
                    }
                },
            };
            let slot = &mut self.slots[i];
            if !slot.active() {
                continue;
            }
            let bytes = snap.as_deref().map_or(0, snapshot_bytes);
            slot.backlog.reserve(bytes);
            let memory = snap.is_some();
            slot.batch.push((event.clone(), snap, bytes));
            slot.batch_records += records;
            if urgent
                || memory
                || slot.batch.len() >= BATCH
                || slot.batch_records >= BATCH_RECORD_BYTES
            {
                if let Err(detail) = slot.flush(urgent) {
                    self.fail(i, detail);
                }
            }
        }
        self.requests = requests;
        self.deliveries = deliveries;
        self.check_fatal()
    }

    /// An empty buffer for the `len` bytes of records of the next
    /// `Buffered` event (see [`RecordPool::take`]).
    pub fn spare_records(&mut self, len: usize) -> Vec<u8> {
        self.records.take(len)
    }

    /// Keeps the record bytes of an event no plugin holds any more.
    fn reclaim(&mut self, event: Event) {
        if let EventData::Buffered(info) = event.data {
            self.records.give_back(info.records.into_vec());
        }
    }

    /// Sends every plugin what it has not yet been sent (to be seen at its
    /// next look, see [`mailbox`]).
    fn flush_all(&mut self) {
        for i in 0..self.slots.len() {
            if let Err(detail) = self.slots[i].flush(false) {
                self.fail(i, detail);
            }
        }
    }

    /// Closes the channels, lets each plugin finish its work and call its
    /// `finish`, joins the workers, and returns the manifest entries (plugin
    /// name, files it added to the trace) of the plugins that succeeded,
    /// with the failure of a required plugin (now or earlier) if there was
    /// one. Every plugin is finished even when one fails; the others'
    /// failures are printed once and their entries skipped.
    pub fn finish(mut self) -> (Vec<ManifestEntry>, Result<()>) {
        let entries = self.shutdown();
        (entries, self.check_fatal())
    }

    fn check_fatal(&self) -> Result<()> {
        match &self.fatal {
            Some((name, detail)) => Err(Error::Plugin {
                name: name.clone(),
                detail: format!("failed: {detail}"),
            }),
            None => Ok(()),
        }
    }

    /// Handles the failures the workers recorded since the last look.
    fn poll_failures(&mut self) {
        for i in 0..self.slots.len() {
            if self.slots[i].active() {
                if let Some(detail) = self.slots[i].failure.get().cloned() {
                    self.fail(i, detail);
                }
            }
        }
    }

    /// Disables plugin `i` and reports `detail` once: as the fatal error
    /// when it is required, on stderr otherwise.
    fn fail(&mut self, i: usize, detail: String) {
        let slot = &mut self.slots[i];
        let _ = slot.failure.set(detail);
        // Dropping the sender lets the worker drain what it has and stop
        // (without calling finish).
        slot.tx = None;
        slot.batch.clear();
        if slot.reported {
            return;
        }
        slot.reported = true;
        let detail = slot.failure.get().cloned().unwrap_or_default();
        if slot.required {
            if self.fatal.is_none() {
                self.fatal = Some((slot.name.clone(), detail));
            }
        } else {
            eprintln!("rrpipe: plugin {} failed: {}; disabled", slot.name, detail);
        }
    }

    /// Tells every worker that no event follows: each finishes (its
    /// plugin's `finish`: the trace writer compresses and writes its last
    /// chunk) while the caller goes on, and [`Pipeline::finish`] then only
    /// waits. Later events reach no plugin.
    pub fn no_more_events(&mut self) {
        self.flush_all();
        self.poll_failures();
        // All are asked before any is waited for, so that they finish in
        // parallel.
        for slot in &mut self.slots {
            if let Some(tx) = slot.tx.take() {
                // An error means the worker already stopped; the join says why.
                let _ = tx.send(Msg::Finish, true);
            }
        }
    }

    /// Finishes every worker once; failures go through [`Pipeline::fail`].
    fn shutdown(&mut self) -> Vec<ManifestEntry> {
        if self.shut_down {
            return Vec::new();
        }
        self.shut_down = true;
        self.no_more_events();
        let mut entries = Vec::new();
        for i in 0..self.slots.len() {
            let Some(worker) = self.slots[i].worker.take() else {
                continue;
            };
            let outcome = match worker.join() {
                Ok(Some(Ok(files))) => Ok(files),
                Ok(Some(Err(e))) => Err(e),
                Ok(None) => Err(self.slots[i]
                    .failure
                    .get()
                    .cloned()
                    .unwrap_or_else(|| "its worker thread stopped".to_string())),
                Err(_) => Err("its worker thread panicked".to_string()),
            };
            match outcome {
                Ok(files) if !self.slots[i].reported => entries.push(ManifestEntry {
                    name: self.slots[i].name.clone(),
                    files,
                }),
                Ok(_) => {}
                Err(detail) => self.fail(i, detail),
            }
        }
        entries
    }
}

impl Drop for Pipeline {
    /// A pipeline dropped without [`Pipeline::finish`] (an error path) still
    /// lets its plugins finish, so the trace written so far stays readable.
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The loop of a plugin's worker thread.
fn run_worker(
    mut handler: FfiHandler_TO<'static, RBox<()>>,
    inbox: Inbox<Msg>,
    failure: &OnceLock<String>,
    backlog: &Backlog,
) -> WorkerOutcome {
    while let Some(msg) = inbox.recv() {
        match msg {
            Msg::Events(events) => {
                for (event, snapshot, bytes) in events {
                    let handled = handler.on_event(&event, snapshot.as_deref().into());
                    drop(snapshot);
                    backlog.release(bytes);
                    if let RResult::RErr(e) = handled {
                        let _ = failure.set(format!("at event {}: {}", event.header.time, e));
                        return None;
                    }
                }
            }
            Msg::Finish => {
                return Some(match handler.finish() {
                    RResult::ROk(files) => Ok(files.into_iter().map(|f| f.into()).collect()),
                    RResult::RErr(e) => Err(format!("at the end: {e}")),
                })
            }
        }
    }
    None
}

/// The memory a snapshot holds.
fn snapshot_bytes(s: &Snapshot) -> usize {
    s.regions.iter().map(|r| r.data.len()).sum()
}

/// Loads a plugin library and checks that it speaks this interface and
/// provides a plugin.
fn load_module(name: &str, path: &Path) -> Result<CreatePlugin> {
    let err = |detail: String| Error::Plugin {
        name: name.to_string(),
        detail,
    };
    let module = library::load(path).map_err(err)?;
    module.create().ok_or_else(|| {
        err(format!(
            "{} provides no plugin, only a dump policy: name it in the memory-dump \
             plugin's `policy` list",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi_stable::std_types::ROption;
    use rrpipe_plugin_api::{
        EventData, EventKind, ExitInfo, Handler, Plugin, PluginError, Range, Region, Regs, Request,
    };
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn start_one(path: &Path) -> Error {
        let spec = PluginSpec {
            name: "bad".into(),
            path: Some(path.to_path_buf()),
            ..PluginSpec::default()
        };
        let dir = tempdir();
        match Pipeline::start(&[spec], Mode::Record, dir.path(), None) {
            Ok(_) => panic!("{} loaded as a plugin", path.display()),
            Err(e) => e,
        }
    }

    #[test]
    fn garbage_and_missing_files_are_one_line_errors() {
        let dir = tempdir();
        let garbage = dir.path().join("librrpipe_bad.so");
        std::fs::write(&garbage, b"this is not an ELF file at all, not even close").unwrap();
        let msg = start_one(&garbage).to_string();
        assert!(
            msg.starts_with(&format!("plugin bad: cannot load {}: ", garbage.display())),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");

        let missing = dir.path().join("nothing-here.so");
        let msg = start_one(&missing).to_string();
        assert!(msg.contains("cannot load"), "{msg}");
        assert!(msg.contains("No such file"), "{msg}");
    }

    #[test]
    fn a_library_that_is_not_a_plugin_is_named_as_such() {
        let libm = [
            "/lib/x86_64-linux-gnu/libm.so.6",
            "/usr/lib/x86_64-linux-gnu/libm.so.6",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("libm.so.6");
        let err = start_one(libm);
        assert_eq!(err.exit_code(), crate::error::exit_code::PLUGIN);
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "plugin bad: {} is not an rrpipe plugin",
                libm.display()
            )),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
    }

    // In-process plugins: the same FFI objects a library would hand over.

    fn header(time: u64, kind: EventKind) -> EventHeader {
        EventHeader {
            time,
            tid: 1,
            kind,
            syscall: -1,
            args: [0; 6],
            result: 0,
            signal: 0,
            flags: 0,
        }
    }

    fn event(time: u64) -> Event {
        Event {
            header: header(time, EventKind::Exit),
            data: EventData::Exit(ExitInfo { code: 0, signal: 0 }),
        }
    }

    /// Counts snapshots and answers with one region holding the request's
    /// first range start (or 0).
    #[derive(Default)]
    struct FakeSource {
        calls: AtomicUsize,
        fail: bool,
    }

    impl SnapshotSource for FakeSource {
        fn snapshot(&self, h: &EventHeader, r: &MemoryRequest) -> std::io::Result<Snapshot> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail {
                return Err(std::io::Error::from_raw_os_error(libc::EFAULT));
            }
            let addr = match r {
                MemoryRequest::Ranges(v) => v[0].start,
                _ => 0,
            };
            Ok(Snapshot {
                regs: Regs::default(),
                regions: vec![Region {
                    mapping: ROption::RNone,
                    addr,
                    data: h.time.to_le_bytes().to_vec().into(),
                }]
                .into(),
                process: ROption::RNone,
            })
        }
    }

    type Log = Arc<Mutex<Vec<(u64, Option<u64>)>>>;

    struct Recorder {
        log: Log,
        fail_at: Option<u64>,
        panic_at: Option<u64>,
        files: Vec<String>,
    }

    impl Handler for Recorder {
        fn on_event(&mut self, e: &Event, s: Option<&Snapshot>) -> Result<(), PluginError> {
            let t = e.header.time;
            if self.fail_at == Some(t) {
                return Err(PluginError::new("disk full"));
            }
            if self.panic_at == Some(t) {
                panic!("boom at {t}");
            }
            self.log
                .lock()
                .unwrap()
                .push((t, s.map(|s| s.regions[0].addr)));
            Ok(())
        }
        fn finish(&mut self) -> Result<Vec<String>, PluginError> {
            Ok(self.files.clone())
        }
    }

    fn recorder(log: &Log) -> Recorder {
        Recorder {
            log: log.clone(),
            fail_at: None,
            panic_at: None,
            files: vec![],
        }
    }

    fn ranges(start: u64) -> MemoryRequest {
        MemoryRequest::Ranges(vec![Range { start, len: 8 }].into())
    }

    #[test]
    fn told_no_more_events_the_plugins_finish_with_what_they_had() {
        let log = Log::default();
        let plugins = vec![(
            "a".to_string(),
            true,
            Plugin::new(Recorder {
                files: vec!["a.dat".into()],
                ..recorder(&log)
            })
            .into_ffi(),
        )];
        let mut p = Pipeline::from_plugins(plugins, None).unwrap();
        let source = FakeSource::default();
        p.dispatch(event(1), &source).unwrap();
        p.no_more_events();
        // Reaches no plugin, and is no failure.
        p.dispatch(event(2), &source).unwrap();
        let (entries, finished) = p.finish();
        finished.unwrap();
        assert_eq!(
            entries,
            [ManifestEntry {
                name: "a".into(),
                files: vec!["a.dat".into()]
            }]
        );
        assert_eq!(*log.lock().unwrap(), [(1, None)]);
    }

    #[test]
    fn snapshots_are_built_once_and_shared() {
        let (a, b, c) = (Log::default(), Log::default(), Log::default());
        let plugins = vec![
            (
                "a".to_string(),
                false,
                Plugin::new(recorder(&a))
                    .with_selector(|_: &EventHeader| Request::with_memory(ranges(0x1000)))
                    .into_ffi(),
            ),
            (
                "b".to_string(),
                false,
                Plugin::new(Recorder {
                    files: vec!["b.dat".into()],
                    ..recorder(&b)
                })
                .with_selector(|h: &EventHeader| {
                    if matches!(h.time, 2 | 4) {
                        Request::with_memory(ranges(0x1000))
                    } else {
                        Request::with_memory(ranges(0x2000))
                    }
                })
                .into_ffi(),
            ),
            (
                "c".to_string(),
                false,
                Plugin::new(recorder(&c))
                    .with_selector(|h: &EventHeader| {
                        if h.time == 2 {
                            Request::SKIP
                        } else {
                            Request::EVENT
                        }
                    })
                    .into_ffi(),
            ),
        ];
        let mut p = Pipeline::from_plugins(plugins, Some(&[0])).unwrap();
        assert_eq!(p.names(), ["a", "b", "c"]);
        let source = FakeSource::default();
        for t in 1..=4 {
            p.dispatch(event(t), &source).unwrap();
        }
        // Times 2 and 4: one shared snapshot; 1 and 3: two distinct ones.
        assert_eq!(source.calls.load(Ordering::SeqCst), 6);
        let (entries, finished) = p.finish();
        finished.unwrap();
        assert_eq!(
            entries,
            [
                ManifestEntry {
                    name: "a".into(),
                    files: vec![]
                },
                ManifestEntry {
                    name: "b".into(),
                    files: vec!["b.dat".into()]
                },
                ManifestEntry {
                    name: "c".into(),
                    files: vec![]
                },
            ]
        );
        let a = a.lock().unwrap().clone();
        assert_eq!(a, (1..=4).map(|t| (t, Some(0x1000))).collect::<Vec<_>>());
        let b = b.lock().unwrap().clone();
        assert_eq!(
            b,
            [
                (1, Some(0x2000)),
                (2, Some(0x1000)),
                (3, Some(0x2000)),
                (4, Some(0x1000))
            ]
        );
        assert_eq!(*c.lock().unwrap(), [(1, None), (3, None), (4, None)]);
    }

    #[test]
    fn a_failing_plugin_is_disabled_and_the_others_go_on() {
        let (ok, bad, panicky, picky) = (
            Log::default(),
            Log::default(),
            Log::default(),
            Log::default(),
        );
        let plugins = vec![
            (
                "ok".to_string(),
                false,
                Plugin::new(recorder(&ok)).into_ffi(),
            ),
            (
                "bad".to_string(),
                false,
                Plugin::new(Recorder {
                    fail_at: Some(2),
                    ..recorder(&bad)
                })
                .into_ffi(),
            ),
            (
                "panicky".to_string(),
                false,
                Plugin::new(Recorder {
                    panic_at: Some(3),
                    ..recorder(&panicky)
                })
                .into_ffi(),
            ),
            (
                "picky".to_string(),
                false,
                Plugin::new(recorder(&picky))
                    .with_selector(|h: &EventHeader| {
                        assert!(h.time < 2, "selector gave up");
                        Request::EVENT
                    })
                    .into_ffi(),
            ),
        ];
        let mut p = Pipeline::from_plugins(plugins, None).unwrap();
        let source = FakeSource::default();
        for t in 1..=2000 {
            p.dispatch(event(t), &source).unwrap();
        }
        let (entries, finished) = p.finish();
        finished.unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["ok"]);
        assert_eq!(ok.lock().unwrap().len(), 2000);
        assert_eq!(*bad.lock().unwrap(), [(1, None)]);
        assert_eq!(*panicky.lock().unwrap(), [(1, None), (2, None)]);
        assert_eq!(*picky.lock().unwrap(), [(1, None)]);
    }

    #[test]
    fn a_required_plugin_failure_stops_dispatch_and_finish() {
        let (ok, req) = (Log::default(), Log::default());
        let plugins = vec![
            (
                "ok".to_string(),
                false,
                Plugin::new(recorder(&ok)).into_ffi(),
            ),
            (
                "writer".to_string(),
                true,
                Plugin::new(Recorder {
                    fail_at: Some(5),
                    ..recorder(&req)
                })
                .into_ffi(),
            ),
        ];
        let mut p = Pipeline::from_plugins(plugins, None).unwrap();
        let source = FakeSource::default();
        let mut failed_at = None;
        for t in 1..=5000 {
            if let Err(e) = p.dispatch(event(t), &source) {
                failed_at = Some((t, e.to_string()));
                break;
            }
        }
        let (t, msg) = failed_at.expect("the required plugin's failure is reported");
        assert!(t > 5);
        assert_eq!(msg, "plugin writer: failed: at event 5: disk full");
        // Still an error later, and at the end; the other plugin finished.
        // Still an error later, while the others still get the events
        // (the recorder's final Abort), and at the end.
        assert!(p.dispatch(event(t + 1), &source).is_err());
        let (entries, err) = p.finish();
        assert_eq!(
            err.unwrap_err().exit_code(),
            crate::error::exit_code::PLUGIN
        );
        assert_eq!(entries.len(), 1, "the other plugin finished: {entries:?}");
        assert_eq!(ok.lock().unwrap().len() as u64, t + 1);
    }

    #[test]
    fn a_failed_snapshot_disables_the_plugins_that_asked() {
        let (mem, plain) = (Log::default(), Log::default());
        let plugins = vec![
            (
                "mem".to_string(),
                true,
                Plugin::new(recorder(&mem))
                    .with_selector(|_: &EventHeader| {
                        Request::with_memory(MemoryRequest::AllReadable)
                    })
                    .into_ffi(),
            ),
            (
                "plain".to_string(),
                false,
                Plugin::new(recorder(&plain)).into_ffi(),
            ),
        ];
        let mut p = Pipeline::from_plugins(plugins, None).unwrap();
        let source = FakeSource {
            fail: true,
            ..Default::default()
        };
        let err = p.dispatch(event(1), &source).unwrap_err().to_string();
        assert!(
            err.starts_with("plugin mem: failed: cannot copy the memory it asked for at event 1: "),
            "{err}"
        );
        assert!(p.finish().1.is_err());
        assert_eq!(*plain.lock().unwrap(), [(1, None)]);
        assert!(mem.lock().unwrap().is_empty());
    }

    #[test]
    fn no_plugins_is_fine() {
        let dir = tempdir();
        let mut p = Pipeline::start(&[], Mode::Replay, dir.path(), Some(&[])).unwrap();
        assert!(p.names().is_empty());
        p.dispatch(event(1), &FakeSource::default()).unwrap();
        let (entries, finished) = p.finish();
        assert!(finished.is_ok() && entries.is_empty());
    }

    /// A `Buffered` event with `bytes` of records, in memory with room
    /// for a whole syscall buffer's, as the recorder's.
    fn buffered(time: u64, bytes: usize) -> Event {
        let mut records = Vec::with_capacity(rrpipe_syscallbuf::CAPACITY.max(bytes));
        records.resize(bytes, 0);
        Event {
            header: EventHeader {
                result: 1,
                ..header(time, EventKind::Buffered)
            },
            data: EventData::Buffered(rrpipe_plugin_api::BufferedInfo {
                records: records.into(),
            }),
        }
    }

    #[test]
    fn buffered_records_go_in_batches_by_size_and_their_memory_is_reused() {
        let log = Log::default();
        let plugins = vec![(
            "w".to_string(),
            true,
            Plugin::new(recorder(&log)).into_ffi(),
        )];
        let mut p = Pipeline::from_plugins(plugins, None).unwrap();
        // As the recorder's first flush does.
        drop(p.spare_records(rrpipe_syscallbuf::CAPACITY));
        let source = FakeSource::default();
        let quarter = BATCH_RECORD_BYTES / 4;
        for t in 1..=3 {
            p.dispatch(buffered(t, quarter), &source).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            log.lock().unwrap().is_empty(),
            "sent before a batch's worth"
        );
        p.dispatch(buffered(4, quarter), &source).unwrap();
        let waited = std::time::Instant::now();
        while log.lock().unwrap().len() < 4 {
            assert!(waited.elapsed().as_secs() < 30, "the batch never arrived");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(p.records.spares(), 0, "nothing retired yet");
        // The next event retires the four, which the worker let go; the
        // pool keeps up to `KEEP` of them.
        p.dispatch(event(5), &source).unwrap();
        assert_eq!(p.records.spares(), crate::record_pool::KEEP.min(4));
        let (_, finished) = p.finish();
        finished.unwrap();
        assert_eq!(source.calls.load(Ordering::SeqCst), 0);
    }
}
