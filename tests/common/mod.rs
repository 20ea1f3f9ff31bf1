//! Helpers shared by the integration tests: run `rrpipe` (and native
//! programs) with a timeout, compile the C test programs, record and replay.
//!
//! Everything a test writes lives under one scratch directory per test
//! process (`/tmp/rrpipe-it-XXXXXX`), removed when the process exits. Set
//! `RRPIPE_TEST_KEEP=1` to keep it for a post-mortem (failure messages name
//! the trace directories).
//!
//! Every record/replay test runs twice, with syscall buffering (the
//! default) and without (`--no-syscall-buffer`): write it as a function
//! taking a [`Buffering`] and declare it with [`both_modes!`], which makes
//! the two tests `NAME::buffered` and `NAME::unbuffered` (so a failure names
//! its mode, and the harness runs the two in parallel). The recording
//! helpers take the mode as their first argument, so that no recording
//! happens in a mode nobody chose; a function declared for both modes and
//! not passed to `both_modes!` is dead code, which clippy refuses.
//!
//! Every child runs in its own process group with a deadline
//! ([`timeout()`]); the whole group (rrpipe and its tracees) is killed when
//! the deadline passes and, as a safety net, when rrpipe exits, so that a
//! hung or crashed tracer never hangs the suite or leaves processes behind.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long any child (rrpipe, gcc, a native program) may run, unless
/// `RRPIPE_TEST_TIMEOUT` (seconds) says otherwise.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The deadline in force: [`TIMEOUT`] or `RRPIPE_TEST_TIMEOUT` seconds.
pub fn timeout() -> Duration {
    std::env::var("RRPIPE_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(TIMEOUT)
}

/// The rrpipe binary under test.
pub fn rrpipe_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rrpipe"))
}

/// Root of this test process's scratch space.
fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("rrpipe-it-")
            .tempdir()
            .expect("cannot create a scratch directory")
            .keep();
        extern "C" fn cleanup() {
            if std::env::var_os("RRPIPE_TEST_KEEP").is_some() {
                return;
            }
            if let Some(root) = ROOT.get() {
                let _ = std::fs::remove_dir_all(root);
            }
        }
        // The test harness leaves main (or calls exit) in every case; statics
        // are never dropped, so clean up from an atexit handler.
        unsafe { libc::atexit(cleanup) };
        dir
    })
}

/// A fresh, empty directory (unique within the test process).
pub fn scratch_dir(label: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = scratch_root().join(format!("{label}-{n}"));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// A path for a trace that does not exist yet (its parent does).
pub fn fresh_trace_path() -> PathBuf {
    scratch_dir("trace").join("trace")
}

/// `rrpipe`, ready to take arguments: plugins found next to the binary, run
/// in a fresh temporary directory.
pub fn rrpipe() -> Command {
    let bin = rrpipe_bin();
    let mut cmd = Command::new(&bin);
    // `cargo build` puts the plugins next to the binary; `cargo test`
    // builds them only as core's dev-dependencies, into deps/.
    let dir = bin.parent().expect("binary has a directory");
    cmd.env(
        "RRPIPE_PLUGIN_PATH",
        std::env::join_paths([dir.to_path_buf(), dir.join("deps")]).unwrap(),
    );
    cmd.current_dir(scratch_dir("cwd"));
    cmd
}

/// What a finished child left: its output and its status as a shell reports
/// it (the exit code, or 128+N when killed by signal N).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: i32,
}

impl Run {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// A readable account of this run for failure messages.
    pub fn describe(&self, label: &str) -> String {
        format!(
            "--- {label}: status {}\n--- {label} stdout ({} bytes):\n{}\n--- {label} stderr ({} bytes):\n{}\n",
            self.status,
            self.stdout.len(),
            shorten(&self.stdout_str(), 6000),
            self.stderr.len(),
            shorten(&self.stderr_str(), 6000),
        )
    }
}

/// Keeps the start and the end of a long text.
pub fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut head = max / 2;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - max / 2;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}\n[... {} bytes left out ...]\n{}",
        &s[..head],
        tail - head,
        &s[tail..]
    )
}

