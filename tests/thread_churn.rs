//! Syscall buffers do not outlive their threads (see "Syscall buffering" in
//! README.md): `tests/c/thread_churn.c` creates and joins 200 threads one
//! after another, each making buffered calls (stat, getpid, open, read,
//! close), and compares its address space (VmSize) before and after. Each
//! thread's buffer (64 KiB stack + 256 KiB) must be unmapped when the thread
//! ends, in record and replay alike: before, the program grew by 62.5 MiB
//! ("leaked: yes 64000") under recording. A forked child that churns
//! threads of its own and ends its main thread with `pthread_exit`, and a
//! vfork child that leaves with `_exit`, record and replay too, and the
//! parent's buffer survives them.

mod common;

use common::*;

/// Threads the program churns through: a warm-up one, 200, and 5 in the
/// forked child.
const THREADS: usize = 1 + 200 + 5;

/// Events of `dump` that are `syscall` events of `call` (e.g. `munmap(`)
/// whose text contains `needle`.
fn count(dump: &str, call: &str, needle: &str) -> usize {
    dump.lines()
        .filter(|l| {
            let mut w = l.split_whitespace().skip(2);
            w.next() == Some("syscall")
                && w.next().is_some_and(|c| c.starts_with(call))
                && l.contains(needle)
        })
        .count()
}

both_modes!(thread_churn_releases_buffers);
fn thread_churn_releases_buffers(mode: Buffering) {
    let bin = compile_c_threads("thread_churn");
    let argv = [bin.to_str().unwrap()];
    let native = native(&argv, None);
    assert_eq!(native.status, 0, "{}", native.describe("native"));
    assert!(
        native.stdout_str().starts_with("leaked: no\n"),
        "the program leaks natively\n{}",
        native.describe("native")
    );
    // Replayed output is the recorded one (reads of /proc come from the
    // trace): the replay is held to the recording, the recording to the
    // native run.
    let r = assert_replays_identically(mode, &argv, None);
    r.assert_status(0);
    r.assert_self_checks_pass();
    r.assert_stdout_contains("leaked: no\n");
    r.assert_stdout_contains("fork child: status 0\n");
    r.assert_stdout_contains("vfork child: exit 7\n");
    r.assert_record_matches_native(&native, true);

    // Every thread registered a buffer and unmapped all of it at its end;
    // so did the forked child's main thread (its copy of its parent's);
    // the first main thread keeps its own until the process ends.
    let d = dump(&r.trace);
    assert_eq!(d.status, 0, "{}", d.describe("dump"));
    let dump = d.stdout_str();
    let mapping = format!(
        ", {})",
        rrpipe_syscallbuf::STACK_SIZE + rrpipe_syscallbuf::BUFFER_SIZE
    );
    let registered = count(&dump, "rrpipe_register_buffer(", "");
    let released = count(&dump, "munmap(", &mapping);
    let expected = match mode {
        Buffering::On => THREADS + 1,
        Buffering::Off => 0,
    };
    assert_eq!(
        (registered, released),
        (expected, expected),
        "buffers registered and released\n{}",
        r.describe()
    );
}
