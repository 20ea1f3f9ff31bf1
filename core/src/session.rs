//! What record and replay share: the global clock and the pipeline that
//! carries every event to the plugins.

use rrpipe_plugin_api::{Event, EventData, EventHeader, EventKind, Time};

use crate::deadmem::DeadMemory;
use crate::error::Result;
use crate::patch::PatchArea;
use crate::pipeline::Pipeline;
use crate::ptrace::Task;
use crate::snapshot::TaskMemory;
use rrpipe_syscallbuf as abi;

pub struct Session {
    pub pipeline: Pipeline,
    /// Global time of the last event.
    pub time: Time,
    /// The task of the last event.
    pub last_tid: i32,
    /// What each task's memory holds that is not program state.
    live: Liveness,
    /// Tasks still in the dynamic loader since their exec, with its address
    /// ranges: cpuid traps in them until their first syscall from outside
    /// it (see `cpuid::untrap`).
    cpuid_trapped: std::collections::BTreeMap<i32, Vec<(u64, u64)>>,
    /// Tasks whose creation the trace has: the first event's, and each
    /// child a clone, fork or vfork event names. Replay makes no other
    /// (a task whose parent was killed inside the clone that made it).
    created: std::collections::BTreeSet<i32>,
}

impl Session {
    pub fn new(pipeline: Pipeline) -> Session {
        Session {
            pipeline,
            time: 0,
            last_tid: 0,
            live: Liveness::default(),
            cpuid_trapped: Default::default(),
            created: Default::default(),
        }
    }

    /// Whether the trace has task `tid`'s creation (see `created`).
    pub fn created(&self, tid: i32) -> bool {
        self.created.contains(&tid)
    }

    /// Sends an event through the plugins while `task` is stopped at it.
    pub fn dispatch(&mut self, event: Event, task: &Task) -> Result<()> {
        let tid = event.header.tid;
        if self.time == 0 {
            // The program's first task.
            self.created.insert(tid);
        }
        self.time = event.header.time;
        self.last_tid = tid;
        let exit = matches!(event.data, EventData::Exit(_));
        if let Ok(regs) = task.regs() {
            // Where the task stands after the event (a sigreturn moved it).
            self.live.last_rsp.insert(tid, regs.rsp);
        }
        self.follow_tasks(&event, task);
        let header = event.header;
        // Computed only if a plugin asks for memory.
        let live = &self.live;
        let dead = std::cell::LazyCell::new(move || live.dead_memory(None));
        let sent = self
            .pipeline
            .dispatch(event, &TaskMemory { task, dead: &dead });
        // An exited task's stack is no longer its own; but at its exit
        // event, snapshots of its memory still leave its dead stack out.
        if exit {
            self.live.last_rsp.remove(&tid);
            self.live.altstacks.remove(&tid);
            self.cpuid_trapped.remove(&tid);
            self.live.buffers.remove(&tid);
        }
        sent?;
        self.end_cpuid_trapping(&header, task)
    }

