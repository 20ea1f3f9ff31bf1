//! The TOML configuration file (`rrpipe --config FILE`), and the option types
//! it shares with the command line.
//!
//! ```toml
//! mode = "record"                 # or "replay"
//! trace = "traces/run1"           # record: trace to create; replay: trace to replay
//! program = ["./prog", "arg"]     # record: program when none is on the command line
//!
//! [tracer]
//! cpu = 0                         # CPU to pin tracer and tracees to
//! redirect_output = true          # replay: print the recorded stdout/stderr writes
//! syscall_buffer = true           # record: buffer common syscalls (default true)
//! filter_lib = "libwrap.so"       # another build of the preload library
//!
//! [[plugin]]                      # zero or more, loaded in this order
//! name = "checksum"               # a library name, or a label when `path` is set
//! path = "plugins/libchecksum.so" # optional
//! required = false                # a failure of a required plugin stops the session
//! [plugin.config]                 # anything: handed to the plugin as TOML text
//! mode = "on-syscalls"
//! ```
//!
//! Every table rejects unknown keys. Relative paths (`trace`, `filter_lib`,
//! `plugin.path`) are resolved against the directory of the TOML file, so a
//! configuration means the same thing whatever the current directory;
//! `program` is kept as typed (its argv[0] is looked up like a shell would,
//! later). Every error is one line, `FILE:LINE:COLUMN: problem`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Error;

/// The session a configuration file (or the command line) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Record,
    Replay,
}

/// Options of the tracer, common to record and replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracerOptions {
    /// CPU to pin tracer and tracees to; None: choose automatically.
    pub cpu: Option<u32>,
    /// Replay: print the recorded stdout/stderr writes (default true).
    pub redirect_output: bool,
    /// Preload library for syscall buffering (seed --filter_lib); default:
    /// librrpipe_preload.so next to the rrpipe binary.
    pub filter_lib: Option<PathBuf>,
    /// Record: LD_PRELOAD the syscall-buffering library and let the calls it
    /// makes through untraced, their results kept in a buffer shared with
    /// the tracer (default true): a traced syscall costs two ptrace stops
    /// (~15 µs) against ~0.2 µs for the syscall itself, so syscall-heavy
    /// programs record many times slower without it. False
    /// (`--no-syscall-buffer`, `-n`, TOML `syscall_buffer = false`): every
    /// syscall is traced. Replay follows what the trace says, whatever this is.
    pub syscall_buffer: bool,
    /// Record: go on until every process of the tree has exited, not just
    /// the first (`--wait`, TOML `wait_all`).
    pub wait_all: bool,
}

impl Default for TracerOptions {
    fn default() -> Self {
        TracerOptions {
            cpu: None,
            redirect_output: true,
            filter_lib: None,
            syscall_buffer: true,
            wait_all: false,
        }
    }
}

/// One plugin to load, beyond the built-in trace writer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginSpec {
    /// Name (looked up as a library) or, when `path` is set, a label for messages.
    pub name: String,
    pub path: Option<PathBuf>,
    /// A failure of this plugin stops the session (otherwise it is disabled and reported).
    pub required: bool,
    /// The plugin's free configuration table, re-serialized as TOML text ("" when none).
    pub config_toml: String,
    /// The directory of the TOML file that declared the plugin, against
    /// which the plugin resolves relative paths in its table (empty, the
    /// current directory, for plugins made from command-line flags).
    pub config_dir: PathBuf,
}

impl PluginSpec {
    /// A plugin looked up by name, not required, with the given configuration.
    pub fn named(name: impl Into<String>, config: &toml::Table) -> Result<Self, Error> {
        Ok(PluginSpec {
            name: name.into(),
            path: None,
            required: false,
            config_toml: table_to_string(config)?,
            config_dir: PathBuf::new(),
        })
    }

    /// The configuration table, parsed back from `config_toml`.
    pub fn config_table(&self) -> Result<toml::Table, Error> {
        toml::from_str(&self.config_toml).map_err(|e| {
            Error::Config(format!(
                "plugin {}: configuration is not TOML: {}",
                self.name,
                one_line(e.message())
            ))
        })
    }

    /// Changes the configuration table in place (used by command-line flags
    /// that override keys of a plugin declared in the TOML file).
    pub fn update_config(&mut self, f: impl FnOnce(&mut toml::Table)) -> Result<(), Error> {
        let mut table = self.config_table()?;
        f(&mut table);
        self.config_toml = table_to_string(&table)?;
        Ok(())
    }
}

