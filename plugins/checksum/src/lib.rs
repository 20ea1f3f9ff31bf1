//! The checksummer (the seed's `--checksum`): a checksum of all mapped,
//! readable memory of the task at chosen events. Recording stores them in
//! the trace (`checksums`, one text line per event); replay computes them
//! again at the same global times and stops at the first mismatch, naming
//! the event and the address ranges whose contents differ.
//!
//! ```toml
//! [[plugin]]
//! name = "checksum"
//! required = true           # a mismatch stops replay
//! [plugin.config]
//! mode = "on-syscalls"      # or "on-all-events"
//! # from = 1200            # or: every event from global time 1200 on
//! # stats = true           # CPU time of the tracer and hashing threads
//! ```
//!
//! The hashing runs on the plugin's worker thread; the tracer thread only
//! copies the memory (the snapshot leaves out each thread's dead stack
//! below its red zone, which replay may legitimately scribble on).
//!
//! With `stats = true` (or `RRPIPE_CHECKSUM_STATS=1` in the environment,
//! which reaches a plugin that `--checksum` configured), `finish` prints one
//! line to stderr: `checksum stats: events=N bytes=B tracer_cpu=Ts
//! worker_cpu=Ws`, the CPU time of the tracer thread (which copies the
//! memory) and of this plugin's worker thread (which hashes it), so that
//! the split can be measured rather than asserted.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rrpipe_plugin_api::{
    flags, Event, EventHeader, EventKind, Handler, MemoryRequest, Mode, Plugin, PluginContext,
    PluginError, Request, Snapshot,
};
use serde::Deserialize;

/// The file this plugin adds to a trace.
pub const FILE: &str = "checksums";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    mode: Option<String>,
    from: Option<u64>,
    stats: Option<bool>,
}

/// Set to print CPU times at the end (see the crate's documentation).
pub const STATS_ENV: &str = "RRPIPE_CHECKSUM_STATS";

/// Per-thread CPU clocks, without a libc dependency: std links libc anyway.
mod cpu {
    use std::time::Duration;

    /// `clockid_t` of a thread's CPU clock (Linux, glibc and musl).
    pub type ClockId = i32;

    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }

    extern "C" {
        fn pthread_self() -> usize;
        fn pthread_getcpuclockid(thread: usize, clock: *mut ClockId) -> i32;
        fn clock_gettime(clock: ClockId, tp: *mut Timespec) -> i32;
    }

    /// The CPU clock of the calling thread, readable from any thread of the
    /// process while that thread lives.
    pub fn this_thread() -> Option<ClockId> {
        let mut clock = 0;
        // SAFETY: pthread_self is always valid; the kernel writes one clockid.
        (unsafe { pthread_getcpuclockid(pthread_self(), &mut clock) } == 0).then_some(clock)
    }

    pub fn read(clock: ClockId) -> Option<Duration> {
        let mut ts = Timespec { sec: 0, nsec: 0 };
        // SAFETY: writes one timespec.
        (unsafe { clock_gettime(clock, &mut ts) } == 0)
            .then(|| Duration::new(ts.sec as u64, ts.nsec as u32))
    }
}

/// What `stats` reports. The tracer's clock is taken by the selector, the
/// only code of this plugin that runs on the tracer thread.
#[derive(Default)]
struct Stats {
    tracer_clock: Arc<OnceLock<cpu::ClockId>>,
    events: u64,
    bytes: u64,
}

impl Stats {
    fn line(&self) -> String {
        let secs = |c: Option<cpu::ClockId>| {
            c.and_then(cpu::read)
                .map(|d| format!("{:.3}s", d.as_secs_f64()))
                .unwrap_or_else(|| "?".to_string())
        };
        format!(
            "checksum stats: events={} bytes={} tracer_cpu={} worker_cpu={}",
            self.events,
            self.bytes,
            secs(self.tracer_clock.get().copied()),
            secs(cpu::this_thread()),
        )
    }
}

/// Which events get a checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum When {
    Syscalls,
    AllEvents,
    From(u64),
}

impl When {
    fn parse(config: &Config) -> Result<When, PluginError> {
        match (config.mode.as_deref(), config.from) {
            (Some("on-syscalls"), None) => Ok(When::Syscalls),
            (Some("on-all-events"), None) => Ok(When::AllEvents),
            (None, Some(t)) => Ok(When::From(t)),
            (None, None) => Err(PluginError::new(
                "set `mode` (on-syscalls, on-all-events) or `from` (a global time)",
            )),
            (Some(m), None) => Err(PluginError::new(format!(
                "unknown mode {m:?}: expected on-syscalls or on-all-events"
            ))),
            (Some(_), Some(_)) => Err(PluginError::new("set `mode` or `from`, not both")),
        }
    }

