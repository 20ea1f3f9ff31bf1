//! Syscall buffering (issue 5). Each test runs with buffering (the
//! default) and without (`--no-syscall-buffer`), as every record/replay
//! test does (see `both_modes!` in common/mod.rs):
//!
//! - a thread blocked in `read()` on a pipe whose writer is another thread
//!   of the process records and replays without deadlock (a deadlock ends
//!   at the helpers' deadline, 60 s, with "did not finish within");
//! - a program killed by SIGSEGV with records still in its buffer loses
//!   none of them: the state it computed from buffered calls is in the
//!   recorded and the replayed core file, and `rrpipe dump` lists every call;
//! - the program cannot tell it is recorded: errno, its file descriptors,
//!   its signal mask and dispositions, its thread count are the native ones;
//! - programs that bypass libc's entry points (syscall(2), a raw `syscall`
//!   instruction, a static binary) are traced as before;
//! - `-n`, `--no-syscall-buffer`, `--no_syscall_buffer` and TOML
//!   `syscall_buffer` select the mode the trace says it was recorded in,
//!   and the traces replay.

mod common;

use std::path::Path;

use common::*;
use object::read::elf::{ElfFile64, ProgramHeader};
use object::Endianness;

/// The lines of `out` that contain none of `needles`.
fn without_lines(out: &[u8], needles: &[&str]) -> String {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| !needles.iter().any(|n| l.contains(n)))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// How many events of `rrpipe dump`'s output are calls of syscall `name`
/// (`read` counts `read(...)`, not `pread64(...)` or `readv(...)`).
fn count_calls(dump: &str, name: &str) -> usize {
    let call = format!("{name}(");
    dump.lines()
        .filter(|l| l.split_whitespace().any(|w| w.starts_with(&call)))
        .count()
}

