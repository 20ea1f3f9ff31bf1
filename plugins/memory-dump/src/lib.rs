//! The memory dumper (the seed's `--dump_on` and `--dump_at`): an ELF core
//! file of the task at chosen events, in record and in replay alike, so
//! that `gdb PROGRAM DUMP` shows the program as it was at that instant.
//!
//! ```toml
//! [[plugin]]
//! name = "memory-dump"
//! [plugin.config]
//! dump_on = ["read", "-11", "SIGCHLD"]  # syscalls by name or number, signals
//! dump_at = [1200]                      # global times
//! dir = "dumps"        # relative to this file; default <trace>/dumps in
//!                      # record, <trace>/replay-dumps in replay
//! [[plugin.config.policy]]              # loadable policies, any number
//! path = "libbig_write_policy.so"       # relative to this file
//! config = { fd = 3, bytes = 1024 }     # the policy's own table
//! ```
//!
//! Every trigger is a [`DumpPolicy`](rrpipe_plugin_api::DumpPolicy): the
//! selector asks each one on the tracer thread, and when any names a cause
//! it asks the host for a `Core` snapshot (all mappings, registers, FPU
//! registers, auxv). The core file is written on the plugin's worker
//! thread as `core.<global time>.<tid>.<cause>`, through a temporary name
//! and a rename, so a dump is either whole or absent. Global times are the
//! same in record and replay, and the snapshot leaves out what is not
//! program state, so the two sessions write the same memory.

mod elfcore;

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rrpipe_plugin_api::policy::{self, LoadedPolicy, Trigger};
use rrpipe_plugin_api::{
    Event, EventData, EventHeader, Handler, MemoryRequest, Mode, Plugin, PluginContext,
    PluginError, Request, Snapshot,
};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    dump_on: Vec<String>,
    #[serde(default)]
    dump_at: Vec<u64>,
    dir: Option<PathBuf>,
    #[serde(default)]
    policy: Vec<PolicyConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyConfig {
    path: PathBuf,
    config: Option<toml::Table>,
}

/// One source of dump decisions.
enum Source {
    Trigger(Trigger),
    At(u64),
    Loaded(LoadedPolicy),
}

impl Source {
    fn cause(&mut self, h: &EventHeader) -> Result<Option<String>, PluginError> {
        Ok(match self {
            Source::Trigger(t) => t.matches(h).then(|| t.cause()),
            Source::At(t) => (h.time == *t).then(|| "at".to_string()),
            Source::Loaded(p) => p.dump_at(h)?.map(|c| sanitize(&c)),
        })
    }
}

/// Keeps file names tame whatever a policy returns.
fn sanitize(cause: &str) -> String {
    let s: String = cause
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "policy".to_string()
    } else {
        s
    }
}

/// What the selector decided for each event it selected, for the handler:
/// both see the selected events in the same order. An `Err` is a policy's
/// failure, which the handler reports (selectors cannot fail).
type Causes = Arc<Mutex<VecDeque<(u64, Result<String, PluginError>)>>>;

struct Selector {
    sources: Vec<Source>,
    causes: Causes,
}