/// Runs `cmd` to completion within [`timeout()`]: stdin from `stdin` (or
/// /dev/null), stdout and stderr captured. Panics, after killing the
/// child's whole process group, when the deadline passes.
pub fn run(cmd: Command, stdin: Option<&[u8]>) -> Run {
    run_inner(cmd, stdin, false).0
}

/// [`run`], also returning the processes of the child's process group that
/// were still alive (neither dead nor zombies) when the child exited, before
/// the group is killed: for rrpipe, tracees it failed to end.
pub fn run_with_leftovers(cmd: Command, stdin: Option<&[u8]>) -> (Run, Vec<libc::pid_t>) {
    run_inner(cmd, stdin, true)
}

/// The live processes of process group `pgid`, other than its leader.
pub fn live_group_members(pgid: libc::pid_t) -> Vec<libc::pid_t> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // gone meanwhile
        };
        // After the command name (which may hold spaces and parentheses):
        // state, ppid, pgrp.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (Some(state), Some(pgrp)) = (fields.first(), fields.get(2)) else {
            continue;
        };
        if pid != pgid && pgrp.parse() == Ok(pgid) && !matches!(*state, "Z" | "X" | "x") {
            found.push(pid);
        }
    }
    found
}

/// Whether process `pid` (a child of this test process) has exited, without
/// reaping it: its pid, and with it its process group id, stays reserved.
pub fn exited_unreaped(pid: libc::pid_t) -> bool {
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    r != 0 || unsafe { info.si_pid() } != 0
}

fn run_inner(mut cmd: Command, stdin: Option<&[u8]>, leftovers: bool) -> (Run, Vec<libc::pid_t>) {
    let desc = format!("{cmd:?}");
    cmd.process_group(0);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped());
    cmd.stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
    let pid = child.id() as libc::pid_t;

    if let Some(data) = stdin {
        let mut w = child.stdin.take().unwrap();
        let data = data.to_vec();
        // The child may never read it (EPIPE then, which is fine).
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        });
    }
    let (tx, rx) = mpsc::channel::<(u8, Vec<u8>)>();
    let mut out = child.stdout.take().unwrap();
    let tx1 = tx.clone();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        let _ = tx1.send((1, buf));
    });
    let mut err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        let _ = tx.send((2, buf));
    });

    // Wait for the child to exit without reaping it, so that its pid (and
    // with it the process group id) stays reserved while the group is killed.
    let limit = timeout();
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    loop {
        if exited_unreaped(pid) {
            break;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let left = if leftovers && !timed_out {
        live_group_members(pid)
    } else {
        Vec::new()
    };
    // Whatever is left in the group (tracees of a dead or hung tracer).
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let run = collect(&mut child, &rx, &desc);
    if timed_out {
        panic!(
            "{desc} did not finish within {limit:?}; killed its process group\n{}",
            run.describe("killed run")
        );
    }
    (run, left)
}

/// The workspace's `plugin-api` crate, for [`build_test_plugin`].
pub fn plugin_api_dir() -> PathBuf {
    workspace_root().join("plugin-api")
}

/// The repository's root (the workspace).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("core lies in the workspace")
}