/// The events of `rrpipe dump`'s output of kind `kind` (`syscall`,
/// `buffered`, ...), one per line.
fn events_of_kind(dump: &str, kind: &str) -> String {
    dump.lines()
        .filter(|l| l.split_whitespace().nth(2) == Some(kind))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Runs `bin` natively with a fresh scratch directory (`label`) as its
/// argument, and checks it succeeded: what a recording of it is compared
/// with.
fn native_in_scratch(bin: &Path, label: &str) -> Run {
    let dir = scratch_dir(label);
    let run = native(&[bin.to_str().unwrap(), dir.to_str().unwrap()], None);
    assert_eq!(run.status, 0, "{}", run.describe("native"));
    run
}

// ---------------------------------------------------------------------------
// A blocking read whose writer is another thread (Done when, item 3).

both_modes!(pipe_read_blocked_on_a_writer_thread);
fn pipe_read_blocked_on_a_writer_thread(mode: Buffering) {
    let bin = compile_c_threads("pipe_thread_blocking");
    let argv = [bin.to_str().unwrap()];
    let r = assert_replays_identically(mode, &argv, None);
    r.assert_status(0);
    r.assert_self_checks_pass();
    r.assert_stdout_contains("first read waited for the writer: yes\n");
    r.assert_stdout_contains("message 5 from the writer thread\n");
    r.assert_stdout_contains("ping-pong: 50 rounds, 0 wrong answers\n");
    r.assert_stdout_contains("ALL OK\n");
    let native = native(&argv, None);
    r.assert_record_matches_native(&native, true);
    // A second replay of the same trace: the same schedule again.
    let again = replay(&r.trace);
    assert_replay_matches(&r.trace, &r.record, &again);
}

both_modes!(fifo_opens_wait_for_the_other_end_without_freezing);
/// Opens of named pipes that wait for the other end (a thread of the same
/// program), in both orders, a read-write open, and a non-blocking one
/// without a reader; the descriptors keep exactly the flags asked for
/// (the library opens for writing with `O_NONBLOCK` and clears it); and a
/// FIFO renamed over a path the program stat'ed as a regular file before
/// (the library's knowledge from that stat ends at the rename).
fn fifo_opens_wait_for_the_other_end_without_freezing(mode: Buffering) {
    let bin = compile_c_threads("fifo_rendezvous");
    let dir = scratch_dir("fifos");
    let argv = [bin.to_str().unwrap(), dir.to_str().unwrap()];
    let native = native(&argv, None);
    assert_eq!(native.status, 0, "{}", native.describe("native"));
    let r = assert_replays_identically(mode, &argv, None);
    r.assert_status(0);
    r.assert_stdout_contains("1: writer first: ping\n");
    r.assert_stdout_contains("2: reader first: pong\n");
    r.assert_stdout_contains("3: read-write: self\n");
    r.assert_stdout_contains("4: no reader: ENXIO\n");
    r.assert_stdout_contains("5: stat, then a FIFO renamed over: file, late\n");
    r.assert_stdout_contains("ALL OK\n");
    r.assert_record_matches_native(&native, true);
}

both_modes!(directory_streams_behave_as_libc_and_are_buffered);
/// `opendir`/`readdir`/`telldir`/`seekdir`/`rewinddir`/`readdir_r`/
/// `fdopendir`/`closedir` over 1,500 entries, with their errors: the
/// preload library implements them (libc's make their syscalls from
/// inside libc, where no wrapper sees them), so with buffering their
/// getdents are buffered.
fn directory_streams_behave_as_libc_and_are_buffered(mode: Buffering) {
    let bin = compile_c("dir_stream");
    let native = native_in_scratch(&bin, "dirs-native");
    let dir = scratch_dir("dirs");
    let argv = [bin.to_str().unwrap(), dir.to_str().unwrap()];
    let r = assert_replays_identically(mode, &argv, None);
    r.assert_status(0);
    r.assert_stdout_contains("readdir: 1502 entries\n");
    r.assert_stdout_contains("seekdir: same entry\n");
    r.assert_stdout_contains("ALL OK\n");
    r.assert_record_matches_native(&native, true);
    let listing = dump(&r.trace).stdout_str();
    let traced = count_calls(&events_of_kind(&listing, "syscall"), "getdents64");
    let buffered = count_calls(&events_of_kind(&listing, "buffered"), "getdents64");
    match mode {
        // (A call the buffer has no room left for goes traced, and the
        // stop empties the buffer: one in twenty here.)
        Buffering::On => assert!(
            buffered >= 10 && traced * 5 <= buffered,
            "getdents64: {traced} traced, {buffered} buffered (trace {})",
            r.trace.display()
        ),
        Buffering::Off => assert!(traced >= 10, "trace {}", r.trace.display()),
    }
}

both_modes!(directories_made_are_buffered_and_not_made_again);
/// `mkdir` and `mkdirat`, succeeding and failing: with buffering they are
/// buffered (`cp -r` makes one per directory), and replay, which makes no
/// directory, gives the program the recorded results.
fn directories_made_are_buffered_and_not_made_again(mode: Buffering) {
    let bin = compile_c("make_dirs");
    let native = native_in_scratch(&bin, "mkdir-native");
    let dir = scratch_dir("mkdir");
    let trace = fresh_trace_path();
    let rec = record(
        mode,
        &trace,
        &[bin.to_str().unwrap(), dir.to_str().unwrap()],
        None,
    );
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    assert_eq!(
        rec.stdout_str(),
        native.stdout_str(),
        "{}",
        rec.describe("record")
    );
    for line in [
        "mkdir alpha: 0 ok, a directory\n",
        "mkdir alpha: -1 File exists, a directory\n",
        "mkdir missing/beta: -1 No such file or directory, no directory\n",
        "mkdirat gamma: 0 ok, a directory\n",
    ] {
        assert!(
            rec.stdout_str().contains(line),
            "{line:?}\n{}",
            rec.describe("record")
        );
    }
    assert!(dir.join("alpha/gamma").is_dir());
    std::fs::remove_dir_all(dir.join("alpha")).unwrap();
    let rep = replay(&trace);
    assert_replay_matches(&trace, &rec, &rep);
    assert!(
        !dir.join("alpha").exists(),
        "replay made a directory (trace {})",
        trace.display()
    );
    let listing = dump(&trace).stdout_str();
    let count = |kind: &str| {
        let events = events_of_kind(&listing, kind);
        (
            count_calls(&events, "mkdir"),
            count_calls(&events, "mkdirat"),
        )
    };
    let expected = match mode {
        Buffering::On => [(0, 0), (3, 2)],
        Buffering::Off => [(3, 2), (0, 0)],
    };
    assert_eq!(
        [count("syscall"), count("buffered")],
        expected,
        "(mkdir, mkdirat) traced and buffered (trace {})",
        trace.display()
    );
}

both_modes!(signal_disposition_queries_are_libc_s_and_buffered);
/// `sigaction(sig, NULL, &old)` for every signal, after installing a
/// handler and ignoring a signal: with buffering the library answers the
/// queries itself (as libc does from the kernel's structure, including
/// what it leaves of `sa_mask` and its errors for signals it reserves), so
/// the program must see exactly what it sees natively.
fn signal_disposition_queries_are_libc_s_and_buffered(mode: Buffering) {
    let bin = compile_c("sigaction_query");
    let argv = [bin.to_str().unwrap()];
    let native = native(&argv, None);
    assert_eq!(native.status, 0, "{}", native.describe("native"));
    let r = assert_replays_identically(mode, &argv, None);
    r.assert_status(0);
    r.assert_stdout_contains(
        "10: mine, flags 0x54000000, SIGTERM masked 1, restorer set 1, tail kept 0\n",
    );
    r.assert_stdout_contains("12: ignored, tail kept 0\n");
    r.assert_stdout_contains("32: -1 errno 22\n");
    r.assert_stdout_contains("handlers: mine 1, ignored 1,");
    r.assert_record_matches_native(&native, true);
    let listing = dump(&r.trace).stdout_str();
    let buffered = count_calls(&events_of_kind(&listing, "buffered"), "rt_sigaction");
    match mode {
        Buffering::On => assert!(
            buffered >= 60,
            "{buffered} buffered rt_sigaction queries (trace {})",
            r.trace.display()
        ),
        Buffering::Off => assert_eq!(buffered, 0),
    }
}

// ---------------------------------------------------------------------------
// A crash with records in the buffer (Done when, item 4).

/// Iterations of buffered_then_crash's loop (its ITER).
const CRASH_ITER: usize = 200;

/// The address of the global `symbol` of the PIE `bin` when run without
/// ASLR (as rrpipe runs programs): loaded at 0x555555554000.
fn pie_symbol_address(bin: &Path, symbol: &str) -> u64 {
    let nm = std::process::Command::new("nm")
        .arg(bin)
        .output()
        .expect("run nm");
    let symbols = String::from_utf8_lossy(&nm.stdout).into_owned();
    let offset = symbols
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some(symbol))
        .and_then(|l| u64::from_str_radix(l.split_whitespace().next()?, 16).ok())
        .unwrap_or_else(|| panic!("no symbol {symbol} in {}:\n{symbols}", bin.display()));
    0x5555_5555_4000 + offset
}

