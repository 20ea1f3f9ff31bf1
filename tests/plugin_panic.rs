//! A plugin's panic is contained (issue 4): the plugin is named on stderr
//! and disabled, the recording (or replay) goes on and completes, and the
//! trace replays; when the plugin is `required`, recording stops cleanly
//! with exit code 79, its tracees ended, and the trace ends with an Abort
//! event that replay stops at, with the same message and code.
//!
//! The plugin is a real library, built by the test, that panics on its
//! `at`-th event (10 unless configured): in its handler, on its worker
//! thread, or with `in_selector = true` in its selector, on the tracer
//! thread.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const PANICKY_SRC: &str = r#"
use rrpipe_plugin_api::{Event, EventHeader, Handler, Plugin, PluginContext, PluginError, Request, Snapshot};

#[derive(serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config { at: u64, in_selector: bool }

impl Default for Config {
    fn default() -> Self { Config { at: 10, in_selector: false } }
}

struct Counter { seen: u64, panic_at: Option<u64> }

impl Handler for Counter {
    fn on_event(&mut self, _: &Event, _: Option<&Snapshot>) -> Result<(), PluginError> {
        self.seen += 1;
        if self.panic_at == Some(self.seen) {
            panic!("boom on my event number {}", self.seen);
        }
        Ok(())
    }
}

fn create(ctx: &PluginContext) -> Result<Plugin, PluginError> {
    let cfg: Config = ctx.config()?;
    let (select_at, handle_at) = if cfg.in_selector { (Some(cfg.at), None) } else { (None, Some(cfg.at)) };
    let mut calls = 0u64;
    Ok(Plugin::new(Counter { seen: 0, panic_at: handle_at }).with_selector(move |_: &EventHeader| {
        calls += 1;
        if select_at == Some(calls) {
            panic!("boom in wants on my call number {calls}");
        }
        Request::EVENT
    }))
}

rrpipe_plugin_api::export_plugin!("panicky", create);
"#;

/// The name the plugin is configured under, which messages must use (the
/// library calls itself `panicky`).
const NAME: &str = "flaky-counter";

fn panicky() -> PathBuf {
    build_test_plugin("panicky", PANICKY_SRC, &plugin_api_dir())
}

/// Writes a configuration loading the panicky plugin; `extra` goes into the
/// plugin's table, `config` into its configuration.
fn config(mode: &str, extra: &str, config: &str) -> PathBuf {
    let path = scratch_dir("panic-config").join(format!("{mode}.toml"));
    std::fs::write(
        &path,
        format!(
            "mode = \"{mode}\"\n[[plugin]]\nname = \"{NAME}\"\npath = \"{}\"\n{extra}\n\
             [plugin.config]\n{config}\n",
            panicky().display()
        ),
    )
    .unwrap();
    path
}

/// `rrpipe record [MODE FLAGS] --config CONFIG -o TRACE -- ARGV...`; also
/// returns the processes rrpipe left behind and how long it took.
fn record_with(
    mode: Buffering,
    config: &Path,
    trace: &Path,
    argv: &[&str],
) -> (Run, Vec<libc::pid_t>, Duration) {
    let mut cmd = record_cmd(mode, &["--config", config.to_str().unwrap()], trace, argv);
    // Cargo's long LD_LIBRARY_PATH would make the dynamic loader's search
    // take hundreds of events; the counts below assume a plain start-up.
    cmd.env_remove("LD_LIBRARY_PATH");
    let start = Instant::now();
    let (run, left) = run_with_leftovers(cmd, None);
    (run, left, start.elapsed())
}

/// Asserts that the whole of stderr is one line: rrpipe's report of the
/// plugin's failure, naming the plugin and carrying `message` and where the
/// plugin panicked (the plugin's own panic hook stays silent).
fn assert_reported_once(run: &Run, label: &str, message: &str) {
    let what = run.describe(label);
    let stderr = run.stderr_str();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr\n{what}");
    assert!(
        lines[0].starts_with(&format!("rrpipe: plugin {NAME} failed: "))
            && lines[0].contains(message)
            && lines[0].contains("(at src/lib.rs:"),
        "the report does not name plugin {NAME}, {message:?} and where\n{what}"
    );
}

/// Asserts that `rrpipe dump` reads the whole trace and says whether it is
/// complete; returns its output.
fn assert_dumps(trace: &Path, complete: bool) -> String {
    let d = dump(trace);
    assert_eq!(d.status, 0, "{}", d.describe("dump"));
    let out = d.stdout_str();
    let expected = if complete {
        "# complete: yes"
    } else {
        "# complete: no"
    };
    assert!(
        out.lines().any(|l| l.starts_with(expected)),
        "dump does not say {expected:?}\n{}",
        d.describe("dump")
    );
    out
}