fn table_to_string(table: &toml::Table) -> Result<String, Error> {
    toml::to_string(table)
        .map_err(|e| Error::Config(format!("cannot serialize plugin configuration: {e}")))
}

/// The `[tracer]` table as written (None: key absent). Paths are resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TracerConfig {
    pub cpu: Option<u32>,
    pub redirect_output: Option<bool>,
    /// Record: buffer the common syscalls through the preload library.
    pub syscall_buffer: Option<bool>,
    pub filter_lib: Option<PathBuf>,
    pub wait_all: Option<bool>,
}

impl TracerConfig {
    /// Overlays the keys present in the file on `opts`.
    pub fn apply_to(&self, opts: &mut TracerOptions) {
        if let Some(cpu) = self.cpu {
            opts.cpu = Some(cpu);
        }
        if let Some(r) = self.redirect_output {
            opts.redirect_output = r;
        }
        if let Some(lib) = &self.filter_lib {
            opts.filter_lib = Some(lib.clone());
        }
        if let Some(b) = self.syscall_buffer {
            opts.syscall_buffer = b;
        }
        if let Some(w) = self.wait_all {
            opts.wait_all = w;
        }
    }
}

/// A loaded configuration file, relative paths already resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file, as named on the command line (for messages).
    pub file: PathBuf,
    pub mode: Option<Mode>,
    /// Record: the trace directory to create; replay: the trace to replay.
    pub trace: Option<PathBuf>,
    /// Record: the program and its arguments, as typed. None when absent or empty.
    pub program: Option<Vec<String>>,
    pub tracer: TracerConfig,
    /// `[[plugin]]` tables, in file order.
    pub plugins: Vec<PluginSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    mode: Option<Mode>,
    trace: Option<PathBuf>,
    program: Option<Vec<String>>,
    #[serde(default)]
    tracer: RawTracer,
    #[serde(default)]
    plugin: Vec<RawPlugin>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTracer {
    cpu: Option<u32>,
    redirect_output: Option<bool>,
    syscall_buffer: Option<bool>,
    filter_lib: Option<PathBuf>,
    wait_all: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    name: toml::Spanned<String>,
    path: Option<PathBuf>,
    #[serde(default)]
    required: bool,
    config: Option<toml::Table>,
}

impl Config {
    /// Reads and parses `file`.
    pub fn load(file: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::Config(format!("cannot read config {}: {e}", file.display())))?;
        Config::parse(&text, file)
    }

    /// Parses `text`, the contents of `file` (named in messages; relative
    /// paths inside are resolved against its directory).
    pub fn parse(text: &str, file: &Path) -> Result<Config, Error> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            Error::Config(located(file, text, e.span().map(|s| s.start), e.message()))
        })?;
        let dir = file.parent().unwrap_or(Path::new(""));
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { dir.join(p) };

        let mut plugins = Vec::with_capacity(raw.plugin.len());
        for p in raw.plugin {
            let name_at = p.name.span().start;
            let name = p.name.into_inner();
            if name.trim().is_empty() {
                return Err(Error::Config(located(
                    file,
                    text,
                    Some(name_at),
                    "plugin `name` is empty",
                )));
            }
            let config_toml = match &p.config {
                Some(table) => table_to_string(table)?,
                None => String::new(),
            };
            plugins.push(PluginSpec {
                name,
                path: p.path.map(resolve),
                required: p.required,
                config_toml,
                config_dir: dir.to_path_buf(),
            });
        }

        Ok(Config {
            file: file.to_path_buf(),
            mode: raw.mode,
            trace: raw.trace.map(resolve),
            program: raw.program.filter(|p| !p.is_empty()),
            tracer: TracerConfig {
                cpu: raw.tracer.cpu,
                redirect_output: raw.tracer.redirect_output,
                syscall_buffer: raw.tracer.syscall_buffer,
                filter_lib: raw.tracer.filter_lib.map(resolve),
                wait_all: raw.tracer.wait_all,
            },
            plugins,
        })
    }

    /// The tracer options this file asks for (defaults where keys are absent).
    pub fn tracer_options(&self) -> TracerOptions {
        let mut opts = TracerOptions::default();
        self.tracer.apply_to(&mut opts);
        opts
    }
}

