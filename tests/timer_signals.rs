//! Asynchronous timer signals during stretches of syscall-buffered calls:
//! an `ITIMER_REAL` interrupts a loop of `stat("/")` calls (buffered by the
//! preload library, without a ptrace stop each). Recording used to crawl
//! there (the stepping towards an anchor met each buffered call's untraced
//! syscall and moved the signal one call on at a time, and a signal moved
//! to "after the next syscall" was re-sent at once and came back at the
//! same spot); it must now take well under 10 s, and the replay must print
//! what was recorded (the number of handled signals and a checksum of
//! where they landed differ at each run). Also: a second SIGTERM sent to
//! `rrpipe record` ends a recording whose program ignores the first.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Longest a recording of the stat loop may take.
const RECORD_LIMIT: Duration = Duration::from_secs(10);

/// The value after `prefix` on the line of `out` that starts with it.
fn value_of<'a>(out: &'a str, prefix: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(str::trim)
}

/// Records `timer_stat_loop PERIOD_US CALLS` (with `extra` options), checks
/// the recording's time and output, replays it (with `extra` too) and
/// checks the replay printed the same; returns the handled-signal count.
fn record_and_replay(mode: Buffering, period_us: u32, calls: u32, extra: &[&str]) -> u64 {
    let bin = compile_c("timer_stat_loop");
    let (period, calls) = (period_us.to_string(), calls.to_string());
    let argv = [bin.to_str().unwrap(), period.as_str(), calls.as_str()];
    let trace = fresh_trace_path();
    // (Killed with its tracees, and failed, after 60 s; its process group
    // is killed when it exits in any case.)
    let ((rec, left), record_time) =
        timed(|| run_with_leftovers(record_cmd(mode, extra, &trace, &argv), None));
    let (rep, replay_time) = timed(|| replay_with(&trace, extra));
    eprintln!(
        "{mode}, period {period_us} us, {calls} calls {extra:?}: record {:.3} s, replay {:.3} s",
        record_time.as_secs_f64(),
        replay_time.as_secs_f64()
    );
    let r = Recorded {
        mode,
        trace,
        record: rec,
        replay: rep,
    };
    assert!(
        left.is_empty(),
        "processes left running by rrpipe: {left:?}\n{}",
        r.describe()
    );
    r.assert_status(0);
    r.assert_self_checks_pass();
    r.assert_stdout_contains("ALL OK\n");
    assert!(
        record_time < RECORD_LIMIT,
        "recording took {record_time:?} (limit {RECORD_LIMIT:?})\n{}",
        r.describe()
    );
    assert_trace_mode(&r.trace, mode);
    assert_replay_matches(&r.trace, &r.record, &r.replay);
    let out = r.record.stdout_str();
    let handled = value_of(&out, "handled:").and_then(|v| v.parse::<u64>().ok());
    let replayed = value_of(&r.replay.stdout_str(), "handled:").and_then(|v| v.parse().ok());
    assert!(
        handled.is_some_and(|n| n > 0) && handled == replayed,
        "handled signals: recorded {handled:?}, replayed {replayed:?}\n{}",
        r.describe()
    );
    handled.unwrap()
}

/// Calls for the loop: about 70 ms natively with buffering; fewer without
/// (each call is then two ptrace stops, ~12 µs), to keep the test short.
fn calls(mode: Buffering, buffered: u32, unbuffered: u32) -> u32 {
    match mode {
        Buffering::On => buffered,
        Buffering::Off => unbuffered,
    }
}

both_modes!(timer_10ms_during_buffered_calls);
fn timer_10ms_during_buffered_calls(mode: Buffering) {
    record_and_replay(mode, 10_000, calls(mode, 250_000, 50_000), &[]);
}

both_modes!(timer_1ms_during_buffered_calls);
fn timer_1ms_during_buffered_calls(mode: Buffering) {
    record_and_replay(mode, 1_000, calls(mode, 100_000, 20_000), &[]);
}

both_modes!(timer_during_buffered_calls_checksummed);
fn timer_during_buffered_calls_checksummed(mode: Buffering) {
    // Each stop snapshots all memory: unbuffered, every call is one.
    record_and_replay(
        mode,
        10_000,
        calls(mode, 250_000, 300),
        &["--checksum=on-syscalls"],
    );
}

both_modes!(second_sigterm_ends_recording);
fn second_sigterm_ends_recording(mode: Buffering) {
    // The program ignores SIGTERM and loops for ever (with the timer
    // ticking): the first SIGTERM sent to rrpipe alone is passed on and
    // changes nothing, the second ends the recording.
    let bin = compile_c("timer_stat_loop");
    let argv = [bin.to_str().unwrap(), "10000", "0"];
    let trace = fresh_trace_path();
    let mut second_at = None;
    let mut alive_after_first = false;
    let rec = record_with_first_line(mode, &trace, &argv, |line, rrpipe_pid| {
        pid_from_line(line);
        std::thread::sleep(Duration::from_millis(300));
        send_signal(rrpipe_pid, libc::SIGTERM);
        std::thread::sleep(Duration::from_millis(300));
        alive_after_first = unsafe { libc::kill(rrpipe_pid, 0) } == 0;
        send_signal(rrpipe_pid, libc::SIGTERM);
        second_at = Some(Instant::now());
    });
    let took = second_at.expect("the signals were sent").elapsed();
    let what = rec.describe("record");
    assert!(
        alive_after_first,
        "the first SIGTERM ended the recording\n{what}"
    );
    assert!(
        took < Duration::from_secs(10),
        "rrpipe record went on for {took:?} after the second SIGTERM\n{what}"
    );
    assert!(
        rec.stderr_str()
            .contains("interrupted again: killing the recorded program"),
        "{what}"
    );
    assert!(!rec.stderr_str().contains("panicked"), "{what}");
    // Killed: rrpipe exits as the program did (137), wherever the kill
    // landed among its ptrace calls (see tests/killed.rs).
    assert_eq!(rec.status, 128 + libc::SIGKILL, "unexpected status\n{what}");
    assert!(
        rec.stdout_str().starts_with("pid ") && !rec.stdout_str().contains("handled:"),
        "{what}"
    );
}