/// The trace of `rec` is complete and replays with its output and status.
fn assert_complete_trace_replays(trace: &Path, rec: &Run) {
    assert_dumps(trace, true);
    let rep = replay(trace);
    let what = format!("{}{}", rec.describe("record"), rep.describe("replay"));
    assert_eq!(rep.status, rec.status, "{what}");
    assert_eq!(rep.stdout, rec.stdout, "{what}");
}

both_modes!(a_plugin_panicking_on_its_tenth_event_is_disabled_and_recording_completes);
fn a_plugin_panicking_on_its_tenth_event_is_disabled_and_recording_completes(mode: Buffering) {
    let bin = compile_c("read_write");
    let argv = [bin.to_str().unwrap()];
    let nat = native(&argv, None);
    let trace = fresh_trace_path();
    let (rec, left, _) = record_with(mode, &config("record", "", ""), &trace, &argv);
    assert!(left.is_empty(), "processes left: {left:?}");
    assert_eq!(rec.status, nat.status, "{}", rec.describe("record"));
    assert_eq!(rec.stdout, nat.stdout, "{}", rec.describe("record"));
    assert_reported_once(
        &rec,
        "record",
        "at event 10: panicked: boom on my event number 10 (at ",
    );

    assert_complete_trace_replays(&trace, &rec);
}

both_modes!(a_plugin_panicking_in_its_selector_is_disabled_and_recording_completes);
fn a_plugin_panicking_in_its_selector_is_disabled_and_recording_completes(mode: Buffering) {
    let trace = fresh_trace_path();
    let cfg = config("record", "", "in_selector = true");
    let (rec, left, _) = record_with(mode, &cfg, &trace, &["/bin/echo", "still here"]);
    assert!(left.is_empty(), "processes left: {left:?}");
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    assert_eq!(rec.stdout_str(), "still here\n");
    assert_reported_once(
        &rec,
        "record",
        "panicked: boom in wants on my call number 10",
    );
    assert_complete_trace_replays(&trace, &rec);
}

both_modes!(a_plugin_panicking_in_replay_is_disabled_and_replay_completes);
fn a_plugin_panicking_in_replay_is_disabled_and_replay_completes(mode: Buffering) {
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, &["/bin/ls", "-la", "/usr"], None);
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    let cfg = config("replay", "", "");
    let rep = rrpipe_args(&[
        "--config",
        cfg.to_str().unwrap(),
        "replay",
        trace.to_str().unwrap(),
    ]);
    assert_eq!(rep.status, 0, "{}", rep.describe("replay"));
    assert_eq!(
        rep.stdout,
        rec.stdout,
        "{}{}",
        rec.describe("record"),
        rep.describe("replay")
    );
    assert_reported_once(&rep, "replay", "panicked: boom on my event number 10");
}

both_modes!(a_required_plugin_panicking_stops_recording_cleanly);
fn a_required_plugin_panicking_stops_recording_cleanly(mode: Buffering) {
    let bin = compile_c("sigint_loop");
    let trace = fresh_trace_path();
    // Past the program's first line (its pid), into its 20-second loop.
    let cfg = config("record", "required = true", "at = 200");
    let (rec, left, took) = record_with(mode, &cfg, &trace, &[bin.to_str().unwrap()]);
    let what = rec.describe("record");
    assert_eq!(rec.status, 79, "{what}");
    let stderr = rec.stderr_str();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}");
    assert!(
        lines[0].starts_with(&format!(
            "rrpipe: plugin {NAME}: failed: at event 200: panicked: boom on my event number 200 (at "
        )),
        "{what}"
    );
    // Long before the program would end (20 s): a worker's failure is
    // acted on at the next event.
    assert!(took < Duration::from_secs(10), "took {took:?}\n{what}");
    assert!(left.is_empty(), "processes left: {left:?}\n{what}");
    let out = rec.stdout_str();
    let pid = pid_from_line(out.lines().next().unwrap_or_default());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the recorded program (pid {pid}) still exists\n{what}"
    );

    // The trace: whole up to the stop, which an Abort event ends; replay
    // prints what the recording printed and stops there with the same
    // message and exit code.
    let dumped = assert_dumps(&trace, true);
    assert!(dumped.contains("nanosleep"), "{dumped}");
    assert!(dumped.contains(" abort "), "{dumped}");
    let rep = replay(&trace);
    let rep_what = format!("{what}{}", rep.describe("replay"));
    assert_eq!(rep.stdout, rec.stdout, "{rep_what}");
    assert_eq!(rep.status, 79, "{rep_what}");
    let stderr = rep.stderr_str();
    assert!(
        stderr.lines().count() == 1
            && stderr.contains(&format!("plugin {NAME}: failed: at event 200")),
        "{rep_what}"
    );
}
