//! The `rrpipe` command.

fn main() {
    // Large blocks (a stretch of syscall records, a process's writable
    // memory at exec) come from the heap and stay there once freed, instead
    // of an mmap and munmap each: a munmap in a process whose threads run
    // on another CPU interrupts that CPU to flush its TLB, and every page
    // of a fresh mapping faults on first touch, both slow in a VM.
    // SAFETY: mallopt before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TOP_PAD, 8 << 20);
    }
    let result = rrpipe::cli::parse(std::env::args_os().collect()).and_then(rrpipe::run);
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("rrpipe: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
