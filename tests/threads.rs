//! Multi-threaded programs (issue 3): pthread synchronisation, data races,
//! a main thread that leaves first, exec from a thread, Python threads.
//! Each is recorded and replayed, and the replay must print exactly what
//! was recorded (stdout, stderr, exit status) in less than ten times the
//! native run time (at least half a second is granted). Racy programs
//! print something different at each native run: only the replay is
//! held to the recording.

mod common;

use common::*;

/// Records, replays and times `tests/c/<name>.c` built with -pthread;
/// returns the recording and the native run.
fn threaded(mode: Buffering, name: &str) -> (Recorded, Run) {
    let bin = compile_c_threads(name);
    assert_replays_identically_within(mode, &[bin.to_str().unwrap()], None)
}

both_modes!(python_threads_append_racily);
fn python_threads_append_racily(mode: Buffering) {
    let _serial = serial();
    // Four threads released together by a barrier append to one list; a
    // tiny switch interval makes the GIL change hands often, so the order
    // differs between native runs.
    let script = "\
import sys, threading
sys.setswitchinterval(1e-5)
out = []
go = threading.Barrier(4)
def work(n):
    go.wait()
    for i in range(500):
        out.append(n)
        sum(range(200))
ts = [threading.Thread(target=work, args=(n,)) for n in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print(len(out), [out.count(n) for n in range(4)])
print(''.join(map(str, out)))
print('switches', sum(1 for a, b in zip(out, out[1:]) if a != b))
";
    let (r, nat) =
        assert_replays_identically_within(mode, &["/usr/bin/python3", "-c", script], None);
    r.assert_status(0);
    assert_eq!(nat.status, 0, "{}", nat.describe("native"));
    let out = r.record.stdout_str();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.describe());
    assert_eq!(lines[0], "2000 [500, 500, 500, 500]", "{}", r.describe());
    assert_eq!(lines[1].len(), 2000, "{}", r.describe());
    assert!(lines[2].starts_with("switches "), "{}", r.describe());
}

both_modes!(pthreads_sync);
fn pthreads_sync(mode: Buffering) {
    let _serial = serial();
    let (r, nat) = threaded(mode, "pthreads_sync");
    r.assert_status(0);
    r.assert_self_checks_pass();
    r.assert_stdout_contains("mutex sum: 100000 (expected 100000)\n");
    r.assert_stdout_contains("rwlock: 200 reader checks, 0 wrong sums\n");
    r.assert_stdout_contains("ALL OK\n");
    // Whatever the interleaving, the results are the same.
    r.assert_record_matches_native(&nat, true);
}

both_modes!(racy_counter);
fn racy_counter(mode: Buffering) {
    let _serial = serial();
    let (r, nat) = threaded(mode, "racy_counter");
    r.assert_status(0);
    r.assert_self_checks_pass();
    r.assert_stdout_contains(" of 16000000\n");
    assert_eq!(nat.status, 0, "{}", nat.describe("native"));
    // The total is whatever the recording saw; a second replay agrees too.
    let again = replay(&r.trace);
    assert_replay_matches(&r.trace, &r.record, &again);
}

both_modes!(thread_exit_before_main);
fn thread_exit_before_main(mode: Buffering) {
    let _serial = serial();
    let (r, nat) = threaded(mode, "thread_exit_before_main");
    r.assert_status(3);
    assert_eq!(
        r.record.stdout_str(),
        "main: calling pthread_exit\n\
         worker: still running after main called pthread_exit\n\
         worker: main thread state: Z\n\
         worker: getpid()==main tid: yes, gettid()!=getpid(): yes\n\
         worker: exiting with 3\n",
        "{}",
        r.describe()
    );
    r.assert_record_matches_native(&nat, true);
}

both_modes!(exec_from_thread);
fn exec_from_thread(mode: Buffering) {
    let _serial = serial();
    let (r, nat) = threaded(mode, "exec_from_thread");
    r.assert_status(0);
    assert_eq!(
        r.record.stdout_str(),
        "main: starting the worker\n\
         worker: calling execve from a non-main thread (tid!=pid: yes)\n\
         echo ran, exec'd from a thread\n",
        "{}",
        r.describe()
    );
    r.assert_record_matches_native(&nat, true);
}

both_modes!(unsupported_syscall_in_thread);
fn unsupported_syscall_in_thread(mode: Buffering) {
    let _serial = serial();
    let bin = compile_c_threads("unsupported_in_thread");
    assert_unsupported_syscall_stops(
        mode,
        &bin,
        "main: before pthread_create\nthread: before the unsupported syscall\n",
        "the thread must be stopped before the syscall runs",
    );
}
