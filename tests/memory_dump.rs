//! The memory dumper: ELF core files at chosen events, identical in record
//! and replay, that gdb opens.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use object::read::elf::{ElfFile64, ProgramHeader};
use object::Endianness;

/// The dump files of `dir`, by name.
fn dumps(dir: &Path) -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect()
}

/// `core.<time>.<tid>.<cause>` → (time, tid, cause).
fn parse_name(name: &str) -> (u64, i32, String) {
    let parts: Vec<&str> = name.splitn(4, '.').collect();
    assert!(
        parts.len() == 4 && parts[0] == "core",
        "bad dump name {name}"
    );
    (
        parts[1].parse().unwrap(),
        parts[2].parse().unwrap(),
        parts[3].to_string(),
    )
}

/// (vaddr, memsz, flags, bytes) of every PT_LOAD.
type Loads = Vec<(u64, u64, u32, Vec<u8>)>;

fn loads(core: &Path) -> Loads {
    let data = std::fs::read(core).unwrap();
    let elf = ElfFile64::<Endianness>::parse(&*data)
        .unwrap_or_else(|e| panic!("{} is not ELF: {e}", core.display()));
    let e = elf.endian();
    assert_eq!(elf.elf_header().e_type.get(e), object::elf::ET_CORE);
    elf.elf_program_headers()
        .iter()
        .filter(|p| p.p_type(e) == object::elf::PT_LOAD)
        .map(|p| {
            (
                p.p_vaddr(e),
                p.p_memsz(e),
                p.p_flags(e),
                p.data(e, &*data).unwrap().to_vec(),
            )
        })
        .collect()
}

/// The line of `rrpipe dump` for global time `t`.
fn event_line(trace: &Path, t: u64) -> String {
    let d = dump(trace);
    assert_eq!(d.status, 0, "{}", d.describe("dump"));
    d.stdout_str()
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&t.to_string()))
        .unwrap_or_else(|| panic!("no event {t} in the dump\n{}", d.stdout_str()))
        .to_string()
}

fn assert_same_loads(recorded: &Path, replayed: &Path) {
    let (a, b) = (loads(recorded), loads(replayed));
    assert_eq!(
        a.len(),
        b.len(),
        "{} vs {}",
        recorded.display(),
        replayed.display()
    );
    assert!(
        a.iter().any(|l| !l.3.is_empty()),
        "no memory in {}",
        recorded.display()
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            (x.0, x.1, x.2),
            (y.0, y.1, y.2),
            "segments differ: {} vs {}",
            recorded.display(),
            replayed.display()
        );
        assert!(
            x.3 == y.3,
            "the bytes of the segment at {:#x} differ between {} and {}: {}",
            x.0,
            recorded.display(),
            replayed.display(),
            first_difference(&x.3, &y.3)
        );
    }
}

