//! Record a program, replay the trace, and demand the very same stdout,
//! stderr and exit status. One test per C program in tests/c/ and a few
//! everyday commands.
//!
//! Where a program's output does not depend on time, addresses or
//! randomness, the recording is also compared with a native run: recording
//! must be transparent to the program.

mod common;

use common::*;

/// Records and replays a C test program that checks itself: exit 0, no
/// "FAIL" line, "ALL OK" printed.
fn self_checking(mode: Buffering, name: &str, args: &[&str]) -> Recorded {
    let bin = compile_c(name);
    let mut argv = vec![bin.to_str().unwrap()];
    argv.extend_from_slice(args);
    let r = assert_replays_identically(mode, &argv, None);
    r.assert_status(0);
    r.assert_self_checks_pass();
    r.assert_stdout_contains("ALL OK\n");
    r
}

both_modes!(read_write);
fn read_write(mode: Buffering) {
    let bin = compile_c("read_write");
    let dir = scratch_dir("rw");
    let argv = [bin.to_str().unwrap(), dir.to_str().unwrap()];
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, &argv, None);
    // A file where the program creates, truncates, writes and finally
    // deletes its own: replay must not touch it.
    let sentinel = dir.join("data.bin");
    std::fs::write(&sentinel, "sentinel").unwrap();
    let rep = replay(&trace);
    assert_replay_matches(&trace, &rec, &rep);
    assert_eq!(
        std::fs::read_to_string(&sentinel).ok().as_deref(),
        Some("sentinel"),
        "replay re-performed the program's file operations"
    );
    let r = Recorded {
        mode,
        trace,
        record: rec,
        replay: rep,
    };
    r.assert_status(0);
    r.assert_self_checks_pass();
    r.assert_stdout_contains("ALL OK\n");
    // Everything it prints is deterministic: the recording must not change it.
    let other = scratch_dir("rw-native");
    let native = native(&[bin.to_str().unwrap(), other.to_str().unwrap()], None);
    r.assert_record_matches_native(&native, true);
}

both_modes!(read_write_in_mkdtemp_dir);
fn read_write_in_mkdtemp_dir(mode: Buffering) {
    self_checking(mode, "read_write", &[]);
}

both_modes!(open_stat);
fn open_stat(mode: Buffering) {
    let dir = scratch_dir("stat");
    let r = self_checking(mode, "open_stat", &[dir.to_str().unwrap()]);
    r.assert_stdout_contains("entries: 5\n");
    for name in [
        "alpha.txt",
        "bravo.bin",
        "charlie.txt",
        "delta.d",
        "echo.link",
    ] {
        r.assert_stdout_contains(&format!("  {name}\n"));
    }
}

both_modes!(mmap_file);
fn mmap_file(mode: Buffering) {
    let dir = scratch_dir("mmap");
    let r = self_checking(mode, "mmap_file", &[dir.to_str().unwrap()]);
    r.assert_stdout_contains("private mapping at ");
    r.assert_stdout_contains("shared mapping at ");
}

both_modes!(mmap_anon);
fn mmap_anon(mode: Buffering) {
    self_checking(mode, "mmap_anon", &[]);
}

both_modes!(mprotect_munmap_mremap);
fn mprotect_munmap_mremap(mode: Buffering) {
    let r = self_checking(mode, "mprotect_munmap_mremap", &[]);
    r.assert_stdout_contains("(moved: yes)");
}

both_modes!(brk_malloc);
fn brk_malloc(mode: Buffering) {
    self_checking(mode, "brk_malloc", &[]);
}

both_modes!(vdso_time);
fn vdso_time(mode: Buffering) {
    let r = self_checking(mode, "vdso_time", &[]);
    r.assert_stdout_contains("round 2 gettimeofday: 0 ");
}

both_modes!(rdtsc);
fn rdtsc(mode: Buffering) {
    let r = self_checking(mode, "rdtsc", &[]);
    r.assert_stdout_contains("tsc[7] = ");
}

