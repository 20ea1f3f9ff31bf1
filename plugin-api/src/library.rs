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
//!
//! That check walks every type of the interface and cost each recording
//! and replay ~0.2 ms (of `cp --version`'s 8). It is skipped for a library
//! whose [`interface_fingerprint`] is the host's: one built from the same
//! compilation of this crate, as the plugins built with rrpipe are.

use std::any::TypeId;
use std::hash::{Hash, Hasher};
use std::path::Path;

use abi_stable::library::{lib_header_from_raw_library, LibraryError, RawLibrary, RootModule};

use crate::plugin::{PluginModule, PluginModuleRef, INTERFACE_VERSION};

include!(concat!(env!("OUT_DIR"), "/source_hash.rs"));

/// The C symbol every plugin library exports (see `export_plugin!`): a
/// function returning its [`interface_fingerprint`].
pub const FINGERPRINT_SYMBOL: &[u8] = b"rrpipe_plugin_interface_fingerprint\0";

/// What this compilation of the interface crate is: equal in two binaries
/// only when both were built from the same sources of it
/// ([`SOURCE_HASH`]) and with the same compiler, dependencies, features
/// and target (all of which cargo hashes into the crate's metadata, which
/// goes into every `TypeId` of the crate's types). Then the layouts of the
/// types crossing the boundary are the same by construction.
pub fn interface_fingerprint() -> u64 {
    // Fixed keys: the same in both binaries when they agree on the rest.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    SOURCE_HASH.hash(&mut h);
    TypeId::of::<PluginModule>().hash(&mut h);
    h.finish()
}

/// Loads the library at `path`. The error is one line naming the file and
/// the problem (missing, not a plugin library, another interface).
pub fn load(path: &Path) -> Result<PluginModuleRef, String> {
    let module = load_checked(path).map_err(|e| describe_library_error(path, &e))?;
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

/// The library's root module, its layout checked unless the library has
/// this host's [`interface_fingerprint`].
fn load_checked(path: &Path) -> Result<PluginModuleRef, LibraryError> {
    let raw = RawLibrary::load_at(path)?;
    // SAFETY: the symbol, where a library has it, is the function that
    // `export_plugin!` defines (a C function without arguments returning
    // a u64). The header is the library's, which stays loaded: `raw` is
    // leaked below, as `lib_header_from_path` does.
    let (header, same_build) = unsafe {
        let fingerprint = raw.get::<extern "C" fn() -> u64>(FINGERPRINT_SYMBOL);
        let same_build = fingerprint.is_ok_and(|f| f() == interface_fingerprint());
        (lib_header_from_raw_library(&raw)?, same_build)
    };
    std::mem::forget(raw);
    if same_build {
        // SAFETY: the same compilation of the interface on both sides.
        unsafe { header.init_root_module_with_unchecked_layout::<PluginModuleRef>() }
    } else {
        header.init_root_module::<PluginModuleRef>()
    }
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
