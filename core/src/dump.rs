//! `rrpipe dump`: a trace as text, one line per event, like `rr dump`.
//!
//! ```text
//! # trace /home/me/.local/share/rrpipe/trace_0
//! # program: ./prog arg1
//! # cwd: /home/me
//! # recorded by rrpipe 0.1.0 on cpu 0, syscall buffering on
//!      1  12345 exec     "./prog" ["./prog", "arg1"] (14 mappings, 2 files saved)
//!      2  12345 syscall  brk(NULL) = 0x555555559000
//!      5  12345 syscall  openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3
//!      6  12345 syscall  fstat(3, 0x7fffffffd8a0) = 0 [wrote 144 bytes]
//!     90  12345 exit     exited with code 0
//! # complete: yes, 90 events, files: header, events, files/... (trace-writer)
//! ```
//!
//! The events are printed as they are read, so a truncated or corrupt trace
//! shows everything up to the damage before the error.

use std::io::{self, Write};
use std::path::Path;

use rrpipe_plugin_api::event::{
    flags, BufferedCall, Event, EventData, EventHeader, EventKind, SignalInfo,
};
use rrpipe_plugin_api::trace::{self, EventReader, Manifest, TraceHeader, MANIFEST_FILE};

use crate::syscalls;
use crate::Error;

/// Writes the dump of the trace in `trace_dir` to `out`. A closed pipe
/// (`rrpipe dump | head`) ends the dump quietly.
pub fn run(trace_dir: &Path, out: &mut dyn Write) -> crate::Result<()> {
    match dump(trace_dir, out) {
        Ok(()) => Ok(()),
        Err(Failure::Trace(e)) => Err(e),
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(Failure::Output(e)) => Err(Error::internal("writing the dump", e)),
    }
}

