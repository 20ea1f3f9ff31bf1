//! Bad input gets a precise one-line error and the documented exit code,
//! never a panic: malformed or unknown configuration (78), missing program
//! or trace (66), truncated or foreign or future traces (65), a syscall
//! rrpipe cannot record (81).

mod common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use common::*;

const USAGE: i32 = 64;
const BAD_TRACE: i32 = 65;
const NOT_FOUND: i32 = 66;
const CONFIG: i32 = 78;
const UNSUPPORTED: i32 = 81;

/// Runs `rrpipe --config FILE` on a file holding `text`.
fn with_config(file_name: &str, text: &str) -> Run {
    let dir = scratch_dir("config");
    let path = dir.join(file_name);
    std::fs::write(&path, text).unwrap();
    let mut cmd = rrpipe();
    cmd.arg("--config").arg(&path);
    run(cmd, None)
}

#[test]
fn malformed_toml() {
    let r = with_config(
        "bad.toml",
        "# rrpipe configuration\nmode = \"record\"\noutput = \"unterminated\n",
    );
    assert_one_line_error(&r, CONFIG, &["bad.toml"]);
    let err = r.stderr_str();
    assert!(
        mentions_line(&err, 3),
        "the message must name line 3\n{}",
        r.describe("rrpipe")
    );
}

#[test]
fn malformed_toml_bad_value() {
    let r = with_config("broken-value.toml", "mode = \"record\"\n\nmode = = 3\n");
    assert_one_line_error(&r, CONFIG, &["broken-value.toml"]);
    assert!(
        mentions_line(&r.stderr_str(), 3),
        "the message must name line 3\n{}",
        r.describe("rrpipe")
    );
}

#[test]
fn unknown_config_key() {
    let r = with_config(
        "unknown.toml",
        "mode = \"record\"\ndefinitely_not_a_key = true\n",
    );
    assert_one_line_error(&r, CONFIG, &["definitely_not_a_key"]);
    assert!(
        mentions_line(&r.stderr_str(), 2),
        "the message must name line 2\n{}",
        r.describe("rrpipe")
    );
}

#[test]
fn missing_config_file() {
    let r = rrpipe_args(&["--config", "/nonexistent/rrpipe.toml"]);
    assert!(
        r.status == CONFIG || r.status == NOT_FOUND,
        "expected 78 or 66\n{}",
        r.describe("rrpipe")
    );
    assert_one_line_error(&r, r.status, &["/nonexistent/rrpipe.toml"]);
}

#[test]
fn missing_program() {
    let r = rrpipe_args(&["record", "--", "/nonexistent/prog"]);
    assert_one_line_error(&r, NOT_FOUND, &["/nonexistent/prog"]);
}

#[test]
fn missing_program_with_output_dir() {
    let trace = fresh_trace_path();
    let mut cmd = rrpipe();
    cmd.arg("record")
        .arg("-o")
        .arg(&trace)
        .arg("--")
        .arg("/nonexistent/prog");
    let r = run(cmd, None);
    assert_one_line_error(&r, NOT_FOUND, &["/nonexistent/prog"]);
}

#[test]
fn program_not_in_path() {
    let r = rrpipe_args(&["record", "--", "rrpipe-no-such-program-in-path"]);
    assert_one_line_error(&r, NOT_FOUND, &["rrpipe-no-such-program-in-path"]);
}

#[test]
fn missing_trace() {
    let r = rrpipe_args(&["replay", "/nonexistent"]);
    assert_one_line_error(&r, NOT_FOUND, &["/nonexistent"]);
}

#[test]
fn missing_trace_dump() {
    let r = rrpipe_args(&["dump", "/nonexistent"]);
    assert_one_line_error(&r, NOT_FOUND, &["/nonexistent"]);
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let r = rrpipe_args(&["replay", "--definitely-not-a-flag"]);
    assert_eq!(r.status, USAGE, "{}", r.describe("rrpipe"));
    assert!(
        !r.stderr_str().contains("panicked"),
        "{}",
        r.describe("rrpipe")
    );
    assert!(!r.stderr.is_empty(), "{}", r.describe("rrpipe"));
}

