//! Signals (issue 3): synchronous faults recovered with siglongjmp,
//! signals sent to oneself and from outside, timers interrupting loops that
//! make no syscall, a thread spinning on another's flag, and SIGINT sent to
//! `rrpipe record` itself. Each is recorded and replayed, and the replay
//! must print exactly what was recorded (stdout, stderr, exit status) in
//! less than ten times the native run time (at least half a second is
//! granted). Where the instant of a signal is a matter of timing (alarm,
//! setitimer, a spinning thread), the output differs between recordings
//! and every replay of one recording must print the same.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Records, replays and times a C program from tests/c that checks itself
/// (exit 0, no "FAIL" line, "ALL OK"); returns the recording and the
/// native run.
fn self_checking(mode: Buffering, name: &str) -> (Recorded, Run) {
    let bin = compile_c_threads(name);
    let (r, nat) = assert_replays_identically_within(mode, &[bin.to_str().unwrap()], None);
    r.assert_status(0);
    r.assert_self_checks_pass();
    r.assert_stdout_contains("ALL OK\n");
    (r, nat)
}

/// The value after `prefix` on the line of `out` that starts with it.
fn value_of<'a>(out: &'a str, prefix: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(str::trim)
}

both_modes!(sigsegv_siglongjmp);
fn sigsegv_siglongjmp(mode: Buffering) {
    let _serial = serial();
    let (r, nat) = self_checking(mode, "sigsegv_siglongjmp");
    r.assert_stdout_contains("3: read of a PROT_NONE page: recovered, fault #4, SEGV_ACCERR");
    r.assert_stdout_contains("stack overflow: recovered, fault #6, on the alternate stack: yes\n");
    r.assert_stdout_contains("faults: 6\n");
    r.assert_record_matches_native(&nat, true);
}

both_modes!(sigfpe);
fn sigfpe(mode: Buffering) {
    let _serial = serial();
    let (r, nat) = self_checking(mode, "sigfpe");
    r.assert_stdout_contains("case 5: SIGFPE #6 recovered, si_code FPE_INTDIV\n");
    r.assert_stdout_contains("84 / 2 = 42, traps: 6\n");
    r.assert_record_matches_native(&nat, true);
}

both_modes!(sigusr1_self);
fn sigusr1_self(mode: Buffering) {
    let _serial = serial();
    let (r, nat) = self_checking(mode, "sigusr1_self");
    r.assert_stdout_contains("raise: handled 1 time(s), si_signo=SIGUSR1, si_code=SI_TKILL");
    r.assert_stdout_contains("sigqueue: handled 3 time(s), si_signo=SIGUSR1, si_code=SI_QUEUE");
    r.assert_stdout_contains("value=1234");
    r.assert_stdout_contains("blocked: pending=yes, handled so far 3\n");
    r.assert_record_matches_native(&nat, true);
}

/// How long the tests that signal a running program wait after its first
/// line, so that it is well into its loop.
const SETTLE: Duration = Duration::from_millis(300);

both_modes!(sigusr1_from_outside);
fn sigusr1_from_outside(mode: Buffering) {
    let _serial = serial();
    let bin = compile_c_threads("sigusr1_from_outside");
    let argv = [bin.to_str().unwrap()];
    let me = std::process::id();

    let trace = fresh_trace_path();
    let rec = record_with_first_line(mode, &trace, &argv, |line, _rrpipe| {
        let pid = pid_from_line(line);
        std::thread::sleep(SETTLE);
        send_signal(pid, libc::SIGUSR1);
    });
    let (nat, native_time) = timed(|| {
        native_with_first_line(&argv, |line, pid| {
            assert_eq!(pid_from_line(line), pid);
            std::thread::sleep(SETTLE);
            send_signal(pid, libc::SIGUSR1);
        })
    });
    assert_eq!(nat.status, 0, "{}", nat.describe("native"));
    let (rep, replay_time) = replay_timed(&trace);
    assert_replay_matches(&trace, &rec, &rep);
    let r = Recorded {
        mode,
        trace,
        record: rec,
        replay: rep,
    };
    r.assert_status(0);
    r.assert_stdout_contains("SIGUSR1 after ");
    r.assert_stdout_contains("si_code=SI_USER, sender is another process: yes\n");
    // The sender is this test process, in the recording (and so in replay).
    r.assert_stdout_contains(&format!("sender pid {me}\n"));
    let sleeps: u32 = value_of(&r.record.stdout_str(), "SIGUSR1 after ")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no sleep count\n{}", r.describe()));
    assert!(
        sleeps < 1000,
        "the signal came only at the timeout\n{}",
        r.describe()
    );
    assert_replay_within(native_time, replay_time);
}