/// Builds a test-only plugin library (a `cdylib` called `name` whose
/// `src/lib.rs` is `src`, against the `plugin-api` crate in `api_dir`) and
/// returns the path of its `.so`. Built once per test process and set of
/// arguments.
///
/// The build runs offline, pinned by the workspace's lock file, so it only
/// uses what the workspace build already put in the registry cache. All
/// plugins share one target directory under CARGO_TARGET_TMPDIR, so that
/// abi_stable and its dependencies compile once for every test binary: a
/// copy of `plugin-api` elsewhere (a skewed interface) does not clash with
/// the real one there, since cargo tells path dependencies apart by their
/// location. The crate may use `rrpipe_plugin_api`, `abi_stable` and `serde`
/// (with `derive`).
pub fn build_test_plugin(name: &str, src: &str, api_dir: &Path) -> PathBuf {
    /// (name, source, plugin-api directory) -> library.
    type Built = HashMap<(String, String, PathBuf), PathBuf>;
    static CACHE: OnceLock<Mutex<Built>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    // Held while building: the library's file name depends on `name` only,
    // so two builds of it at once would replace each other's output.
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    let key = (name.to_string(), src.to_string(), api_dir.to_path_buf());
    if let Some(lib) = cache.get(&key) {
        return lib.clone();
    }
    let dir = scratch_dir(&format!("plugin-{name}"));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
             [lib]\ncrate-type = [\"cdylib\"]\n[dependencies]\n\
             rrpipe-plugin-api = {{ path = \"{}\" }}\nabi_stable = \"0.11\"\n\
             serde = {{ version = \"1\", features = [\"derive\"] }}\n[workspace]\n",
            api_dir.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), src).unwrap();
    // The workspace's lock file pins the versions already in the cache.
    std::fs::copy(workspace_root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-plugins");
    // No deadline (unlike `run`): the first build compiles abi_stable, and
    // may wait for other cargo processes' locks.
    let out = Command::new(env!("CARGO"))
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building the test plugin {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lib = target
        .join("debug")
        .join(format!("lib{}.so", name.replace('-', "_")));
    assert!(lib.is_file(), "cargo built no {}", lib.display());
    cache.insert(key, lib.clone());
    lib
}

/// Runs a program natively (no rrpipe), for comparison with a recording.
pub fn native(argv: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]);
    run(cmd, stdin)
}

/// Compiles `tests/c/<name>.c` (once per test process) and returns the
/// binary's path.
pub fn compile_c(name: &str) -> PathBuf {
    static CACHE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    // Held while compiling: two tests wanting the same program wait for one gcc.
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = cache.get(name) {
        return p.clone();
    }
    static BIN_DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = BIN_DIR.get_or_init(|| scratch_dir("bin"));
    let out = dir.join(name);
    compile_c_to(name, &out);
    cache.insert(name.to_string(), out.clone());
    out
}

/// Compiles `tests/c/<name>.c` into `out` (no caching).
pub fn compile_c_to(name: &str, out: &Path) {
    let src = c_source(name);
    let mut cmd = Command::new("gcc");
    cmd.args(["-O1", "-g", "-o"]).arg(out).arg(&src);
    let r = run(cmd, None);
    assert!(
        r.status == 0,
        "gcc failed on {}\n{}",
        src.display(),
        r.describe("gcc")
    );
}

/// The path of `tests/c/<name>.c`.
pub fn c_source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/c")
        .join(format!("{name}.c"))
}

/// How `rrpipe record` treats the program's syscalls (issue 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buffering {
    /// The default: the preload library buffers the common syscalls.
    On,
    /// `--no-syscall-buffer`: every syscall is traced.
    Off,
}

impl Buffering {
    /// Both modes, the default first.
    pub const ALL: [Buffering; 2] = [Buffering::On, Buffering::Off];

    /// The `rrpipe record` options that select this mode.
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            Buffering::On => &[],
            Buffering::Off => &["--no-syscall-buffer"],
        }
    }

    /// "buffered" or "unbuffered", as in the test names.
    pub fn name(self) -> &'static str {
        match self {
            Buffering::On => "buffered",
            Buffering::Off => "unbuffered",
        }
    }
}

impl std::fmt::Display for Buffering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Buffering::On => f.write_str("with syscall buffering"),
            Buffering::Off => f.write_str("without syscall buffering (--no-syscall-buffer)"),
        }
    }
}

/// `both_modes!(name);` after `fn name(mode: Buffering)` declares the tests
/// `name::buffered` and `name::unbuffered`, which call it with
/// [`Buffering::On`] and [`Buffering::Off`]. (The module and the function
/// share a name: one lives in the type namespace, the other in the value
/// namespace.) Several names may be given at once.
#[allow(unused_macros)]
macro_rules! both_modes {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn buffered() {
                    super::$name($crate::common::Buffering::On)
                }

                #[test]
                fn unbuffered() {
                    super::$name($crate::common::Buffering::Off)
                }
            }
        )+
    };
}
#[allow(unused_imports)]
pub(crate) use both_modes;

