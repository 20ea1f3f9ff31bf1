//! The events the tracer emits, in record and in replay alike.
//!
//! Every type here crosses the plugin boundary, so each is `#[repr(C)]` and
//! derives [`StableAbi`]: the host checks their layout when it loads a plugin
//! and refuses one built against another shape. They also derive serde, so
//! the trace writer stores exactly what plugins see.

use std::ops::Range;

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
    /// The syscalls a thread made without a stop (syscall buffering),
    /// reported together at its next stop, just before that stop's own
    /// event: one event per stretch of buffered calls, not per call.
    Buffered,
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
    /// Syscall number for `Syscall` and `Blocked` events, -1 otherwise.
    pub syscall: i64,
    /// Syscall arguments for `Syscall` events, zeros otherwise.
    pub args: [u64; 6],
    /// Syscall return value (negative errno on failure); exit code for
    /// `Exit`; the number of calls for `Buffered`; 0 otherwise.
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
    /// Set on the headers a plugin's `wants` is offered for each call of a
    /// `Buffered` event (see [`BufferedInfo`](super::BufferedInfo)): a syscall the preload
    /// library made without a stop. Never set on an event itself.
    pub const BUFFERED: u32 = 4;
    /// A syscall the preload library meant to buffer but made traced
    /// instead (it would have blocked): replay sends it down the same path.
    pub const BUFFER_FALLBACK: u32 = 8;
    /// The syscall's site was patched to call the preload library at this
    /// event (after the call, before its event's memory is read): replay
    /// patches it the same way here.
    pub const PATCHED: u32 = 16;
    /// Reported at the death of a task killed by SIGKILL (its `Exit`, the
    /// calls it buffered since its last stop, a syscall it was returning
    /// from): the task, and the other threads of its process, may have run
    /// on after their last events, to wherever the kill found them, and
    /// its memory and registers are what they left. No replay reaches that
    /// state: it stops the task at its last event (the trace does not say
    /// where after it the kill came). Plugins that compare the program's
    /// state between recording and replay leave these events out.
    pub const AT_DEATH: u32 = 32;
}

/// A copy of tracee memory starting at `addr`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemBlock {
    pub addr: u64,
    #[serde(with = "bytes")]
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
    /// The pages of the writable mappings that the kernel wrote (the stack
    /// with argv, env, auxv and AT_RANDOM; the zero-padded end of the data
    /// segment), restored verbatim in replay. Pages left untouched hold
    /// the mapped file's bytes or zeros, which replay's exec reproduces,
    /// and are left out.
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
    #[serde(with = "bytes")]
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
    #[serde(with = "bytes")]
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

/// Syscalls the preload library made from its own buffer, without a stop:
/// a thread's records, in the order it made the calls, exactly as the
/// library wrote them (the `rrpipe_syscallbuf` layout). They travel as one
/// block because a program like `cp` makes thousands between two stops:
/// one event per call cost the tracer more than the calls themselves.
/// [`BufferedInfo::calls`] reads them one by one.
///
/// Memory is the thread's at the stop they are reported at, after the
/// calls: what each wrote is in its [`BufferedCall::output`].
///
/// A plugin's `wants` is offered the event's header, then one header per
/// call (kind `Syscall`, the event's flags and [`flags::BUFFERED`], its
/// time and tid, the call's number, arguments and result): a plugin that
/// selects syscalls by number sees buffered ones too, and receives the
/// event (once) if it wanted any of them.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferedInfo {
    #[serde(with = "bytes")]
    pub records: RVec<u8>,
}

/// One buffered syscall. The registers around it are not known (the
/// library made it from its own stack), only what is here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferedCall<'a> {
    pub nr: i64,
    pub args: [u64; 6],
    /// The raw result (negative errno on failure).
    pub result: i64,
    /// What the kernel wrote, and where in the program's memory.
    pub output: Option<MemRef<'a>>,
}

/// Borrowed tracee bytes at an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRef<'a> {
    pub addr: u64,
    pub data: &'a [u8],
}

/// Records that do not parse: the offset of the first bad one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MalformedRecord {
    pub offset: usize,
}

impl std::fmt::Display for MalformedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "malformed syscall buffer record at offset {}",
            self.offset
        )
    }
}

impl std::error::Error for MalformedRecord {}

impl BufferedInfo {
    /// The calls, in order; an `Err` (then nothing more) where the records
    /// stop making sense.
    pub fn calls(&self) -> BufferedCalls<'_> {
        BufferedCalls {
            bytes: &self.records,
            at: 0,
        }
    }
}

