//! `rrpipe dump`: one line per event, syscalls by name with decoded
//! arguments.

mod common;

use common::*;

both_modes!(dump_ls_root);
fn dump_ls_root(mode: Buffering) {
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, &["/usr/bin/ls", "/"], None);
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    assert!(
        rec.stdout_str().contains("usr\n"),
        "{}",
        rec.describe("record")
    );

    let d = dump(&trace);
    let out = d.stdout_str();
    let what = format!("trace: {}\n{}", trace.display(), d.describe("dump"));
    assert_eq!(d.status, 0, "dump failed\n{what}");
    assert!(!d.stderr_str().contains("panicked"), "{what}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.len() >= 20,
        "expected a line per event (20 or more)\n{what}"
    );
    assert!(
        lines.iter().all(|l| !l.trim().is_empty()),
        "blank lines in the dump\n{what}"
    );
    for needle in ["openat(", "getdents64(", "write(1", "exit_group("] {
        assert!(
            out.contains(needle),
            "the dump does not mention {needle:?}\n{what}"
        );
    }
    // The directory ls opened is shown decoded: with its path when traced;
    // buffered (the preload library's opendir), the library keeps no copy
    // of the path, and the flags show.
    let opened_dir = |l: &&str| match mode {
        Buffering::Off => {
            l.contains("openat(")
                && (l.contains("\"/\"") || l.contains(", /,") || l.contains("(/,"))
        }
        Buffering::On => {
            l.split_whitespace().nth(2) == Some("buffered")
                && l.contains("openat(AT_FDCWD, 0x")
                && l.contains("O_DIRECTORY")
        }
    };
    assert!(
        lines.iter().any(opened_dir),
        "the dump does not show the openat of \"/\"\n{what}"
    );
    // Events are in order: exit_group is among the last lines.
    let exit_at = lines
        .iter()
        .rposition(|l| l.contains("exit_group("))
        .unwrap();
    let first_write = lines.iter().position(|l| l.contains("write(1")).unwrap();
    assert!(first_write < exit_at, "write after exit_group?\n{what}");
    assert!(
        lines.len() - exit_at <= 5,
        "exit_group should be near the end of the dump\n{what}"
    );
}

both_modes!(dump_is_repeatable);
fn dump_is_repeatable(mode: Buffering) {
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, &["/bin/echo", "dump me"], None);
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    let a = dump(&trace);
    let b = dump(&trace);
    assert_eq!(a.status, 0, "{}", a.describe("dump"));
    assert_eq!(a.stdout, b.stdout, "two dumps of one trace differ");
    assert!(a.stdout_str().contains("write(1"), "{}", a.describe("dump"));
    // Dumping does not disturb replay.
    let rep = replay(&trace);
    assert_replay_matches(&trace, &rec, &rep);
}