both_modes!(cpuid_is_trapped_while_the_program_starts);
fn cpuid_is_trapped_while_the_program_starts(mode: Buffering) {
    let bin = compile_c("cpuid");
    let r = assert_replays_identically(mode, &[bin.to_str().unwrap()], None);
    let native = native(&[bin.to_str().unwrap()], None);
    let line = |out: &str, prefix: &str| {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_string)
    };
    // Where the CPU cannot trap cpuid, glibc sees the machine's features.
    if cpuid_faulting() {
        r.assert_stdout_contains("glibc: xsave 0 osxsave 0 rtm 0\n");
    }
    // Once the program runs, cpuid is the machine's again.
    for prefix in ["max leaf", "xsave"] {
        assert_eq!(
            line(&r.record.stdout_str(), prefix),
            line(&native.stdout_str(), prefix),
            "{}",
            r.describe()
        );
    }
}

both_modes!(getrandom);
fn getrandom(mode: Buffering) {
    let r = self_checking(mode, "getrandom", &[]);
    r.assert_stdout_contains("getrandom -> 32\n");
    r.assert_stdout_contains("read /dev/urandom -> 32\n");
    r.assert_stdout_contains("AT_RANDOM:");
}

both_modes!(uname);
fn uname(mode: Buffering) {
    let r = self_checking(mode, "uname", &[]);
    // The utsname fields do not change between runs on one machine.
    let bin = compile_c("uname");
    let native = native(&[bin.to_str().unwrap()], None);
    assert_eq!(native.status, 0, "{}", native.describe("native"));
    let fields = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| {
                !l.starts_with("uptime")
                    && !l.contains("ram")
                    && !l.starts_with("loads")
                    && !l.starts_with("procs")
            })
            .map(String::from)
            .collect()
    };
    assert_eq!(
        fields(&r.record.stdout_str()),
        fields(&native.stdout_str()),
        "utsname fields differ under recording\n{}",
        r.describe()
    );
}

both_modes!(winsize);
fn winsize(mode: Buffering) {
    let r = self_checking(mode, "winsize", &[]);
    // stdin is /dev/null, stdout and stderr pipes: ENOTTY everywhere, as natively.
    r.assert_stdout_contains("fd 1: TIOCGWINSZ -> -1 errno=25");
    let bin = compile_c("winsize");
    let native = native(&[bin.to_str().unwrap()], None);
    r.assert_record_matches_native(&native, true);
}

both_modes!(exit_code);
fn exit_code(mode: Buffering) {
    let bin = compile_c("exit_code");
    let r = assert_replays_identically(mode, &[bin.to_str().unwrap()], None);
    r.assert_status(42);
    assert_eq!(r.record.stdout_str(), "about to exit with 42\n");
    assert_eq!(r.record.stderr_str(), "a line on stderr\n");
    let native = native(&[bin.to_str().unwrap()], None);
    r.assert_record_matches_native(&native, true);
}

both_modes!(segv);
fn segv(mode: Buffering) {
    let bin = compile_c("segv");
    let r = assert_replays_identically(mode, &[bin.to_str().unwrap()], None);
    r.assert_status(128 + libc::SIGSEGV);
    assert_eq!(r.replay.status, 128 + libc::SIGSEGV, "{}", r.describe());
    assert_eq!(
        r.record.stdout_str(),
        "before the crash\n",
        "{}",
        r.describe()
    );
    let native = native(&[bin.to_str().unwrap()], None);
    r.assert_record_matches_native(&native, false);
}

both_modes!(stdin_echo);
fn stdin_echo(mode: Buffering) {
    let bin = compile_c("stdin_echo");
    // More than a pipe buffer, so that the program reads several times.
    let mut input = Vec::new();
    for i in 0..4000 {
        input.extend_from_slice(format!("line {i}: the quick brown fox\n").as_bytes());
    }
    input.extend_from_slice(b"\x00\x01\xffbinary tail");
    let r = assert_replays_identically(mode, &[bin.to_str().unwrap()], Some(&input));
    r.assert_status(0);
    r.assert_stdout_contains(&format!("length: {}\n", input.len()));
    r.assert_stdout_contains("LINE 3999: THE QUICK BROWN FOX\n");
    let native = native(&[bin.to_str().unwrap()], Some(&input));
    r.assert_record_matches_native(&native, true);
}

both_modes!(stdin_echo_empty);
fn stdin_echo_empty(mode: Buffering) {
    let bin = compile_c("stdin_echo");
    let r = assert_replays_identically(mode, &[bin.to_str().unwrap()], Some(b""));
    r.assert_status(0);
    r.assert_stdout_contains("length: 0\n");
}