/// Asserts that `rrpipe dump TRACE` says the trace was recorded in `mode`
/// (its header line `# recorded by ... syscall buffering on|off`).
pub fn assert_trace_mode(trace: &Path, mode: Buffering) {
    let d = dump(trace);
    let want = match mode {
        Buffering::On => "syscall buffering on",
        Buffering::Off => "syscall buffering off",
    };
    let header = d
        .stdout_str()
        .lines()
        .find(|l| l.starts_with("# recorded by "))
        .map(str::to_string);
    assert!(
        header.as_deref().is_some_and(|h| h.ends_with(want)),
        "expected a trace recorded {mode}, the dump says {header:?} (trace {})\n{}",
        trace.display(),
        d.describe("dump")
    );
}

/// `rrpipe record [MODE FLAGS] EXTRA... -o TRACE -- ARGV...`, ready to run
/// (`extra`: options such as `--config FILE`, `--checksum=on-syscalls`).
pub fn record_cmd(mode: Buffering, extra: &[&str], trace: &Path, argv: &[&str]) -> Command {
    let mut cmd = rrpipe();
    cmd.arg("record")
        .args(mode.flags())
        .args(extra)
        .arg("-o")
        .arg(trace)
        .arg("--")
        .args(argv);
    cmd
}

/// `rrpipe record [MODE FLAGS] -o TRACE -- ARGV...`, with `stdin` fed to the
/// program.
pub fn record(mode: Buffering, trace: &Path, argv: &[&str], stdin: Option<&[u8]>) -> Run {
    run(record_cmd(mode, &[], trace, argv), stdin)
}

/// [`record`] with options before `-o` (see [`record_cmd`]), stdin closed.
pub fn record_with_args(mode: Buffering, extra: &[&str], trace: &Path, argv: &[&str]) -> Run {
    run(record_cmd(mode, extra, trace, argv), None)
}

/// `rrpipe replay TRACE`, stdin closed.
pub fn replay(trace: &Path) -> Run {
    let mut cmd = rrpipe();
    cmd.arg("replay").arg(trace);
    run(cmd, None)
}

/// `rrpipe replay TRACE EXTRA...`.
pub fn replay_with(trace: &Path, extra: &[&str]) -> Run {
    let mut cmd = rrpipe();
    cmd.arg("replay").arg(trace).args(extra);
    run(cmd, None)
}

/// `rrpipe dump TRACE`.
pub fn dump(trace: &Path) -> Run {
    let mut cmd = rrpipe();
    cmd.arg("dump").arg(trace);
    run(cmd, None)
}

/// `rrpipe ARGS...` in a fresh directory.
pub fn rrpipe_args(args: &[&str]) -> Run {
    let mut cmd = rrpipe();
    cmd.args(args);
    run(cmd, None)
}

/// A recording and its replay.
pub struct Recorded {
    /// How it was recorded.
    pub mode: Buffering,
    pub trace: PathBuf,
    pub record: Run,
    pub replay: Run,
}

impl Recorded {
    /// Everything about both runs, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "recorded {}\ntrace: {}\n{}{}",
            self.mode,
            self.trace.display(),
            self.record.describe("record"),
            self.replay.describe("replay")
        )
    }

    /// Asserts the recording (and so the replay) ended with `status`.
    pub fn assert_status(&self, status: i32) {
        assert_eq!(
            self.record.status,
            status,
            "unexpected status of the recorded program\n{}",
            self.describe()
        );
    }

    /// Asserts the recorded stdout contains `needle`.
    pub fn assert_stdout_contains(&self, needle: &str) {
        assert!(
            self.record.stdout_str().contains(needle),
            "recorded stdout lacks {needle:?}\n{}",
            self.describe()
        );
    }

    /// Asserts the recorded stdout has no line containing "FAIL" (the C
    /// programs' self-checks).
    pub fn assert_self_checks_pass(&self) {
        let out = self.record.stdout_str();
        let bad: Vec<&str> = out.lines().filter(|l| l.contains("FAIL")).collect();
        assert!(
            bad.is_empty(),
            "self-checks failed under recording: {bad:?}\n{}",
            self.describe()
        );
    }

    /// Asserts the recording printed what the program prints natively
    /// (for programs whose output does not depend on time, addresses...).
    pub fn assert_record_matches_native(&self, native: &Run, compare_stderr: bool) {
        assert_eq!(
            self.record.status,
            native.status,
            "recording changed the exit status\n{}{}",
            native.describe("native"),
            self.describe()
        );
        assert!(
            self.record.stdout == native.stdout,
            "recording changed stdout ({})\n{}{}",
            first_difference(&native.stdout, &self.record.stdout),
            native.describe("native"),
            self.describe()
        );
        if compare_stderr {
            assert!(
                self.record.stderr == native.stderr,
                "recording changed stderr ({})\n{}{}",
                first_difference(&native.stderr, &self.record.stderr),
                native.describe("native"),
                self.describe()
            );
        }
    }
}

