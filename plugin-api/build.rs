//! Hashes this crate's sources into `SOURCE_HASH` (see
//! `library::interface_fingerprint`): a plugin built from other sources of
//! the interface than the host's must not be spared the layout check.

use std::path::{Path, PathBuf};

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let mut files = vec![dir.join("Cargo.toml"), dir.join("build.rs")];
    collect(&dir.join("src"), &mut files);
    files.sort();
    // FNV-1a: stable across toolchains, unlike std's hashers.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash = (hash ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for file in &files {
        let relative = file.strip_prefix(&dir).expect("under the crate");
        feed(relative.to_string_lossy().as_bytes());
        let contents = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        feed(&(contents.len() as u64).to_le_bytes());
        feed(&contents);
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    std::fs::write(
        out.join("source_hash.rs"),
        format!(
            "/// FNV-1a of this crate's sources.\npub const SOURCE_HASH: u64 = {hash:#018x};\n"
        ),
    )
    .expect("write source_hash.rs");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-changed=build.rs");
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}
