//! Where plugin libraries are found: by name in a search path, so that a
//! TOML file can say `name = "checksum"` and get rrpipe's own build, or a
//! third party's installed next to it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Colon-separated directories searched for plugins before rrpipe's own.
pub const PLUGIN_PATH_ENV: &str = "RRPIPE_PLUGIN_PATH";

/// The file names a plugin called `name` may have, in the order tried:
/// `librrpipe_<name with - as _>.so`, `lib<name>.so`, `<name>.so`.
pub fn library_file_names(name: &str) -> [String; 3] {
    [
        format!("librrpipe_{}.so", name.replace('-', "_")),
        format!("lib{name}.so"),
        format!("{name}.so"),
    ]
}

/// The directories searched for plugins, in order: each directory of
/// `RRPIPE_PLUGIN_PATH`, the directory of the running executable, and
/// `<that directory>/../lib/rrpipe`.
pub fn search_dirs() -> Vec<PathBuf> {
    let env = std::env::var_os(PLUGIN_PATH_ENV);
    let exe = std::env::current_exe().ok();
    search_dirs_from(env.as_deref(), exe.as_deref())
}

fn search_dirs_from(env: Option<&OsStr>, exe: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut add = |d: PathBuf| {
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    };
    if let Some(env) = env {
        for d in std::env::split_paths(env) {
            if !d.as_os_str().is_empty() {
                add(d);
            }
        }
    }
    if let Some(exe_dir) = exe.and_then(Path::parent) {
        add(exe_dir.to_path_buf());
        if let Some(prefix) = exe_dir.parent() {
            add(prefix.join("lib").join("rrpipe"));
        }
    }
    dirs
}

/// Finds the library of plugin `name` in `dirs` (each directory tried with
/// every [`library_file_names`] before the next directory).
pub fn find_library(name: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    let names = library_file_names(name);
    for dir in dirs {
        for file in &names {
            let candidate = dir.join(file);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(Error::Plugin {
        name: name.to_string(),
        detail: format!(
            "no library {} in {PLUGIN_PATH_ENV} or next to rrpipe ({})",
            names[0],
            searched.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn file_names_follow_the_convention() {
        assert_eq!(
            library_file_names("output-redirect"),
            [
                "librrpipe_output_redirect.so".to_string(),
                "liboutput-redirect.so".to_string(),
                "output-redirect.so".to_string(),
            ]
        );
    }

    #[test]
    fn search_dirs_env_first_then_next_to_the_executable() {
        let dirs = search_dirs_from(
            Some(OsStr::new("/a::/b:/a")),
            Some(Path::new("/opt/x/bin/rrpipe")),
        );
        assert_eq!(
            dirs,
            [
                PathBuf::from("/a"),
                PathBuf::from("/b"),
                PathBuf::from("/opt/x/bin"),
                PathBuf::from("/opt/x/lib/rrpipe"),
            ]
        );
        assert_eq!(
            search_dirs_from(None, Some(Path::new("/usr/bin/rrpipe"))),
            [PathBuf::from("/usr/bin"), PathBuf::from("/usr/lib/rrpipe")]
        );
        assert!(search_dirs_from(None, None).is_empty());
    }

    #[test]
    fn find_library_prefers_earlier_dirs_then_the_rrpipe_name() {
        let a = tempdir();
        let b = tempdir();
        std::fs::write(b.path().join("librrpipe_my_plugin.so"), b"").unwrap();
        std::fs::write(b.path().join("libmy-plugin.so"), b"").unwrap();
        std::fs::write(a.path().join("my-plugin.so"), b"").unwrap();
        // A directory by the right name is not a library.
        std::fs::create_dir(a.path().join("libmy-plugin.so")).unwrap();
        let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(
            find_library("my-plugin", &dirs).unwrap(),
            a.path().join("my-plugin.so")
        );
        assert_eq!(
            find_library("my-plugin", &dirs[1..]).unwrap(),
            b.path().join("librrpipe_my_plugin.so")
        );
    }

    #[test]
    fn a_missing_plugin_names_the_file_and_the_directories() {
        let a = tempdir();
        let dirs = [a.path().to_path_buf(), PathBuf::from("/nonexistent/lib")];
        let err = find_library("no-such-thing", &dirs).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit_code::PLUGIN);
        assert_eq!(
            err.to_string(),
            format!(
                "plugin no-such-thing: no library librrpipe_no_such_thing.so in \
                 RRPIPE_PLUGIN_PATH or next to rrpipe ({}, /nonexistent/lib)",
                a.path().display()
            )
        );
    }
}