/// The 8 bytes at `addr` in the ELF core file `core`.
fn u64_in_core(core: &Path, addr: u64) -> u64 {
    let data = std::fs::read(core).unwrap_or_else(|e| panic!("{}: {e}", core.display()));
    let elf = ElfFile64::<Endianness>::parse(&*data)
        .unwrap_or_else(|e| panic!("{} is not ELF: {e}", core.display()));
    let e = elf.endian();
    for p in elf.elf_program_headers() {
        if p.p_type(e) != object::elf::PT_LOAD {
            continue;
        }
        let start = p.p_vaddr(e);
        let bytes = p.data(e, &*data).unwrap();
        if (start..start + bytes.len() as u64).contains(&addr)
            && addr + 8 <= start + bytes.len() as u64
        {
            let at = (addr - start) as usize;
            return u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        }
    }
    panic!(
        "{:#x} is in no PT_LOAD of {} with contents",
        addr,
        core.display()
    )
}

/// The one core file in `dir` (named `core.<time>.<tid>.SIGSEGV`).
fn the_segv_core(dir: &Path, what: &str) -> std::path::PathBuf {
    let cores: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{what}: no dump directory {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cores.len(), 1, "{what}: one core file expected: {cores:?}");
    let name = cores[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with(".SIGSEGV"), "{what}: {name}");
    cores[0].clone()
}

