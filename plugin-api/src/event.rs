//! The events the tracer emits, in record and in replay alike.
//!
//! Every type here crosses the plugin boundary, so each is `#[repr(C)]` and
//! derives [`StableAbi`]: the host checks their layout when it loads a plugin
//! and refuses one built against another shape. They also derive serde, so
//! the trace writer stores exactly what plugins see.

use abi_stable::std_types::{RString, RVec};
use abi_stable::StableAbi;
use serde::{Deserialize, Serialize};

/// Global time: the index of an event across all tasks, counted from 1.
/// Record and replay number events identically, so a time names the same
/// instant of the execution in both.
pub type Time = u64;

/// x86_64 general-purpose registers, in the kernel's `user_regs_struct`
/// order so that the host converts them with a plain copy.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Regs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub eflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}

impl Regs {
    /// Register names in declaration order, for divergence reports.
    pub const NAMES: [&'static str; 27] = [
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx",
        "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds",
        "es", "fs", "gs",
    ];

    /// The registers as an array, in [`Regs::NAMES`] order.
    pub fn to_array(&self) -> [u64; 27] {
        [
            self.r15,
            self.r14,
            self.r13,
            self.r12,
            self.rbp,
            self.rbx,
            self.r11,
            self.r10,
            self.r9,
            self.r8,
            self.rax,
            self.rcx,
            self.rdx,
            self.rsi,
            self.rdi,
            self.orig_rax,
            self.rip,
            self.cs,
            self.eflags,
            self.rsp,
            self.ss,
            self.fs_base,
            self.gs_base,
            self.ds,
            self.es,
            self.fs,
            self.gs,
        ]
    }

    /// The six syscall arguments, in ABI order.
    pub fn syscall_args(&self) -> [u64; 6] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9]
    }
}

/// What happened, in one byte: the cheap part of an event that a plugin's
/// `wants` looks at before anything is copied.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A task replaced its program (the first exec starts every trace).
    Exec,
    /// A syscall completed (or, for those that never return, was entered).
    Syscall,
    /// A task entered a syscall that may wait for another task (a read on
    /// a pipe, futex, wait4...): a scheduling point. Other tasks run until
    /// its `Syscall` event.
    Blocked,
    /// The scheduler took the CPU from a task that ran too long without a
    /// syscall while others were waiting: a scheduling point inside user
    /// code, placed at an anchor.
    Preempt,
    /// A signal was delivered to a task.
    Signal,
    /// An `rdtsc`/`rdtscp` instruction was trapped and emulated.
    Rdtsc,
    /// A task exited or was killed.
    Exit,
    /// Recording stopped before the program ended (unsupported syscall,
    /// interruption). Replay stops here with the recorded reason.
    Abort,
}

/// The fixed-size part of every event: all a `wants` policy needs to decide,
/// without copying any memory.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventHeader {
    pub time: Time,
    pub tid: i32,
    pub kind: EventKind,
    /// Syscall number for `Syscall` events, -1 otherwise.
    pub syscall: i64,
    /// Syscall arguments for `Syscall` events, zeros otherwise.
    pub args: [u64; 6],
    /// Syscall return value (negative errno on failure); exit code for
    /// `Exit`; 0 otherwise.
    pub result: i64,
    /// Signal number for `Signal` events (and `Exit` by a signal), 0 otherwise.
    pub signal: i32,
    /// [`flags`] bits.
    pub flags: u32,
}

/// Bits of [`EventHeader::flags`].
pub mod flags {
    /// The syscall wrote to the file that was rrpipe's own stdout when
    /// recording (through fd 1, a dup of it, or a child's inherited copy),
    /// not merely to some fd 1 (a pipe in a shell pipeline is not).
    pub const STDOUT: u32 = 1;
    /// Likewise for rrpipe's stderr.
    pub const STDERR: u32 = 2;
    /// A syscall the preload library made without a stop (syscall
    /// buffering), reported at the thread's next stop: its event comes
    /// later than the syscall ran, with the registers only partly known
    /// (number, arguments, result) and its outputs as recorded.
    pub const BUFFERED: u32 = 4;
    /// A syscall the preload library meant to buffer but made traced
    /// instead (it would have blocked): replay sends it down the same path.
    pub const BUFFER_FALLBACK: u32 = 8;
}

/// A copy of tracee memory starting at `addr`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemBlock {
    pub addr: u64,
    pub data: RVec<u8>,
}

/// One line of the address space, as `/proc/PID/maps` shows it.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// `PROT_*` bits.
    pub prot: u32,
    /// `MAP_SHARED` or `MAP_PRIVATE`.
    pub shared: bool,
    pub offset: u64,
    pub dev: u64,
    pub inode: u64,
    /// Path, or a pseudo-name such as `[stack]`; empty for anonymous memory.
    pub name: RString,
}

/// A file the program mapped, saved into the trace so that replay maps the
/// same bytes after the original changed or vanished.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFile {
    /// Where the program found it.
    pub original: RString,
    /// Name inside the trace directory (`files/...`).
    pub in_trace: RString,
}