both_modes!(alarm_spin);
fn alarm_spin(mode: Buffering) {
    let _serial = serial();
    let bin = compile_c_threads("alarm_spin");
    let argv = [bin.to_str().unwrap()];
    let (nat, native_time) = native_timed(&argv, None);
    assert_eq!(nat.status, 0, "{}", nat.describe("native"));

    // Two recordings: the counter at SIGALRM is a matter of timing, so they
    // differ; each replays its own counter, every time.
    let mut counters = Vec::new();
    for _ in 0..2 {
        let trace = fresh_trace_path();
        let rec = record(mode, &trace, &argv, None);
        for _ in 0..2 {
            let (rep, replay_time) = replay_timed(&trace);
            assert_replay_matches(&trace, &rec, &rep);
            assert_replay_within(native_time, replay_time);
        }
        let r = Recorded {
            mode,
            trace: trace.clone(),
            record: rec.clone(),
            replay: rec,
        };
        r.assert_status(0);
        r.assert_self_checks_pass();
        r.assert_stdout_contains("ALL OK\n");
        let counter: u64 = value_of(&r.record.stdout_str(), "counter:")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no counter\n{}", r.describe()));
        counters.push((counter, trace));
    }
    assert_ne!(
        counters[0].0,
        counters[1].0,
        "two recordings stopped the loop at the same iteration ({}): is SIGALRM delivered \
         at a fixed point instead of when it fires? traces: {} {}",
        counters[0].0,
        counters[0].1.display(),
        counters[1].1.display()
    );
}

both_modes!(setitimer_compute);
fn setitimer_compute(mode: Buffering) {
    let _serial = serial();
    let (r, _nat) = self_checking(mode, "setitimer_compute");
    r.assert_stdout_contains("ticks: 20\n");
    r.assert_stdout_contains("tick 20 at iteration ");
    // Another replay of the same trace: the same iterations again.
    let again = replay(&r.trace);
    assert_replay_matches(&r.trace, &r.record, &again);
}

both_modes!(spin_flag_thread);
fn spin_flag_thread(mode: Buffering) {
    let _serial = serial();
    let (r, nat) = self_checking(mode, "spin_flag_thread");
    assert_eq!(nat.status, 0, "{}", nat.describe("native"));
    // The computed result does not depend on the schedule; the spin count does.
    let out = r.record.stdout_str();
    let nat_out = nat.stdout_str();
    assert_eq!(
        value_of(&out, "result:"),
        value_of(&nat_out, "result:"),
        "{}{}",
        nat.describe("native"),
        r.describe()
    );
    assert!(value_of(&out, "spins:").is_some(), "{}", r.describe());
}

