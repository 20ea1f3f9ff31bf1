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
//! ```
//!
//! The hashing runs on the plugin's worker thread; the tracer thread only
//! copies the memory (the snapshot leaves out each thread's dead stack
//! below its red zone, which replay may legitimately scribble on).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use rrpipe_plugin_api::{
    Event, EventHeader, EventKind, Handler, MemoryRequest, Mode, Plugin, PluginContext,
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
        match self {
            When::Syscalls => h.kind == EventKind::Syscall,
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

enum Checksummer {
    Record { out: BufWriter<File> },
    Verify { recorded: HashMap<u64, Sums> },
}

impl Handler for Checksummer {
    fn on_event(&mut self, event: &Event, snapshot: Option<&Snapshot>) -> Result<(), PluginError> {
        let snapshot = snapshot.ok_or_else(|| PluginError::new("no memory came with the event"))?;
        let now = sums(event, snapshot);
        let time = event.header.time;
        match self {
            Checksummer::Record { out } => {
                writeln!(out, "{}", line(time, &now))?;
                Ok(())
            }
            Checksummer::Verify { recorded } => {
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
        match self {
            Checksummer::Record { out } => {
                out.flush()?;
                Ok(vec![FILE.to_string()])
            }
            Checksummer::Verify { .. } => Ok(Vec::new()),
        }
    }
}

fn create(ctx: &PluginContext) -> Result<Plugin, PluginError> {
    let config: Config = ctx.config()?;
    let when = When::parse(&config)?;
    let path = PathBuf::from(ctx.trace_dir.as_str()).join(FILE);
    let handler = match ctx.mode {
        Mode::Record => {
            Checksummer::Record {
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
            Checksummer::Verify { recorded }
        }
    };
    let selector = move |h: &EventHeader| {
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
    fn modes() {
        let cfg = |m: Option<&str>, f: Option<u64>| Config {
            mode: m.map(str::to_string),
            from: f,
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