/// The state right after a successful execve.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecInfo {
    /// Registers at the execve entry (zeros for the exec that starts a
    /// trace, which rrpipe itself makes).
    pub regs: Regs,
    /// The path the program was executed by (length matters: the kernel
    /// copies it onto the new stack).
    pub filename: RString,
    /// The executable the kernel resolved `filename` to (`/proc/PID/exe`).
    pub exe: RString,
    pub argv: RVec<RString>,
    /// The address space the kernel built.
    pub maps: RVec<Mapping>,
    /// Contents of every writable mapping (stack with argv, env, auxv and
    /// AT_RANDOM; the zero-padded data pages), restored verbatim in replay.
    pub memory: RVec<MemBlock>,
    /// The files mapped by the kernel (executable, interpreter).
    pub files: RVec<SavedFile>,
    /// When a thread other than the leader exec'd: its tid before the
    /// exec (the event's tid is the leader's, which it took). 0 otherwise.
    pub caller_tid: i32,
}

/// A completed syscall.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallInfo {
    /// Registers at syscall entry: the arguments and the calling state.
    pub regs: Regs,
    /// Input strings the syscall read (paths), for display and for checking
    /// in replay.
    pub inputs: RVec<MemBlock>,
    /// Memory the kernel wrote, restored in replay.
    pub outputs: RVec<MemBlock>,
    /// For a file mapping: the saved copy that replay maps instead.
    pub file: abi_stable::std_types::ROption<SavedFile>,
}

/// A delivered signal.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalInfo {
    pub regs: Regs,
    pub signo: i32,
    pub code: i32,
    pub errno: i32,
    /// `si_addr` for faults, `si_pid` in the low half for sent signals.
    pub addr: u64,
    /// The task dies of it (no handler, default action terminates).
    pub fatal: bool,
    /// The whole `siginfo_t` (128 bytes), handed to the handler in replay.
    pub siginfo: RVec<u8>,
    /// Set when the signal interrupted user code: it was delivered at this
    /// anchor instead, which replay must reach in the same state.
    pub anchor: abi_stable::std_types::ROption<AnchorInfo>,
    /// When a handler ran: its signal frame as the kernel wrote it (from
    /// the handler's stack pointer to the end of the FPU area), and the
    /// event was taken at the handler's first instruction. Parts of a frame
    /// depend on more than the program (XSAVE's choices, the last trap
    /// number); replay writes these bytes over its own frame. Empty when
    /// no handler ran.
    pub handler_frame: RVec<u8>,
}

/// A point in a computation without syscalls, identified by state rather
/// than by a branch count (there is no PMU): the registers (in the event)
/// at an instruction at least 5 bytes long, the values of that
/// instruction's memory operands, and a digest of all writable memory.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorInfo {
    /// The anchor instruction's memory operands and their values.
    pub operands: RVec<MemBlock>,
    /// xxh3 of every writable mapping's contents, in address order.
    pub digest: u64,
    /// The same, one per mapping: (start, xxh3), to name what differs.
    pub regions: RVec<RegionDigest>,
    /// What tells passes through the anchor apart cheaply: a register
    /// number (x86 encoding order, 0 = rax ... 15 = r15), 16 for the first
    /// memory operand, -1 when nothing was seen to change.
    pub precheck: i32,
}

/// The digest of one writable mapping.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionDigest {
    pub start: u64,
    pub digest: u64,
}

/// A task preempted in user code.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreemptInfo {
    /// Registers where it stopped.
    pub regs: Regs,
    /// The anchor identifying that point; None when it was preempted right
    /// after its previous event.
    pub anchor: abi_stable::std_types::ROption<AnchorInfo>,
}

/// A task entering a syscall that may block.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedInfo {
    /// Registers at syscall entry.
    pub regs: Regs,
}

/// A trapped time-stamp counter read.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RdtscInfo {
    pub regs: Regs,
    /// The value returned in edx:eax.
    pub tsc: u64,
    /// `rdtscp` also returns TSC_AUX in ecx.
    pub aux: abi_stable::std_types::ROption<u32>,
}

/// How a task ended.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code, when it exited.
    pub code: i32,
    /// Killing signal, or 0 when it exited.
    pub signal: i32,
}

/// Why recording stopped early.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortInfo {
    pub reason: RString,
    /// The exit code rrpipe gave, so replay gives the same.
    pub exit_code: i32,
}

/// The variable part of an event.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventData {
    Exec(ExecInfo),
    Syscall(SyscallInfo),
    Blocked(BlockedInfo),
    Preempt(PreemptInfo),
    Signal(SignalInfo),
    Rdtsc(RdtscInfo),
    Exit(ExitInfo),
    Abort(AbortInfo),
}

/// One event of the execution.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub header: EventHeader,
    pub data: EventData,
}

impl Event {
    /// Registers at the event, where it has them.
    pub fn regs(&self) -> Option<&Regs> {
        match &self.data {
            EventData::Syscall(s) => Some(&s.regs),
            EventData::Blocked(b) => Some(&b.regs),
            EventData::Preempt(p) => Some(&p.regs),
            EventData::Exec(e) => Some(&e.regs),
            EventData::Signal(s) => Some(&s.regs),
            EventData::Rdtsc(r) => Some(&r.regs),
            _ => None,
        }
    }
}
