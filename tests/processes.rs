//! Multi-process programs (issue 3): fork, vfork, posix_spawn, exec, wait,
//! pipes and sockets between processes, a shell pipeline and a make build.
//! Each is recorded and replayed, and the replay must print exactly what
//! was recorded (stdout, stderr, exit status) in less than ten times the
//! native run time (at least half a second is granted).
//!
//! Where the output does not depend on pids, time or scheduling, the
//! recording is also compared with a native run.

mod common;

use std::path::Path;

use common::*;

/// Records, replays and times a C program from tests/c that checks itself
/// (exit 0, no "FAIL" line, "ALL OK"), and compares the recording with a
/// native run when `deterministic`.
fn self_checking(mode: Buffering, name: &str, args: &[&str], deterministic: bool) -> Recorded {
    let _serial = serial();
    let bin = compile_c_threads(name);
    let mut argv = vec![bin.to_str().unwrap()];
    argv.extend_from_slice(args);
    let (r, nat) = assert_replays_identically_within(mode, &argv, None);
    r.assert_status(0);
    r.assert_self_checks_pass();
    r.assert_stdout_contains("ALL OK\n");
    if deterministic {
        r.assert_record_matches_native(&nat, true);
    }
    r
}

both_modes!(sh_pipeline_and_pid);
fn sh_pipeline_and_pid(mode: Buffering) {
    let _serial = serial();
    let dir = scratch_dir("sh-ls");
    for name in ["a", "b", "c", "d", "e"] {
        std::fs::write(dir.join(name), name).unwrap();
    }
    let argv = ["/bin/sh", "-c", "ls | wc -l; echo $$"];
    let trace = fresh_trace_path();
    let mut cmd = record_cmd(mode, &[], &trace, &argv);
    cmd.current_dir(&dir);
    let rec = run(cmd, None);
    let mut nat_cmd = std::process::Command::new(argv[0]);
    nat_cmd.args(&argv[1..]).current_dir(&dir);
    let (nat, native_time) = timed(|| run(nat_cmd, None));
    // Replay from another directory: what ls saw comes from the trace.
    let (rep, replay_time) = replay_timed(&trace);
    assert_replay_matches(&trace, &rec, &rep);
    let r = Recorded {
        mode,
        trace,
        record: rec,
        replay: rep,
    };
    r.assert_status(0);
    let out = r.record.stdout_str();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "two lines expected\n{}", r.describe());
    assert_eq!(lines[0].trim(), "5", "ls | wc -l\n{}", r.describe());
    assert!(
        lines[1].parse::<u32>().is_ok_and(|p| p > 1),
        "echo $$ must print a pid\n{}",
        r.describe()
    );
    assert_eq!(
        nat.stdout_str().lines().next().map(str::trim),
        Some("5"),
        "{}",
        nat.describe("native")
    );
    assert_replay_within(native_time, replay_time);
}

/// Copies tests/c/make_project into a fresh directory.
fn make_project_copy(label: &str) -> std::path::PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/c/make_project");
    let dir = scratch_dir(label);
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    dir
}

/// What make's output says, with the project directory spelled `DIR`.
fn without_dir(out: &str, dir: &Path) -> String {
    out.replace(dir.to_str().unwrap(), "DIR")
}

const BUILD_OUTPUTS: [&str; 4] = ["app", "main.o", "calc.o", "text.o"];

both_modes!(make_builds_a_small_c_project);
fn make_builds_a_small_c_project(mode: Buffering) {
    let _serial = serial();
    let dir = make_project_copy("make-rec");
    let trace = fresh_trace_path();
    // A make that runs under cargo must not join cargo's jobserver.
    let mut cmd = record_cmd(
        mode,
        &[],
        &trace,
        &["/usr/bin/make", "-C", dir.to_str().unwrap()],
    );
    for v in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CARGO_MAKEFLAGS"] {
        cmd.env_remove(v);
    }
    let rec = run(cmd, None);
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    for f in BUILD_OUTPUTS {
        assert!(
            dir.join(f).exists(),
            "make under recording did not build {f}\n{}",
            rec.describe("record")
        );
    }

    // The same build natively, in another copy.
    let native_dir = make_project_copy("make-native");
    let mut nat_cmd = std::process::Command::new("/usr/bin/make");
    for v in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CARGO_MAKEFLAGS"] {
        nat_cmd.env_remove(v);
    }
    nat_cmd.arg("-C").arg(&native_dir);
    let (nat, native_time) = timed(|| run(nat_cmd, None));
    assert_eq!(nat.status, 0, "{}", nat.describe("native make"));

    // Replay must not build anything again.
    for f in BUILD_OUTPUTS {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    let (rep, replay_time) = replay_timed(&trace);
    assert_replay_matches(&trace, &rec, &rep);
    for f in BUILD_OUTPUTS {
        assert!(
            !dir.join(f).exists(),
            "replay re-performed the build: {f} is back"
        );
    }
    let r = Recorded {
        mode,
        trace,
        record: rec,
        replay: rep,
    };
    r.assert_stdout_contains("gcc -O1 -g -Wall -c -o calc.o calc.c\n");
    r.assert_stdout_contains("BUILT BY MAKE: fib(0..11) sums to 232\n");
    assert_eq!(
        without_dir(&r.record.stdout_str(), &dir),
        without_dir(&nat.stdout_str(), &native_dir),
        "recording changed make's output\n{}{}",
        nat.describe("native"),
        r.describe()
    );
    assert_replay_within(native_time, replay_time);
}

