//! The checksummer (issue 4, first part): recorded with
//! `--checksum=on-syscalls`, replayed with the same flag, the programs of
//! the earlier issues show no mismatch; a trace recorded without it is
//! refused by a replay that asks for it.

mod common;

use common::*;

fn checksummed(argv: &[&str]) {
    let trace = fresh_trace_path();
    let mut args = vec![
        "record",
        "--checksum=on-syscalls",
        "-o",
        trace.to_str().unwrap(),
        "--",
    ];
    args.extend_from_slice(argv);
    let rec = rrpipe_args(&args);
    let sums = std::fs::read_to_string(trace.join("checksums")).unwrap_or_default();
    assert!(
        sums.lines().count() > 5,
        "too few checksums recorded\n{}",
        rec.describe("record")
    );
    let manifest = std::fs::read_to_string(trace.join("manifest.toml")).unwrap();
    assert!(
        manifest.contains("\"checksums\""),
        "manifest lacks checksums:\n{manifest}"
    );
    let rep = rrpipe_args(&["replay", "--checksum=on-syscalls", trace.to_str().unwrap()]);
    assert_replay_matches(&trace, &rec, &rep);
    assert!(
        !rep.stderr_str().contains("mismatch"),
        "{}",
        rep.describe("replay")
    );
}

#[test]
fn single_threaded_programs_replay_without_mismatch() {
    for name in [
        "read_write",
        "mmap_file",
        "mprotect_munmap_mremap",
        "brk_malloc",
        "rdtsc",
        "segv",
    ] {
        let bin = compile_c(name);
        checksummed(&[bin.to_str().unwrap()]);
    }
    checksummed(&["/bin/ls", "-la", "/usr"]);
}

#[test]
fn processes_threads_and_signals_replay_without_mismatch() {
    for name in [
        "fork_wait",
        "vfork_exec",
        "pthreads_sync",
        "racy_counter",
        "sigsegv_siglongjmp",
        "setitimer_compute",
    ] {
        let bin = compile_c_threads(name);
        checksummed(&[bin.to_str().unwrap()]);
    }
}

#[test]
fn replay_asking_for_checksums_of_a_trace_without_them_is_refused() {
    let trace = fresh_trace_path();
    let rec = record(&trace, &["/bin/echo", "plain"], None);
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    let rep = rrpipe_args(&["replay", "--checksum=on-syscalls", trace.to_str().unwrap()]);
    assert_one_line_error(&rep, 79, &["checksum", "--checksum"]);
}