/// Where two outputs first differ, by line.
pub fn first_difference(a: &[u8], b: &[u8]) -> String {
    let a = String::from_utf8_lossy(a);
    let b = String::from_utf8_lossy(b);
    let mut la = a.split_inclusive('\n');
    let mut lb = b.split_inclusive('\n');
    let mut n = 1;
    loop {
        match (la.next(), lb.next()) {
            (None, None) => return "identical".into(),
            (x, y) if x == y => n += 1,
            (x, y) => return format!("first difference at line {n}: {x:?} vs {y:?}"),
        }
    }
}

/// Asserts that replaying `trace` gives exactly `record`'s stdout, stderr
/// and status.
pub fn assert_replay_matches(trace: &Path, record: &Run, replay: &Run) {
    /// Only for `describe`: the test's name says the mode.
    struct Runs<'a>(&'a Path, &'a Run, &'a Run);
    impl Runs<'_> {
        fn describe(&self) -> String {
            format!(
                "trace: {}\n{}{}",
                self.0.display(),
                self.1.describe("record"),
                self.2.describe("replay")
            )
        }
    }
    let rec = Runs(trace, record, replay);
    assert!(
        replay.stdout == record.stdout,
        "replay stdout differs from the recording ({})\n{}",
        first_difference(&record.stdout, &replay.stdout),
        rec.describe()
    );
    assert!(
        replay.stderr == record.stderr,
        "replay stderr differs from the recording ({})\n{}",
        first_difference(&record.stderr, &replay.stderr),
        rec.describe()
    );
    assert_eq!(
        replay.status,
        record.status,
        "replay exit status differs from the recording\n{}",
        rec.describe()
    );
}

/// Records `argv` (feeding `stdin`) into a fresh trace, replays it with no
/// stdin, and asserts stdout, stderr and exit status are identical.
pub fn assert_replays_identically(
    mode: Buffering,
    argv: &[&str],
    stdin: Option<&[u8]>,
) -> Recorded {
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, argv, stdin);
    let rep = replay(&trace);
    assert_replay_matches(&trace, &rec, &rep);
    Recorded {
        mode,
        trace,
        record: rec,
        replay: rep,
    }
}

/// Asserts that `run` failed with `code` and one line on stderr that
/// contains each of `needles` (case-insensitively) and no panic.
pub fn assert_one_line_error(run: &Run, code: i32, needles: &[&str]) {
    let err = run.stderr_str();
    let what = run.describe("rrpipe");
    assert_eq!(run.status, code, "wrong exit status\n{what}");
    assert!(!err.contains("panicked"), "rrpipe panicked\n{what}");
    let trimmed = err.trim();
    assert!(!trimmed.is_empty(), "no error message on stderr\n{what}");
    assert_eq!(
        trimmed.lines().count(),
        1,
        "the error message must be exactly one line\n{what}"
    );
    let lower = trimmed.to_lowercase();
    for n in needles {
        assert!(
            lower.contains(&n.to_lowercase()),
            "the error message does not mention {n:?}\n{what}"
        );
    }
}

/// Whether `msg` names line `n` (`line 3`, `line: 3`, `:3:`, `line=3`).
pub fn mentions_line(msg: &str, n: usize) -> bool {
    let lower = msg.to_lowercase();
    [
        format!("line {n}"),
        format!("line: {n}"),
        format!("line={n}"),
        format!(":{n}:"),
    ]
    .iter()
    .any(|p| {
        lower.match_indices(p.as_str()).any(|(i, _)| {
            // "line 3" must not be the start of "line 31".
            p.ends_with(':')
                || !lower[i + p.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit())
        })
    })
}

