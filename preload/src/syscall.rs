//! The buffering engine: raw syscalls (through rrpipe's untraced
//! instruction, or this library's own, traced one), the mode rrpipe set,
//! each thread's buffer, and [`buffered`], which every wrapper goes
//! through.

use core::arch::asm;
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};

use rrpipe_syscallbuf as abi;
use rrpipe_syscallbuf::{Header, Record};

/// A syscall through rrpipe's page: let through by the seccomp filter
/// without a stop. Returns the raw result (-errno on failure).
#[inline(always)]
pub unsafe fn untraced(nr: i64, a: [u64; 6]) -> i64 {
    let ret: i64;
    // The call pushes a return address: step over the red zone first, in
    // case the compiler keeps something there.
    asm!(
        "lea rsp, [rsp - 128]",
        "call {f}",
        "lea rsp, [rsp + 128]",
        f = in(reg) abi::UNTRACED_SYSCALL,
        inlateout("rax") nr => ret,
        in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
        in("r10") a[3], in("r8") a[4], in("r9") a[5],
        out("rcx") _, out("r11") _,
    );
    ret
}

/// A syscall from this library's own instruction: rrpipe stops it and
/// records it like any other. Returns the raw result.
#[inline(always)]
pub unsafe fn traced(nr: i64, a: [u64; 6]) -> i64 {
    let ret: i64;
    // As in `untraced`: the call steps over the red zone.
    asm!(
        "lea rsp, [rsp - 128]",
        "call {f}",
        "lea rsp, [rsp + 128]",
        f = sym traced_instruction,
        inlateout("rax") nr => ret,
        in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
        in("r10") a[3], in("r8") a[4], in("r9") a[5],
        out("rcx") _, out("r11") _,
    );
    ret
}

/// The library's one traced `syscall` instruction. Followed by `ret`, it
/// never looks like a libc call site the tracer patches (`syscall`, then
/// libc's error check): inlined, the compiler's code after it might.
#[unsafe(naked)]
extern "C" fn traced_instruction() {
    core::arch::naked_asm!("syscall", "ret")
}

/// A raw result as libc returns it: -1 with errno set on failure.
pub fn libc_result(raw: i64) -> i64 {
    if (-4095..0).contains(&raw) {
        set_errno(-raw as i32);
        -1
    } else {
        raw
    }
}

pub fn set_errno(e: i32) {
    // SAFETY: errno is this thread's.
    unsafe { *libc::__errno_location() = e };
}

pub fn errno() -> i32 {
    // SAFETY: errno is this thread's.
    unsafe { *libc::__errno_location() }
}

/// Whether rrpipe's page is mapped in this process: 0 not yet known (a
/// fresh exec), 1 yes, 2 no (the library was loaded without rrpipe). The
/// same in record and replay, unlike the mode, which is therefore never
/// kept in the program's memory.
static PAGE_STATE: AtomicU32 = AtomicU32::new(0);

/// Whether rrpipe's page is there, asked once per process with a traced,
/// harmless `msync`.
fn page_present() -> bool {
    match PAGE_STATE.load(Ordering::Relaxed) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    // SAFETY: msync only inspects the range.
    let present = unsafe {
        traced(
            libc::SYS_msync,
            [abi::PAGE, 4096, libc::MS_ASYNC as u64, 0, 0, 0],
        ) == 0
    };
    PAGE_STATE.store(if present { 1 } else { 2 }, Ordering::Relaxed);
    present
}

/// The mode rrpipe wrote into its page (call only when it is present).
fn mode() -> u32 {
    // SAFETY: the page is mapped (`page_present`).
    unsafe { ptr::read_volatile(abi::PAGE_MODE as *const u32) }
}

/// This thread's buffer: null before its first buffered call, [`NONE`]
/// when it has none (rrpipe said no, the mapping failed, it is being made,
/// or it was released at the thread's exit: calls then go traced).
const NONE: *mut u8 = ptr::dangling_mut::<u8>();