    fn selects(self, h: &EventHeader) -> bool {
        if h.flags & flags::AT_DEATH != 0 {
            // What a task killed from outside left: no replay reaches it.
            return false;
        }
        match self {
            // A stretch of buffered syscalls counts as one: memory is
            // taken at the stop that reports it, after all of them.
            When::Syscalls => matches!(h.kind, EventKind::Syscall | EventKind::Buffered),
            When::AllEvents => true,
            When::From(t) => h.time >= t,
        }
    }
}

/// One event's checksums: the whole, and each region's.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sums {
    tid: i32,
    total: u64,
    regions: Vec<(u64, u64, u64)>,
}

/// Checksums of contiguous runs of memory: adjacent mappings are hashed
/// as one, since how the kernel splits or merges its mappings (which
/// depends on which file object backs them) is not program state.
fn sums(event: &Event, snapshot: &Snapshot) -> Sums {
    let mut regions: Vec<(u64, u64, u64)> = Vec::new();
    let mut run: Option<(u64, u64, xxhash_rust::xxh3::Xxh3)> = None;
    for r in snapshot.regions.iter() {
        let end = r.addr + r.data.len() as u64;
        match &mut run {
            Some((_, run_end, hasher)) if *run_end == r.addr => {
                hasher.update(&r.data);
                *run_end = end;
            }
            _ => {
                if let Some((start, run_end, hasher)) = run.take() {
                    regions.push((start, run_end, hasher.digest()));
                }
                let mut hasher = xxhash_rust::xxh3::Xxh3::new();
                hasher.update(&r.data);
                run = Some((r.addr, end, hasher));
            }
        }
    }
    if let Some((start, end, hasher)) = run {
        regions.push((start, end, hasher.digest()));
    }
    let mut all = xxhash_rust::xxh3::Xxh3::new();
    for (start, end, h) in &regions {
        all.update(&start.to_le_bytes());
        all.update(&end.to_le_bytes());
        all.update(&h.to_le_bytes());
    }
    Sums {
        tid: event.header.tid,
        total: all.digest(),
        regions,
    }
}

/// `time tid total start-end=hash ...`
fn line(time: u64, s: &Sums) -> String {
    let mut out = format!("{time} {} {:016x}", s.tid, s.total);
    for (start, end, h) in &s.regions {
        let _ = write!(out, " {start:x}-{end:x}={h:016x}");
    }
    out
}

fn parse_line(text: &str) -> Option<(u64, Sums)> {
    let mut it = text.split_whitespace();
    let time = it.next()?.parse().ok()?;
    let tid = it.next()?.parse().ok()?;
    let total = u64::from_str_radix(it.next()?, 16).ok()?;
    let mut regions = Vec::new();
    for r in it {
        let (range, h) = r.split_once('=')?;
        let (start, end) = range.split_once('-')?;
        regions.push((
            u64::from_str_radix(start, 16).ok()?,
            u64::from_str_radix(end, 16).ok()?,
            u64::from_str_radix(h, 16).ok()?,
        ));
    }
    Some((
        time,
        Sums {
            tid,
            total,
            regions,
        },
    ))
}