    /// At the first completed syscall of a program made from outside the
    /// dynamic loader (which reads the CPU's features before it hands over
    /// to libc), lets cpuid run natively again: at the same event in record
    /// and replay.
    fn end_cpuid_trapping(&mut self, header: &EventHeader, task: &Task) -> Result<()> {
        match header.kind {
            EventKind::Exec => {
                self.cpuid_trapped.insert(header.tid, loader_ranges(task));
            }
            EventKind::Syscall if !ends_or_replaces_the_program(header.syscall) => {
                let Some(loader) = self.cpuid_trapped.get(&header.tid) else {
                    return Ok(());
                };
                let rip = task.regs()?.rip;
                if !loader.iter().any(|&(a, b)| (a..b).contains(&rip)) {
                    self.cpuid_trapped.remove(&header.tid);
                    crate::cpuid::untrap(task, crate::exec::PAGE_SYSCALL)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Follows what `event` changes in the tasks: their alternate stacks,
    /// their syscall buffers, and which of them the trace created.
    fn follow_tasks(&mut self, event: &Event, task: &Task) {
        let h = &event.header;
        match &event.data {
            EventData::Exec(info) => {
                for tid in [h.tid, info.caller_tid] {
                    self.live.altstacks.remove(&tid);
                    self.live.buffers.remove(&tid);
                }
            }
            EventData::Syscall(_) if h.result >= 0 => match h.syscall {
                abi::SYS_REGISTER_BUFFER => {
                    let buffer = Buffer {
                        addr: h.args[0],
                        patch: PatchArea::from_register_args(&h.args),
                        since: h.time,
                    };
                    self.live.buffers.insert(h.tid, buffer);
                }
                libc::SYS_munmap => self.forget_unmapped_buffer(h.tid, h.args[0], h.args[1]),
                libc::SYS_sigaltstack if h.args[0] != 0 => {
                    // stack_t: ss_sp, ss_flags (int, padded), ss_size.
                    let Ok(b) = task.read_mem(h.args[0], 24) else {
                        return;
                    };
                    let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
                    let (sp, flags, size) = (word(0), word(8) as i32, word(16));
                    if flags & libc::SS_DISABLE != 0 {
                        self.live.altstacks.remove(&h.tid);
                    } else {
                        self.live
                            .altstacks
                            .insert(h.tid, (sp, sp.saturating_add(size)));
                    }
                }
                libc::SYS_clone | libc::SYS_fork | libc::SYS_vfork if h.result > 0 => {
                    let child = h.result as i32;
                    self.created.insert(child);
                    let flags = h.args[0];
                    let thread = h.syscall == libc::SYS_clone
                        && flags & libc::CLONE_VM as u64 != 0
                        && flags & libc::CLONE_VFORK as u64 == 0;
                    match self.live.altstacks.get(&h.tid).copied() {
                        Some(range) if !thread => {
                            self.live.altstacks.insert(child, range);
                        }
                        _ => {
                            self.live.altstacks.remove(&child);
                        }
                    }
                    // A new process has a copy of its parent's buffer (empty:
                    // emptied at the fork's entry) and the thread-local
                    // pointer to it; a new thread makes its own. (A vfork
                    // child got its parent's at the parent's Blocked event,
                    // before its own events: it may have exec'd since.)
                    if !is_vfork(h.syscall, flags) {
                        self.inherit_buffer(h.tid, child, thread);
                    }
                }
                _ => {}
            },
            EventData::Blocked(_) if h.result > 0 && is_vfork(h.syscall, h.args[0]) => {
                self.created.insert(h.result as i32);
                self.inherit_buffer(h.tid, h.result as i32, false);
            }
            _ => {}
        }
    }

    /// Task `tid` unmapped `[addr, addr + len)`: if that touches the mapping
    /// of its syscall buffer (stack and buffer), the buffer is gone and the
    /// task has none. The preload library unmaps the whole mapping at the
    /// thread's exit (a pthread key's destructor), in record and replay
    /// alike, so that a program that keeps making threads does not keep
    /// their buffers. Followed at the munmap's event, after the call: its
    /// entry, like any stop, took the records still in the buffer, and
    /// nothing reads the buffer between the call and its event. A program
    /// that unmaps its own thread's buffer gets the same treatment (the
    /// library would fault on its next call through it). Only `tid`'s
    /// buffer: a forked child's copy at the same address is its own (other
    /// threads' buffers lie elsewhere).
    fn forget_unmapped_buffer(&mut self, tid: i32, addr: u64, len: u64) {
        let Some(buffer) = self.live.buffers.get(&tid).map(|b| b.addr) else {
            return;
        };
        let end = addr.saturating_add(len.saturating_add(4095) & !4095);
        let mapping =
            buffer.saturating_sub(abi::STACK_SIZE as u64)..buffer + abi::BUFFER_SIZE as u64;
        if addr < mapping.end && mapping.start < end {
            self.live.buffers.remove(&tid);
        }
    }

    /// A new task `child` of `parent`: a new process shares or copies its
    /// parent's syscall buffer; a new thread has none until it makes one.
    fn inherit_buffer(&mut self, parent: i32, child: i32, thread: bool) {
        match self.live.buffers.get(&parent).copied() {
            Some(buffer) if !thread => {
                self.live.buffers.insert(child, buffer);
            }
            _ => {
                self.live.buffers.remove(&child);
            }
        }
    }

    /// The dead memory of every task (see `deadmem`), `now` = (tid, rsp)
    /// replacing what its last event said.
    pub fn dead_memory(&self, now: Option<(i32, u64)>) -> DeadMemory {
        self.live.dead_memory(now)
    }

    /// Whether `rsp` is on task `tid`'s syscall-buffer stack: it is in the
    /// preload library's wrapper code, whose registers differ between
    /// record and replay (no anchor may be taken there).
    pub fn in_wrapper(&self, tid: i32, rsp: u64) -> bool {
        self.buffer(tid)
            .is_some_and(|b| (b - abi::STACK_SIZE as u64..b).contains(&rsp))
    }

    /// Task `tid`'s syscall buffer, if it registered one.
    pub fn buffer(&self, tid: i32) -> Option<u64> {
        self.live.buffers.get(&tid).map(|b| b.addr)
    }

    /// Task `tid`'s syscall buffer and the time of its registration's
    /// event (a buffer registered again at the same address is another).
    pub fn buffer_registration(&self, tid: i32) -> Option<(u64, Time)> {
        self.live.buffers.get(&tid).map(|b| (b.addr, b.since))
    }

    /// The patch area of the preload library in task `tid`, as its buffer's
    /// registration named it.
    pub fn patch_area(&self, tid: i32) -> Option<PatchArea> {
        self.live.buffers.get(&tid).and_then(|b| b.patch)
    }

    /// The next event of the recording, numbered by the global clock.
    pub fn next_event(&self, tid: i32, data: EventData, result: i64) -> Event {
        new_event(self.time + 1, tid, data, result)
    }
}

/// A vfork, or a clone that works like one (posix_spawn's).
fn is_vfork(nr: i64, clone_flags: u64) -> bool {
    nr == libc::SYS_vfork || (nr == libc::SYS_clone && clone_flags & libc::CLONE_VFORK as u64 != 0)
}

/// What of the tasks' memory is theirs to compare: stack pointers,
/// alternate stacks and syscall buffers, followed through the events.
#[derive(Default)]
struct Liveness {
    /// Each task's stack pointer after its last event. The task is stopped
    /// there in both record and replay, in the same state, so both derive
    /// the same values: what memory digests and snapshots use to leave out
    /// dead stack (which, below a red zone, may hold signal frames whose
    /// XSAVE headers differ between the two).
    last_rsp: std::collections::BTreeMap<i32, u64>,
    /// Each task's alternate signal stack `[start, end)`, followed through
    /// its sigaltstack calls, forks (inherited), new threads and execs
    /// (none): the same events in both sessions.
    altstacks: std::collections::BTreeMap<i32, (u64, u64)>,
    /// Each task's syscall buffer (see `rrpipe_syscallbuf`), from its
    /// registration, inherited by forks, gone at exec, exit, or the munmap
    /// that releases it at the thread's exit.
    buffers: std::collections::BTreeMap<i32, Buffer>,
}

/// A task's syscall buffer, as its registration named it.
#[derive(Clone, Copy, Debug)]
struct Buffer {
    addr: u64,
    /// The library's patch area (see `patch`).
    patch: Option<PatchArea>,
    /// The time of its registration's event.
    since: Time,
}

impl Liveness {
    /// The dead memory of every task (see `deadmem`), `now` = (tid, rsp)
    /// replacing what its last event said.
    pub fn dead_memory(&self, now: Option<(i32, u64)>) -> DeadMemory {
        let sp = |t: i32| match now {
            Some((tid, rsp)) if tid == t => rsp,
            _ => self.last_rsp[&t],
        };
        let mut tids: Vec<i32> = self.last_rsp.keys().copied().collect();
        if let Some((tid, _)) = now {
            if !tids.contains(&tid) {
                tids.push(tid);
            }
        }
        let mut dead = DeadMemory::of(
            tids.into_iter()
                .map(|t| (sp(t), self.altstacks.get(&t).copied())),
        );
        // Syscall buffers are rrpipe's: in the middle of a stretch, replay's
        // holds records record's has not written yet.
        dead.rrpipe.extend(self.buffers.values().map(|b| {
            (
                b.addr - abi::STACK_SIZE as u64,
                b.addr + abi::BUFFER_SIZE as u64,
            )
        }));
        dead.ranges.extend(dead.rrpipe.clone());
        dead
    }
}

fn ends_or_replaces_the_program(nr: i64) -> bool {
    matches!(
        nr,
        libc::SYS_exit | libc::SYS_exit_group | libc::SYS_execve | libc::SYS_execveat
    )
}

/// The mappings of the program's dynamic loader (the file mapped at
/// AT_BASE), empty for a static program.
fn loader_ranges(task: &Task) -> Vec<(u64, u64)> {
    const AT_BASE: u64 = 7;
    let base = task
        .auxv()
        .unwrap_or_default()
        .chunks_exact(16)
        .map(|p| {
            (
                u64::from_le_bytes(p[..8].try_into().unwrap()),
                u64::from_le_bytes(p[8..].try_into().unwrap()),
            )
        })
        .find(|&(k, _)| k == AT_BASE)
        .map_or(0, |(_, v)| v);
    let maps = task.mappings().unwrap_or_default();
    let Some(loader) = maps.iter().find(|m| m.start == base && base != 0) else {
        return Vec::new();
    };
    maps.iter()
        .filter(|m| m.inode == loader.inode && m.dev == loader.dev && m.name == loader.name)
        .map(|m| (m.start, m.end))
        .collect()
}

/// Builds an event, deriving its header from its data.
pub fn new_event(time: Time, tid: i32, data: EventData, result: i64) -> Event {
    let (kind, syscall, args, signal) = match &data {
        EventData::Exec(_) => (EventKind::Exec, -1, [0; 6], 0),
        EventData::Syscall(s) => (
            EventKind::Syscall,
            s.regs.orig_rax as i64,
            s.regs.syscall_args(),
            0,
        ),
        EventData::Blocked(b) => (
            EventKind::Blocked,
            b.regs.orig_rax as i64,
            b.regs.syscall_args(),
            0,
        ),
        EventData::Preempt(_) => (EventKind::Preempt, -1, [0; 6], 0),
        EventData::Signal(s) => (EventKind::Signal, -1, [0; 6], s.signo),
        EventData::Rdtsc(_) => (EventKind::Rdtsc, -1, [0; 6], 0),
        EventData::Exit(e) => (EventKind::Exit, -1, [0; 6], e.signal),
        EventData::Abort(_) => (EventKind::Abort, -1, [0; 6], 0),
        EventData::Buffered(_) => (EventKind::Buffered, -1, [0; 6], 0),
    };
    Event {
        header: EventHeader {
            time,
            tid,
            kind,
            syscall,
            args,
            result,
            signal,
            flags: 0,
        },
        data,
    }
}
