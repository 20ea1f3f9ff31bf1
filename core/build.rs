//! Links the `rrpipe` executable at a fixed address (`-no-pie`). As a
//! position-independent executable it carried ~8,000 relocations that the
//! dynamic loader applies at every start, each first write to a page a
//! copy-on-write fault: ~0.6 ms of every recording and replay in a VM,
//! where a page fault is slow. The code is still compiled
//! position-independent (so the same objects serve the tests); only the
//! final link of the binary changes, and the plugins are untouched.
//!
//! Also links libgcc's static unwinder instead of `libgcc_s.so.1` (see
//! `preload/static_unwinder.rs`).

include!("../preload/static_unwinder.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../preload/static_unwinder.rs");
    println!("cargo:rustc-link-arg-bins=-no-pie");
    link_static_unwinder();
}