both_modes!(getdents_many);
fn getdents_many(mode: Buffering) {
    let bin = compile_c("getdents_many");
    let dir = scratch_dir("dents");
    let argv = [bin.to_str().unwrap(), dir.to_str().unwrap()];
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, &argv, None);
    // Replay must neither create the 300 files nor delete what is there.
    std::fs::write(dir.join("file-with-a-longish-name-007.txt"), "sentinel").unwrap();
    let rep = replay(&trace);
    assert_replay_matches(&trace, &rec, &rep);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        left,
        vec!["file-with-a-longish-name-007.txt".to_string()],
        "replay re-performed the program's file operations"
    );
    let r = Recorded {
        mode,
        trace,
        record: rec,
        replay: rep,
    };
    r.assert_status(0);
    r.assert_self_checks_pass();
    r.assert_stdout_contains("count: 300\n");
    r.assert_stdout_contains("file-with-a-longish-name-299.txt\n");
    r.assert_stdout_contains("ALL OK\n");
    let other = scratch_dir("dents-native");
    let native = native(&[bin.to_str().unwrap(), other.to_str().unwrap()], None);
    r.assert_record_matches_native(&native, true);
}

both_modes!(pid_ids);
fn pid_ids(mode: Buffering) {
    let r = self_checking(mode, "pid_ids", &[]);
    r.assert_stdout_contains("cwd: /");
    r.assert_stdout_contains("getrlimit NOFILE -> 0 cur=");
}

both_modes!(unsupported);
fn unsupported(mode: Buffering) {
    let bin = compile_c("unsupported");
    assert_unsupported_syscall_stops(
        mode,
        &bin,
        "before the unsupported syscall\n",
        "the program must be stopped before the syscall runs",
    );
}

both_modes!(echo_hello);
fn echo_hello(mode: Buffering) {
    let r = assert_replays_identically(mode, &["/bin/echo", "hello"], None);
    r.assert_status(0);
    assert_eq!(r.record.stdout_str(), "hello\n");
    assert_eq!(r.record.stderr_str(), "");
}

both_modes!(ls_la_usr_bin);
fn ls_la_usr_bin(mode: Buffering) {
    let r = assert_replays_identically(mode, &["/usr/bin/ls", "-la", "/usr/bin"], None);
    r.assert_status(0);
    r.assert_stdout_contains(" ls\n");
    let native = native(&["/usr/bin/ls", "-la", "/usr/bin"], None);
    // Tests running alongside record programs from /usr/bin, and a trace
    // hard-links the files it saves when it may: the link counts `ls -la`
    // shows can change between the two runs. Everything else must match.
    let without_link_counts = |out: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(out)
            .lines()
            .map(|line| {
                let mut fields: Vec<&str> = line.split_whitespace().collect();
                if fields.len() > 2 {
                    fields[1] = "-";
                }
                fields.join(" ")
            })
            .collect()
    };
    assert_eq!(r.record.status, native.status, "{}", r.describe());
    assert_eq!(
        without_link_counts(&r.record.stdout),
        without_link_counts(&native.stdout),
        "recording changed stdout\n{}{}",
        native.describe("native"),
        r.describe()
    );
}

both_modes!(cat_file);
fn cat_file(mode: Buffering) {
    let dir = scratch_dir("cat");
    let file = dir.join("input.txt");
    let mut text = String::new();
    for i in 0..2000 {
        text.push_str(&format!("{i:05} some text to cat\n"));
    }
    std::fs::write(&file, &text).unwrap();
    let r = assert_replays_identically(mode, &["/usr/bin/cat", file.to_str().unwrap()], None);
    r.assert_status(0);
    assert!(r.record.stdout == text.as_bytes(), "{}", r.describe());
}

both_modes!(date_through_path);
fn date_through_path(mode: Buffering) {
    // A bare name: rrpipe looks the program up in PATH.
    let r = assert_replays_identically(mode, &["date"], None);
    r.assert_status(0);
    assert!(!r.record.stdout.is_empty(), "{}", r.describe());
}

both_modes!(python_random_time_urandom);
fn python_random_time_urandom(mode: Buffering) {
    let r = assert_replays_identically(
        mode,
        &[
            "/usr/bin/python3",
            "-c",
            "import random,time,os; print(random.random(), time.time(), os.urandom(8).hex())",
        ],
        None,
    );
    r.assert_status(0);
    let out = r.record.stdout_str();
    assert_eq!(
        out.split_whitespace().count(),
        3,
        "expected three values\n{}",
        r.describe()
    );
}