/// The checksum the program prints natively ("checksum HEX after ...").
fn native_checksum(bin: &Path) -> (u64, Run) {
    let dir = scratch_dir("crash-native");
    let nat = native(
        &[bin.to_str().unwrap(), dir.to_str().unwrap(), "print"],
        None,
    );
    assert_eq!(
        nat.status,
        128 + libc::SIGSEGV,
        "{}",
        nat.describe("native")
    );
    let sum = nat
        .stdout_str()
        .strip_prefix("checksum ")
        .and_then(|s| u64::from_str_radix(s.split_whitespace().next()?, 16).ok())
        .unwrap_or_else(|| panic!("no checksum printed\n{}", nat.describe("native")));
    (sum, nat)
}

both_modes!(crash_with_records_in_the_buffer_loses_none);
/// The program folds some 2,400 buffered calls into a checksum it never
/// prints and dies: the recorded and the replayed core files hold the
/// checksum the program computes natively, and the trace lists every read.
fn crash_with_records_in_the_buffer_loses_none(mode: Buffering) {
    let bin = compile_c("buffered_then_crash");
    let (expected, _) = native_checksum(&bin);
    let addr = pie_symbol_address(&bin, "checksum");

    let dir = scratch_dir("crash");
    let argv = [bin.to_str().unwrap(), dir.to_str().unwrap()];
    let trace = fresh_trace_path();
    let rec = record_with_args(mode, &["--dump_on=SIGSEGV"], &trace, &argv);
    let rep = replay_with(&trace, &["--dump_on=SIGSEGV"]);
    let r = Recorded {
        mode,
        trace: trace.clone(),
        record: rec,
        replay: rep,
    };
    r.assert_status(128 + libc::SIGSEGV);
    assert_replay_matches(&trace, &r.record, &r.replay);
    assert!(r.record.stdout.is_empty(), "{}", r.describe());

    let recorded = u64_in_core(&the_segv_core(&trace.join("dumps"), "record"), addr);
    let replayed = u64_in_core(&the_segv_core(&trace.join("replay-dumps"), "replay"), addr);
    assert_eq!(
        recorded,
        expected,
        "the recorded program computed {recorded:#018x}, natively {expected:#018x}\n{}",
        r.describe()
    );
    assert_eq!(
        replayed,
        recorded,
        "replay reached the crash with checksum {replayed:#018x}, the recording had \
         {recorded:#018x}: buffered calls were lost or replayed wrongly\n{}",
        r.describe()
    );

    // Every call of the loop is in the trace: two reads and at least two
    // getdents64 per iteration; buffered ones in the default mode.
    assert_trace_mode(&trace, mode);
    let d = dump(&trace);
    assert_eq!(d.status, 0, "{}", d.describe("dump"));
    let out = d.stdout_str();
    let buffered = events_of_kind(&out, "buffered").lines().count();
    match mode {
        Buffering::On => assert!(
            buffered >= 2 * CRASH_ITER,
            "only {buffered} buffered events (trace {})\n{}",
            trace.display(),
            shorten(&out, 4000)
        ),
        Buffering::Off => assert_eq!(
            buffered,
            0,
            "buffered events recorded with --no-syscall-buffer (trace {})",
            trace.display()
        ),
    }
    let reads = count_calls(&out, "read");
    let dents = count_calls(&out, "getdents64");
    assert!(
        reads >= 2 * CRASH_ITER && dents >= 2 * CRASH_ITER,
        "the dump lists {reads} reads and {dents} getdents64, expected at least {} of each \
         ({}; trace {})\n{}",
        2 * CRASH_ITER,
        mode,
        trace.display(),
        shorten(&out, 4000)
    );
}