/// The iterator of [`BufferedInfo::calls`], also usable on raw records
/// ([`BufferedCalls::new`]).
pub struct BufferedCalls<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> BufferedCalls<'a> {
    pub fn new(records: &'a [u8]) -> BufferedCalls<'a> {
        BufferedCalls {
            bytes: records,
            at: 0,
        }
    }

    /// The next record as the library wrote it, with its data.
    pub fn next_record(
        &mut self,
    ) -> Option<Result<(rrpipe_syscallbuf::Record, &'a [u8]), MalformedRecord>> {
        use rrpipe_syscallbuf as abi;
        let (bytes, _) = match self.next_extent()? {
            Ok(extent) => extent,
            Err(bad) => return Some(Err(bad)),
        };
        let record = &self.bytes[bytes];
        let rec = abi::Record::read(record).expect("a whole record: checked by next_extent");
        // Within the record: checked by `next_extent`.
        let data = &record[abi::RECORD_SIZE..abi::RECORD_SIZE + rec.data_len as usize];
        Some(Ok((rec, data)))
    }

    /// Steps over the next record, checked as [`Self::next_record`] checks
    /// it but without copying it out: where its bytes are and its flags.
    /// For the tracer, which checks every record of each full buffer but
    /// looks into none but a trailing fallback.
    pub fn next_extent(&mut self) -> Option<Result<(Range<usize>, u32), MalformedRecord>> {
        let at = self.at;
        let rest = self.bytes.get(at..).filter(|r| !r.is_empty())?;
        match rrpipe_syscallbuf::record_extent(rest) {
            Some((size, flags)) => {
                self.at += size;
                Some(Ok((at..at + size, flags)))
            }
            None => {
                self.at = self.bytes.len();
                Some(Err(MalformedRecord { offset: at }))
            }
        }
    }
}

impl<'a> Iterator for BufferedCalls<'a> {
    type Item = Result<BufferedCall<'a>, MalformedRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_record()?.map(|(rec, data)| BufferedCall {
            nr: rec.nr,
            args: rec.args,
            result: rec.result,
            output: (rec.data_len > 0).then_some(MemRef {
                addr: rec.dest,
                data,
            }),
        }))
    }
}

/// Byte vectors as serde bytes: one copy instead of a call per byte (the
/// encoding is the same in postcard either way).
mod bytes {
    use abi_stable::std_types::RVec;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &RVec<u8>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RVec<u8>, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RVec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<RVec<u8>, E> {
                Ok(RVec::from_slice(v))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<RVec<u8>, E> {
                Ok(v.into())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<RVec<u8>, A::Error> {
                let mut v = Vec::with_capacity(a.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = a.next_element()? {
                    v.push(b);
                }
                Ok(v.into())
            }
        }
        d.deserialize_bytes(Visitor)
    }
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
    Buffered(BufferedInfo),
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

#[cfg(test)]
mod tests {
    use super::*;
    use rrpipe_syscallbuf as abi;

    fn record(nr: i64, result: i64, dest: u64, data: &[u8]) -> Vec<u8> {
        let rec = abi::Record {
            size: abi::record_size(data.len()) as u32,
            nr,
            args: [nr as u64, 2, 3, 4, 5, 6],
            result,
            dest,
            data_len: data.len() as u64,
            ..abi::Record::default()
        };
        let mut bytes = rec.to_bytes().to_vec();
        bytes.extend_from_slice(data);
        bytes.resize(rec.size as usize, 0xee);
        bytes
    }

    #[test]
    fn calls_come_out_in_order_with_their_data() {
        let mut records = record(0, 5, 0x1000, b"hello");
        records.extend(record(39, 77, 0, b""));
        let info = BufferedInfo {
            records: records.into(),
        };
        let calls: Vec<BufferedCall> = info.calls().map(|c| c.unwrap()).collect();
        assert_eq!(calls.len(), 2);
        assert_eq!((calls[0].nr, calls[0].result), (0, 5));
        assert_eq!(
            calls[0].output,
            Some(MemRef {
                addr: 0x1000,
                data: b"hello"
            })
        );
        assert_eq!(
            (calls[1].nr, calls[1].result, calls[1].output),
            (39, 77, None)
        );
        assert_eq!(calls[1].args, [39, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn malformed_records_end_the_calls_with_an_error() {
        let good = record(0, 1, 0x1000, b"x");
        // Truncated in the second record's header.
        let mut cut = good.clone();
        cut.extend_from_slice(&record(1, 1, 0, b"")[..20]);
        let errs: Vec<_> = BufferedCalls::new(&cut).collect();
        assert!(errs[0].is_ok());
        assert_eq!(errs[1], Err(MalformedRecord { offset: good.len() }));
        assert_eq!(errs.len(), 2);
        // Data longer than the record.
        let mut long = record(0, 1, 0x1000, b"abc");
        long[..4].copy_from_slice(&(abi::RECORD_SIZE as u32).to_le_bytes());
        assert_eq!(
            BufferedCalls::new(&long).next(),
            Some(Err(MalformedRecord { offset: 0 }))
        );
        // Data length past the end.
        let mut past = record(0, 1, 0x1000, b"abc");
        let at = abi::RECORD_SIZE - 8;
        past[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            BufferedCalls::new(&past).next(),
            Some(Err(MalformedRecord { offset: 0 }))
        );
        assert_eq!(BufferedCalls::new(&[]).next(), None);
    }
}
