//! Loading a plugin library and checking that it speaks this interface:
//! shared by the host (plugins) and by plugins that load other libraries
//! (the memory dumper loads dump policies).
//!
//! Libraries are loaded with `lib_header_from_path(..).init_root_module()`
//! rather than `RootModule::load_from_file`, which caches one module per
//! interface type and so could load only one library. abi_stable checks the
//! layout of every type crossing the boundary at load time; its long report
//! is turned into one line with a hint. Libraries stay loaded for the life
//! of the process (abi_stable never unloads them).

use std::path::Path;

use abi_stable::library::{lib_header_from_path, LibraryError, RootModule};

use crate::plugin::{PluginModuleRef, INTERFACE_VERSION};

/// Loads the library at `path`. The error is one line naming the file and
/// the problem (missing, not a plugin library, another interface).
pub fn load(path: &Path) -> Result<PluginModuleRef, String> {
    let module = lib_header_from_path(path)
        .and_then(|header| header.init_root_module::<PluginModuleRef>())
        .map_err(|e| describe_library_error(path, &e))?;
    let found = module.interface_version();
    if found != INTERFACE_VERSION {
        return Err(format!(
            "{} was built against another plugin interface (interface {found}); {}",
            path.display(),
            rebuild_hint()
        ));
    }
    Ok(module)
}

fn rebuild_hint() -> String {
    format!(
        "rebuild it against rrpipe-plugin-api {} (interface {INTERFACE_VERSION})",
        <PluginModuleRef as RootModule>::VERSION_STRINGS
    )
}

/// abi_stable's (multi-line, sometimes very long) load error as one line.
fn describe_library_error(path: &Path, e: &LibraryError) -> String {
    let shown = path.display().to_string();
    match e {
        LibraryError::OpenError { err, .. } => {
            let reason = err.to_string();
            let reason = reason
                .strip_prefix(&format!("{shown}: "))
                .unwrap_or(&reason)
                .to_string();
            format!("cannot load {shown}: {}", one_line(&reason))
        }
        LibraryError::GetSymbolError { .. } => format!(
            "{shown} is not an rrpipe plugin (it exports no plugin root module; \
             plugins export one with rrpipe_plugin_api::export_plugin!)"
        ),
        LibraryError::RootModule { err, .. } => format!(
            "{shown}: its root module failed to initialize: {}",
            one_line(&err.to_string())
        ),
        LibraryError::Many(list) if !list.is_empty() => describe_library_error(path, &list[0]),
        // AbiInstability, IncompatibleVersionNumber, ParseVersionError,
        // InvalidAbiHeader, InvalidCAbi: another interface.
        _ => format!(
            "{shown} was built against another plugin interface; {}",
            rebuild_hint()
        ),
    }
}

/// Collapses whitespace (newlines, tabs, runs of spaces) into single spaces.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_errors_become_a_rebuild_hint() {
        let e = LibraryError::IncompatibleVersionNumber {
            library_name: "rrpipe_plugin",
            expected_version: abi_stable::sabi_types::VersionNumber {
                major: 0,
                minor: 1,
                patch: 0,
            },
            actual_version: abi_stable::sabi_types::VersionNumber {
                major: 0,
                minor: 2,
                patch: 0,
            },
        };
        assert_eq!(
            describe_library_error(Path::new("/p/libx.so"), &e),
            format!(
                "/p/libx.so was built against another plugin interface; rebuild it against \
                 rrpipe-plugin-api {} (interface {INTERFACE_VERSION})",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