impl rrpipe_plugin_api::Selector for Selector {
    fn wants(&mut self, h: &EventHeader) -> Request {
        let mut picked: Vec<String> = Vec::new();
        let mut failed = None;
        for s in &mut self.sources {
            match s.cause(h) {
                Ok(Some(c)) if !picked.contains(&c) => picked.push(c),
                Ok(_) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let (decision, request) = match failed {
            Some(e) => (Err(e), Request::EVENT),
            None if picked.is_empty() => return Request::SKIP,
            None => (
                Ok(picked.join("+")),
                Request::with_memory(MemoryRequest::Core),
            ),
        };
        let mut causes = self.causes.lock().unwrap_or_else(|p| p.into_inner());
        match (causes.back_mut(), decision) {
            // The calls of one `Buffered` event are offered one by one
            // under its time (see `BufferedInfo`); it comes once: one dump,
            // every cause in its name.
            (Some((t, Ok(earlier))), Ok(now)) if *t == h.time => {
                for cause in now.split('+') {
                    if !earlier.split('+').any(|c| c == cause) {
                        earlier.push('+');
                        earlier.push_str(cause);
                    }
                }
            }
            (Some((t, Err(_))), _) if *t == h.time => {}
            (Some((t, earlier)), Err(e)) if *t == h.time => *earlier = Err(e),
            (_, decision) => causes.push_back((h.time, decision)),
        }
        request
    }
}

struct Dumper {
    dir: PathBuf,
    causes: Causes,
    /// Written files, relative to the trace directory when inside it.
    written: Vec<String>,
    trace_dir: PathBuf,
}

impl Handler for Dumper {
    fn on_event(&mut self, event: &Event, snapshot: Option<&Snapshot>) -> Result<(), PluginError> {
        let h = &event.header;
        let cause = {
            let mut q = self.causes.lock().unwrap_or_else(|p| p.into_inner());
            match q.pop_front() {
                Some((t, c)) if t == h.time => c?,
                _ => return Err(PluginError::new("dump decisions out of step with events")),
            }
        };
        let snapshot = snapshot.ok_or_else(|| PluginError::new("no memory came with the event"))?;
        let (signal, siginfo) = match &event.data {
            EventData::Signal(s) => (s.signo, s.siginfo.as_slice()),
            _ => (0, &[][..]),
        };
        let name = format!("core.{}.{}.{}", h.time, h.tid, cause);
        let path = self.dir.join(&name);
        let partial = self.dir.join(format!(".{name}.partial"));
        let task = elfcore::Task {
            tid: h.tid,
            signal,
            siginfo,
        };
        let written = File::create(&partial)
            .and_then(|mut f| elfcore::write(&mut f, &task, snapshot))
            .and_then(|()| std::fs::rename(&partial, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&partial);
            return Err(PluginError::new(format!(
                "cannot write {}: {e}",
                path.display()
            )));
        }
        self.written.push(match path.strip_prefix(&self.trace_dir) {
            Ok(rel) => rel.to_string_lossy().into_owned(),
            Err(_) => path.to_string_lossy().into_owned(),
        });
        Ok(())
    }

    /// In record, dumps inside the trace directory join its manifest.
    fn finish(&mut self) -> Result<Vec<String>, PluginError> {
        Ok(std::mem::take(&mut self.written)
            .into_iter()
            .filter(|f| !Path::new(f).is_absolute())
            .collect())
    }
}

fn create(ctx: &PluginContext) -> Result<Plugin, PluginError> {
    let config: Config = ctx.config()?;
    let mut sources = Vec::new();
    for spelled in &config.dump_on {
        let t = Trigger::parse(spelled)
            .map_err(|e| PluginError::new(format!("dump_on {spelled:?}: {e}")))?;
        sources.push(Source::Trigger(t));
    }
    sources.extend(config.dump_at.iter().map(|&t| Source::At(t)));
    for p in &config.policy {
        let path = ctx.resolve(&p.path);
        let policy_ctx = PluginContext {
            name: path.to_string_lossy().into_owned().into(),
            mode: ctx.mode,
            trace_dir: ctx.trace_dir.clone(),
            config_toml: match &p.config {
                Some(t) => toml::to_string(t)
                    .map_err(|e| PluginError::new(format!("policy config: {e}")))?,
                None => String::new(),
            }
            .into(),
            config_dir: ctx.config_dir.clone(),
        };
        sources.push(Source::Loaded(policy::load(&path, &policy_ctx)?));
    }
    if sources.is_empty() {
        return Err(PluginError::new(
            "nothing to dump on: set dump_on, dump_at or a policy",
        ));
    }

    let trace_dir = PathBuf::from(ctx.trace_dir.as_str());
    let dir = match &config.dir {
        Some(d) => ctx.resolve(d),
        None => trace_dir.join(match ctx.mode {
            Mode::Record => "dumps",
            Mode::Replay => "replay-dumps",
        }),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| PluginError::new(format!("cannot create {}: {e}", dir.display())))?;

    let causes = Causes::default();
    let selector = Selector {
        sources,
        causes: causes.clone(),
    };
    let dumper = Dumper {
        dir,
        causes,
        written: Vec::new(),
        trace_dir,
    };
    Ok(Plugin::new(dumper).with_selector(selector))
}

rrpipe_plugin_api::export_plugin!("memory-dump", create);
