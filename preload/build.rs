//! Links the unwinder into the library (libgcc's static `libgcc_eh`)
//! instead of depending on `libgcc_s.so.1`, which Rust's standard library
//! otherwise pulls in: every recorded program would load it, with its
//! constructor (`__cpu_indicator_init`, a dozen `cpuid`s at ~6 µs each in
//! a VM) and ~8 traced syscalls to map it; ~0.3 ms per exec. The library
//! never unwinds (it aborts on panic); std only names the symbols.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let found = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|p| std::path::Path::new(p).is_absolute());
    // Without it (another toolchain), the library keeps libgcc_s: slower to
    // load, same behaviour.
    if let Some(path) = found {
        let dir = std::path::Path::new(&path).parent().expect("absolute path");
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-lib=static:+whole-archive=gcc_eh");
    }
}
