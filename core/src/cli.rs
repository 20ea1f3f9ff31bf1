//! The command line: every spelling users type, turned into one [`Command`].
//!
//! ```text
//! rrpipe --config FILE [OPTIONS] [--] [PROG ARGS... | TRACE]   mode from the TOML `mode`
//! rrpipe record [-o DIR] [OPTIONS] [--] PROG ARGS...
//! rrpipe replay [OPTIONS] [TRACE]
//! rrpipe dump [TRACE]
//! rrpipe --record [OPTIONS] PROG ARGS...                       the 2013 spelling
//! rrpipe --replay [DIR] [OPTIONS]                              the 2013 spelling
//! ```
//!
//! OPTIONS are `--config FILE`, `--cpu N`, `-o DIR` (record), `-n` /
//! `--no-syscall-buffer` (record: trace every syscall, no preload library;
//! also spelled `--no_syscall_buffer`), and the seed's
//! debug flags, each spelled with `-` or `_`: `--no-redirect-output`,
//! `--redirect-output`, `--filter-lib=PATH`, `--dump-on=SYSCALL|-SIGNAL`,
//! `--dump-at=TIME`, `--checksum=on-syscalls|on-all-events|FROM-TIME`.
//! Everything after PROG belongs to the program, even if it looks like a
//! flag (`rrpipe record ls -la`).
//!
//! Precedence: a flag overrides the TOML key it corresponds to; a program or
//! trace on the command line overrides `program`/`trace`. Options may be
//! written before the subcommand too (`rrpipe --cpu 0 record ls`); when both
//! places give one, the one after the subcommand wins.
//!
//! The debug flags do not act here: they become plugin specifications.
//! `--dump-on`/`--dump-at` configure a `memory-dump` plugin (config keys
//! `dump_on`, an array of strings as typed, and `dump_at`, an array of
//! global times), `--checksum` a `checksum` plugin (`mode = "on-syscalls"`,
//! `mode = "on-all-events"` or `from = TIME`). When the TOML already
//! declares a plugin of that name, the flags replace those keys in its
//! configuration (and `--checksum` drops the other of `mode`/`from`)
//! instead of adding a second instance; otherwise the spec is appended
//! after the TOML's plugins.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{ArgAction, Args, ColorChoice, Parser, Subcommand};

use crate::config::Config;
pub use crate::config::{Mode, PluginSpec, TracerOptions};
use crate::Error;

/// What rrpipe was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Record(RecordOptions),
    Replay(ReplayOptions),
    Dump {
        trace: Option<PathBuf>,
    },
    /// --help / --version: text to print on stdout, exit 0.
    Info(String),
}

/// A recording session.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordOptions {
    /// The program and its arguments as typed (argv[0] not yet resolved through PATH).
    pub program: Vec<String>,
    /// -o DIR / TOML `trace`: the trace directory to create. None: trace_N in the cwd.
    pub output: Option<PathBuf>,
    /// Plugins beyond the built-in trace writer, in TOML order, then those implied by flags.
    pub plugins: Vec<PluginSpec>,
    pub tracer: TracerOptions,
}

/// A replay session.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOptions {
    /// The trace to replay; None: the latest (latest-trace symlink in the cwd).
    pub trace: Option<PathBuf>,
    pub plugins: Vec<PluginSpec>,
    pub tracer: TracerOptions,
}

/// Name of the plugin that `--dump-on`/`--dump-at` configure.
pub const MEMORY_DUMP_PLUGIN: &str = "memory-dump";
/// Name of the plugin that `--checksum` configures.
pub const CHECKSUM_PLUGIN: &str = "checksum";

/// Parses the command line (`args[0]` is the program name) and the TOML file
/// it names, if any.
pub fn parse(args: Vec<OsString>) -> Result<Command, Error> {
    match Cli::try_parse_from(args) {
        Ok(cli) => resolve(cli),
        Err(e) => from_clap(e),
    }
}

const USAGE: &str = "\
rrpipe --config FILE [OPTIONS] [--] [PROG [ARGS]... | TRACE]
       rrpipe record [-o DIR] [OPTIONS] [--] PROG [ARGS]...
       rrpipe replay [OPTIONS] [TRACE]
       rrpipe dump [TRACE]
       rrpipe --record [OPTIONS] PROG [ARGS]...
       rrpipe --replay [DIR] [OPTIONS]";

const AFTER_HELP: &str = "\
With --config, the TOML key `mode = \"record\"` or `mode = \"replay\"` picks the
job; flags override the file's keys. Everything after PROG is the program's
own arguments, even when it looks like an option. A replay without a TRACE
replays the latest recording (the latest-trace symlink in this directory).

Each debug flag may be spelled with `_` as in 2013 (--dump_on=79).
--dump-on=SYSCALL|-SIGNAL dumps all memory at each such syscall (number or
name) or signal (-number, or name such as SIGCHLD); --dump-at=TIME at the
event of that global time; --checksum computes memory checksums in record
and verifies them in replay.

Exit codes: 64 usage, 65 bad trace, 66 program or trace not found,
70 internal, 78 configuration, 79 plugin, 80 replay diverged,
81 unsupported syscall, 130 interrupted; otherwise the program's own status.";

const DEBUG_HEADING: &str = "Debug options (also spelled with _)";

#[derive(Parser, Debug)]
#[command(
    name = "rrpipe",
    bin_name = "rrpipe",
    version,
    about = "Record a Linux program's execution once, replay it exactly, watch both through plugins",
    override_usage = USAGE,
    after_help = AFTER_HELP,
    disable_help_subcommand = true,
    color = ColorChoice::Never
)]
struct Cli {
    #[command(subcommand)]
    sub: Option<Sub>,

    /// Record PROG (the 2013 spelling of `rrpipe record`)
    #[arg(long, conflicts_with = "replay")]
    record: bool,

    /// Replay DIR, or the latest trace (the 2013 spelling of `rrpipe replay`)
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    replay: Option<Option<PathBuf>>,

    /// Record: the trace directory to create [default: trace_N here]
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    output: Option<PathBuf>,

    #[command(flatten)]
    common: CommonArgs,

    /// Record: the program and its arguments; replay: the trace directory
    #[arg(value_name = "PROG|TRACE", trailing_var_arg = true)]
    args: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Record PROG into a new trace directory
    #[command(override_usage = "rrpipe record [-o DIR] [OPTIONS] [--] PROG [ARGS]...")]
    Record(RecordCmd),
    /// Replay a trace (the latest one when TRACE is left out)
    Replay(ReplayCmd),
    /// Print a trace's events, human-readable
    Dump(DumpCmd),
}

