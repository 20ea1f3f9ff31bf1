//! Syscall-site patching, the library's half (see the protocol in
//! `rrpipe_syscallbuf`): the patch area the tracer writes stubs into, and
//! the trampoline and hook those stubs call.
//!
//! libc makes many syscalls from inside itself, through no symbol this
//! library can replace: opening, reading and mapping each locale file
//! (about 70 traced syscalls in every program that calls `setlocale`),
//! stdio's writes, `dlopen`'s reads. At such a syscall the tracer
//! redirects its instruction here, and later calls from it run as the
//! matching wrapper's would: buffered in record, read back in replay.
//!
//! A stub enters [`trampoline`] with the syscall's registers (number in
//! rax, arguments in rdi, rsi, rdx, r10, r8, r9) and 128 bytes below the
//! interrupted code's stack pointer (its red zone). The trampoline keeps
//! every register a syscall keeps, the vector registers included (libc may
//! hold values in them across an inline syscall), runs [`hook`] on the
//! thread's private stack like every wrapper, and returns the raw result in
//! rax, with rcx and r11 (which a syscall clobbers) zeroed: registers are
//! compared between record and replay.

use core::ffi::{c_char, c_int, c_uint, c_void};

use rrpipe_syscallbuf as abi;

use crate::calls;
use crate::syscall::{errno, set_errno, traced};

core::arch::global_asm!(
    ".pushsection .text.rrpipe_patch_area,\"ax\",@progbits",
    ".p2align 6",
    ".globl rrpipe_patch_area",
    ".hidden rrpipe_patch_area",
    "rrpipe_patch_area:",
    ".quad 0",
    ".fill {fill}, 1, 0xcc",
    ".popsection",
    fill = const abi::PATCH_AREA_SIZE - 8,
);

extern "C" {
    static rrpipe_patch_area: u8;
}

/// The patch area and trampoline, as `register_buffer` announces them.
pub fn announced() -> [u64; 3] {
    let area = core::ptr::addr_of!(rrpipe_patch_area) as u64;
    let trampoline = trampoline as *const () as u64;
    [area, abi::PATCH_AREA_SIZE as u64, trampoline]
}

/// What every stub calls (see the module's doc).
#[unsafe(naked)]
extern "C" fn trampoline() {
    core::arch::naked_asm!(
        "push rbx",
        // The arguments, in order at rbx.
        "push r9",
        "push r8",
        "push r10",
        "push rdx",
        "push rsi",
        "push rdi",
        "mov rbx, rsp",
        "sub rsp, 256",
        "movdqu xmmword ptr [rsp], xmm0",
        "movdqu xmmword ptr [rsp + 16], xmm1",
        "movdqu xmmword ptr [rsp + 32], xmm2",
        "movdqu xmmword ptr [rsp + 48], xmm3",
        "movdqu xmmword ptr [rsp + 64], xmm4",
        "movdqu xmmword ptr [rsp + 80], xmm5",
        "movdqu xmmword ptr [rsp + 96], xmm6",
        "movdqu xmmword ptr [rsp + 112], xmm7",
        "movdqu xmmword ptr [rsp + 128], xmm8",
        "movdqu xmmword ptr [rsp + 144], xmm9",
        "movdqu xmmword ptr [rsp + 160], xmm10",
        "movdqu xmmword ptr [rsp + 176], xmm11",
        "movdqu xmmword ptr [rsp + 192], xmm12",
        "movdqu xmmword ptr [rsp + 208], xmm13",
        "movdqu xmmword ptr [rsp + 224], xmm14",
        "movdqu xmmword ptr [rsp + 240], xmm15",
        // The number, at rbx - 264.
        "push rax",
        "mov rdi, rsp",
        "and rsp, -16",
        "call {stack}",
        "mov rdi, qword ptr [rbx - 264]",
        "mov rsi, rbx",
        "test rax, rax",
        "jz 2f",
        "mov rsp, rax",
        "2:",
        "and rsp, -16",
        "call {hook}",
        "lea rsp, [rbx - 256]",
        "movdqu xmm0, xmmword ptr [rsp]",
        "movdqu xmm1, xmmword ptr [rsp + 16]",
        "movdqu xmm2, xmmword ptr [rsp + 32]",
        "movdqu xmm3, xmmword ptr [rsp + 48]",
        "movdqu xmm4, xmmword ptr [rsp + 64]",
        "movdqu xmm5, xmmword ptr [rsp + 80]",
        "movdqu xmm6, xmmword ptr [rsp + 96]",
        "movdqu xmm7, xmmword ptr [rsp + 112]",
        "movdqu xmm8, xmmword ptr [rsp + 128]",
        "movdqu xmm9, xmmword ptr [rsp + 144]",
        "movdqu xmm10, xmmword ptr [rsp + 160]",
        "movdqu xmm11, xmmword ptr [rsp + 176]",
        "movdqu xmm12, xmmword ptr [rsp + 192]",
        "movdqu xmm13, xmmword ptr [rsp + 208]",
        "movdqu xmm14, xmmword ptr [rsp + 224]",
        "movdqu xmm15, xmmword ptr [rsp + 240]",
        "mov rsp, rbx",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop r10",
        "pop r8",
        "pop r9",
        "pop rbx",
        "xor ecx, ecx",
        "xor r11d, r11d",
        "ret",
        stack = sym crate::syscall::private_stack,
        hook = sym hook,
    )
}

/// The patched syscall `nr`, run as its wrapper runs it; returns the raw
/// result (-errno on failure) and leaves errno as it was, as a syscall
/// does. It handles the numbers of `abi::PATCHABLE`, whose sites the
/// tracer patches; any other goes traced, as before the patch (a site
/// could make several).
unsafe extern "C" fn hook(nr: i64, args: *const [u64; 6]) -> i64 {
    let a = *args;
    let saved = errno();
    let r = match nr {
        libc::SYS_read => calls::read(a[0] as c_int, a[1] as *mut c_void, a[2] as usize) as i64,
        libc::SYS_write => calls::write(a[0] as c_int, a[1] as *const c_void, a[2] as usize) as i64,
        libc::SYS_pread64 => calls::pread64(
            a[0] as c_int,
            a[1] as *mut c_void,
            a[2] as usize,
            a[3] as i64,
        ) as i64,
        libc::SYS_openat => calls::openat(
            a[0] as c_int,
            a[1] as *const c_char,
            a[2] as c_int,
            a[3] as c_uint,
        ) as i64,
        libc::SYS_close => calls::close(a[0] as c_int) as i64,
        libc::SYS_newfstatat => calls::fstatat(
            a[0] as c_int,
            a[1] as *const c_char,
            a[2] as *mut libc::stat,
            a[3] as c_int,
        ) as i64,
        libc::SYS_lseek => calls::lseek(a[0] as c_int, a[1] as i64, a[2] as c_int),
        libc::SYS_getdents64 => {
            calls::getdents64(a[0] as c_int, a[1] as *mut c_void, a[2] as usize) as i64
        }
        _ => return traced(nr, a),
    };
    // Every one of them returns -1 only on failure.
    let raw = if r == -1 { -(errno() as i64) } else { r };
    set_errno(saved);
    raw
}
