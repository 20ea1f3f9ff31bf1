//! Replay reproduces the recording, not the present: the clock has moved,
//! files have changed or vanished, and replay still prints what was
//! recorded, without performing the program's side effects again.

mod common;

use std::time::Duration;

use common::*;

both_modes!(date_replays_the_recorded_time);
fn date_replays_the_recorded_time(mode: Buffering) {
    let trace = fresh_trace_path();
    let rec = record(
        mode,
        &trace,
        &["/usr/bin/date", "+%Y-%m-%d %H:%M:%S.%N"],
        None,
    );
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    std::thread::sleep(Duration::from_millis(1100));
    let rep = replay(&trace);
    assert_replay_matches(&trace, &rec, &rep);
    // And again: every replay is the same.
    let again = replay(&trace);
    assert_replay_matches(&trace, &rec, &again);
}

both_modes!(cat_replays_old_contents_after_the_file_changed);
fn cat_replays_old_contents_after_the_file_changed(mode: Buffering) {
    let dir = scratch_dir("cat-changed");
    let f = dir.join("f");
    std::fs::write(&f, "old contents\n").unwrap();
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, &["/usr/bin/cat", f.to_str().unwrap()], None);
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    assert_eq!(
        rec.stdout_str(),
        "old contents\n",
        "{}",
        rec.describe("record")
    );
    std::fs::write(&f, "new contents, and longer than the old ones\n").unwrap();
    let rep = replay(&trace);
    assert_replay_matches(&trace, &rec, &rep);
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "new contents, and longer than the old ones\n",
        "replay must not write the file"
    );
}

both_modes!(cat_replays_after_the_file_was_deleted);
fn cat_replays_after_the_file_was_deleted(mode: Buffering) {
    let dir = scratch_dir("cat-deleted");
    let f = dir.join("f");
    std::fs::write(&f, "soon gone\n").unwrap();
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, &["/usr/bin/cat", f.to_str().unwrap()], None);
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    std::fs::remove_file(&f).unwrap();
    let rep = replay(&trace);
    assert_replay_matches(&trace, &rec, &rep);
    assert!(!f.exists(), "replay must not create the file");
}

both_modes!(cp_is_not_performed_again_by_replay);
fn cp_is_not_performed_again_by_replay(mode: Buffering) {
    let dir = scratch_dir("cp");
    let a = dir.join("a");
    let b = dir.join("b");
    let content: String = (0..5000).map(|i| format!("{i}\n")).collect();
    std::fs::write(&a, &content).unwrap();
    let trace = fresh_trace_path();
    let rec = record(
        mode,
        &trace,
        &["/usr/bin/cp", a.to_str().unwrap(), b.to_str().unwrap()],
        None,
    );
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    assert_eq!(
        std::fs::read_to_string(&b).unwrap(),
        content,
        "cp under recording must copy"
    );
    std::fs::remove_file(&b).unwrap();
    let rep = replay(&trace);
    assert_replay_matches(&trace, &rec, &rep);
    assert!(!b.exists(), "replay re-created {}", b.display());
    assert_eq!(std::fs::read_to_string(&a).unwrap(), content);
}

both_modes!(rm_is_not_performed_again_by_replay);
fn rm_is_not_performed_again_by_replay(mode: Buffering) {
    let dir = scratch_dir("rm");
    let victim = dir.join("victim");
    std::fs::write(&victim, "x").unwrap();
    let trace = fresh_trace_path();
    let rec = record(
        mode,
        &trace,
        &["/usr/bin/rm", victim.to_str().unwrap()],
        None,
    );
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    assert!(!victim.exists(), "rm under recording must remove");
    std::fs::write(&victim, "back again").unwrap();
    let rep = replay(&trace);
    assert_replay_matches(&trace, &rec, &rep);
    assert_eq!(
        std::fs::read_to_string(&victim).ok().as_deref(),
        Some("back again"),
        "replay removed the file again"
    );
}

both_modes!(replay_works_after_the_binary_is_deleted);
fn replay_works_after_the_binary_is_deleted(mode: Buffering) {
    let dir = scratch_dir("deleted-binary");
    let bin = dir.join("mmap_anon_copy");
    compile_c_to("mmap_anon", &bin);
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, &[bin.to_str().unwrap()], None);
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    assert!(
        rec.stdout_str().contains("ALL OK\n"),
        "{}",
        rec.describe("record")
    );
    std::fs::remove_file(&bin).unwrap();
    let rep = replay(&trace);
    assert_replay_matches(&trace, &rec, &rep);
}

both_modes!(replay_works_after_the_binary_is_replaced);
fn replay_works_after_the_binary_is_replaced(mode: Buffering) {
    // Same path, different program: replay must use the recorded one.
    let dir = scratch_dir("replaced-binary");
    let bin = dir.join("prog");
    compile_c_to("rdtsc", &bin);
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, &[bin.to_str().unwrap()], None);
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    std::fs::remove_file(&bin).unwrap();
    compile_c_to("exit_code", &bin);
    let rep = replay(&trace);
    assert_replay_matches(&trace, &rec, &rep);
}

both_modes!(no_redirect_output_replays_silently);
fn no_redirect_output_replays_silently(mode: Buffering) {
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, &["/bin/echo", "hello"], None);
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    assert_eq!(rec.stdout_str(), "hello\n");
    let rep = replay_with(&trace, &["--no-redirect-output"]);
    assert_eq!(rep.status, 0, "{}", rep.describe("replay"));
    assert!(rep.stdout.is_empty(), "{}", rep.describe("replay"));
    assert!(
        !rep.stderr_str().contains("panicked"),
        "{}",
        rep.describe("replay")
    );
}

both_modes!(redirect_output_false_in_the_toml_replays_silently);
fn redirect_output_false_in_the_toml_replays_silently(mode: Buffering) {
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, &["/bin/echo", "hello"], None);
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    let config = scratch_dir("quiet-replay").join("replay.toml");
    for (switch, expected) in [("false", ""), ("true", "hello\n")] {
        std::fs::write(
            &config,
            format!("mode = \"replay\"\n[tracer]\nredirect_output = {switch}\n"),
        )
        .unwrap();
        let rep = rrpipe_args(&[
            "--config",
            config.to_str().unwrap(),
            trace.to_str().unwrap(),
        ]);
        assert_eq!(rep.status, 0, "{}", rep.describe("replay"));
        assert_eq!(rep.stdout_str(), expected, "{}", rep.describe("replay"));
    }
}

both_modes!(exit_status_replays_without_output);
fn exit_status_replays_without_output(mode: Buffering) {
    let bin = compile_c("exit_code");
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, &[bin.to_str().unwrap()], None);
    assert_eq!(rec.status, 42, "{}", rec.describe("record"));
    let rep = replay_with(&trace, &["--no-redirect-output"]);
    assert_eq!(rep.status, 42, "{}", rep.describe("replay"));
    assert!(rep.stdout.is_empty(), "{}", rep.describe("replay"));
    assert!(rep.stderr.is_empty(), "{}", rep.describe("replay"));
}