#[derive(Args, Debug)]
struct RecordCmd {
    /// The trace directory to create [default: trace_N here]
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    output: Option<PathBuf>,

    #[command(flatten)]
    common: CommonArgs,

    /// The program and its arguments (from the TOML `program` when absent)
    #[arg(value_name = "PROG", trailing_var_arg = true)]
    program: Vec<String>,
}

#[derive(Args, Debug)]
struct ReplayCmd {
    #[command(flatten)]
    common: CommonArgs,

    /// The trace directory [default: the TOML `trace`, else the latest trace]
    #[arg(value_name = "TRACE")]
    trace: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct DumpCmd {
    /// The trace directory [default: the latest trace]
    #[arg(value_name = "TRACE")]
    trace: Option<PathBuf>,
}

/// Options accepted by every session, before or after the subcommand.
#[derive(Args, Debug, Default, Clone, PartialEq)]
struct CommonArgs {
    /// TOML configuration (mode, tracer options, plugins)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// CPU to pin rrpipe and the program to [default: chosen automatically]
    #[arg(long, value_name = "N")]
    cpu: Option<u32>,

    /// Replay: do not print the recorded stdout/stderr writes
    #[arg(
        long = "no-redirect-output",
        visible_alias = "no_redirect_output",
        overrides_with = "redirect_output",
        help_heading = DEBUG_HEADING
    )]
    no_redirect_output: bool,

    /// Replay: print the recorded stdout/stderr writes (the default)
    #[arg(
        long = "redirect-output",
        visible_alias = "redirect_output",
        overrides_with = "no_redirect_output",
        help_heading = DEBUG_HEADING
    )]
    redirect_output: bool,

    /// Record: go on until every process of the tree has exited, not just the first
    #[arg(long)]
    wait: bool,

    /// Record: trace every syscall, without the syscall-buffering preload library
    #[arg(
        short = 'n',
        long = "no-syscall-buffer",
        visible_alias = "no_syscall_buffer"
    )]
    no_syscall_buffer: bool,

    /// Preload library for syscall buffering [default: librrpipe_preload.so next to rrpipe]
    #[arg(
        long = "filter-lib",
        visible_alias = "filter_lib",
        value_name = "PATH",
        help_heading = DEBUG_HEADING
    )]
    filter_lib: Option<PathBuf>,

    /// Dump all memory at each such syscall (number or name) or -signal (repeatable)
    #[arg(
        long = "dump-on",
        visible_alias = "dump_on",
        value_name = "SYSCALL|-SIGNAL",
        allow_hyphen_values = true,
        action = ArgAction::Append,
        value_parser = parse_dump_on,
        help_heading = DEBUG_HEADING
    )]
    dump_on: Vec<String>,

    /// Dump all memory at global time TIME (repeatable)
    #[arg(
        long = "dump-at",
        visible_alias = "dump_at",
        value_name = "TIME",
        action = ArgAction::Append,
        value_parser = parse_time,
        help_heading = DEBUG_HEADING
    )]
    dump_at: Vec<u64>,

    /// Memory checksums: on-syscalls, on-all-events, or every event from global time FROM
    #[arg(
        long = "checksum",
        value_name = "on-syscalls|on-all-events|FROM",
        value_parser = parse_checksum,
        help_heading = DEBUG_HEADING
    )]
    checksum: Option<Checksum>,
}

impl CommonArgs {
    /// `self` (written before the subcommand) overridden by `later`.
    fn merge(self, later: CommonArgs) -> Result<CommonArgs, Error> {
        if let (Some(a), Some(b)) = (&self.config, &later.config) {
            return Err(usage(format!(
                "--config given twice ({} and {})",
                a.display(),
                b.display()
            )));
        }
        let later_sets_redirect = later.no_redirect_output || later.redirect_output;
        Ok(CommonArgs {
            config: later.config.or(self.config),
            cpu: later.cpu.or(self.cpu),
            no_redirect_output: if later_sets_redirect {
                later.no_redirect_output
            } else {
                self.no_redirect_output
            },
            redirect_output: if later_sets_redirect {
                later.redirect_output
            } else {
                self.redirect_output
            },
            filter_lib: later.filter_lib.or(self.filter_lib),
            wait: later.wait || self.wait,
            no_syscall_buffer: later.no_syscall_buffer || self.no_syscall_buffer,
            dump_on: [self.dump_on, later.dump_on].concat(),
            dump_at: [self.dump_at, later.dump_at].concat(),
            checksum: later.checksum.or(self.checksum),
        })
    }

    /// Overlays the tracer flags on `opts`.
    fn apply_to(&self, opts: &mut TracerOptions) {
        if let Some(cpu) = self.cpu {
            opts.cpu = Some(cpu);
        }
        if self.no_redirect_output {
            opts.redirect_output = false;
        } else if self.redirect_output {
            opts.redirect_output = true;
        }
        if let Some(lib) = &self.filter_lib {
            opts.filter_lib = Some(lib.clone());
        }
        if self.wait {
            opts.wait_all = true;
        }
        if self.no_syscall_buffer {
            opts.syscall_buffer = false;
        }
    }

    /// Adds (or updates) the plugin specs the debug flags imply.
    fn apply_plugin_flags(&self, plugins: &mut Vec<PluginSpec>) -> Result<(), Error> {
        let mut keys = toml::Table::new();
        if !self.dump_on.is_empty() {
            let on = self.dump_on.iter().cloned().map(toml::Value::String);
            keys.insert("dump_on".into(), toml::Value::Array(on.collect()));
        }
        if !self.dump_at.is_empty() {
            let at = self.dump_at.iter().map(|&t| time_value(t));
            keys.insert("dump_at".into(), toml::Value::Array(at.collect()));
        }
        if !keys.is_empty() {
            set_plugin_keys(plugins, MEMORY_DUMP_PLUGIN, &[], keys)?;
        }
        if let Some(checksum) = self.checksum {
            let mut keys = toml::Table::new();
            match checksum {
                Checksum::OnSyscalls => {
                    keys.insert("mode".into(), "on-syscalls".into());
                }
                Checksum::OnAllEvents => {
                    keys.insert("mode".into(), "on-all-events".into());
                }
                Checksum::From(t) => {
                    keys.insert("from".into(), time_value(t));
                }
            }
            set_plugin_keys(plugins, CHECKSUM_PLUGIN, &["mode", "from"], keys)?;
            // A mismatch must stop replay, not merely disable the plugin.
            if let Some(p) = plugins.iter_mut().find(|p| p.name == CHECKSUM_PLUGIN) {
                p.required = true;
            }
        }
        Ok(())
    }
}

