//! A plugin built against another shape of the plugin interface is refused
//! with a one-line error and exit code 79, before anything is recorded.
//!
//! The test builds a real plugin against a copy of `plugin-api` whose event
//! header has one more field, as an old or new plugin would be. The build
//! uses the registry cache the workspace build filled (`--offline`) and a
//! target directory under CARGO_TARGET_TMPDIR, so later runs are quick.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const PLUGIN_SRC: &str = r#"
use rrpipe_plugin_api::{Event, Handler, Plugin, PluginContext, PluginError, Snapshot};

struct Quiet;

impl Handler for Quiet {
    fn on_event(&mut self, _: &Event, _: Option<&Snapshot>) -> Result<(), PluginError> {
        Ok(())
    }
}

fn create(_: &PluginContext) -> Result<Plugin, PluginError> {
    Ok(Plugin::new(Quiet))
}

rrpipe_plugin_api::export_plugin!("skewed", create);
"#;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Builds the skewed plugin; returns the path of its library.
fn build_skewed_plugin(work: &Path) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let api = work.join("plugin-api");
    copy_dir(&root.join("plugin-api/src"), &api.join("src"));
    std::fs::write(
        api.join("Cargo.toml"),
        r#"[package]
name = "rrpipe-plugin-api"
version = "0.1.0"
edition = "2021"
[lib]
name = "rrpipe_plugin_api"
[dependencies]
abi_stable = "0.11"
serde = { version = "1", features = ["derive"] }
toml = "0.8"
"#,
    )
    .unwrap();
    let event = api.join("src/event.rs");
    let text = std::fs::read_to_string(&event).unwrap();
    let skewed = text.replacen(
        "pub struct EventHeader {\n",
        "pub struct EventHeader {\n    pub added_later: u64,\n",
        1,
    );
    assert_ne!(
        text, skewed,
        "EventHeader not found in plugin-api/src/event.rs"
    );
    std::fs::write(&event, skewed).unwrap();

    let plugin = work.join("skewed");
    std::fs::create_dir_all(plugin.join("src")).unwrap();
    std::fs::write(
        plugin.join("Cargo.toml"),
        r#"[package]
name = "skewed-plugin"
version = "0.1.0"
edition = "2021"
[lib]
crate-type = ["cdylib"]
[dependencies]
rrpipe-plugin-api = { path = "../plugin-api" }
abi_stable = "0.11"
[workspace]
"#,
    )
    .unwrap();
    std::fs::write(plugin.join("src/lib.rs"), PLUGIN_SRC).unwrap();
    // The workspace's lock file pins the versions already in the cache.
    std::fs::copy(root.join("Cargo.lock"), plugin.join("Cargo.lock")).unwrap();

    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skewed-plugin-target");
    let out = Command::new(env!("CARGO"))
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(plugin.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building the skewed plugin failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("debug/libskewed_plugin.so")
}

#[test]
fn plugin_built_against_another_interface_is_refused() {
    let work = scratch_dir("skewed");
    let lib = build_skewed_plugin(&work);
    let config = work.join("record.toml");
    std::fs::write(
        &config,
        format!(
            "mode = \"record\"\n[[plugin]]\nname = \"skewed\"\npath = \"{}\"\n",
            lib.display()
        ),
    )
    .unwrap();
    let trace = fresh_trace_path();
    let run = rrpipe_args(&[
        "--config",
        config.to_str().unwrap(),
        "record",
        "-o",
        trace.to_str().unwrap(),
        "--",
        "/bin/echo",
        "never printed",
    ]);
    assert_one_line_error(&run, 79, &["skewed", "another plugin interface", "rebuild"]);
    assert!(
        !String::from_utf8_lossy(&run.stdout).contains("never printed"),
        "the program ran although a plugin was refused"
    );
}
