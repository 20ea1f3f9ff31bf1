//! The ways users start rrpipe: the shipped TOML configs (the README's
//! first command), default `trace_N` naming with `latest-trace`, and the
//! 2013 seed's `--record` / `--replay` / `--no_redirect_output`.

mod common;

use std::path::Path;

use common::*;

fn configs() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

/// Runs rrpipe with `args` in directory `cwd`.
fn in_dir(cwd: &Path, args: &[&str]) -> Run {
    let mut cmd = rrpipe();
    cmd.current_dir(cwd).args(args);
    run(cmd, None)
}

#[test]
fn shipped_configs_record_then_replay_the_latest_trace() {
    let cwd = scratch_dir("configs");
    let record_toml = configs().join("record.toml");
    let replay_toml = configs().join("replay.toml");
    let (rec_cfg, rep_cfg) = (record_toml.to_str().unwrap(), replay_toml.to_str().unwrap());

    let first = in_dir(&cwd, &["--config", rec_cfg, "/bin/echo", "first"]);
    assert_eq!(first.status, 0, "{}", first.describe("record"));
    assert_eq!(first.stdout_str(), "first\n");
    assert!(cwd.join("trace_0").is_dir(), "trace_0 was not created");
    let second = in_dir(&cwd, &["--config", rec_cfg, "/bin/echo", "second"]);
    assert_eq!(second.status, 0, "{}", second.describe("record"));
    assert!(cwd.join("trace_1").is_dir(), "trace_1 was not created");
    assert_eq!(
        std::fs::read_link(cwd.join("latest-trace")).unwrap(),
        Path::new("trace_1")
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(cwd.join("trace_1"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o700, "traces hold program memory: 0700");

    let latest = in_dir(&cwd, &["--config", rep_cfg]);
    assert_eq!(latest.status, 0, "{}", latest.describe("replay"));
    assert_eq!(latest.stdout_str(), "second\n");
    let older = in_dir(&cwd, &["--config", rep_cfg, "trace_0"]);
    assert_eq!(
        older.stdout_str(),
        "first\n",
        "{}",
        older.describe("replay")
    );
}

#[test]
fn seed_spellings() {
    let cwd = scratch_dir("seed");
    let rec = in_dir(&cwd, &["--record", "/bin/echo", "from 2013"]);
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    assert_eq!(rec.stdout_str(), "from 2013\n");
    let rep = in_dir(&cwd, &["--replay", "trace_0"]);
    assert_eq!(
        rep.stdout_str(),
        "from 2013\n",
        "{}",
        rep.describe("replay")
    );
    for flag in ["--no_redirect_output", "--no-redirect-output"] {
        let quiet = in_dir(&cwd, &["--replay", "trace_0", flag]);
        assert_eq!(quiet.status, 0, "{}", quiet.describe(flag));
        assert!(quiet.stdout.is_empty(), "{flag} still printed output");
    }
    let sub = in_dir(&cwd, &["replay"]);
    assert_eq!(
        sub.stdout_str(),
        "from 2013\n",
        "{}",
        sub.describe("replay latest")
    );
}