both_modes!(crash_after_printing_replays_the_output);
fn crash_after_printing_replays_the_output(mode: Buffering) {
    let bin = compile_c("buffered_then_crash");
    let (_, nat) = native_checksum(&bin);
    let dir = scratch_dir("crash-print");
    let r = assert_replays_identically(
        mode,
        &[bin.to_str().unwrap(), dir.to_str().unwrap(), "print"],
        None,
    );
    r.assert_status(128 + libc::SIGSEGV);
    r.assert_stdout_contains(", clock monotonic: yes\n");
    r.assert_record_matches_native(&nat, true);
}

// ---------------------------------------------------------------------------
// The program cannot tell.

/// `SigIgn` is left to `signal_dispositions_are_the_native_ones`, which
/// names the problem when it differs.
const DISPOSITIONS: &str = "SigIgn:";

both_modes!(buffering_is_invisible_to_the_program);
fn buffering_is_invisible_to_the_program(mode: Buffering) {
    let bin = compile_c_threads("buffering_invisible");
    let dir = scratch_dir("invisible");
    let r = assert_replays_identically(mode, &[bin.to_str().unwrap(), dir.to_str().unwrap()], None);
    r.assert_status(0);
    r.assert_self_checks_pass();
    // 0-2 and the listed directory's own; more only where the test
    // runner inherited more (the native run below has them too).
    r.assert_stdout_contains("at start: fds 0 1 2 3");
    r.assert_stdout_contains("ALL OK\n");
    let other = scratch_dir("invisible-native");
    let nat = native(&[bin.to_str().unwrap(), other.to_str().unwrap()], None);
    assert_eq!(nat.status, 0, "{}", nat.describe("native"));
    let (want, got) = (
        without_lines(&nat.stdout, &[DISPOSITIONS]),
        without_lines(&r.record.stdout, &[DISPOSITIONS]),
    );
    assert!(
        want == got,
        "the program sees a difference under recording ({})\n{}{}",
        first_difference(want.as_bytes(), got.as_bytes()),
        nat.describe("native"),
        r.describe()
    );
    assert_eq!(r.record.stderr, nat.stderr, "{}", r.describe());
}

both_modes!(signal_dispositions_are_the_native_ones);
/// Ignored and caught signals, as the kernel reports them: what the program
/// inherits must be what it inherits without rrpipe. (rrpipe's own Rust
/// runtime ignores SIGPIPE; its tracees must not.) Signals 32 and 33 are
/// glibc's own, which programs cannot see or change through libc: left out.
fn signal_dispositions_are_the_native_ones(mode: Buffering) {
    let argv = ["/bin/grep", "^Sig", "/proc/self/status"];
    let r = assert_replays_identically(mode, &argv, None);
    r.assert_status(0);
    let nat = native(&argv, None);
    assert_eq!(nat.status, 0, "{}", nat.describe("native"));
    let glibc_internal = (1u64 << 31) | (1u64 << 32);
    for field in ["SigBlk:", "SigIgn:", "SigCgt:"] {
        let mask = |run: &Run| {
            run.stdout_str()
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .unwrap_or_else(|| panic!("no {field} line\n{}", run.describe("grep")))
                & !glibc_internal
        };
        let (want, got) = (mask(&nat), mask(&r.record));
        let signals = |bits: u64| -> Vec<u32> {
            (0..64)
                .filter(|b| bits & (1 << b) != 0)
                .map(|b| b + 1)
                .collect()
        };
        assert_eq!(
            want,
            got,
            "{field} differs under recording: signals {:?} only under rrpipe, {:?} only natively\n{}{}",
            signals(got & !want),
            signals(want & !got),
            nat.describe("native"),
            r.describe()
        );
    }
}

// ---------------------------------------------------------------------------
// Calls that bypass the wrapped entry points.