/// Sets `keys` in the configuration of the first plugin called `name`
/// (removing the keys in `remove` first), or appends a new spec for it.
fn set_plugin_keys(
    plugins: &mut Vec<PluginSpec>,
    name: &str,
    remove: &[&str],
    keys: toml::Table,
) -> Result<(), Error> {
    match plugins.iter_mut().find(|p| p.name == name) {
        Some(p) => p.update_config(|table| {
            for key in remove {
                table.remove(*key);
            }
            table.extend(keys);
        }),
        None => {
            plugins.push(PluginSpec::named(name, &keys)?);
            Ok(())
        }
    }
}

/// Global times are checked to fit a TOML integer (i64) when parsed.
fn time_value(t: u64) -> toml::Value {
    toml::Value::Integer(i64::try_from(t).unwrap_or(i64::MAX))
}

/// When `--checksum` computes (record) or verifies (replay) checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checksum {
    OnSyscalls,
    OnAllEvents,
    From(u64),
}

fn parse_checksum(s: &str) -> Result<Checksum, String> {
    match s {
        "on-syscalls" => Ok(Checksum::OnSyscalls),
        "on-all-events" => Ok(Checksum::OnAllEvents),
        _ => parse_time(s).map(Checksum::From).map_err(|_| {
            "expected on-syscalls, on-all-events, or a global time to start from".to_string()
        }),
    }
}

/// A global time: an event index, decimal.
fn parse_time(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a global time (an event number, 0 or more)".into());
    }
    match s.parse::<u64>() {
        Ok(t) if i64::try_from(t).is_ok() => Ok(t),
        _ => Err("global time too large".into()),
    }
}

/// `--dump-on`: a syscall number or name, `-N` a signal number, or a signal
/// name (`SIGCHLD`). Kept as typed; the memory-dump plugin interprets it.
fn parse_dump_on(s: &str) -> Result<String, String> {
    rrpipe_plugin_api::policy::Trigger::parse(s).map(|_| s.to_string())
}

fn usage(message: impl std::fmt::Display) -> Error {
    Error::Usage(format!("{message} (see rrpipe --help)"))
}

/// --help and --version are answers, not errors; any other clap error
/// becomes one line.
fn from_clap(e: clap::Error) -> Result<Command, Error> {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            Ok(Command::Info(e.render().to_string()))
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("invalid command line");
            Err(usage(first.strip_prefix("error: ").unwrap_or(first)))
        }
    }
}

/// Where the job comes from, before the configuration file is read.
enum Job {
    Dump(Option<PathBuf>),
    Record {
        program: Vec<String>,
    },
    Replay {
        trace: Option<PathBuf>,
    },
    /// `rrpipe --config FILE [ARGS]`: the file says which, and so what
    /// the positional arguments are.
    FromConfig {
        args: Vec<String>,
    },
}

fn resolve(cli: Cli) -> Result<Command, Error> {
    let Cli {
        sub,
        record,
        replay,
        output,
        common,
        args,
    } = cli;
    if sub.is_some() && (record || replay.is_some()) {
        let flag = if record { "--record" } else { "--replay" };
        return Err(usage(format!(
            "{flag} cannot be combined with a subcommand"
        )));
    }
    let (job, output, common) = match sub {
        Some(Sub::Dump(d)) => {
            if output.is_some() || common != CommonArgs::default() {
                return Err(usage("dump takes no options, only a trace directory"));
            }
            (Job::Dump(d.trace), None, common)
        }
        Some(Sub::Record(r)) => (
            Job::Record { program: r.program },
            r.output.or(output),
            common.merge(r.common)?,
        ),
        Some(Sub::Replay(r)) => (
            Job::Replay { trace: r.trace },
            output,
            common.merge(r.common)?,
        ),
        None if record => (Job::Record { program: args }, output, common),
        None if replay.is_some() => match replay_args(replay.flatten(), args, common)? {
            ReplayArgs::Args(trace, common) => (Job::Replay { trace }, output, common),
            ReplayArgs::Info(info) => return Ok(info),
        },
        None if common.config.is_some() => {
            // Positional arguments are interpreted once the mode is known.
            (Job::FromConfig { args }, output, common)
        }
        None => {
            return Err(usage(
                "nothing to do: use `rrpipe record PROG`, `rrpipe replay [TRACE]`, \
                 `rrpipe dump [TRACE]` or `rrpipe --config FILE`",
            ))
        }
    };
    if let Job::Dump(trace) = job {
        return Ok(Command::Dump { trace });
    }

    let config = common.config.as_deref().map(Config::load).transpose()?;
    let (job, common) = match job {
        Job::FromConfig { args } => {
            // `config` is Some: FromConfig is only chosen with --config.
            let mode = config.as_ref().and_then(|c| c.mode).ok_or_else(|| {
                let file = common.config.as_deref().unwrap_or("".as_ref());
                Error::Config(format!(
                    "{}: no `mode` key: add mode = \"record\" or mode = \"replay\", \
                     or use `rrpipe record`/`rrpipe replay`",
                    file.display()
                ))
            })?;
            match mode {
                Mode::Record => (Job::Record { program: args }, common),
                Mode::Replay => match replay_args(None, args, common)? {
                    ReplayArgs::Args(trace, common) => (Job::Replay { trace }, common),
                    ReplayArgs::Info(info) => return Ok(info),
                },
            }
        }
        job => (job, common),
    };

    let mut tracer = TracerOptions::default();
    let mut plugins = Vec::new();
    if let Some(c) = &config {
        c.tracer.apply_to(&mut tracer);
        plugins = c.plugins.clone();
    }
    common.apply_to(&mut tracer);
    common.apply_plugin_flags(&mut plugins)?;
    let config_trace = config.as_ref().and_then(|c| c.trace.clone());

    match job {
        Job::Record { program } => {
            let program = if program.is_empty() {
                config.and_then(|c| c.program).unwrap_or_default()
            } else {
                program
            };
            if program.is_empty() {
                return Err(usage("record needs a program to run"));
            }
            Ok(Command::Record(RecordOptions {
                program,
                output: output.or(config_trace),
                plugins,
                tracer,
            }))
        }
        Job::Replay { trace } => {
            if output.is_some() {
                return Err(usage("-o/--output applies to record only"));
            }
            Ok(Command::Replay(ReplayOptions {
                trace: trace.or(config_trace),
                plugins,
                tracer,
            }))
        }
        Job::Dump(_) | Job::FromConfig { .. } => unreachable!("handled above"),
    }
}

