// Included by the build scripts of the preload library, rrpipe itself and
// the plugins (`include!`), so that all of them link one way.
//
// Links the unwinder into the artifact (libgcc's static `libgcc_eh`)
// instead of depending on `libgcc_s.so.1`, which Rust's standard library
// otherwise pulls in. Loading it costs a process a library lookup and
// mapping, and its constructor (`__cpu_indicator_init`) a dozen `cpuid`s,
// ~6 µs each in a VM: in the preload library that was ~0.3 ms per
// recorded exec (traced), in rrpipe and the trace writer ~0.5 ms of every
// recording (`record /bin/true`: 4.8 ms to 4.35 ms). Each artifact then
// unwinds its own frames; panics never cross from one to another (the
// plugin interface catches them, the preload library aborts).
//
// Without `libgcc_eh` (another toolchain), the artifact keeps libgcc_s:
// slower to load, same behaviour.

fn link_static_unwinder() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let found = std::process::Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|p| std::path::Path::new(p).is_absolute());
    if let Some(path) = found {
        let dir = std::path::Path::new(&path).parent().expect("absolute path");
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-lib=static:+whole-archive=gcc_eh");
    }
}