both_modes!(raw_syscalls_are_traced);
fn raw_syscalls_are_traced(mode: Buffering) {
    for (what, flags) in [
        ("dynamic", &["-Wall"][..]),
        ("static", &["-Wall", "-static"][..]),
    ] {
        let bin = compile_c_with("raw_syscalls", flags);
        let dir = scratch_dir("raw");
        let r =
            assert_replays_identically(mode, &[bin.to_str().unwrap(), dir.to_str().unwrap()], None);
        r.assert_status(0);
        r.assert_self_checks_pass();
        r.assert_stdout_contains("through a raw syscall instruction\n");
        r.assert_stdout_contains("ALL OK\n");
        let other = scratch_dir("raw-native");
        let nat = native(&[bin.to_str().unwrap(), other.to_str().unwrap()], None);
        assert!(
            nat.stdout == r.record.stdout,
            "{what} build: {}\n{}{}",
            first_difference(&nat.stdout, &r.record.stdout),
            nat.describe("native"),
            r.describe()
        );
    }
}

both_modes!(libc_internal_call_sites_are_patched_and_buffered);
/// `setlocale`'s loading of the locale files and stdio's file I/O make
/// their syscalls from inside libc. With buffering, the tracer patches each
/// such site at its first call to go through the preload library, so the
/// later calls are buffered, and replay patches it at the same event: the
/// program's output and memory (checksummed at every syscall) are the
/// native run's. With a second thread alive, no site may be patched.
fn libc_internal_call_sites_are_patched_and_buffered(mode: Buffering) {
    const CALLS: [&str; 6] = ["openat", "read", "write", "close", "newfstatat", "lseek"];
    let count = |listing: &str, kind: &str| -> usize {
        let events = events_of_kind(listing, kind);
        CALLS.iter().map(|c| count_calls(&events, c)).sum()
    };
    let bin = compile_c_threads("libc_internal_calls");
    for threaded in [false, true] {
        let dir = scratch_dir("libc-internal");
        let mut argv = vec![bin.to_str().unwrap(), dir.to_str().unwrap()];
        if threaded {
            argv.push("thread");
        }
        let native = native(&argv, None);
        assert_eq!(native.status, 0, "{}", native.describe("native"));
        let r = assert_replays_identically(mode, &argv, None);
        r.assert_status(0);
        r.assert_stdout_contains("locale: C.UTF-8, codeset UTF-8\n");
        r.assert_stdout_contains("read back: 12000 lines");
        r.assert_stdout_contains("ALL OK\n");
        r.assert_record_matches_native(&native, true);
        let listing = dump(&r.trace).stdout_str();
        // From the library's start: the dynamic loader's own calls before
        // it (cargo's LD_LIBRARY_PATH makes dozens) stay traced.
        let listing = match listing.split_once("rrpipe_register_buffer") {
            Some((_, started)) => started,
            None => &listing,
        };
        let (traced, buffered) = (count(listing, "syscall"), count(listing, "buffered"));
        let what = format!(
            "threaded {threaded}: {traced} traced, {buffered} buffered (trace {})",
            r.trace.display()
        );
        match (mode, threaded) {
            // The first call of each site (and the console's writes).
            (Buffering::On, false) => assert!(traced <= 40 && buffered >= 500, "{what}"),
            _ => assert!(traced >= 500, "{what}"),
        }
    }
    let sums = scratch_dir("libc-sums");
    checksummed(mode, &[bin.to_str().unwrap(), sums.to_str().unwrap()]);
}

both_modes!(forked_children_buffer_into_their_own_buffers);
/// Twenty children forked while the parent's buffer is shared with rrpipe
/// each make 300 buffered calls while the parent makes as many: every
/// side reads its own bytes, in record and replay (with checksums when
/// buffered).
fn forked_children_buffer_into_their_own_buffers(mode: Buffering) {
    let bin = compile_c("fork_buffered");
    let dir = scratch_dir("fork-buffered");
    let argv = [bin.to_str().unwrap(), dir.to_str().unwrap()];
    let r = assert_replays_identically(mode, &argv, None);
    r.assert_status(0);
    r.assert_stdout_contains("forks: 20, children ok: 20, parent ok: 20\n");
    r.assert_stdout_contains("ALL OK\n");
    if mode == Buffering::On {
        let buffered = events_of_kind(&dump(&r.trace).stdout_str(), "buffered");
        let tids: std::collections::BTreeSet<&str> = buffered
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        assert!(
            tids.len() > 20,
            "buffered calls from {} tasks (trace {})",
            tids.len(),
            r.trace.display()
        );
        // (Unbuffered, a checksum at each of its 12,000 traced syscalls
        // takes a quarter of a minute, and nothing is shared.)
        let sums = scratch_dir("fork-buffered-sums");
        checksummed(mode, &[bin.to_str().unwrap(), sums.to_str().unwrap()]);
    }
}