enum ReplayArgs {
    /// The trace (None: from the TOML, else the latest) and the options.
    Args(Option<PathBuf>, CommonArgs),
    /// What to print instead (help asked for after the trace).
    Info(Command),
}

/// Replay without the `replay` subcommand (`--replay [DIR]`, or a TOML in
/// replay mode): the top level's positional arguments swallow everything
/// after the first one, so `rrpipe --config r.toml trace_0 --cpu 0` is
/// parsed again as `rrpipe replay trace_0 --cpu 0`.
fn replay_args(
    dir: Option<PathBuf>,
    args: Vec<String>,
    common: CommonArgs,
) -> Result<ReplayArgs, Error> {
    let (trace, common) = match args.len() {
        0 => (None, common),
        1 => (args.into_iter().next().map(PathBuf::from), common),
        _ => {
            let argv = ["rrpipe".to_string(), "replay".to_string()]
                .into_iter()
                .chain(args);
            match Cli::try_parse_from(argv) {
                Ok(Cli {
                    sub: Some(Sub::Replay(r)),
                    ..
                }) => (r.trace, common.merge(r.common)?),
                Ok(_) => return Err(usage("replay takes one trace directory")),
                // `--help`/`--version` after the trace: the replay help.
                Err(e) => return from_clap(e).map(ReplayArgs::Info),
            }
        }
    };
    match (dir, trace) {
        (Some(a), Some(b)) => Err(usage(format!(
            "two traces to replay: {} and {}",
            a.display(),
            b.display()
        ))),
        (a, b) => Ok(ReplayArgs::Args(a.or(b), common)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_code;
    use clap::CommandFactory;
    use std::path::Path;

    fn parse_args(args: &[&str]) -> Result<Command, Error> {
        let argv = std::iter::once("rrpipe")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        parse(argv)
    }

    fn record(args: &[&str]) -> RecordOptions {
        match parse_args(args) {
            Ok(Command::Record(r)) => r,
            other => panic!("{args:?}: expected record, got {other:?}"),
        }
    }

    fn replay(args: &[&str]) -> ReplayOptions {
        match parse_args(args) {
            Ok(Command::Replay(r)) => r,
            other => panic!("{args:?}: expected replay, got {other:?}"),
        }
    }

    fn info(args: &[&str]) -> String {
        match parse_args(args) {
            Ok(Command::Info(text)) => text,
            other => panic!("{args:?}: expected info, got {other:?}"),
        }
    }

    /// A usage error: one line, pointing at --help, exit code 64.
    fn usage_err(args: &[&str]) -> String {
        match parse_args(args) {
            Err(e @ Error::Usage(_)) => {
                assert_eq!(e.exit_code(), exit_code::USAGE);
                let m = e.to_string();
                assert!(!m.contains('\n'), "{args:?}: not one line: {m}");
                assert!(m.ends_with(" (see rrpipe --help)"), "{args:?}: {m}");
                assert!(!m.starts_with("error:"), "{args:?}: {m}");
                m
            }
            other => panic!("{args:?}: expected a usage error, got {other:?}"),
        }
    }

    fn config_err(args: &[&str]) -> String {
        match parse_args(args) {
            Err(e @ Error::Config(_)) => {
                assert_eq!(e.exit_code(), exit_code::CONFIG);
                let m = e.to_string();
                assert!(!m.contains('\n'), "{args:?}: not one line: {m}");
                m
            }
            other => panic!("{args:?}: expected a config error, got {other:?}"),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A temporary TOML file; the directory lives as long as the value.
    struct Toml {
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    impl Toml {
        fn new(text: &str) -> Toml {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("conf.toml");
            std::fs::write(&path, text).unwrap();
            Toml { _dir: dir, path }
        }
        fn arg(&self) -> &str {
            self.path.to_str().unwrap()
        }
        fn dir(&self) -> &Path {
            self.path.parent().unwrap()
        }
    }

    fn plugin(name: &str, config_toml: &str) -> PluginSpec {
        PluginSpec {
            name: name.into(),
            path: None,
            // A checksum mismatch must stop replay.
            required: name == CHECKSUM_PLUGIN,
            config_toml: config_toml.into(),
            config_dir: PathBuf::new(),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    // ---- record ----

    #[test]
    fn record_subcommand() {
        let r = record(&["record", "./prog"]);
        assert_eq!(
            r,
            RecordOptions {
                program: strings(&["./prog"]),
                output: None,
                plugins: vec![],
                tracer: TracerOptions::default(),
            }
        );
    }

    #[test]
    fn record_program_arguments_that_look_like_flags() {
        assert_eq!(
            record(&["record", "ls", "-la"]).program,
            strings(&["ls", "-la"])
        );
        let r = record(&["record", "./prog", "--cpu", "3", "-o", "x", "--help", "--"]);
        assert_eq!(
            r.program,
            strings(&["./prog", "--cpu", "3", "-o", "x", "--help", "--"])
        );
        assert_eq!(r.tracer.cpu, None);
        assert_eq!(r.output, None);
        assert_eq!(
            record(&["record", "--", "./prog", "-x"]).program,
            strings(&["./prog", "-x"])
        );
        assert_eq!(
            record(&["record", "--", "-prog"]).program,
            strings(&["-prog"])
        );
        assert_eq!(
            record(&["record", "./prog", "--dump_on=79"]).plugins,
            vec![]
        );
    }

    #[test]
    fn record_options() {
        let r = record(&["record", "-o", "out", "--cpu", "1", "./prog", "a"]);
        assert_eq!(r.program, strings(&["./prog", "a"]));
        assert_eq!(r.output, Some(PathBuf::from("out")));
        assert_eq!(r.tracer.cpu, Some(1));
        let r = record(&["record", "--output=out2", "--cpu=0", "./prog"]);
        assert_eq!(r.output, Some(PathBuf::from("out2")));
        assert_eq!(r.tracer.cpu, Some(0));
        let r = record(&["record", "--filter_lib=/x/libwrap.so", "./prog"]);
        assert_eq!(r.tracer.filter_lib, Some(PathBuf::from("/x/libwrap.so")));
    }

    #[test]
    fn no_syscall_buffer_flag() {
        assert!(record(&["record", "./prog"]).tracer.syscall_buffer);
        for flag in ["--no-syscall-buffer", "--no_syscall_buffer", "-n"] {
            let r = record(&["record", flag, "./prog", "-n"]);
            assert!(!r.tracer.syscall_buffer, "{flag}");
            assert_eq!(r.program, strings(&["./prog", "-n"]), "{flag}");
            assert_eq!(
                r.tracer,
                TracerOptions {
                    syscall_buffer: false,
                    ..TracerOptions::default()
                },
                "{flag}"
            );
            assert!(!record(&["--record", flag, "ls"]).tracer.syscall_buffer);
            assert!(!record(&[flag, "record", "ls"]).tracer.syscall_buffer);
            assert!(
                !record(&["record", "-o", "t", flag, "ls"])
                    .tracer
                    .syscall_buffer
            );
        }
        // Combined short flags.
        let r = record(&["record", "-no", "t", "ls"]);
        assert!(!r.tracer.syscall_buffer);
        assert_eq!(r.output, Some(PathBuf::from("t")));
        // A program's own -n is the program's.
        assert!(record(&["record", "ls", "-n"]).tracer.syscall_buffer);
        usage_err(&["dump", "-n"]);
    }

    #[test]
    fn syscall_buffer_toml_key_and_flag() {
        for (text, on) in [
            ("mode = \"record\"\n[tracer]\nsyscall_buffer = true\n", true),
            (
                "mode = \"record\"\n[tracer]\nsyscall_buffer = false\n",
                false,
            ),
            ("mode = \"record\"\n", true),
        ] {
            let t = Toml::new(text);
            assert_eq!(
                record(&["--config", t.arg(), "ls"]).tracer.syscall_buffer,
                on,
                "{text}"
            );
            // The flag overrides the key.
            for flag in ["-n", "--no-syscall-buffer", "--no_syscall_buffer"] {
                assert!(
                    !record(&["--config", t.arg(), flag, "ls"])
                        .tracer
                        .syscall_buffer,
                    "{text} {flag}"
                );
                assert!(
                    !record(&["record", "--config", t.arg(), flag, "ls"])
                        .tracer
                        .syscall_buffer,
                    "{text} {flag}"
                );
            }
        }
    }

    #[test]
    fn record_needs_a_program() {
        let m = usage_err(&["record"]);
        assert_eq!(m, "record needs a program to run (see rrpipe --help)");
        usage_err(&["record", "-o", "out"]);
        usage_err(&["--record"]);
        usage_err(&["record", "--"]);
    }

    #[test]
    fn record_2013_spelling() {
        let r = record(&["--record", "./prog", "-x", "--replay"]);
        assert_eq!(r.program, strings(&["./prog", "-x", "--replay"]));
        let r = record(&["--record", "--cpu", "0", "-o", "t", "/bin/true"]);
        assert_eq!(r.program, strings(&["/bin/true"]));
        assert_eq!(r.tracer.cpu, Some(0));
        assert_eq!(r.output, Some(PathBuf::from("t")));
        let r = record(&["--no_redirect_output", "--record", "ls"]);
        assert!(!r.tracer.redirect_output);
    }

    #[test]
    fn options_before_the_subcommand() {
        let r = record(&["--cpu", "1", "-o", "d", "record", "ls"]);
        assert_eq!(r.tracer.cpu, Some(1));
        assert_eq!(r.output, Some(PathBuf::from("d")));
        // After the subcommand wins.
        let r = record(&[
            "--cpu", "1", "-o", "d", "record", "--cpu", "2", "-o", "e", "ls",
        ]);
        assert_eq!(r.tracer.cpu, Some(2));
        assert_eq!(r.output, Some(PathBuf::from("e")));
        let r = record(&["--dump_on=79", "record", "--dump-on=read", "ls"]);
        assert_eq!(
            r.plugins,
            vec![plugin("memory-dump", "dump_on = [\"79\", \"read\"]\n")]
        );
        let r = replay(&["--no-redirect-output", "replay", "--redirect-output"]);
        assert!(r.tracer.redirect_output);
        let r = replay(&["--no-redirect-output", "replay", "--cpu", "1"]);
        assert!(!r.tracer.redirect_output);
    }

    // ---- replay ----

    #[test]
    fn replay_subcommand() {
        assert_eq!(
            replay(&["replay"]),
            ReplayOptions {
                trace: None,
                plugins: vec![],
                tracer: TracerOptions::default(),
            }
        );
        assert_eq!(replay(&["replay", "trace_0"]).trace, Some("trace_0".into()));
        let r = replay(&["replay", "trace_0", "--no-redirect-output", "--cpu", "1"]);
        assert_eq!(r.trace, Some("trace_0".into()));
        assert!(!r.tracer.redirect_output);
        assert_eq!(r.tracer.cpu, Some(1));
        let r = replay(&["replay", "--no_redirect_output", "trace_0"]);
        assert_eq!(r.trace, Some("trace_0".into()));
        assert!(!r.tracer.redirect_output);
        let m = usage_err(&["replay", "a", "b"]);
        assert!(m.contains("'b'"), "{m}");
    }

    #[test]
    fn replay_2013_spelling() {
        assert_eq!(
            replay(&["--replay", "trace_0"]).trace,
            Some("trace_0".into())
        );
        assert_eq!(replay(&["--replay"]).trace, None);
        let r = replay(&["--replay", "trace_0", "--no_redirect_output"]);
        assert_eq!(r.trace, Some("trace_0".into()));
        assert!(!r.tracer.redirect_output);
        let r = replay(&["--no_redirect_output", "--replay", "trace_0"]);
        assert!(!r.tracer.redirect_output);
        let r = replay(&["--replay", "--cpu", "0", "trace_1"]);
        assert_eq!(r.trace, Some("trace_1".into()));
        assert_eq!(r.tracer.cpu, Some(0));
        let r = replay(&["--replay", "--cpu", "0", "trace_1", "--no-redirect-output"]);
        assert_eq!(r.trace, Some("trace_1".into()));
        assert!(!r.tracer.redirect_output);
        let r = replay(&["--replay=trace_2"]);
        assert_eq!(r.trace, Some("trace_2".into()));
        let m = usage_err(&["--replay", "a", "b"]);
        assert!(m.starts_with("two traces to replay: a and b"), "{m}");
        usage_err(&["--replay", "-o", "x", "t"]);
        usage_err(&["--record", "--replay", "t"]);
    }

    #[test]
    fn output_is_for_record_only() {
        let m = usage_err(&["-o", "x", "replay"]);
        assert!(m.contains("-o/--output applies to record only"), "{m}");
        usage_err(&["replay", "-o", "x"]);
    }

    // ---- dump ----

    #[test]
    fn dump() {
        assert_eq!(
            parse_args(&["dump"]).unwrap(),
            Command::Dump { trace: None }
        );
        assert_eq!(
            parse_args(&["dump", "trace_0"]).unwrap(),
            Command::Dump {
                trace: Some("trace_0".into())
            }
        );
        usage_err(&["dump", "--cpu", "1"]);
        usage_err(&["dump", "a", "b"]);
        let m = usage_err(&["--cpu", "1", "dump"]);
        assert!(m.contains("dump takes no options"), "{m}");
        usage_err(&["--record", "dump"]);
    }

    // ---- --config ----

    #[test]
    fn config_record_mode() {
        let t = Toml::new("mode = \"record\"\nprogram = [\"./p\", \"x\"]\ntrace = \"out\"\n");
        let r = record(&["--config", t.arg()]);
        assert_eq!(r.program, strings(&["./p", "x"]));
        assert_eq!(r.output, Some(t.dir().join("out")));
        // The command line's program wins over `program`, -o over `trace`.
        let r = record(&["--config", t.arg(), "-o", "mine", "ls", "-la"]);
        assert_eq!(r.program, strings(&["ls", "-la"]));
        assert_eq!(r.output, Some(PathBuf::from("mine")));
        let r = record(&["--config", t.arg(), "--", "./q", "--cpu", "1"]);
        assert_eq!(r.program, strings(&["./q", "--cpu", "1"]));
        assert_eq!(r.tracer.cpu, None);
        let r = record(&["--config", t.arg(), "--cpu", "1", "./q"]);
        assert_eq!(r.tracer.cpu, Some(1));
        // Spelled after the subcommand.
        let r = record(&["record", "--config", t.arg()]);
        assert_eq!(r.program, strings(&["./p", "x"]));
    }

    #[test]
    fn config_record_mode_without_program() {
        let t = Toml::new("mode = \"record\"\n");
        let m = usage_err(&["--config", t.arg()]);
        assert!(m.starts_with("record needs a program to run"), "{m}");
        let t = Toml::new("mode = \"record\"\nprogram = []\n");
        usage_err(&["--config", t.arg()]);
    }

    #[test]
    fn config_replay_mode() {
        let t = Toml::new("mode = \"replay\"\n");
        assert_eq!(replay(&["--config", t.arg()]).trace, None);
        assert_eq!(
            replay(&["--config", t.arg(), "t0"]).trace,
            Some("t0".into())
        );
        let r = replay(&[
            "--config",
            t.arg(),
            "t0",
            "--no_redirect_output",
            "--cpu",
            "3",
        ]);
        assert_eq!(r.trace, Some("t0".into()));
        assert!(!r.tracer.redirect_output);
        assert_eq!(r.tracer.cpu, Some(3));
        let m = usage_err(&["--config", t.arg(), "t0", "t1"]);
        assert!(m.contains("'t1'"), "{m}");
        let m = usage_err(&["--config", t.arg(), "t0", "--config", "other.toml"]);
        assert!(m.starts_with("--config given twice"), "{m}");
        let m = usage_err(&["--config", t.arg(), "-o", "x"]);
        assert!(m.contains("-o/--output applies to record only"), "{m}");
        assert!(info(&["--config", t.arg(), "t0", "--help"]).contains("Usage:"));

        let t = Toml::new("mode = \"replay\"\ntrace = \"traces/t5\"\n");
        assert_eq!(
            replay(&["--config", t.arg()]).trace,
            Some(t.dir().join("traces/t5"))
        );
        assert_eq!(
            replay(&["--config", t.arg(), "t0"]).trace,
            Some("t0".into())
        );
        assert_eq!(
            replay(&["replay", "--config", t.arg(), "t1"]).trace,
            Some("t1".into())
        );
        assert_eq!(
            replay(&["--replay", "t2", "--config", t.arg()]).trace,
            Some("t2".into())
        );
    }

    #[test]
    fn command_line_mode_overrides_toml_mode() {
        let t = Toml::new("mode = \"record\"\nprogram = [\"./p\"]\ntrace = \"t9\"\n");
        // Replaying what this config records.
        assert_eq!(
            replay(&["replay", "--config", t.arg()]).trace,
            Some(t.dir().join("t9"))
        );
        assert_eq!(
            replay(&["--replay", "--config", t.arg()]).trace,
            Some(t.dir().join("t9"))
        );
        let t = Toml::new("mode = \"replay\"\n");
        assert_eq!(
            record(&["--config", t.arg(), "record", "ls"]).program,
            strings(&["ls"])
        );
        assert_eq!(
            record(&["--record", "--config", t.arg(), "ls"]).program,
            strings(&["ls"])
        );
    }

    #[test]
    fn config_without_mode() {
        let t = Toml::new("[tracer]\ncpu = 1\n");
        let m = config_err(&["--config", t.arg(), "./prog"]);
        assert!(m.starts_with(&format!("{}: no `mode` key", t.arg())), "{m}");
        // Not needed when the command line says which.
        assert_eq!(
            record(&["record", "--config", t.arg(), "ls"]).tracer.cpu,
            Some(1)
        );
        assert_eq!(replay(&["replay", "--config", t.arg()]).tracer.cpu, Some(1));
    }

    #[test]
    fn config_errors_pass_through() {
        let t = Toml::new("mode = \"record\"\n\ncolour = \"red\"\n");
        let m = config_err(&["--config", t.arg(), "ls"]);
        assert!(
            m.starts_with(&format!(
                "{}:3:1: unknown field `colour`, expected one of `mode`, `trace`",
                t.arg()
            )),
            "{m}"
        );
        let t = Toml::new("mode = \"record\"\n[tracer]\ncpu = \"two\"\n");
        let m = config_err(&["record", "--config", t.arg(), "ls"]);
        assert!(
            m.starts_with(&format!("{}:3:7: invalid type", t.arg())),
            "{m}"
        );
        let m = config_err(&["--config", "/nonexistent/rrpipe.toml"]);
        assert!(
            m.starts_with("cannot read config /nonexistent/rrpipe.toml: "),
            "{m}"
        );
    }

    #[test]
    fn flags_override_toml_tracer_keys() {
        let t = Toml::new(
            "mode = \"replay\"\n[tracer]\ncpu = 1\nredirect_output = false\nfilter_lib = \"w.so\"\nsyscall_buffer = false\n",
        );
        let r = replay(&["--config", t.arg()]);
        assert_eq!(
            r.tracer,
            TracerOptions {
                cpu: Some(1),
                redirect_output: false,
                filter_lib: Some(t.dir().join("w.so")),
                syscall_buffer: false,
                wait_all: false,
            }
        );
        let r = replay(&[
            "--config",
            t.arg(),
            "--cpu",
            "2",
            "--redirect-output",
            "--filter-lib",
            "/l.so",
        ]);
        assert_eq!(
            r.tracer,
            TracerOptions {
                cpu: Some(2),
                redirect_output: true,
                filter_lib: Some("/l.so".into()),
                syscall_buffer: false,
                wait_all: false,
            }
        );
        let t = Toml::new("mode = \"replay\"\n[tracer]\nredirect_output = true\n");
        assert!(
            !replay(&["--config", t.arg(), "--no_redirect_output"])
                .tracer
                .redirect_output
        );
        // The last of --redirect-output / --no-redirect-output wins.
        assert!(
            replay(&["replay", "--no-redirect-output", "--redirect-output"])
                .tracer
                .redirect_output
        );
        assert!(
            !replay(&["replay", "--redirect_output", "--no_redirect_output"])
                .tracer
                .redirect_output
        );
    }

    #[test]
    fn toml_plugins_then_flag_plugins() {
        let t = Toml::new(
            r#"mode = "record"
[[plugin]]
name = "mine"
path = "libmine.so"
required = true
[plugin.config]
level = 3

[[plugin]]
name = "other"
"#,
        );
        let r = record(&[
            "--config",
            t.arg(),
            "--checksum=on-syscalls",
            "--dump_at=5",
            "ls",
        ]);
        assert_eq!(
            r.plugins,
            vec![
                PluginSpec {
                    name: "mine".into(),
                    path: Some(t.dir().join("libmine.so")),
                    required: true,
                    config_toml: "level = 3\n".into(),
                    config_dir: t.dir().to_path_buf(),
                },
                PluginSpec {
                    config_dir: t.dir().to_path_buf(),
                    ..plugin("other", "")
                },
                plugin("memory-dump", "dump_at = [5]\n"),
                plugin("checksum", "mode = \"on-syscalls\"\n"),
            ]
        );
    }

    #[test]
    fn flags_override_keys_of_a_toml_plugin() {
        let t = Toml::new(
            r#"mode = "replay"
[[plugin]]
name = "checksum"
required = true
config = { from = 10, algo = "xxh3" }

[[plugin]]
name = "memory-dump"
config = { dump_on = ["read"], dump_at = [1], dir = "dumps" }
"#,
        );
        let r = replay(&["--config", t.arg()]);
        assert_eq!(r.plugins[0].config_toml, "algo = \"xxh3\"\nfrom = 10\n");
        let r = replay(&[
            "--config",
            t.arg(),
            "--checksum=on-all-events",
            "--dump_on=79",
        ]);
        assert_eq!(
            r.plugins,
            vec![
                PluginSpec {
                    name: "checksum".into(),
                    path: None,
                    required: true,
                    config_toml: "algo = \"xxh3\"\nmode = \"on-all-events\"\n".into(),
                    config_dir: t.dir().to_path_buf(),
                },
                PluginSpec {
                    config_dir: t.dir().to_path_buf(),
                    ..plugin(
                        "memory-dump",
                        "dir = \"dumps\"\ndump_at = [1]\ndump_on = [\"79\"]\n",
                    )
                },
            ]
        );
    }

    // ---- the seed's debug flags ----

    #[test]
    fn dump_on_and_dump_at() {
        let r = record(&["record", "--dump_on=79", "ls"]);
        assert_eq!(
            r.plugins,
            vec![plugin("memory-dump", "dump_on = [\"79\"]\n")]
        );
        let r = replay(&["--replay", "t", "--dump_on=-17"]);
        assert_eq!(
            r.plugins,
            vec![plugin("memory-dump", "dump_on = [\"-17\"]\n")]
        );
        // A separate value that starts with '-'.
        let r = replay(&["replay", "--dump-on", "-17", "t"]);
        assert_eq!(
            r.plugins,
            vec![plugin("memory-dump", "dump_on = [\"-17\"]\n")]
        );
        assert_eq!(r.trace, Some("t".into()));
        // Merged into one spec.
        let r = record(&[
            "record",
            "--dump_on=79",
            "--dump-on=gettimeofday",
            "--dump_on=SIGCHLD",
            "--dump_at=100",
            "--dump-at",
            "200",
            "ls",
        ]);
        assert_eq!(
            r.plugins,
            vec![plugin(
                "memory-dump",
                "dump_at = [100, 200]\ndump_on = [\"79\", \"gettimeofday\", \"SIGCHLD\"]\n"
            )]
        );
        let r = replay(&["replay", "--dump_at=0"]);
        assert_eq!(r.plugins, vec![plugin("memory-dump", "dump_at = [0]\n")]);
    }

    #[test]
    fn dump_on_rejects_bad_values() {
        for bad in [
            "bogus", "-0", "-65", "-x", "99999", "SIGFOO", "", "+5", "--1", "-+1",
        ] {
            let arg = format!("--dump_on={bad}");
            let m = usage_err(&["record", &arg, "ls"]);
            assert!(m.contains(&format!("'{bad}'")), "{m}");
            assert!(m.contains("--dump-on"), "{m}");
        }
        let m = usage_err(&["record", "--dump_on=99999", "ls"]);
        assert!(m.contains("no x86_64 syscall has this number"), "{m}");
        let m = usage_err(&["record", "--dump_on=-65", "ls"]);
        assert!(m.contains("signal number from 1 to 64"), "{m}");
    }

    #[test]
    fn dump_at_rejects_bad_values() {
        for bad in [
            "x",
            "-1",
            "1.5",
            "",
            "99999999999999999999",
            "9223372036854775808",
        ] {
            let arg = format!("--dump_at={bad}");
            let m = usage_err(&["replay", &arg]);
            assert!(m.contains(&format!("'{bad}'")), "{m}");
        }
        let r = replay(&["replay", "--dump_at=9223372036854775807"]);
        assert_eq!(
            r.plugins,
            vec![plugin("memory-dump", "dump_at = [9223372036854775807]\n")]
        );
    }

    #[test]
    fn checksum() {
        let r = record(&["record", "--checksum=on-syscalls", "ls"]);
        assert_eq!(
            r.plugins,
            vec![plugin("checksum", "mode = \"on-syscalls\"\n")]
        );
        let r = replay(&["--replay", "t", "--checksum=on-all-events"]);
        assert_eq!(
            r.plugins,
            vec![plugin("checksum", "mode = \"on-all-events\"\n")]
        );
        let r = replay(&["replay", "--checksum", "1000"]);
        assert_eq!(r.plugins, vec![plugin("checksum", "from = 1000\n")]);
        let m = usage_err(&["record", "--checksum=bogus", "ls"]);
        assert!(m.contains("'bogus'"), "{m}");
        assert!(m.contains("on-syscalls"), "{m}");
        usage_err(&["record", "--checksum=-5", "ls"]);
        usage_err(&["record", "--checksum=on_syscalls", "ls"]);
        usage_err(&["record", "--checksum", "1", "--checksum", "2", "ls"]);
    }

    #[test]
    fn both_spellings_of_every_debug_flag() {
        let pairs: &[(&str, &str)] = &[
            ("--no_redirect_output", "--no-redirect-output"),
            ("--redirect_output", "--redirect-output"),
            ("--dump_on=79", "--dump-on=79"),
            ("--dump_on=-17", "--dump-on=-17"),
            ("--dump_at=7", "--dump-at=7"),
            ("--checksum=on-syscalls", "--checksum=on-syscalls"),
            ("--filter_lib=/l.so", "--filter-lib=/l.so"),
            ("--no_syscall_buffer", "--no-syscall-buffer"),
        ];
        for (seed, modern) in pairs {
            for mode in [&["replay", "t"][..], &["--replay", "t"][..]] {
                let a = replay(&[mode, &[*seed]].concat());
                let b = replay(&[mode, &[*modern]].concat());
                assert_eq!(a, b, "{seed} vs {modern}");
                if *seed != "--redirect_output" {
                    assert_ne!(a, replay(mode), "{seed} changes nothing");
                }
            }
            let a = record(&["record", seed, "ls"]);
            assert_eq!(a, record(&["record", modern, "ls"]), "{seed} vs {modern}");
            assert_eq!(a, record(&["--record", seed, "ls"]), "{seed}");
            assert_eq!(a, record(&[*seed, "record", "ls"]), "{seed}");
        }
        // Separate values too.
        assert_eq!(
            replay(&["replay", "--filter_lib", "/l.so"])
                .tracer
                .filter_lib,
            Some("/l.so".into())
        );
        assert_eq!(
            replay(&["replay", "--dump_at", "3"]),
            replay(&["replay", "--dump-at=3"])
        );
    }

    // ---- help, version, errors ----

    #[test]
    fn help_and_version() {
        for args in [&["--help"][..], &["-h"][..]] {
            let text = info(args);
            assert!(text.contains("Usage: rrpipe --config FILE"), "{text}");
            for word in [
                "record",
                "replay",
                "dump",
                "--record",
                "--replay",
                "--config",
                "--cpu",
                "--no-redirect-output",
                "no_redirect_output",
                "--dump-on",
                "--dump-at",
                "--checksum",
                "--filter-lib",
                "-n, --no-syscall-buffer",
                "no_syscall_buffer",
            ] {
                assert!(text.contains(word), "help lacks {word}: {text}");
            }
            assert!(!text.contains('\u{1b}'), "escape codes in help");
        }
        let text = info(&["record", "--help"]);
        assert!(text.contains("Usage: rrpipe record"), "{text}");
        assert!(text.contains("-o, --output"), "{text}");
        assert!(info(&["replay", "-h"]).contains("Usage: rrpipe replay [OPTIONS] [TRACE]"));
        assert!(info(&["dump", "--help"]).contains("TRACE"));
        assert!(info(&["--replay", "t", "--help"]).contains("Usage:"));
        let v = format!("rrpipe {}\n", env!("CARGO_PKG_VERSION"));
        assert_eq!(info(&["--version"]), v);
        assert_eq!(info(&["-V"]), v);
        // --help after the program is the program's.
        assert_eq!(
            record(&["record", "ls", "--help"]).program,
            strings(&["ls", "--help"])
        );
    }

    #[test]
    fn usage_errors_are_one_line() {
        let m = usage_err(&["--bogus"]);
        assert!(m.starts_with("unexpected argument '--bogus' found"), "{m}");
        let m = usage_err(&["record", "--bogus", "ls"]);
        assert!(m.contains("'--bogus'"), "{m}");
        let m = usage_err(&["record", "--cpu", "x", "ls"]);
        assert!(m.contains("'x'") && m.contains("--cpu"), "{m}");
        usage_err(&["record", "--cpu", "-1", "ls"]);
        usage_err(&["record", "-o"]);
        usage_err(&["--config"]);
        let m = usage_err(&[]);
        assert!(m.starts_with("nothing to do"), "{m}");
        let m = usage_err(&["./prog"]);
        assert!(m.starts_with("nothing to do"), "{m}");
        let m = usage_err(&["--record", "record", "ls"]);
        assert!(
            m.starts_with("--record cannot be combined with a subcommand"),
            "{m}"
        );
        let m = usage_err(&["--replay", "--", "t", "replay"]);
        assert!(m.contains("'replay'"), "{m}");
        let m = usage_err(&["--config", "a.toml", "record", "--config", "b.toml", "ls"]);
        assert_eq!(
            m,
            "--config given twice (a.toml and b.toml) (see rrpipe --help)"
        );
        usage_err(&["help"]);
    }

    #[test]
    fn non_utf8_program_argument() {
        use std::os::unix::ffi::OsStringExt;
        let argv = vec![
            OsString::from("rrpipe"),
            OsString::from("record"),
            OsString::from("ls"),
            OsString::from_vec(vec![0xff, 0xfe]),
        ];
        match parse(argv) {
            Err(Error::Usage(m)) => assert!(!m.contains('\n'), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_argv() {
        match parse(vec![]) {
            Err(Error::Usage(m)) => assert!(m.starts_with("nothing to do"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    // ---- the shipped configuration files ----

    fn shipped(name: &str) -> String {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../configs")
            .join(name)
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn shipped_record_config() {
        let path = shipped("record.toml");
        let r = record(&["--config", &path, "./prog", "arg1", "arg2"]);
        assert_eq!(
            r,
            RecordOptions {
                program: strings(&["./prog", "arg1", "arg2"]),
                output: None,
                plugins: vec![],
                tracer: TracerOptions::default(),
            }
        );
        usage_err(&["--config", &path]);
    }

    #[test]
    fn shipped_replay_config() {
        let path = shipped("replay.toml");
        let r = replay(&["--config", &path]);
        assert_eq!(
            r,
            ReplayOptions {
                trace: None,
                plugins: vec![],
                tracer: TracerOptions::default(),
            }
        );
        let r = replay(&["--config", &path, "trace_0", "--no_redirect_output"]);
        assert_eq!(r.trace, Some("trace_0".into()));
        assert!(!r.tracer.redirect_output);
    }
}