fn describe(h: &EventHeader) -> String {
    match h.kind {
        EventKind::Syscall | EventKind::Blocked => {
            let name = syscalls::Sysno::new(h.syscall as usize)
                .map(|s| s.name().to_string())
                .unwrap_or_else(|| format!("syscall {}", h.syscall));
            format!("{:?} {name}", h.kind).to_lowercase()
        }
        EventKind::Signal => format!("signal {}", h.signal),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The address ranges whose contents differ between two checksums.
fn differences(recorded: &Sums, now: &Sums) -> Vec<String> {
    let mut out = Vec::new();
    for r in &recorded.regions {
        match now.regions.iter().find(|n| n.0 == r.0 && n.1 == r.1) {
            Some(n) if n.2 == r.2 => {}
            Some(_) => out.push(format!("{:#x}-{:#x}", r.0, r.1)),
            None => out.push(format!("{:#x}-{:#x} (not mapped now)", r.0, r.1)),
        }
    }
    for n in &now.regions {
        if !recorded.regions.iter().any(|r| r.0 == n.0 && r.1 == n.1) {
            out.push(format!("{:#x}-{:#x} (not mapped when recorded)", n.0, n.1));
        }
    }
    out
}

enum Store {
    Record { out: BufWriter<File> },
    Verify { recorded: HashMap<u64, Sums> },
}

struct Checksummer {
    store: Store,
    stats: Option<Stats>,
}

impl Handler for Checksummer {
    fn on_event(&mut self, event: &Event, snapshot: Option<&Snapshot>) -> Result<(), PluginError> {
        let snapshot = snapshot.ok_or_else(|| PluginError::new("no memory came with the event"))?;
        let now = sums(event, snapshot);
        if let Some(stats) = &mut self.stats {
            stats.events += 1;
            stats.bytes += snapshot
                .regions
                .iter()
                .map(|r| r.data.len() as u64)
                .sum::<u64>();
        }
        let time = event.header.time;
        match &mut self.store {
            Store::Record { out } => {
                writeln!(out, "{}", line(time, &now))?;
                Ok(())
            }
            Store::Verify { recorded } => {
                let Some(then) = recorded.get(&time) else {
                    return Err(PluginError::new(format!(
                        "no checksum was recorded for event {time}: record with the same --checksum setting"
                    )));
                };
                if then.total == now.total {
                    return Ok(());
                }
                let ranges = differences(then, &now);
                Err(PluginError::new(format!(
                    "checksum mismatch at event {time} (tid {}, {}): memory differs at {}",
                    event.header.tid,
                    describe(&event.header),
                    if ranges.is_empty() {
                        "an unidentified range".to_string()
                    } else {
                        ranges.join(", ")
                    }
                )))
            }
        }
    }

    fn finish(&mut self) -> Result<Vec<String>, PluginError> {
        if let Some(stats) = &self.stats {
            eprintln!("{}", stats.line());
        }
        match &mut self.store {
            Store::Record { out } => {
                out.flush()?;
                Ok(vec![FILE.to_string()])
            }
            Store::Verify { .. } => Ok(Vec::new()),
        }
    }
}

fn create(ctx: &PluginContext) -> Result<Plugin, PluginError> {
    let config: Config = ctx.config()?;
    let when = When::parse(&config)?;
    let path = PathBuf::from(ctx.trace_dir.as_str()).join(FILE);
    let store = match ctx.mode {
        Mode::Record => {
            Store::Record {
                out: BufWriter::new(File::create(&path).map_err(|e| {
                    PluginError::new(format!("cannot create {}: {e}", path.display()))
                })?),
            }
        }
        Mode::Replay => {
            let file = File::open(&path).map_err(|e| {
                PluginError::new(format!(
                    "cannot read {} ({e}): was the trace recorded with --checksum?",
                    path.display()
                ))
            })?;
            let mut recorded = HashMap::new();
            for (n, l) in BufReader::new(file).lines().enumerate() {
                let l = l?;
                let (time, s) = parse_line(&l).ok_or_else(|| {
                    PluginError::new(format!("{}:{}: not a checksum line", path.display(), n + 1))
                })?;
                recorded.insert(time, s);
            }
            Store::Verify { recorded }
        }
    };
    let stats = (config.stats == Some(true)
        || std::env::var_os(STATS_ENV).is_some_and(|v| !v.is_empty() && v != "0"))
    .then(Stats::default);
    let tracer_clock = stats.as_ref().map(|s| s.tracer_clock.clone());
    let handler = Checksummer { store, stats };
    let selector = move |h: &EventHeader| {
        if let Some(clock) = &tracer_clock {
            if clock.get().is_none() {
                if let Some(c) = cpu::this_thread() {
                    let _ = clock.set(c);
                }
            }
        }
        if when.selects(h) {
            Request::with_memory(MemoryRequest::AllReadable)
        } else {
            Request::SKIP
        }
    };
    Ok(Plugin::new(handler).with_selector(selector))
}

rrpipe_plugin_api::export_plugin!("checksum", create);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let s = Sums {
            tid: 42,
            total: 0xabc,
            regions: vec![(0x1000, 0x2000, 7), (0x7fff0000, 0x7fff1000, 9)],
        };
        assert_eq!(parse_line(&line(17, &s)), Some((17, s)));
    }

    #[test]
    fn differences_name_ranges() {
        let a = Sums {
            tid: 1,
            total: 1,
            regions: vec![(0x1000, 0x2000, 7), (0x3000, 0x4000, 8)],
        };
        let b = Sums {
            tid: 1,
            total: 2,
            regions: vec![(0x1000, 0x2000, 7), (0x3000, 0x4000, 9)],
        };
        assert_eq!(differences(&a, &b), vec!["0x3000-0x4000".to_string()]);
    }

    #[test]
    fn thread_cpu_clocks_advance() {
        let clock = cpu::this_thread().expect("a CPU clock for this thread");
        let before = cpu::read(clock).unwrap();
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(20) {}
        assert!(cpu::read(clock).unwrap() > before);
        // Another live thread's clock, read from here, as `finish` does.
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while start.elapsed() < std::time::Duration::from_millis(20) {}
            tx.send(cpu::this_thread().unwrap()).unwrap();
            let _ = done_rx.recv();
        });
        let spent = cpu::read(rx.recv().unwrap()).unwrap();
        assert!(spent >= std::time::Duration::from_millis(10), "{spent:?}");
        done_tx.send(()).unwrap();
        other.join().unwrap();
    }

    #[test]
    fn modes() {
        let cfg = |m: Option<&str>, f: Option<u64>| Config {
            mode: m.map(str::to_string),
            from: f,
            stats: None,
        };
        assert_eq!(
            When::parse(&cfg(Some("on-syscalls"), None)).unwrap(),
            When::Syscalls
        );
        assert_eq!(When::parse(&cfg(None, Some(5))).unwrap(), When::From(5));
        assert!(When::parse(&cfg(Some("bogus"), None)).is_err());
        assert!(When::parse(&cfg(None, None)).is_err());
    }
}