/// Records `/bin/echo hello` into a fresh trace.
fn echo_trace() -> PathBuf {
    let trace = fresh_trace_path();
    let r = record(Buffering::On, &trace, &["/bin/echo", "hello"], None);
    assert_eq!(r.status, 0, "{}", r.describe("record"));
    assert_eq!(r.stdout_str(), "hello\n", "{}", r.describe("record"));
    for f in ["header", "events"] {
        assert!(
            trace.join(f).is_file(),
            "the trace lacks its {f} file: {}",
            trace.display()
        );
    }
    trace
}

fn overwrite(path: &Path, offset: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn truncated_events() {
    let trace = echo_trace();
    let events = trace.join("events");
    let len = std::fs::metadata(&events).unwrap().len();
    assert!(len > 24, "events file too small to cut: {len} bytes");
    let f = OpenOptions::new().write(true).open(&events).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let r = replay(&trace);
    assert_one_line_error(&r, BAD_TRACE, &["truncated"]);
    assert!(
        r.stdout.is_empty() || r.stdout == b"hello\n",
        "{}",
        r.describe("replay")
    );
}

#[test]
fn truncated_events_dump() {
    let trace = echo_trace();
    let events = trace.join("events");
    let len = std::fs::metadata(&events).unwrap().len();
    let f = OpenOptions::new().write(true).open(&events).unwrap();
    f.set_len(len - 3).unwrap();
    drop(f);
    let r = dump(&trace);
    assert_eq!(r.status, BAD_TRACE, "{}", r.describe("dump"));
    assert!(
        !r.stderr_str().contains("panicked"),
        "{}",
        r.describe("dump")
    );
    assert!(
        r.stderr_str().contains("truncated"),
        "{}",
        r.describe("dump")
    );
    assert_eq!(
        r.stderr_str().trim().lines().count(),
        1,
        "{}",
        r.describe("dump")
    );
}

#[test]
fn wrong_magic_header() {
    let trace = echo_trace();
    overwrite(&trace.join("header"), 0, b"NOTATRACE");
    let r = replay(&trace);
    assert_one_line_error(&r, BAD_TRACE, &["magic", "header"]);
}

#[test]
fn wrong_magic_events() {
    let trace = echo_trace();
    overwrite(&trace.join("events"), 0, b"GARBAGE!");
    let r = replay(&trace);
    assert_one_line_error(&r, BAD_TRACE, &["magic", "events"]);
}

#[test]
fn empty_header() {
    let trace = echo_trace();
    std::fs::write(trace.join("header"), b"").unwrap();
    let r = replay(&trace);
    assert_one_line_error(&r, BAD_TRACE, &["header"]);
}

#[test]
fn future_version_header() {
    let trace = echo_trace();
    overwrite(&trace.join("header"), 8, &99u32.to_le_bytes());
    let r = replay(&trace);
    assert_one_line_error(&r, BAD_TRACE, &["version", "99"]);
}

#[test]
fn future_version_events() {
    let trace = echo_trace();
    overwrite(&trace.join("events"), 8, &99u32.to_le_bytes());
    let r = replay(&trace);
    assert_one_line_error(&r, BAD_TRACE, &["version", "99"]);
}

both_modes!(unsupported_syscall);
fn unsupported_syscall(mode: Buffering) {
    let bin = compile_c("unsupported");
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, &[bin.to_str().unwrap()], None);
    assert_one_line_error(&rec, UNSUPPORTED, &["kexec_file_load"]);
    assert_eq!(
        rec.stdout_str(),
        "before the unsupported syscall\n",
        "{}",
        rec.describe("record")
    );
    let rep = replay(&trace);
    assert!(
        rep.stdout_str()
            .starts_with("before the unsupported syscall\n"),
        "the partial trace must replay the line printed before the syscall\n{}",
        rep.describe("replay")
    );
    assert!(
        !rep.stdout_str().contains("after:"),
        "{}",
        rep.describe("replay")
    );
    assert!(
        !rep.stderr_str().contains("panicked"),
        "{}",
        rep.describe("replay")
    );
}
