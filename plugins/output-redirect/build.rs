//! Links libgcc's static unwinder instead of `libgcc_s.so.1`, which loading
//! the plugin would otherwise load too (see `preload/static_unwinder.rs`).

include!("../../preload/static_unwinder.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../../preload/static_unwinder.rs");
    link_static_unwinder();
}