both_modes!(sigint_record);
fn sigint_record(mode: Buffering) {
    let _serial = serial();
    let bin = compile_c_threads("sigint_loop");
    let argv = [bin.to_str().unwrap()];

    // SIGINT to rrpipe itself (not to its process group) while the program
    // prints a line every 10 ms for 20 s.
    let trace = fresh_trace_path();
    let mut sent_at = None;
    let rec = record_with_first_line(mode, &trace, &argv, |line, rrpipe_pid| {
        pid_from_line(line);
        std::thread::sleep(SETTLE);
        send_signal(rrpipe_pid, libc::SIGINT);
        sent_at = Some(Instant::now());
    });
    let stopped_after = sent_at.expect("the signal was sent").elapsed();
    assert!(
        stopped_after < Duration::from_secs(10),
        "rrpipe record went on for {stopped_after:?} after SIGINT\n{}",
        rec.describe("record")
    );
    assert!(
        !rec.stderr_str().contains("panicked"),
        "{}",
        rec.describe("record")
    );
    let out = rec.stdout_str();
    assert!(
        !out.contains("finished"),
        "the program ran to its end: SIGINT was ignored\n{}",
        rec.describe("record")
    );
    // The output up to the interruption: the pid, then lines 0, 1, 2...
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.len() >= 2 && lines[0].starts_with("pid "),
        "expected the pid and at least one line before the interruption\n{}",
        rec.describe("record")
    );
    for (i, l) in lines[1..].iter().enumerate() {
        assert_eq!(
            *l,
            format!("line {i}"),
            "garbled output\n{}",
            rec.describe("record")
        );
    }
    assert!(
        out.ends_with('\n'),
        "a partial line\n{}",
        rec.describe("record")
    );

    // The same program natively, interrupted after as long.
    let (nat, native_time) = timed(|| {
        native_with_first_line(&argv, |_, pid| {
            std::thread::sleep(SETTLE);
            send_signal(pid, libc::SIGINT);
        })
    });
    assert_eq!(nat.status, 128 + libc::SIGINT, "{}", nat.describe("native"));

    // The partial trace replays: the same output, the same status.
    let (rep, replay_time) = replay_timed(&trace);
    let what = format!(
        "trace: {}\n{}{}",
        trace.display(),
        rec.describe("record"),
        rep.describe("replay")
    );
    assert!(
        rep.stdout == rec.stdout,
        "replay stdout differs from the recording ({})\n{what}",
        first_difference(&rec.stdout, &rep.stdout)
    );
    assert_eq!(rep.status, rec.status, "exit status\n{what}");
    assert!(!rep.stderr_str().contains("panicked"), "{what}");
    assert_replay_within(native_time, replay_time);
}

both_modes!(signals_while_threads_start);
/// A storm of SIGUSR1 from outside while the program starts and joins 150
/// threads, one after another. Signals come while rrpipe runs syscalls of
/// its own in a new thread (sharing its syscall buffer with the tracer):
/// the thread must go on exactly as it would have (its registers were
/// left those of rrpipe's call, and replay diverged at the thread's next
/// buffered call). A signal for the process wakes the main thread from its
/// join, then another thread takes it: the kernel restarts the join's
/// futex, which as far as the program can tell never returned (its
/// interrupted return was recorded after the restarted one, and replay
/// diverged). Replay must print what the recording did.
fn signals_while_threads_start(mode: Buffering) {
    let bin = compile_c_threads("signals_at_thread_starts");
    let trace = fresh_trace_path();
    let cmd = record_cmd(mode, &[], &trace, &[bin.to_str().unwrap()]);
    let mut sent = 0u64;
    let rec = run_with_first_line(cmd, |line, _| {
        sent = signal_storm(pid_from_line(line), libc::SIGUSR1, Duration::from_secs(20));
    });
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    assert!(
        rec.stdout_str().contains("150 threads ran\n"),
        "{}",
        rec.describe("record")
    );
    assert!(sent > 0, "no signal reached the program");
    let rep = replay(&trace);
    assert_replay_matches(&trace, &rec, &rep);
}

/// Sends `sig` to process `pid` as fast as possible until it ends (or
/// `limit` passes); how many were sent. Through a pidfd, so that a pid
/// reused after the program's end gets nothing.
fn signal_storm(pid: libc::pid_t, sig: libc::c_int, limit: Duration) -> u64 {
    // SAFETY: plain syscalls on our own descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < limit {
        // SAFETY: as above.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r != 0 {
            break; // ESRCH: it has ended
        }
        sent += 1;
        std::thread::sleep(Duration::from_micros(20));
    }
    // SAFETY: our descriptor.
    unsafe { libc::close(fd) };
    sent
}