/// `FILE:LINE:COLUMN: message` (1-based line and column, the column counted
/// in characters), or `FILE: message` without a position.
fn located(file: &Path, text: &str, offset: Option<usize>, message: &str) -> String {
    let message = one_line(message);
    match offset {
        Some(offset) => {
            let (line, column) = line_column(text, offset);
            format!("{}:{line}:{column}: {message}", file.display())
        }
        None => format!("{}: {message}", file.display()),
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Joins the lines of a message: every rrpipe error is one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn parse(text: &str) -> Result<Config, Error> {
        Config::parse(text, Path::new("configs/test.toml"))
    }

    fn config_err(text: &str) -> String {
        match parse(text) {
            Err(Error::Config(m)) => m,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_is_valid() {
        let c = parse("").unwrap();
        assert_eq!(c.mode, None);
        assert_eq!(c.trace, None);
        assert_eq!(c.program, None);
        assert_eq!(c.tracer, TracerConfig::default());
        assert!(c.plugins.is_empty());
        assert_eq!(c.tracer_options(), TracerOptions::default());
    }

    #[test]
    fn tracer_defaults() {
        let d = TracerOptions::default();
        assert_eq!(d.cpu, None);
        assert!(d.redirect_output);
        assert_eq!(d.filter_lib, None);
        assert!(d.syscall_buffer);
        assert!(!d.wait_all);
    }

    #[test]
    fn syscall_buffer_key_both_ways() {
        assert!(TracerOptions::default().syscall_buffer);
        let c = parse("mode = \"record\"\n[tracer]\nsyscall_buffer = true\n").unwrap();
        assert_eq!(c.tracer.syscall_buffer, Some(true));
        assert!(c.tracer_options().syscall_buffer);
        let c = parse("mode = \"record\"\n[tracer]\nsyscall_buffer = false\n").unwrap();
        assert_eq!(c.tracer.syscall_buffer, Some(false));
        assert!(!c.tracer_options().syscall_buffer);
        // Absent: the default.
        assert_eq!(parse("[tracer]\n").unwrap().tracer.syscall_buffer, None);
        let m = config_err("[tracer]\nsyscall_buffer = \"no\"\n");
        assert!(m.starts_with("configs/test.toml:2:18: invalid type"), "{m}");
    }

    #[test]
    fn full_file() {
        let c = parse(
            r#"
mode = "record"
trace = "out/t1"
program = ["./prog", "-x", "arg"]

[tracer]
cpu = 1
redirect_output = false
syscall_buffer = false
filter_lib = "lib/libwrap.so"

[[plugin]]
name = "checksum"
required = true
[plugin.config]
mode = "on-syscalls"
nested = { a = 1, b = [1, 2] }

[[plugin]]
name = "mine"
path = "plugins/libmine.so"

[[plugin]]
name = "abs"
path = "/opt/libabs.so"
"#,
        )
        .unwrap();
        assert_eq!(c.mode, Some(Mode::Record));
        assert_eq!(c.trace, Some(PathBuf::from("configs/out/t1")));
        assert_eq!(
            c.program,
            Some(vec!["./prog".into(), "-x".into(), "arg".into()])
        );
        assert_eq!(
            c.tracer,
            TracerConfig {
                cpu: Some(1),
                redirect_output: Some(false),
                syscall_buffer: Some(false),
                filter_lib: Some(PathBuf::from("configs/lib/libwrap.so")),
                wait_all: None,
            }
        );
        assert_eq!(
            c.tracer_options(),
            TracerOptions {
                cpu: Some(1),
                redirect_output: false,
                filter_lib: Some(PathBuf::from("configs/lib/libwrap.so")),
                syscall_buffer: false,
                wait_all: false,
            }
        );
        assert_eq!(c.plugins.len(), 3);
        let p = &c.plugins[0];
        assert_eq!(p.name, "checksum");
        assert_eq!(p.path, None);
        assert!(p.required);
        let table: toml::Table = toml::from_str(&p.config_toml).unwrap();
        assert_eq!(table["mode"].as_str(), Some("on-syscalls"));
        assert_eq!(table["nested"]["a"].as_integer(), Some(1));
        assert_eq!(table["nested"]["b"].as_array().unwrap().len(), 2);
        assert_eq!(p.config_table().unwrap(), table);
        let p = &c.plugins[1];
        assert_eq!(p.name, "mine");
        assert_eq!(p.path, Some(PathBuf::from("configs/plugins/libmine.so")));
        assert!(!p.required);
        assert_eq!(p.config_toml, "");
        assert_eq!(c.plugins[2].path, Some(PathBuf::from("/opt/libabs.so")));
    }

    #[test]
    fn replay_mode_and_paths_next_to_a_bare_file_name() {
        let c = Config::parse(
            "mode = \"replay\"\ntrace = \"trace_3\"\n",
            Path::new("replay.toml"),
        )
        .unwrap();
        assert_eq!(c.mode, Some(Mode::Replay));
        assert_eq!(c.trace, Some(PathBuf::from("trace_3")));
        let c = Config::parse("trace = \"/tmp/t\"\n", Path::new("a/b/replay.toml")).unwrap();
        assert_eq!(c.trace, Some(PathBuf::from("/tmp/t")));
    }

    #[test]
    fn empty_program_is_no_program() {
        assert_eq!(parse("program = []").unwrap().program, None);
    }

    #[test]
    fn empty_plugin_config_table() {
        let c = parse("[[plugin]]\nname = \"x\"\n[plugin.config]\n").unwrap();
        assert_eq!(c.plugins[0].config_toml, "");
        assert_eq!(c.plugins[0].config_table().unwrap(), toml::Table::new());
    }

    #[test]
    fn unknown_top_level_key() {
        let m = config_err("mode = \"record\"\n\ncolour = \"red\"\n");
        assert!(
            m.starts_with(
                "configs/test.toml:3:1: unknown field `colour`, expected one of `mode`, `trace`"
            ),
            "{m}"
        );
        assert!(!m.contains('\n'), "{m}");
    }

    #[test]
    fn unknown_tracer_key() {
        let m = config_err("[tracer]\ncpu = 0\n  speed = 3\n");
        assert!(
            m.starts_with("configs/test.toml:3:3: unknown field `speed`"),
            "{m}"
        );
        assert!(m.contains("syscall_buffer"), "{m}");
    }

    #[test]
    fn unknown_plugin_key() {
        let m = config_err("[[plugin]]\nname = \"a\"\nconfg = {}\n");
        assert!(
            m.starts_with("configs/test.toml:3:1: unknown field `confg`"),
            "{m}"
        );
    }

    #[test]
    fn wrong_types() {
        let m = config_err("[tracer]\ncpu = \"two\"\n");
        assert!(m.starts_with("configs/test.toml:2:7: invalid type"), "{m}");
        assert!(m.contains("u32"), "{m}");
        assert!(!m.contains('\n'), "{m}");
        let m = config_err("program = \"./prog\"\n");
        assert!(m.starts_with("configs/test.toml:1:11: invalid type"), "{m}");
        let m = config_err("\n[tracer]\nredirect_output = 1\n");
        assert!(m.starts_with("configs/test.toml:3:19: invalid type"), "{m}");
        let m = config_err("[tracer]\ncpu = -1\n");
        assert!(m.starts_with("configs/test.toml:2:7: "), "{m}");
        let m = config_err("[[plugin]]\nname = \"a\"\nrequired = \"yes\"\n");
        assert!(m.starts_with("configs/test.toml:3:12: invalid type"), "{m}");
        let m = config_err("[[plugin]]\nname = \"a\"\nconfig = 3\n");
        assert!(m.starts_with("configs/test.toml:3:10: invalid type"), "{m}");
    }

    #[test]
    fn bad_mode() {
        let m = config_err("mode = \"recrod\"\n");
        assert!(
            m.starts_with(
                "configs/test.toml:1:8: unknown variant `recrod`, expected `record` or `replay`"
            ),
            "{m}"
        );
    }

    #[test]
    fn plugin_needs_a_name() {
        let m = config_err("mode = \"record\"\n[[plugin]]\npath = \"x.so\"\n");
        assert!(
            m.starts_with("configs/test.toml:2:1: missing field `name`"),
            "{m}"
        );
        let m = config_err("[[plugin]]\nname = \"  \"\n");
        assert_eq!(m, "configs/test.toml:2:8: plugin `name` is empty");
    }

    #[test]
    fn syntax_error_is_one_line() {
        let m = config_err("mode = \"record\"\ntrace = \n");
        assert!(m.starts_with("configs/test.toml:2:"), "{m}");
        assert!(!m.contains('\n'), "{m}");
        let m = config_err("mode = \"record\"\nmode = \"replay\"\n");
        assert!(m.starts_with("configs/test.toml:2:1: "), "{m}");
        assert!(m.contains("duplicate"), "{m}");
        assert!(!m.contains('\n'), "{m}");
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(line_column("é = 1\nab", 0), (1, 1));
        assert_eq!(line_column("é = 1\nab", 2), (1, 2));
        assert_eq!(line_column("é = 1\nab", 1), (1, 1)); // inside a character
        assert_eq!(line_column("é = 1\nab", 6), (1, 6)); // the newline
        assert_eq!(line_column("é = 1\nab", 7), (2, 1));
        assert_eq!(line_column("é = 1\nab", 8), (2, 2));
        assert_eq!(line_column("x", 99), (1, 2));
        let m = config_err("# café\nbogus = 1\n");
        assert!(m.starts_with("configs/test.toml:2:1: "), "{m}");
    }

    #[test]
    fn load_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(f, "mode = \"replay\"\ntrace = \"t\"").unwrap();
        drop(f);
        let c = Config::load(&path).unwrap();
        assert_eq!(c.file, path);
        assert_eq!(c.mode, Some(Mode::Replay));
        assert_eq!(c.trace, Some(dir.path().join("t")));
    }

    #[test]
    fn load_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.toml");
        match Config::load(&path) {
            Err(e @ Error::Config(_)) => {
                let m = e.to_string();
                assert!(
                    m.starts_with(&format!("cannot read config {}: ", path.display())),
                    "{m}"
                );
                assert_eq!(e.exit_code(), crate::error::exit_code::CONFIG);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn load_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "mode = \"record\"\n[tracer]\nwat = 1\n").unwrap();
        let m = Config::load(&path).unwrap_err().to_string();
        assert!(
            m.starts_with(&format!("{}:3:1: unknown field `wat`", path.display())),
            "{m}"
        );
    }

    #[test]
    fn plugin_spec_update_config() {
        let mut t = toml::Table::new();
        t.insert("a".into(), toml::Value::Integer(1));
        let mut p = PluginSpec::named("x", &t).unwrap();
        assert_eq!(p.config_toml, "a = 1\n");
        p.update_config(|t| {
            t.insert("b".into(), toml::Value::String("s".into()));
        })
        .unwrap();
        assert_eq!(p.config_toml, "a = 1\nb = \"s\"\n");
        let p = PluginSpec::named("y", &toml::Table::new()).unwrap();
        assert_eq!(p.config_toml, "");
        assert!(!p.required);
        assert_eq!(p.path, None);
    }

    fn shipped(name: &str) -> Config {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../configs")
            .join(name);
        Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn shipped_record_toml_is_valid() {
        let c = shipped("record.toml");
        assert_eq!(c.mode, Some(Mode::Record));
        assert_eq!(
            c.trace, None,
            "a shipped config must not pin the trace directory"
        );
        assert_eq!(c.program, None);
    }

    #[test]
    fn shipped_replay_toml_is_valid() {
        let c = shipped("replay.toml");
        assert_eq!(c.mode, Some(Mode::Replay));
        assert_eq!(c.tracer.redirect_output, Some(true));
        assert_eq!(c.trace, None);
        assert!(c.tracer_options().redirect_output);
    }

    /// Each commented `[[plugin]]` example in record.toml (ended by a lone
    /// `#`), uncommented, parses.
    #[test]
    fn shipped_record_toml_plugin_examples_are_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/record.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let starts: Vec<usize> = text.match_indices("# [[plugin]]").map(|(i, _)| i).collect();
        assert!(starts.len() >= 2, "the checksum and memory-dump examples");
        for start in starts {
            let example: String = text[start..]
                .lines()
                .take_while(|l| l.starts_with('#') && l.trim() != "#")
                .map(|l| format!("{}\n", l.trim_start_matches('#').trim_start()))
                .collect();
            let c = Config::parse(&example, &path).unwrap_or_else(|e| panic!("{example}\n{e}"));
            assert_eq!(c.plugins.len(), 1, "{example}");
            assert!(!c.plugins[0].config_toml.is_empty(), "{example}");
        }
    }
}
