//! A recorded program killed from outside: SIGKILL sent to the program (not
//! to rrpipe) by another process, or by rrpipe itself when it is
//! interrupted a second time. The kill lands between any two of the
//! recorder's ptrace calls (it used to make one of them fail with ESRCH,
//! and rrpipe exit with 70 about one time in three). Each time: rrpipe
//! exits with 137 like the program, within seconds, leaves no process
//! behind, and leaves a complete trace that ends with the program's death
//! by SIGKILL; its replay exits with 137 too, with the same output. The
//! kill is repeated at varying delays, the race being one of timing.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Kills per test (each a recording and its replay).
const KILLS: u64 = 20;

/// How long rrpipe may take to end after the program was killed.
const END_LIMIT: Duration = Duration::from_secs(5);

/// What happened after the kill, seen from the test while rrpipe ran.
#[derive(Default)]
struct AfterKill {
    /// From the (last) signal to rrpipe's exit; None if it did not exit
    /// within twice `END_LIMIT`.
    took: Option<Duration>,
    /// Processes of rrpipe's group still alive when it had exited.
    left: Vec<libc::pid_t>,
}

/// Waits (without reaping) for rrpipe, `rrpipe_pid`, to exit after the
/// kill sent at `since`, and looks for what it left running.
fn watch_end(rrpipe_pid: libc::pid_t, since: Instant) -> AfterKill {
    while since.elapsed() < END_LIMIT * 2 {
        if exited_unreaped(rrpipe_pid) {
            return AfterKill {
                took: Some(since.elapsed()),
                // rrpipe leads its process group (see common::run).
                left: live_group_members(rrpipe_pid),
            };
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    AfterKill::default()
}

/// Checks a recording whose program was killed by SIGKILL, and its replay:
/// `what` describes the recording for messages. Returns whether the event
/// before the death is a stretch of buffered calls (flushed at the exit
/// stop).
fn check_killed_recording(
    trace: &Path,
    rec: &Run,
    after: &AfterKill,
    what: &str,
    replay_flags: &[&str],
) -> bool {
    let describe = rec.describe(what);
    assert!(
        after.took.is_some_and(|t| t < END_LIMIT),
        "rrpipe went on for {:?} after the kill (limit {END_LIMIT:?})\n{describe}",
        after.took
    );
    assert!(
        after.left.is_empty(),
        "processes left running by rrpipe: {:?}\n{describe}",
        after.left
    );
    assert!(!rec.stderr_str().contains("panicked"), "{describe}");
    assert_eq!(
        rec.status,
        128 + libc::SIGKILL,
        "rrpipe record must exit like its killed program\n{describe}"
    );
    assert!(rec.stdout_str().starts_with("pid "), "{describe}");
    let d = dump(trace);
    let out = d.stdout_str();
    assert!(
        out.lines().any(|l| l.starts_with("# complete: yes")),
        "the trace is not complete (trace {})\n{describe}{}",
        trace.display(),
        d.describe("dump")
    );
    let mut events = out.lines().rev().filter(|l| !l.starts_with('#'));
    let last_event = events.next();
    let buffered_before = events.next().is_some_and(|l| l.contains(" buffered "));
    assert!(
        last_event.is_some_and(|l| l.contains("exit") && l.contains("killed by SIGKILL")),
        "the trace does not end with the program's death by SIGKILL: {last_event:?} (trace {})\n{describe}",
        trace.display()
    );
    let rep = replay_with(trace, replay_flags);
    let both = format!(
        "trace: {}\n{describe}{}",
        trace.display(),
        rep.describe("replay")
    );
    assert!(!rep.stderr_str().contains("panicked"), "{both}");
    assert_eq!(
        rep.status,
        128 + libc::SIGKILL,
        "the replay must end as the recording did\n{both}"
    );
    assert!(
        rep.stdout == rec.stdout,
        "replay stdout differs from the recording ({})\n{both}",
        first_difference(&rec.stdout, &rep.stdout)
    );
    buffered_before
}

/// The delay before the `i`th kill: spread over 0-49 ms.
fn delay(i: u64) -> Duration {
    Duration::from_millis((i * 17) % 50)
}

/// Records `killed_from_outside ARGS` `KILLS` times with rrpipe's `flags`
/// (given to the replay too), killing the program (SIGKILL from this test)
/// at varying delays after it started its loop.
fn kill_from_outside(mode: Buffering, args: &[&str], flags: &[&str]) {
    let bin = compile_c_threads("killed_from_outside");
    let mut argv = vec![bin.to_str().unwrap()];
    argv.extend_from_slice(args);
    let mut buffered_tails = 0;
    for i in 0..KILLS {
        let trace = fresh_trace_path();
        let mut after = AfterKill::default();
        let cmd = record_cmd(mode, flags, &trace, &argv);
        let rec = run_with_first_line(cmd, |line, rrpipe_pid| {
            let program = pid_from_line(line);
            std::thread::sleep(delay(i));
            send_signal(program, libc::SIGKILL);
            after = watch_end(rrpipe_pid, Instant::now());
        });
        let what = format!("record ({mode}, kill {i} after {:?})", delay(i));
        if check_killed_recording(&trace, &rec, &after, &what, flags) {
            buffered_tails += 1;
        }
    }
    if mode == Buffering::On && args.is_empty() {
        // The kill lands among buffered calls a third to half the time: those
        // made since the last stop are in the trace, before the death.
        assert!(
            buffered_tails > 0,
            "no trace of {KILLS} has the buffered calls made before the kill"
        );
    }
}

both_modes!(
    killed_from_outside,
    killed_from_outside_with_threads,
    killed_from_outside_checksummed
);

fn killed_from_outside(mode: Buffering) {
    kill_from_outside(mode, &[], &[]);
}

fn killed_from_outside_with_threads(mode: Buffering) {
    kill_from_outside(mode, &["threads"], &[]);
}

/// With checksums of the memory at every syscall, compared in replay: the
/// memory a task killed from outside leaves at its death (it ran on after
/// its last event, to wherever the kill found it) is no state replay can
/// reach, so the events reported at the death carry `flags::AT_DEATH` and
/// are not compared; every earlier one is.
fn killed_from_outside_checksummed(mode: Buffering) {
    kill_from_outside(mode, &["threads"], &["--checksum=on-all-events"]);
}

both_modes!(second_sigterm_kills_the_program);
fn second_sigterm_kills_the_program(mode: Buffering) {
    // The program ignores SIGTERM: the first one sent to rrpipe alone is
    // passed on and changes nothing; the second makes rrpipe kill it.
    let bin = compile_c_threads("killed_from_outside");
    let argv = [bin.to_str().unwrap(), "ignore"];
    for i in 0..KILLS / 2 {
        let trace = fresh_trace_path();
        let mut after = AfterKill::default();
        let mut alive_after_first = false;
        let rec = record_with_first_line(mode, &trace, &argv, |_, rrpipe_pid| {
            send_signal(rrpipe_pid, libc::SIGTERM);
            std::thread::sleep(Duration::from_millis(20) + delay(i));
            alive_after_first = !exited_unreaped(rrpipe_pid);
            send_signal(rrpipe_pid, libc::SIGTERM);
            after = watch_end(rrpipe_pid, Instant::now());
        });
        let what = format!("record ({mode}, second SIGTERM {i})");
        assert!(
            alive_after_first,
            "the first SIGTERM ended the recording\n{}",
            rec.describe(&what)
        );
        assert!(
            rec.stderr_str()
                .contains("interrupted again: killing the recorded program"),
            "{}",
            rec.describe(&what)
        );
        check_killed_recording(&trace, &rec, &after, &what, &[]);
    }
}