// ---------------------------------------------------------------------------
// Processes, threads and signals (issue 3): compiling with extra flags,
// timing replay against native runs, and talking to a running recording.

/// Compiles `tests/c/<name>.c` with `-O1 -g` and `extra_flags` (e.g.
/// `-pthread`, `-Wall`), once per test process and set of flags, and
/// returns the binary's path.
pub fn compile_c_with(name: &str, extra_flags: &[&str]) -> PathBuf {
    static CACHE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    // The name and the flags, NUL-separated: no file name or flag holds a NUL.
    let key = std::iter::once(name)
        .chain(extra_flags.iter().copied())
        .collect::<Vec<_>>()
        .join("\0");
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = cache.get(&key) {
        return p.clone();
    }
    // One directory per binary: the same program may be built with several
    // sets of flags, under the same name.
    let out = scratch_dir("bin-flags").join(name);
    let src = c_source(name);
    let mut cmd = Command::new("gcc");
    cmd.args(["-O1", "-g"])
        .args(extra_flags)
        .arg("-o")
        .arg(&out)
        .arg(&src);
    let r = run(cmd, None);
    assert!(
        r.status == 0,
        "gcc {} failed on {}\n{}",
        extra_flags.join(" "),
        src.display(),
        r.describe("gcc")
    );
    cache.insert(key, out.clone());
    out
}

/// The flags the multi-threaded C test programs are built with.
pub const THREAD_FLAGS: &[&str] = &["-pthread", "-Wall"];

/// `compile_c_with(name, THREAD_FLAGS)`.
pub fn compile_c_threads(name: &str) -> PathBuf {
    compile_c_with(name, THREAD_FLAGS)
}

/// Holds a process-wide lock while alive: tests that measure time (and
/// tests that spin on the CPU) take it so that they do not run at the same
/// time as each other and skew the figures.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` and says how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let t = f();
    (t, start.elapsed())
}

/// The least time limit [`assert_replay_within`] grants, so that tiny
/// programs (whose native run takes a millisecond) do not flake.
pub const REPLAY_TIME_FLOOR: Duration = Duration::from_millis(500);

/// Asserts that a replay took less than ten times the native run of the
/// same program, or less than [`REPLAY_TIME_FLOOR`], whichever is larger.
pub fn assert_replay_within(native: Duration, replay: Duration) {
    let limit = (native * 10).max(REPLAY_TIME_FLOOR);
    // Shown with --nocapture: how close to the limit a passing test came.
    eprintln!(
        "replay {:.3} s, native {:.3} s, limit {:.3} s",
        replay.as_secs_f64(),
        native.as_secs_f64(),
        limit.as_secs_f64()
    );
    assert!(
        replay < limit,
        "replay too slow: {:.3} s against {:.3} s natively ({:.1}x); the limit is {:.3} s \
         (10x native, at least {:.1} s)",
        replay.as_secs_f64(),
        native.as_secs_f64(),
        replay.as_secs_f64() / native.as_secs_f64().max(1e-9),
        limit.as_secs_f64(),
        REPLAY_TIME_FLOOR.as_secs_f64()
    );
}

/// [`native`], timed.
pub fn native_timed(argv: &[&str], stdin: Option<&[u8]>) -> (Run, Duration) {
    timed(|| native(argv, stdin))
}

/// [`replay`], timed.
pub fn replay_timed(trace: &Path) -> (Run, Duration) {
    timed(|| replay(trace))
}

/// Records `argv`, runs it natively (after the recording, so that both
/// find warm caches), replays the trace, and asserts the replay printed
/// exactly what was recorded (stdout, stderr, status) within
/// [`assert_replay_within`] of the native run. Returns the recording and
/// the native run.
pub fn assert_replays_identically_within(
    mode: Buffering,
    argv: &[&str],
    stdin: Option<&[u8]>,
) -> (Recorded, Run) {
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, argv, stdin);
    let (nat, native_time) = native_timed(argv, stdin);
    let (rep, replay_time) = replay_timed(&trace);
    assert_replay_matches(&trace, &rec, &rep);
    let r = Recorded {
        mode,
        trace,
        record: rec,
        replay: rep,
    };
    assert_replay_within(native_time, replay_time);
    (r, nat)
}

