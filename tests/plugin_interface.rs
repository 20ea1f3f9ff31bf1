//! A plugin built against another shape of the plugin interface is refused
//! with a one-line error and exit code 79, before anything is recorded.
//!
//! The test builds a real plugin against a copy of `plugin-api` whose event
//! header has one more field, as an old or new plugin would be (see
//! `build_test_plugin` for how test plugins are built). The plugins built
//! with rrpipe skip that check (see `rrpipe_plugin_api::library`): their
//! fingerprint is checked here.

mod common;

use std::path::Path;

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

/// A manifest for a copy of `plugin-api` outside the workspace: its
/// non-optional dependencies, with what it inherits from the workspace
/// filled in, so the copy follows the real crate's dependencies.
fn standalone_api_manifest() -> String {
    let read = |p: &Path| -> toml::Table {
        toml::from_str(&std::fs::read_to_string(p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let workspace = read(&workspace_root().join("Cargo.toml"));
    let inherited = workspace["workspace"]["dependencies"].as_table().unwrap();
    let api = read(&plugin_api_dir().join("Cargo.toml"));
    // `dep = "1"` is short for `dep = { version = "1" }`.
    let table = |name: &str, v: &toml::Value| match v {
        toml::Value::String(v) => toml::Table::from_iter([("version".into(), v.clone().into())]),
        toml::Value::Table(t) => t.clone(),
        other => panic!("dependency {name} = {other}"),
    };
    let mut deps = toml::Table::new();
    for (name, spec) in api["dependencies"].as_table().unwrap() {
        let mut spec = table(name, spec);
        if spec.get("optional").and_then(toml::Value::as_bool) == Some(true) {
            continue;
        }
        if spec.remove("workspace").is_some() {
            let mut full = table(name, &inherited[name]);
            // Features given here add to the workspace's.
            if let Some(toml::Value::Array(more)) = spec.remove("features") {
                let features = full
                    .entry("features")
                    .or_insert_with(|| toml::Value::Array(Vec::new()));
                features.as_array_mut().unwrap().extend(more);
            }
            spec = full;
        }
        // A path dependency (the syscall-buffer layout) stays where it is.
        if let Some(toml::Value::String(path)) = spec.get("path") {
            let path = plugin_api_dir().join(path).to_string_lossy().into_owned();
            spec.insert("path".into(), path.into());
        }
        deps.insert(name.clone(), spec.into());
    }
    let mut manifest: toml::Table = toml::from_str(
        "[package]\nname = \"rrpipe-plugin-api\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         [lib]\nname = \"rrpipe_plugin_api\"\n",
    )
    .unwrap();
    manifest.insert("dependencies".into(), deps.into());
    toml::to_string(&manifest).unwrap()
}

/// Builds the plugin against a copy of `plugin-api` in `work` whose event
/// header has one more field; returns the path of its library.
fn build_skewed_plugin(work: &Path) -> std::path::PathBuf {
    let api = work.join("plugin-api");
    copy_dir(&plugin_api_dir().join("src"), &api.join("src"));
    std::fs::copy(plugin_api_dir().join("build.rs"), api.join("build.rs")).unwrap();
    std::fs::write(api.join("Cargo.toml"), standalone_api_manifest()).unwrap();
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

    build_test_plugin("skewed-plugin", PLUGIN_SRC, &api)
}

/// What the library at `lib` says its interface is (see
/// `rrpipe_plugin_api::library::interface_fingerprint`).
fn fingerprint_of(lib: &Path) -> u64 {
    use rrpipe_plugin_api::library::FINGERPRINT_SYMBOL;
    // SAFETY: rrpipe's plugin libraries, whose symbol is a C function
    // without arguments returning a u64.
    unsafe {
        let lib = libloading::Library::new(lib).unwrap();
        let f = lib
            .get::<extern "C" fn() -> u64>(FINGERPRINT_SYMBOL)
            .unwrap_or_else(|e| panic!("no fingerprint: {e}"));
        f()
    }
}

#[test]
fn plugins_built_with_rrpipe_are_known_to_share_its_interface() {
    let bin = rrpipe_bin();
    let dir = bin.parent().unwrap();
    let ours = rrpipe_plugin_api::library::interface_fingerprint();
    for name in ["trace_writer", "checksum", "memory_dump", "output_redirect"] {
        let file = format!("librrpipe_{name}.so");
        let lib = [dir.join(&file), dir.join("deps").join(&file)]
            .into_iter()
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{file} not built"));
        assert_eq!(fingerprint_of(&lib), ours, "{}", lib.display());
    }
}

#[test]
fn plugin_built_against_another_interface_is_refused() {
    let work = scratch_dir("skewed");
    let lib = build_skewed_plugin(&work);
    assert_ne!(
        fingerprint_of(&lib),
        rrpipe_plugin_api::library::interface_fingerprint(),
        "other sources of the interface, yet the same fingerprint: its layout would not be checked"
    );
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
