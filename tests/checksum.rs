//! The checksummer (issue 4, first part): recorded with
//! `--checksum=on-syscalls`, replayed with the same flag, the programs of
//! the earlier issues show no mismatch; one byte corrupted during replay
//! (by a test-only plugin) is reported with its global time and range; a
//! trace recorded without checksums is refused by a replay that asks for
//! them.

mod common;

use common::*;

both_modes!(single_threaded_programs_replay_without_mismatch);
fn single_threaded_programs_replay_without_mismatch(mode: Buffering) {
    for name in [
        "read_write",
        "mmap_file",
        "mprotect_munmap_mremap",
        "brk_malloc",
        "rdtsc",
        "segv",
    ] {
        let bin = compile_c(name);
        checksummed(mode, &[bin.to_str().unwrap()]);
    }
    checksummed(mode, &["/bin/ls", "-la", "/usr"]);
}

both_modes!(processes_and_threads_replay_without_mismatch);
fn processes_and_threads_replay_without_mismatch(mode: Buffering) {
    for name in ["fork_wait", "vfork_exec", "pthreads_sync", "racy_counter"] {
        let bin = compile_c_threads(name);
        checksummed(mode, &[bin.to_str().unwrap()]);
    }
}

both_modes!(signal_programs_replay_without_mismatch);
/// Signal handlers that return, that longjmp out, on an alternate stack,
/// at anchors in user code: their frames, written by the kernel with
/// XSAVE, replay byte for byte.
fn signal_programs_replay_without_mismatch(mode: Buffering) {
    let mut programs = vec!["setitimer_compute", "sigusr1_self", "sigfpe", "alarm_spin"];
    // Its handler binds a libc function lazily: glibc's trampoline saves
    // registers with XSAVE, whose output (left in dead stack that later
    // frames read uninitialised) depends on context switches, unless
    // rrpipe can trap cpuid to hide XSAVE (README, "cpuid").
    if cpuid_faulting() {
        programs.push("sigsegv_siglongjmp");
    }
    for name in programs {
        let bin = compile_c(name);
        checksummed(mode, &[bin.to_str().unwrap()]);
    }
}

#[test]
fn replay_asking_for_checksums_of_a_trace_without_them_is_refused() {
    let trace = fresh_trace_path();
    let rec = record(Buffering::On, &trace, &["/bin/echo", "plain"], None);
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    let rep = rrpipe_args(&["replay", "--checksum=on-syscalls", trace.to_str().unwrap()]);
    assert_one_line_error(&rep, 79, &["checksum", "--checksum"]);
}

const CORRUPTER_SRC: &str = r#"
use rrpipe_plugin_api::{Event, EventHeader, Handler, Mode, Plugin, PluginContext, PluginError, Request, Snapshot};

#[derive(serde::Deserialize)]
struct Config { at: u64, addr: u64 }

struct Nothing;
impl Handler for Nothing {
    fn on_event(&mut self, _: &Event, _: Option<&Snapshot>) -> Result<(), PluginError> { Ok(()) }
}

/// The tracees: children of the host's threads.
fn tracees() -> Vec<String> {
    let mut pids = Vec::new();
    for t in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
            pids.extend(c.split_whitespace().map(str::to_string));
        }
    }
    pids
}

fn create(ctx: &PluginContext) -> Result<Plugin, PluginError> {
    let cfg: Config = ctx.config()?;
    let replay = ctx.mode == Mode::Replay;
    Ok(Plugin::new(Nothing).with_selector(move |h: &EventHeader| {
        if replay && h.time == cfg.at {
            use std::os::unix::fs::FileExt;
            for pid in tracees() {
                if let Ok(f) = std::fs::OpenOptions::new().write(true).open(format!("/proc/{pid}/mem")) {
                    let _ = f.write_all_at(&[0xaa], cfg.addr);
                }
            }
        }
        Request::SKIP
    }))
}

rrpipe_plugin_api::export_plugin!("corrupter", create);
"#;

both_modes!(one_corrupted_byte_is_reported_with_its_time_and_range);
fn one_corrupted_byte_is_reported_with_its_time_and_range(mode: Buffering) {
    let bin = compile_c("marker");
    // With ASLR off, a PIE is loaded at 0x555555554000.
    let nm = std::process::Command::new("nm")
        .arg(&bin)
        .output()
        .expect("nm");
    let symbols = String::from_utf8_lossy(&nm.stdout).into_owned();
    let offset = symbols
        .lines()
        .find(|l| l.ends_with(" marker"))
        .and_then(|l| u64::from_str_radix(l.split_whitespace().next()?, 16).ok())
        .expect("marker symbol");
    let addr = 0x5555_5555_4000u64 + offset + 100;

    let trace = fresh_trace_path();
    let rec = record_with_args(
        mode,
        &["--checksum=on-all-events"],
        &trace,
        &[bin.to_str().unwrap()],
    );
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    assert!(
        rec.stdout_str().contains(&format!("{:#x}", addr - 100)),
        "the program's marker is not where expected\n{}",
        rec.describe("record")
    );
    let at = 30u64;
    let lib = build_test_plugin("corrupter", CORRUPTER_SRC, &plugin_api_dir());
    let config = scratch_dir("corrupt-config").join("replay.toml");
    std::fs::write(
        &config,
        format!(
            "mode = \"replay\"\n[[plugin]]\nname = \"corrupter\"\npath = \"{}\"\n[plugin.config]\nat = {at}\naddr = {addr}\n",
            lib.display()
        ),
    )
    .unwrap();
    let rep = rrpipe_args(&[
        "--config",
        config.to_str().unwrap(),
        "--checksum=on-all-events",
        trace.to_str().unwrap(),
    ]);
    let err = rep.stderr_str();
    assert_eq!(rep.status, 79, "{}", rep.describe("replay"));
    assert!(
        err.contains(&format!("checksum mismatch at event {at} ")),
        "{}",
        rep.describe("replay")
    );
    let named = err
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter_map(|w| {
            let (a, b) = w.split_once('-')?;
            let a = u64::from_str_radix(a.strip_prefix("0x")?, 16).ok()?;
            let b = u64::from_str_radix(b.strip_prefix("0x")?, 16).ok()?;
            Some((a, b))
        })
        .collect::<Vec<_>>();
    assert!(
        named.iter().any(|&(a, b)| (a..b).contains(&addr)),
        "no named range holds {addr:#x}: {named:x?}\n{}",
        rep.describe("replay")
    );
}
