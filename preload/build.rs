//! Links libgcc's static unwinder into the library: every recorded program
//! loads it, and loading `libgcc_s.so.1` too cost each recorded exec ~8
//! traced syscalls and a dozen `cpuid`s (see `static_unwinder.rs`). The
//! library never unwinds (it aborts on panic); std only names the symbols.

include!("static_unwinder.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=static_unwinder.rs");
    link_static_unwinder();
}