both_modes!(fork_wait);
fn fork_wait(mode: Buffering) {
    let r = self_checking(mode, "fork_wait", &[], true);
    r.assert_stdout_contains("child 0: getppid()==parent: yes, getpid()!=parent: yes\n");
    r.assert_stdout_contains("child 5: exited=1 code=14 (expected 14)\n");
    r.assert_stdout_contains("victim: signaled=1 sig=15\n");
}

both_modes!(vfork_exec);
fn vfork_exec(mode: Buffering) {
    let r = self_checking(mode, "vfork_exec", &[], true);
    r.assert_stdout_contains("hello from /bin/echo after vfork\n");
    r.assert_stdout_contains("store by the vfork child seen by the parent: 42\n");
}

both_modes!(posix_spawn);
fn posix_spawn(mode: Buffering) {
    let r = self_checking(mode, "posix_spawn", &[], true);
    r.assert_stdout_contains("hello from posix_spawn\nspawned echo: exited=1 code=0\n");
    r.assert_stdout_contains("parent read 15 bytes: through a pipe\n");
}

both_modes!(zombie_reaped_later);
fn zombie_reaped_later(mode: Buffering) {
    let r = self_checking(mode, "zombie_reaped_later", &[], true);
    r.assert_stdout_contains("child state before reaping: Z\n");
    r.assert_stdout_contains("SIGCHLD handled: 1, nanosleep interrupted: yes\n");
    r.assert_stdout_contains("waitpid -> child: yes, exited=1 code=5\n");
}

both_modes!(pipe_between_processes);
fn pipe_between_processes(mode: Buffering) {
    let r = self_checking(mode, "pipe_between_processes", &[], true);
    r.assert_stdout_contains("read 65536 bytes, fnv1a ");
}

both_modes!(epoll_socketpair);
fn epoll_socketpair(mode: Buffering) {
    let r = self_checking(mode, "epoll_socketpair", &[], true);
    r.assert_stdout_contains("process: 20/20 replies correct\n");
    r.assert_stdout_contains("thread: 20/20 replies correct\n");
    r.assert_stdout_contains("EPOLLRDHUP: yes\n");
}

both_modes!(unsupported_syscall_in_forked_child);
fn unsupported_syscall_in_forked_child(mode: Buffering) {
    let _serial = serial();
    let bin = compile_c_threads("unsupported_in_child");
    assert_unsupported_syscall_stops(
        mode,
        &bin,
        "parent: before fork\nchild: before the unsupported syscall\n",
        "the child must be stopped before the syscall runs, the parent before it reaps it",
    );
}

both_modes!(wait_keeps_recording_processes_that_outlive_the_first);
fn wait_keeps_recording_processes_that_outlive_the_first(mode: Buffering) {
    let bin = compile_c("outlive_parent");
    let argv = [bin.to_str().unwrap()];

    let trace = fresh_trace_path();
    let rec = record_with_args(mode, &["--wait"], &trace, &argv);
    assert_eq!(rec.status, 7, "{}", rec.describe("record --wait"));
    assert_eq!(
        rec.stdout_str(),
        "parent exits\nchild outlived its parent\n",
        "{}",
        rec.describe("record --wait")
    );
    let rep = replay(&trace);
    assert_replay_matches(&trace, &rec, &rep);

    // Without --wait the recording ends with the first process.
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, &argv, None);
    assert_eq!(rec.status, 7, "{}", rec.describe("record"));
    assert_eq!(
        rec.stdout_str(),
        "parent exits\n",
        "{}",
        rec.describe("record")
    );
    let rep = replay(&trace);
    assert_replay_matches(&trace, &rec, &rep);
}

both_modes!(sched_getaffinity_reports_the_native_cpus);
fn sched_getaffinity_reports_the_native_cpus(mode: Buffering) {
    // rrpipe pins the program to one CPU; the program must not notice.
    let native = native(&["/usr/bin/nproc"], None);
    let r = assert_replays_identically(mode, &["/usr/bin/nproc"], None);
    r.assert_status(0);
    assert_eq!(
        r.record.stdout_str(),
        native.stdout_str(),
        "nproc under rrpipe differs from nproc alone"
    );
}