/// Runs `cmd` like [`run`] (own process group, deadline, stdin closed,
/// stdout and stderr captured) and calls `on_first_line(line, pid)` as
/// soon as the child has written its first line to stdout (`line` without
/// the newline; `pid` is the spawned process: rrpipe itself when
/// recording). The callback may sleep and send signals; the rest of the
/// output is collected as usual. Panics, after killing the process group,
/// when no first line comes or the child outlives the deadline.
pub fn run_with_first_line(mut cmd: Command, on_first_line: impl FnOnce(&str, libc::pid_t)) -> Run {
    let desc = format!("{cmd:?}");
    cmd.process_group(0);
    cmd.stdin(Stdio::null());
    cmd.stdout(Stdio::piped());
    cmd.stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
    let pid = child.id() as libc::pid_t;
    let kill_group = || unsafe {
        libc::kill(-pid, libc::SIGKILL);
    };

    let (first_tx, first_rx) = mpsc::channel::<String>();
    let (tx, rx) = mpsc::channel::<(u8, Vec<u8>)>();
    let mut out = child.stdout.take().unwrap();
    let tx1 = tx.clone();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut first_tx = Some(first_tx);
        loop {
            match out.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
            if first_tx.is_some() {
                if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                    let line = String::from_utf8_lossy(&buf[..nl]).into_owned();
                    let _ = first_tx.take().unwrap().send(line);
                }
            }
        }
        let _ = tx1.send((1, buf));
    });
    let mut err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        let _ = tx.send((2, buf));
    });

    let limit = timeout();
    let deadline = Instant::now() + limit;
    // The first line, or the reason there is none.
    let first = first_rx.recv_timeout(limit);
    let mut problem = None;
    match first {
        Ok(line) => {
            let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                on_first_line(&line, pid)
            }));
            if let Err(e) = called {
                kill_group();
                let _ = child.wait();
                std::panic::resume_unwind(e);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            problem = Some(format!("no first line on stdout within {limit:?}"))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            problem = Some("stdout closed before a first line".to_string())
        }
    }

    // Wait for the exit without reaping (see `run`).
    let mut timed_out = false;
    loop {
        if exited_unreaped(pid) {
            break;
        }
        if problem.is_some() || Instant::now() >= deadline {
            timed_out = problem.is_none();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    kill_group();
    let run = collect(&mut child, &rx, &desc);
    if let Some(p) = problem {
        panic!(
            "{desc}: {p}; killed its process group\n{}",
            run.describe("run")
        );
    }
    if timed_out {
        panic!(
            "{desc} did not finish within {limit:?}; killed its process group\n{}",
            run.describe("killed run")
        );
    }
    run
}

/// `rrpipe record [MODE FLAGS] -o TRACE -- ARGV...` through
/// [`run_with_first_line`]: `on_first_line(line, rrpipe_pid)` runs when the
/// recorded program has printed its first line.
pub fn record_with_first_line(
    mode: Buffering,
    trace: &Path,
    argv: &[&str],
    on_first_line: impl FnOnce(&str, libc::pid_t),
) -> Run {
    run_with_first_line(record_cmd(mode, &[], trace, argv), on_first_line)
}

/// A native run through [`run_with_first_line`] (`pid` is the program's).
pub fn native_with_first_line(argv: &[&str], on_first_line: impl FnOnce(&str, libc::pid_t)) -> Run {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]);
    run_with_first_line(cmd, on_first_line)
}

/// The pid in a line `pid N` (what the signal test programs print first).
pub fn pid_from_line(line: &str) -> libc::pid_t {
    line.strip_prefix("pid ")
        .and_then(|s| s.trim().parse::<libc::pid_t>().ok())
        .filter(|p| *p > 1)
        .unwrap_or_else(|| panic!("expected a first line `pid N`, got {line:?}"))
}

/// `kill(pid, sig)`, asserting it succeeded.
pub fn send_signal(pid: libc::pid_t, sig: libc::c_int) {
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(
        r,
        0,
        "kill({pid}, {sig}) failed: {}",
        std::io::Error::last_os_error()
    );
}