fn gdb_backtrace(program: &Path, core: &Path) -> String {
    let out = std::process::Command::new("gdb")
        .args(["-nx", "-batch", "-ex", "bt"])
        .arg(program)
        .arg(core)
        .output()
        .expect("run gdb");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

both_modes!(dumps_on_read_and_sigsegv_are_identical_in_record_and_replay_and_open_in_gdb);
fn dumps_on_read_and_sigsegv_are_identical_in_record_and_replay_and_open_in_gdb(mode: Buffering) {
    let bin = compile_c("segv");
    let trace = fresh_trace_path();
    let read_nr = "0";
    let rec = record_with_args(
        mode,
        &[&format!("--dump_on={read_nr}"), "--dump_on=-11"],
        &trace,
        &[bin.to_str().unwrap()],
    );
    assert_eq!(rec.status, 128 + 11, "{}", rec.describe("record"));
    let recorded = dumps(&trace.join("dumps"));
    let causes: Vec<String> = recorded.keys().map(|n| parse_name(n).2).collect();
    assert!(causes.iter().any(|c| c == "read"), "{causes:?}");
    assert_eq!(
        causes.iter().filter(|c| *c == "SIGSEGV").count(),
        1,
        "{causes:?}"
    );
    // Each at the right event.
    for name in recorded.keys() {
        let (time, tid, cause) = parse_name(name);
        let line = event_line(&trace, time);
        assert!(line.contains(&tid.to_string()), "{name}: {line}");
        match cause.as_str() {
            "read" => assert!(line.contains("syscall  read("), "{name}: {line}"),
            "SIGSEGV" => assert!(line.contains("signal   SIGSEGV"), "{name}: {line}"),
            other => panic!("unexpected cause {other}"),
        }
    }

    let rep = replay_with(&trace, &["--dump_on=0", "--dump_on=SIGSEGV"]);
    assert_eq!(rep.status, 128 + 11, "{}", rep.describe("replay"));
    let replayed = dumps(&trace.join("replay-dumps"));
    assert_eq!(
        recorded.keys().collect::<Vec<_>>(),
        replayed.keys().collect::<Vec<_>>(),
        "replay dumped at other events"
    );
    for (name, path) in &recorded {
        assert_same_loads(path, &replayed[name]);
    }

    let segv = recorded
        .iter()
        .find(|(n, _)| n.ends_with(".SIGSEGV"))
        .unwrap()
        .1;
    let replayed_segv = &replayed[&segv.file_name().unwrap().to_string_lossy().into_owned()];
    for core in [segv, replayed_segv] {
        let bt = gdb_backtrace(&bin, core);
        assert!(
            bt.contains("signal SIGSEGV")
                && bt
                    .lines()
                    .any(|l| l.starts_with("#0") && l.contains("main")),
            "gdb shows no crash in main for {}:\n{bt}",
            core.display()
        );
    }
}

both_modes!(dump_at_dumps_exactly_once_at_that_time);
fn dump_at_dumps_exactly_once_at_that_time(mode: Buffering) {
    let bin = compile_c_threads("fork_wait");
    let trace = fresh_trace_path();
    let rec = record(mode, &trace, &[bin.to_str().unwrap()], None);
    assert_eq!(rec.status, 0, "{}", rec.describe("record"));
    // A time late in the run, when the child may be the one running.
    let d = dump(&trace);
    let events = d
        .stdout_str()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count() as u64;
    let at = events * 2 / 3;

    let trace2 = fresh_trace_path();
    let rec2 = record_with_args(
        mode,
        &[&format!("--dump_at={at}")],
        &trace2,
        &[bin.to_str().unwrap()],
    );
    assert_eq!(rec2.status, 0, "{}", rec2.describe("record"));
    let recorded = dumps(&trace2.join("dumps"));
    assert_eq!(recorded.len(), 1, "{:?}", recorded.keys());
    let (name, path) = recorded.iter().next().unwrap();
    let (time, tid, cause) = parse_name(name);
    assert_eq!((time, cause.as_str()), (at, "at"), "{name}");
    let line = event_line(&trace2, at);
    assert_eq!(
        line.split_whitespace().nth(1),
        Some(tid.to_string().as_str()),
        "the dump names another task than event {at}: {line}"
    );

    let out = scratch_dir("dump-at-replay");
    let rep = replay_with(
        &trace2,
        &[
            &format!("--dump_at={at}"),
            "--config",
            write_replay_dir_config(&out).to_str().unwrap(),
        ],
    );
    assert_eq!(rep.status, 0, "{}", rep.describe("replay"));
    let replayed = dumps(&out.join("cores"));
    assert_eq!(replayed.keys().collect::<Vec<_>>(), vec![name]);
    assert_same_loads(path, &replayed[name]);
}

/// A replay TOML whose memory-dump plugin writes into `<dir>/cores`
/// (relative to the TOML file).
fn write_replay_dir_config(dir: &Path) -> PathBuf {
    let config = dir.join("replay.toml");
    std::fs::write(
        &config,
        "mode = \"replay\"\n[[plugin]]\nname = \"memory-dump\"\n[plugin.config]\ndir = \"cores\"\n",
    )
    .unwrap();
    config
}

#[test]
fn bad_dump_settings_are_one_line_errors() {
    let run = rrpipe_args(&["record", "--dump_on=frobnicate", "/bin/true"]);
    assert_one_line_error(&run, 64, &["frobnicate"]);
    let dir = scratch_dir("bad-dump");
    for (config, needle) in [
        ("dump_on = [\"-99\"]", "-99"),
        ("dump_at = [1]\ncolour = 3", "colour"),
        ("dir = \"x\"", "nothing to dump on"),
    ] {
        let file = dir.join("record.toml");
        std::fs::write(
            &file,
            format!("mode = \"record\"\n[[plugin]]\nname = \"memory-dump\"\n[plugin.config]\n{config}\n"),
        )
        .unwrap();
        let trace = fresh_trace_path();
        let run = rrpipe_args(&[
            "--config",
            file.to_str().unwrap(),
            "-o",
            trace.to_str().unwrap(),
            "/bin/true",
        ]);
        assert_one_line_error(&run, 79, &["memory-dump", needle]);
    }
}