// ---------------------------------------------------------------------------
// Switching it off.

#[test]
fn every_way_of_switching_buffering_off_records_a_trace_that_replays() {
    let toml_dir = scratch_dir("buffer-toml");
    let toml = |on: bool| {
        let file = toml_dir.join(format!("record-{on}.toml"));
        std::fs::write(
            &file,
            format!("mode = \"record\"\n[tracer]\nsyscall_buffer = {on}\n"),
        )
        .unwrap();
        file.to_str().unwrap().to_string()
    };
    let (toml_on, toml_off) = (toml(true), toml(false));
    let ways: [(&[&str], Buffering); 8] = [
        (&["record"], Buffering::On),
        (&["record", "-n"], Buffering::Off),
        (&["record", "--no-syscall-buffer"], Buffering::Off),
        (&["record", "--no_syscall_buffer"], Buffering::Off),
        (&["--record", "-n"], Buffering::Off),
        (&["--config", &toml_on], Buffering::On),
        (&["--config", &toml_off], Buffering::Off),
        // The flag overrides the key.
        (&["--config", &toml_on, "-n"], Buffering::Off),
    ];
    for (way, mode) in ways {
        let trace = fresh_trace_path();
        let mut args = way.to_vec();
        args.extend(["-o", trace.to_str().unwrap(), "/bin/echo", "switched"]);
        let rec = rrpipe_args(&args);
        assert_eq!(rec.status, 0, "{way:?}\n{}", rec.describe("record"));
        assert_eq!(
            rec.stdout_str(),
            "switched\n",
            "{way:?}\n{}",
            rec.describe("record")
        );
        let rep = replay(&trace);
        assert_replay_matches(&trace, &rec, &rep);
        assert_trace_mode(&trace, mode);
    }
}

/// The seed's `--filter_lib=PATH` picks the library (here a copy of
/// rrpipe's own, under another name, which the trace's environment then
/// names); a path that is not there is refused in one line.
#[test]
fn filter_lib_selects_the_library() {
    let built = rrpipe_bin()
        .parent()
        .unwrap()
        .join("deps/librrpipe_preload.so");
    let built = if built.is_file() {
        built
    } else {
        rrpipe_bin().with_file_name("librrpipe_preload.so")
    };
    let copy = scratch_dir("filter-lib").join("libmywrap.so");
    std::fs::copy(&built, &copy).unwrap();
    for spelling in ["--filter_lib", "--filter-lib"] {
        let trace = fresh_trace_path();
        let flag = format!("{spelling}={}", copy.display());
        let rec = rrpipe_args(&[
            "record",
            &flag,
            "-o",
            trace.to_str().unwrap(),
            "/bin/cat",
            "/etc/hostname",
        ]);
        assert_eq!(rec.status, 0, "{}", rec.describe("record"));
        let dump = dump(&trace).stdout_str();
        assert!(
            dump.contains("libmywrap.so"),
            "the chosen library was not loaded:\n{}",
            shorten(&dump, 4000)
        );
        assert!(count_calls(&dump, "read") > 0 && dump.contains(" buffered "));
        let rep = replay(&trace);
        assert_replay_matches(&trace, &rec, &rep);
    }
    let missing = scratch_dir("filter-lib").join("nothing.so");
    let run = rrpipe_args(&[
        "record",
        &format!("--filter-lib={}", missing.display()),
        "-o",
        fresh_trace_path().to_str().unwrap(),
        "/bin/true",
    ]);
    assert_one_line_error(&run, 78, &["filter_lib", "nothing.so"]);
}