/// Waits for an exited child (its group already killed) and gathers the
/// output its reader threads send on `rx` (1: stdout, 2: stderr).
fn collect(
    child: &mut std::process::Child,
    rx: &std::sync::mpsc::Receiver<(u8, Vec<u8>)>,
    desc: &str,
) -> Run {
    let status = child
        .wait()
        .unwrap_or_else(|e| panic!("cannot wait for {desc}: {e}"));
    let status = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => panic!("{desc}: unexpected status {status:?}"),
    };
    let mut stdout = None;
    let mut stderr = None;
    let grace = Instant::now() + Duration::from_secs(10);
    while stdout.is_none() || stderr.is_none() {
        let left = grace.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((1, b)) => stdout = Some(b),
            Ok((_, b)) => stderr = Some(b),
            Err(_) => panic!(
                "{desc}: exited (status {status}) but its output pipes stay open: \
                 some process escaped its process group"
            ),
        }
    }
    Run {
        stdout: stdout.unwrap(),
        stderr: stderr.unwrap(),
        status,
    }
}

/// Records `bin`, which calls kexec_file_load (no tracer supports it), and
/// asserts: recording stops with exit 81 naming the syscall, before it ran
/// (`stdout` is exactly what came before), and the partial trace replays
/// the same output. `why` says who must have been stopped.
pub fn assert_unsupported_syscall_stops(mode: Buffering, bin: &Path, stdout: &str, why: &str) {
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, &[bin.to_str().unwrap()], None);
    assert_eq!(rec.status, 81, "{}", rec.describe("record"));
    assert_eq!(
        rec.stdout_str(),
        stdout,
        "{why}\n{}",
        rec.describe("record")
    );
    assert!(
        rec.stderr_str().contains("kexec_file_load"),
        "{}",
        rec.describe("record")
    );
    assert!(
        !rec.stderr_str().contains("panicked"),
        "{}",
        rec.describe("record")
    );
    // The trace up to the syscall replays.
    let rep = replay(&trace);
    assert_eq!(
        rep.stdout,
        rec.stdout,
        "trace: {}\n{}{}",
        trace.display(),
        rec.describe("record"),
        rep.describe("replay")
    );
    assert!(
        !rep.stderr_str().contains("panicked"),
        "{}",
        rep.describe("replay")
    );
}

/// Whether this machine can make `cpuid` fault (ARCH_SET_CPUID), which
/// rrpipe uses to hide XSAVE from programs (see `core/src/cpuid.rs`).
/// Asking to keep cpuid enabled is refused with ENODEV where it cannot.
/// `RRPIPE_NO_CPUID_TRAP` in the environment makes rrpipe, and so this,
/// act as if it could not.
pub fn cpuid_faulting() -> bool {
    if std::env::var_os("RRPIPE_NO_CPUID_TRAP").is_some() {
        return false;
    }
    const ARCH_SET_CPUID: libc::c_long = 0x1012;
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_SET_CPUID, 1 as libc::c_long) == 0 }
}

/// Records `argv` with `--checksum=on-syscalls` and replays it with the
/// same flag: the memory digests of every syscall must match.
pub fn checksummed(mode: Buffering, argv: &[&str]) {
    let trace = fresh_trace_path();
    let rec = record_with_args(mode, &["--checksum=on-syscalls"], &trace, argv);
    let sums = std::fs::read_to_string(trace.join("checksums")).unwrap_or_default();
    assert!(
        sums.lines().count() > 5,
        "too few checksums recorded\n{}",
        rec.describe("record")
    );
    let manifest = std::fs::read_to_string(trace.join("manifest.toml")).unwrap();
    assert!(
        manifest.contains("\"checksums\""),
        "manifest lacks checksums:\n{manifest}"
    );
    let rep = rrpipe_args(&["replay", "--checksum=on-syscalls", trace.to_str().unwrap()]);
    assert_replay_matches(&trace, &rec, &rep);
    assert!(
        !rep.stderr_str().contains("mismatch"),
        "{}",
        rep.describe("replay")
    );
}