enum Failure {
    Trace(Error),
    Output(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

impl From<trace::TraceError> for Failure {
    fn from(e: trace::TraceError) -> Self {
        Failure::Trace(e.into())
    }
}

fn dump(dir: &Path, out: &mut dyn Write) -> Result<(), Failure> {
    if !dir.is_dir() {
        return Err(Failure::Trace(Error::TraceNotFound(dir.to_path_buf())));
    }
    let header = trace::read_header(dir)?;
    let mut events = EventReader::open(dir)?;
    write_header(out, dir, &header)?;
    let mut count = 0u64;
    while let Some(event) = events.next_event()? {
        count += 1;
        match &event.data {
            EventData::Buffered(info) => {
                for call in info.calls() {
                    let line = match call {
                        Ok(call) => buffered_line(&event.header, &call),
                        Err(bad) => format!("{}: {bad}", prefix(&event.header, "buffered")),
                    };
                    writeln!(out, "{line}")?;
                }
            }
            _ => writeln!(out, "{}", event_line(&event))?,
        }
    }
    writeln!(out, "{}", manifest_line(dir, count))?;
    out.flush()?;
    Ok(())
}

fn write_header(out: &mut dyn Write, dir: &Path, h: &TraceHeader) -> io::Result<()> {
    writeln!(out, "# trace {}", dir.display())?;
    let argv: Vec<String> = h.argv.iter().map(|a| shell_quote(a)).collect();
    let mut program = format!("# program: {}", argv.join(" "));
    if h.argv.first() != Some(&h.exe) {
        program.push_str(&format!(" (exe {})", shell_quote(&h.exe)));
    }
    writeln!(out, "{program}")?;
    writeln!(out, "# cwd: {}", h.cwd)?;
    writeln!(
        out,
        "# recorded by rrpipe {} on cpu {}, syscall buffering {}",
        h.rrpipe_version,
        h.cpu,
        if h.syscall_buffer { "on" } else { "off" }
    )
}

/// One event: `<time> <tid> <kind> details`.
pub fn event_line(event: &Event) -> String {
    let h = &event.header;
    let kind = match h.kind {
        EventKind::Exec => "exec",
        EventKind::Syscall => "syscall",
        EventKind::Blocked => "blocked",
        EventKind::Preempt => "preempt",
        EventKind::Signal => "signal",
        EventKind::Rdtsc => "rdtsc",
        EventKind::Exit => "exit",
        EventKind::Abort => "abort",
        EventKind::Buffered => "buffered",
    };
    let details = match &event.data {
        EventData::Exec(e) => {
            let argv: Vec<String> = e.argv.iter().map(|a| format!("{:?}", a.as_str())).collect();
            let exe = if e.exe.is_empty() || e.exe == e.filename {
                String::new()
            } else {
                format!("exe {}, ", e.exe)
            };
            format!(
                "{:?} [{}] ({exe}{} mappings, {} files saved)",
                e.filename.as_str(),
                argv.join(", "),
                e.maps.len(),
                e.files.len()
            )
        }
        EventData::Syscall(s) => {
            let inputs: Vec<(u64, Vec<u8>)> =
                s.inputs.iter().map(|b| (b.addr, b.data.to_vec())).collect();
            let mut line = syscalls::format_call(h.syscall, &h.args, &inputs, h.result);
            line.push_str(&wrote(s.outputs.iter().map(|b| b.data.len()).sum()));
            if let Some(f) = s.file.as_ref().into_option() {
                line.push_str(&format!(" [mapped {} as {}]", f.original, f.in_trace));
            }
            line
        }
        EventData::Blocked(_) => format!("{} may wait: other tasks run", syscalls::name(h.syscall)),
        EventData::Preempt(p) => match p.anchor.as_ref().into_option() {
            Some(a) => format!("at anchor {:#x} (digest {:#x})", p.regs.rip, a.digest),
            None => format!("at {:#x}, right after its previous event", p.regs.rip),
        },
        EventData::Signal(s) => signal_details(s),
        EventData::Rdtsc(r) => match r.aux.into_option() {
            Some(aux) => format!("rdtscp() = {} aux={aux}", r.tsc),
            None => format!("rdtsc() = {}", r.tsc),
        },
        EventData::Exit(e) if e.signal != 0 => format!("killed by {}", signal_name(e.signal)),
        EventData::Exit(e) => format!("exited with code {}", e.code),
        EventData::Abort(a) => format!("{} (rrpipe exit code {})", a.reason, a.exit_code),
        EventData::Buffered(_) => format!("{} syscalls made without a stop", h.result),
    };
    let fallback = if h.flags & flags::BUFFER_FALLBACK != 0 {
        " (not buffered: would wait, or a signal was pending)"
    } else {
        ""
    };
    format!("{} {details}{fallback}{}", prefix(h, kind), at_death(h))
}

/// The note on events reported at a death by SIGKILL (`flags::AT_DEATH`).
fn at_death(h: &EventHeader) -> &'static str {
    if h.flags & flags::AT_DEATH != 0 {
        " (reported at its death by SIGKILL)"
    } else {
        ""
    }
}

/// One call of a `Buffered` event: a line like a syscall's, under the
/// time of the stop it was reported at (paths are not shown: the library
/// keeps no copy of what the program passed in).
pub fn buffered_line(h: &EventHeader, call: &BufferedCall) -> String {
    let mut line = syscalls::format_call(call.nr, &call.args, &[], call.result);
    line.push_str(&wrote(call.output.map_or(0, |o| o.data.len())));
    format!("{} {line}{}", prefix(h, "buffered"), at_death(h))
}

/// `<time> <tid> <kind>`, aligned.
fn prefix(h: &EventHeader, kind: &str) -> String {
    format!("{:>6} {:>6} {:<8}", h.time, h.tid, kind)
}

/// ` [wrote N bytes]`, or nothing.
fn wrote(bytes: usize) -> String {
    match bytes {
        0 => String::new(),
        1 => " [wrote 1 byte]".to_string(),
        n => format!(" [wrote {n} bytes]"),
    }
}

fn signal_details(s: &SignalInfo) -> String {
    let mut line = format!(
        "{} code={}",
        signal_name(s.signo),
        signal_code(s.signo, s.code)
    );
    let sent = s.code <= 0 || s.code == 0x80;
    if sent {
        // si_pid in the low half.
        if s.code <= 0 {
            line.push_str(&format!(" pid={}", s.addr as u32 as i32));
        }
    } else {
        line.push_str(&format!(" addr={:#x}", s.addr));
    }
    if s.errno != 0 {
        line.push_str(&format!(" errno={}", s.errno));
    }
    if s.fatal {
        line.push_str(" fatal");
    }
    line
}

fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) if (32..=64).contains(&sig) => format!("SIGRT_{}", sig - 32),
        Err(_) => sig.to_string(),
    }
}