/// The thread's buffer pointer, in the initial-exec TLS model: one
/// `fs`-relative load. Rust's `thread_local!` in a shared library goes
/// through `__tls_get_addr` (general dynamic), twice per wrapper call, a
/// tenth of what a buffered call cost. The library is always loaded at
/// start-up (`LD_PRELOAD`), where static TLS is available.
mod buffer_slot {
    core::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".globl rrpipe_buffer_slot",
        ".hidden rrpipe_buffer_slot",
        ".type rrpipe_buffer_slot, @object",
        ".size rrpipe_buffer_slot, 8",
        "rrpipe_buffer_slot:",
        ".zero 8",
        ".popsection",
    );

    #[inline(always)]
    pub fn get() -> *mut u8 {
        let v: *mut u8;
        // SAFETY: reads this thread's slot.
        unsafe {
            core::arch::asm!(
                "mov {v}, qword ptr [rip + rrpipe_buffer_slot@GOTTPOFF]",
                "mov {v}, qword ptr fs:[{v}]",
                v = out(reg) v,
                options(nostack, readonly, preserves_flags),
            );
        }
        v
    }

    #[inline(always)]
    pub fn set(p: *mut u8) {
        // SAFETY: writes this thread's slot.
        unsafe {
            core::arch::asm!(
                "mov {t}, qword ptr [rip + rrpipe_buffer_slot@GOTTPOFF]",
                "mov qword ptr fs:[{t}], {p}",
                t = out(reg) _,
                p = in(reg) p,
                options(nostack, preserves_flags),
            );
        }
    }
}

/// Makes this thread's buffer, if rrpipe is there (see `at_load`).
pub fn prepare() {
    if page_present() {
        let _ = buffer();
    }
}

