//! `librrpipe_preload.so`: syscall buffering, rr's `librrpreload` for
//! rrpipe. rrpipe puts it in `LD_PRELOAD` when it records (and the trace's
//! environment keeps it there in replay), so that the common libc entry
//! points below are this library's: each makes its syscall without a
//! ptrace stop and logs the result in a per-thread buffer that rrpipe turns
//! into events at the thread's next stop (see `rrpipe_syscallbuf` for the
//! protocol). A stop costs ~15 µs, a buffered call well under one.
//!
//! The program must not be able to tell: results and errno are libc's,
//! no file descriptor is added, the signal mask is not touched, every path
//! is async-signal-safe (no allocation, no lock: a per-thread busy flag
//! sends a call made from a signal handler inside another down the traced
//! path) and fork-safe (a forked child inherits its parent's buffer, which
//! rrpipe empties at every fork).
//!
//! Directory streams (`opendir`, `readdir`, ...) are this library's own
//! (`dir`), built on its wrappers: libc's make their calls internally.
//!
//! libc's own syscalls of the common kinds go through this library too once
//! rrpipe has patched their call sites (`patch`).
//!
//! Not buffered, hence traced as before: other calls libc makes
//! internally (and the first call of each patchable site), raw `syscall` instructions,
//! static programs, anything that might wait for another task (reads from
//! pipes with no data, writes to anything but a regular file, opens of
//! FIFOs and devices), and writes to rrpipe's own stdout and stderr (which
//! replay prints). Known difference: buffered calls are not cancellation
//! points for `pthread_cancel`.

mod calls;
mod dir;
mod patch;
mod stat_cache;
mod syscall;

/// Run by the dynamic loader when it loads the library, before the
/// program's own start-up code (`.init_array`).
#[used]
#[link_section = ".init_array"]
static AT_LOAD: extern "C" fn() = at_load;

/// Makes the main thread's buffer now rather than at its first buffered
/// call: its registration names the patch area (see `patch`), which libc's
/// own start-up syscalls (`setlocale`'s) need before any wrapper runs.
extern "C" fn at_load() {
    syscall::prepare();
}

/// The exported entry points. Each runs this library's implementation on
/// the thread's private stack (what it leaves on a stack differs between
/// record, which made syscalls, and replay, which read records, and would
/// come back to life when the program's stack grows over it again), then
/// clears what the implementation may have left in the registers a callee
/// may clobber (rcx, rdx, rsi, rdi, r8-r11, the flags, xmm0-15): replay
/// checks every register and the live stack at the program's next stop,
/// and the dynamic loader's lazy binding saves the vector registers on the
/// program's stack.
macro_rules! export {
    ($($name:ident),* $(,)?) => {$(
        #[unsafe(naked)]
        #[no_mangle]
        pub extern "C" fn $name() {
            core::arch::naked_asm!(
                "push rbx",
                "push rdi",
                "push rsi",
                "push rdx",
                "push rcx",
                "push r8",
                "push r9",
                "mov rdi, rsp",
                "call {stack}",
                "pop r9",
                "pop r8",
                "pop rcx",
                "pop rdx",
                "pop rsi",
                "pop rdi",
                "mov rbx, rsp",
                "test rax, rax",
                "jz 2f",
                "mov rsp, rax",
                "2:",
                "call {imp}",
                "mov rsp, rbx",
                "pop rbx",
                "xor ecx, ecx",
                "xor edx, edx",
                "xor esi, esi",
                "xor edi, edi",
                "xor r8d, r8d",
                "xor r9d, r9d",
                "xor r10d, r10d",
                "xor r11d, r11d",
                "pxor xmm0, xmm0",
                "pxor xmm1, xmm1",
                "pxor xmm2, xmm2",
                "pxor xmm3, xmm3",
                "pxor xmm4, xmm4",
                "pxor xmm5, xmm5",
                "pxor xmm6, xmm6",
                "pxor xmm7, xmm7",
                "pxor xmm8, xmm8",
                "pxor xmm9, xmm9",
                "pxor xmm10, xmm10",
                "pxor xmm11, xmm11",
                "pxor xmm12, xmm12",
                "pxor xmm13, xmm13",
                "pxor xmm14, xmm14",
                "pxor xmm15, xmm15",
                "ret",
                stack = sym syscall::private_stack,
                imp = sym calls::$name,
            )
        }
    )*};
}

export!(
    opendir,
    fdopendir,
    readdir,
    readdir64,
    readdir_r,
    readdir64_r,
    closedir,
    dirfd,
    rewinddir,
    seekdir,
    telldir,
    getxattr,
    lgetxattr,
    fgetxattr,
    listxattr,
    llistxattr,
    flistxattr,
    read,
    __read,
    __read_chk,
    write,
    __write,
    pread64,
    pread,
    pwrite64,
    pwrite,
    openat,
    openat64,
    __openat_2,
    __openat64_2,
    open,
    open64,
    __open_2,
    __open64_2,
    close,
    __close,
    mkdirat,
    mkdir,
    fstatat,
    fstatat64,
    stat,
    stat64,
    lstat,
    lstat64,
    fstat,
    fstat64,
    statx,
    access,
    faccessat,
    readlinkat,
    readlink,
    lseek,
    lseek64,
    getdents64,
    copy_file_range,
    posix_fadvise,
    posix_fadvise64,
    ioctl,
    fcntl,
    fcntl64,
    clock_gettime,
    __clock_gettime,
    gettimeofday,
    time,
    getpid,
    getppid,
    getuid,
    geteuid,
    getgid,
    getegid,
    sigaction
);