/// `si_code` by name where it is one of the common ones.
fn signal_code(signo: i32, code: i32) -> String {
    let generic = match code {
        0 => Some("SI_USER"),
        0x80 => Some("SI_KERNEL"),
        -1 => Some("SI_QUEUE"),
        -2 => Some("SI_TIMER"),
        -3 => Some("SI_MESGQ"),
        -4 => Some("SI_ASYNCIO"),
        -5 => Some("SI_SIGIO"),
        -6 => Some("SI_TKILL"),
        _ => None,
    };
    if let Some(name) = generic {
        return name.to_string();
    }
    let names: &[&str] = match signo {
        libc::SIGSEGV => &["SEGV_MAPERR", "SEGV_ACCERR", "SEGV_BNDERR", "SEGV_PKUERR"],
        libc::SIGBUS => &[
            "BUS_ADRALN",
            "BUS_ADRERR",
            "BUS_OBJERR",
            "BUS_MCEERR_AR",
            "BUS_MCEERR_AO",
        ],
        libc::SIGILL => &[
            "ILL_ILLOPC",
            "ILL_ILLOPN",
            "ILL_ILLADR",
            "ILL_ILLTRP",
            "ILL_PRVOPC",
            "ILL_PRVREG",
            "ILL_COPROC",
            "ILL_BADSTK",
        ],
        libc::SIGFPE => &[
            "FPE_INTDIV",
            "FPE_INTOVF",
            "FPE_FLTDIV",
            "FPE_FLTOVF",
            "FPE_FLTUND",
            "FPE_FLTRES",
            "FPE_FLTINV",
            "FPE_FLTSUB",
        ],
        libc::SIGTRAP => &["TRAP_BRKPT", "TRAP_TRACE", "TRAP_BRANCH", "TRAP_HWBKPT"],
        libc::SIGCHLD => &[
            "CLD_EXITED",
            "CLD_KILLED",
            "CLD_DUMPED",
            "CLD_TRAPPED",
            "CLD_STOPPED",
            "CLD_CONTINUED",
        ],
        libc::SIGIO => &[
            "POLL_IN", "POLL_OUT", "POLL_MSG", "POLL_ERR", "POLL_PRI", "POLL_HUP",
        ],
        _ => &[],
    };
    match usize::try_from(code)
        .ok()
        .and_then(|c| c.checked_sub(1))
        .and_then(|i| names.get(i))
    {
        Some(name) => name.to_string(),
        None => code.to_string(),
    }
}

/// The closing line: whether the recording finished, per its manifest.
fn manifest_line(dir: &Path, events_read: u64) -> String {
    let path = dir.join(MANIFEST_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return format!(
                "# complete: no (no {MANIFEST_FILE}: the recording did not finish), {events_read} events"
            );
        }
        Err(e) => return format!("# complete: unknown (cannot read {}: {e})", path.display()),
    };
    let manifest: Manifest = match toml::from_str(&text) {
        Ok(m) => m,
        Err(e) => {
            let e = e.to_string();
            let first = e.lines().next().unwrap_or("").trim();
            return format!("# complete: unknown ({MANIFEST_FILE} is malformed: {first})");
        }
    };
    let mut line = format!(
        "# complete: {}, {} events",
        if manifest.complete { "yes" } else { "no" },
        manifest.events
    );
    if manifest.events != events_read {
        line.push_str(&format!(" ({events_read} in the event stream)"));
    }
    let files: Vec<String> = manifest
        .components
        .iter()
        .filter(|c| !c.files.is_empty())
        .map(|c| format!("{} ({})", c.files.join(", "), c.name))
        .collect();
    if files.is_empty() {
        line.push_str(", files: none");
    } else {
        line.push_str(&format!(", files: {}", files.join("; ")));
    }
    line
}