/// This thread's buffer, created and announced to rrpipe on first use.
fn buffer() -> Option<*mut u8> {
    let b = buffer_slot::get();
    if b == NONE {
        return None;
    }
    if !b.is_null() {
        return Some(b);
    }
    // A wrapper in a signal handler that interrupts the making goes
    // traced, rather than make a second buffer (the first would then be
    // registered by neither).
    buffer_slot::set(NONE);
    // SAFETY: plain syscalls on fresh memory.
    let made = unsafe {
        let addr = traced(
            libc::SYS_mmap,
            [
                0,
                abi::MAPPING_SIZE as u64,
                (libc::PROT_READ | libc::PROT_WRITE) as u64,
                (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
                u64::MAX,
                0,
            ],
        );
        if (-4095..0).contains(&addr) {
            NONE
        } else if traced(abi::SYS_REGISTER_BUFFER, {
            let [area, area_size, trampoline] = crate::patch::announced();
            [
                addr as u64 + abi::STACK_SIZE as u64,
                abi::BUFFER_SIZE as u64,
                area,
                area_size,
                trampoline,
                0,
            ]
        }) != 0
        {
            traced(
                libc::SYS_munmap,
                [addr as u64, abi::MAPPING_SIZE as u64, 0, 0, 0, 0],
            );
            NONE
        } else {
            (addr as *mut u8).add(abi::STACK_SIZE)
        }
    };
    buffer_slot::set(made);
    if made == NONE {
        return None;
    }
    release_at_exit(made);
    Some(made)
}

/// The pthread key whose destructor releases a thread's buffer when the
/// thread ends (see [`release`]), or [`NO_KEY`]: made once per process, at
/// its first buffer, in both sessions alike (pthread_key_create makes no
/// syscall; a thread that finds another making it waits on a futex, traced).
static RELEASE_KEY: std::sync::OnceLock<libc::pthread_key_t> = std::sync::OnceLock::new();
const NO_KEY: libc::pthread_key_t = libc::pthread_key_t::MAX;

/// glibc keeps the values of the first 32 keys in the thread descriptor
/// (`PTHREAD_KEY_2NDLEVEL_SIZE`); a later key's first value in a thread
/// allocates, which a wrapper called from a signal handler must not do.
const KEYS_WITHOUT_ALLOCATION: libc::pthread_key_t = 32;

/// Arranges for this thread's new buffer `buf` to be released when the
/// thread ends: `pthread_exit`, or a return from its start routine, runs
/// the key's destructor; `exit` (the end of the process) runs none, and
/// neither does a vfork child's `_exit` (a vfork child shares, and must not
/// unmap, its parent's buffer). A process whose key would be past the first
/// 32 (a program that made that many before its first buffered call) keeps
/// its threads' buffers until it ends, as before. Runs in both sessions,
/// so it may call libc; decided alike in both (the key's number is program
/// state).
fn release_at_exit(buf: *mut u8) {
    let key = *RELEASE_KEY.get_or_init(|| {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: a key with a destructor that takes any value.
        match unsafe { libc::pthread_key_create(&mut key, Some(release)) } {
            0 if key < KEYS_WITHOUT_ALLOCATION => key,
            _ => NO_KEY,
        }
    });
    if key != NO_KEY {
        // SAFETY: our key; its value only needs to be non-null for the
        // destructor to run.
        unsafe { libc::pthread_setspecific(key, buf as *const libc::c_void) };
    }
}

/// The key's destructor, at the thread's exit: unmaps its buffer with a
/// traced `munmap` of the whole mapping (stack and buffer), at which rrpipe
/// forgets the buffer (records still in it were taken at the munmap's
/// entry, as at any stop), in record and replay alike. The thread-local
/// pointer becomes [`NONE`] first, so that whatever the thread does after
/// (a later key's destructor, a signal handler) goes traced rather than
/// make a buffer no destructor would release. Runs on the thread's own
/// stack: when it does not (`pthread_exit` from a signal handler that
/// interrupted a wrapper, on the private stack inside the mapping), the
/// buffer is left mapped and stays registered.
extern "C" fn release(_: *mut libc::c_void) {
    let Some(buf) = current_buffer() else {
        return;
    };
    let base = buf as u64 - abi::STACK_SIZE as u64;
    let rsp: u64;
    // SAFETY: reads the stack pointer.
    unsafe { asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    if (base..base + abi::MAPPING_SIZE as u64).contains(&rsp) {
        return;
    }
    buffer_slot::set(NONE);
    // SAFETY: the mapping `buffer` made, which nothing uses any more.
    unsafe {
        traced(
            libc::SYS_munmap,
            [base, abi::MAPPING_SIZE as u64, 0, 0, 0, 0],
        );
    }
}

/// This thread's buffer if it has one, without making one: for the
/// record-only code inside a wrapper, which runs once it is made.
pub fn current_buffer() -> Option<*mut u8> {
    let b = buffer_slot::get();
    (!b.is_null() && b != NONE).then_some(b)
}

/// Where the exported entry points run the wrapper (see `export!`): the
/// top of this thread's private stack, or 0 to stay on the program's stack
/// (no buffer, or already on the private stack: a wrapper called from a
/// signal handler that interrupted another). Same work in both sessions.
pub extern "C" fn private_stack(rsp: u64) -> u64 {
    if !page_present() {
        return 0;
    }
    match buffer() {
        Some(top) => {
            let top = top as u64;
            if (top - abi::STACK_SIZE as u64..top).contains(&rsp) {
                0
            } else {
                top
            }
        }
        None => 0,
    }
}

/// What a wrapper's syscall came to, in record.
pub enum Outcome {
    /// Made untraced: the raw result and how many bytes it left in the
    /// record's data.
    Done(i64, usize),
    /// It would have waited (or might have): make it traced instead.
    Fallback,
}

/// One wrapper call: syscall `nr` with the program's arguments `args`,
/// which writes at most `max_out` bytes to `dest` (0: nowhere). In record
/// `perform` makes the syscall(s), writing into the data area it is given;
/// in replay the recorded data and result are used instead. Returns the
/// raw result, or None when the call is to be made traced, which the
/// caller does: from the same place in both sessions, after this
/// function's record-only or replay-only work has left the registers and
/// the live stack (every traced stop is compared).
#[inline(never)]
fn buffered(
    nr: i64,
    args: [u64; 6],
    dest: u64,
    max_out: usize,
    perform: impl FnOnce(*mut u8) -> Outcome,
) -> Option<i64> {
    if !page_present() {
        return None;
    }
    // Before anything depends on the mode: its traced syscalls must find
    // the same registers in both sessions.
    let buf = buffer()?;
    let m = mode();
    if m != abi::MODE_RECORD && m != abi::MODE_REPLAY {
        return None;
    }
    let header = buf as *mut Header;
    // SAFETY: the buffer is this thread's (a signal handler on this thread
    // is kept out by `locked`); rrpipe touches it only while the thread is
    // stopped.
    unsafe {
        let h = ptr::read_volatile(header);
        let need = abi::record_size(max_out);
        if h.locked != 0 || h.used as usize + need > abi::CAPACITY {
            // Decided alike in both sessions: traced, no record.
            return None;
        }
        ptr::write_volatile(ptr::addr_of_mut!((*header).locked), 1);
        let at = buf.add(abi::HEADER_SIZE + h.used as usize);
        let data = at.add(abi::RECORD_SIZE);
        let force_traced = ptr::addr_of_mut!((*header).force_traced);
        let unlock = || ptr::write_volatile(ptr::addr_of_mut!((*header).locked), 0);
        let advance = |size: u32| {
            ptr::write_volatile(ptr::addr_of_mut!((*header).used), h.used + size);
        };
        if m == abi::MODE_RECORD {
            let mut rec = Record {
                nr,
                args,
                ..Record::default()
            };
            // The tracer asked for a stop (a signal arrived during a
            // stretch of buffered calls, see `force_traced`): this call
            // takes the fallback path below, exactly as a call that would
            // block does, so replay, which follows the FALLBACK record,
            // makes the same traced syscall from the same place. The flag
            // is read from the snapshot `h` and cleared only when seen: a
            // flag the tracer set after the snapshot stays for the next
            // call. Plain memory accesses: no libc (record-only code).
            let outcome = if h.force_traced != 0 {
                ptr::write_volatile(force_traced, 0);
                Outcome::Fallback
            } else {
                perform(data)
            };
            match outcome {
                Outcome::Done(result, len) => {
                    let len = len.min(max_out);
                    if len > 0 && dest != 0 {
                        ptr::copy_nonoverlapping(data, dest as *mut u8, len);
                    }
                    rec.result = result;
                    rec.dest = dest;
                    rec.data_len = len as u64;
                    rec.size = abi::record_size(len) as u32;
                    ptr::write_unaligned(at as *mut Record, rec);
                    advance(rec.size);
                    unlock();
                    Some(result)
                }
                Outcome::Fallback => {
                    rec.flags = abi::FALLBACK;
                    rec.size = abi::record_size(0) as u32;
                    ptr::write_unaligned(at as *mut Record, rec);
                    advance(rec.size);
                    unlock();
                    None
                }
            }
        } else {
            if h.used as usize + abi::RECORD_SIZE > h.avail as usize {
                unlock();
                return Some(diverged(nr, h.used));
            }
            let rec = ptr::read_unaligned(at as *const Record);
            if rec.nr != nr || differ(&rec.args, &args) || rec.data_len as usize > max_out {
                unlock();
                return Some(diverged(nr, h.used));
            }
            advance(rec.size);
            if rec.flags & abi::FALLBACK != 0 {
                unlock();
                return None;
            }
            if rec.data_len > 0 && dest != 0 {
                ptr::copy_nonoverlapping(data, dest as *mut u8, rec.data_len as usize);
            }
            unlock();
            Some(rec.result)
        }
    }
}

/// Whether two argument lists differ, compared inline: an array `!=`
/// calls libc's `bcmp`, whose AVX variants clear the upper halves of the
/// vector registers (`vzeroupper`), which only replay would then do.
/// Code that runs in one session only must not call libc.
#[inline(always)]
fn differ(a: &[u64; 6], b: &[u64; 6]) -> bool {
    let mut x = 0;
    for i in 0..6 {
        x |= a[i] ^ b[i];
    }
    x != 0
}

/// A wrapper's call: buffered if it can be, else traced.
#[inline(always)]
pub fn call(
    nr: i64,
    args: [u64; 6],
    dest: u64,
    max_out: usize,
    perform: impl FnOnce(*mut u8) -> Outcome,
) -> i64 {
    match buffered(nr, args, dest, max_out, perform) {
        Some(result) => result,
        // SAFETY: the program's own syscall.
        None => unsafe { traced(nr, args) },
    }
}

/// Replay met a call the recording does not have here: tell rrpipe, which
/// stops the replay with a report.
#[cold]
fn diverged(nr: i64, offset: u32) -> i64 {
    // SAFETY: a private syscall rrpipe handles.
    unsafe {
        traced(abi::SYS_DIVERGED, [nr as u64, offset as u64, 0, 0, 0, 0]);
    }
    -(libc::ENOSYS as i64)
}

/// (device, inode) of rrpipe's stdout and stderr, as it wrote them into its
/// page (record only).
pub fn console() -> [(u64, u64); 2] {
    // SAFETY: only called in record mode, when the page is mapped.
    unsafe {
        let p = abi::PAGE_CONSOLE as *const u64;
        [
            (ptr::read_volatile(p), ptr::read_volatile(p.add(1))),
            (ptr::read_volatile(p.add(2)), ptr::read_volatile(p.add(3))),
        ]
    }
}