/// An argument as a shell would need it.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./=:,+@%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi_stable::std_types::{ROption, RString, RVec};
    use rrpipe_plugin_api::event::*;
    use rrpipe_plugin_api::trace::{write_header, EventWriter, ManifestEntry};

    fn header(time: u64, kind: EventKind) -> EventHeader {
        EventHeader {
            time,
            tid: 4242,
            kind,
            syscall: -1,
            args: [0; 6],
            result: 0,
            signal: 0,
            flags: 0,
        }
    }

    fn syscall(
        time: u64,
        nr: i64,
        args: [u64; 6],
        result: i64,
        inputs: Vec<MemBlock>,
        outputs: Vec<MemBlock>,
    ) -> Event {
        let regs = Regs {
            orig_rax: nr as u64,
            ..Default::default()
        };
        Event {
            header: EventHeader {
                syscall: nr,
                args,
                result,
                ..header(time, EventKind::Syscall)
            },
            data: EventData::Syscall(SyscallInfo {
                regs,
                inputs: inputs.into(),
                outputs: outputs.into(),
                file: ROption::RNone,
            }),
        }
    }

    fn block(addr: u64, data: &[u8]) -> MemBlock {
        MemBlock {
            addr,
            data: RVec::from(data.to_vec()),
        }
    }

    fn write_trace(dir: &Path) {
        write_header(
            dir,
            &TraceHeader {
                rrpipe_version: "0.1.0".into(),
                exe: "/bin/cat".into(),
                argv: vec!["/bin/cat".into(), "my file".into()],
                env: vec!["PATH=/bin".into()],
                cwd: "/tmp".into(),
                cpu: 1,
                recorded_at: 1_700_000_000,
                syscall_buffer: false,
            },
        )
        .unwrap();
        let mut w = EventWriter::create(dir).unwrap();
        w.push(&Event {
            header: header(1, EventKind::Exec),
            data: EventData::Exec(ExecInfo {
                regs: Regs::default(),
                filename: RString::from("/bin/cat"),
                exe: RString::from("/usr/bin/cat"),
                argv: vec![RString::from("/bin/cat"), RString::from("my file")].into(),
                maps: RVec::new(),
                memory: RVec::new(),
                files: RVec::new(),
                caller_tid: 0,
            }),
        })
        .unwrap();
        let at_fdcwd = -100i64 as u64;
        let o_cloexec = libc::O_CLOEXEC as u64;
        w.push(&syscall(
            2,
            libc::SYS_openat,
            [at_fdcwd, 0x4000, o_cloexec, 0, 0, 0],
            3,
            vec![block(0x4000, b"/etc/ld.so.cache")],
            vec![],
        ))
        .unwrap();
        w.push(&syscall(
            3,
            libc::SYS_fstat,
            [3, 0x7fff_0000, 0, 0, 0, 0],
            0,
            vec![],
            vec![block(0x7fff_0000, &[0; 144])],
        ))
        .unwrap();
        w.push(&syscall(
            4,
            libc::SYS_openat,
            [at_fdcwd, 0x4100, 0, 0, 0, 0],
            -2,
            vec![block(0x4100, b"my file")],
            vec![],
        ))
        .unwrap();
        w.push(&Event {
            header: EventHeader {
                signal: libc::SIGSEGV,
                ..header(5, EventKind::Signal)
            },
            data: EventData::Signal(SignalInfo {
                regs: Regs::default(),
                signo: libc::SIGSEGV,
                code: 1,
                errno: 0,
                addr: 0x10,
                fatal: true,
                siginfo: Vec::new().into(),
                anchor: None.into(),
                handler_frame: Vec::new().into(),
            }),
        })
        .unwrap();
        w.push(&Event {
            header: header(6, EventKind::Rdtsc),
            data: EventData::Rdtsc(RdtscInfo {
                regs: Regs::default(),
                tsc: 123_456_789,
                aux: ROption::RNone,
            }),
        })
        .unwrap();
        w.push(&Event {
            header: EventHeader {
                signal: libc::SIGSEGV,
                ..header(7, EventKind::Exit)
            },
            data: EventData::Exit(ExitInfo {
                code: 0,
                signal: libc::SIGSEGV,
            }),
        })
        .unwrap();
        w.finish().unwrap();
    }

    fn dump_text(dir: &Path) -> String {
        let mut out = Vec::new();
        run(dir, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn dumps_a_synthetic_trace() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_trace(dir);
        let text = dump_text(dir);
        let expected = format!(
            "# trace {}
# program: /bin/cat 'my file'
# cwd: /tmp
# recorded by rrpipe 0.1.0 on cpu 1, syscall buffering off
     1   4242 exec     \"/bin/cat\" [\"/bin/cat\", \"my file\"] (exe /usr/bin/cat, 0 mappings, 0 files saved)
     2   4242 syscall  openat(AT_FDCWD, \"/etc/ld.so.cache\", O_RDONLY|O_CLOEXEC) = 3
     3   4242 syscall  fstat(3, 0x7fff0000) = 0 [wrote 144 bytes]
     4   4242 syscall  openat(AT_FDCWD, \"my file\", O_RDONLY) = -1 ENOENT (No such file or directory)
     5   4242 signal   SIGSEGV code=SEGV_MAPERR addr=0x10 fatal
     6   4242 rdtsc    rdtsc() = 123456789
     7   4242 exit     killed by SIGSEGV
# complete: no (no manifest.toml: the recording did not finish), 7 events
",
            dir.display()
        );
        assert_eq!(text, expected);

        let manifest = Manifest {
            complete: true,
            events: 7,
            components: vec![ManifestEntry {
                name: "trace-writer".into(),
                files: vec!["header".into(), "events".into()],
            }],
        };
        std::fs::write(dir.join(MANIFEST_FILE), toml::to_string(&manifest).unwrap()).unwrap();
        let text = dump_text(dir);
        assert!(
            text.ends_with("\n# complete: yes, 7 events, files: header, events (trace-writer)\n"),
            "{text}"
        );
    }

    #[test]
    fn missing_and_truncated_traces_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope");
        let err = run(&missing, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, Error::TraceNotFound(_)), "{err}");

        let dir = tmp.path();
        write_trace(dir);
        let events = dir.join(trace::EVENTS_FILE);
        let len = std::fs::metadata(&events).unwrap().len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&events)
            .unwrap();
        f.set_len(len - 5).unwrap();
        let mut out = Vec::new();
        let err = run(dir, &mut out).unwrap_err();
        assert!(matches!(err, Error::BadTrace(_)), "{err}");
        // The header block was written before the damage was found.
        assert!(String::from_utf8(out).unwrap().starts_with("# trace "));
    }

    #[test]
    fn signal_and_exit_details() {
        let sent = SignalInfo {
            regs: Regs::default(),
            signo: libc::SIGTERM,
            code: 0,
            errno: 0,
            addr: 777,
            fatal: false,
            siginfo: Vec::new().into(),
            anchor: None.into(),
            handler_frame: Vec::new().into(),
        };
        assert_eq!(signal_details(&sent), "SIGTERM code=SI_USER pid=777");
        assert_eq!(signal_code(libc::SIGCHLD, 1), "CLD_EXITED");
        assert_eq!(signal_code(libc::SIGUSR1, 99), "99");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
