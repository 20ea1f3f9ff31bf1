//! What record and replay share: the global clock and the pipeline that
//! carries every event to the plugins.

use rrpipe_plugin_api::{Event, EventData, EventHeader, EventKind, Time};

use crate::error::Result;
use crate::pipeline::Pipeline;
use crate::ptrace::Task;
use crate::snapshot::TaskMemory;

pub struct Session {
    pub pipeline: Pipeline,
    /// Global time of the last event.
    pub time: Time,
    /// The task of the last event.
    pub last_tid: i32,
    /// Each task's stack pointer after its last event. The task is stopped
    /// there in both record and replay, in the same state, so both derive
    /// the same values: what memory digests and snapshots use to leave out
    /// dead stack (which, below a red zone, may hold signal frames whose
    /// XSAVE headers differ between the two).
    last_rsp: std::collections::BTreeMap<i32, u64>,
}

impl Session {
    pub fn new(pipeline: Pipeline) -> Session {
        Session {
            pipeline,
            time: 0,
            last_tid: 0,
            last_rsp: Default::default(),
        }
    }

    /// Sends an event through the plugins while `task` is stopped at it.
    pub fn dispatch(&mut self, event: Event, task: &Task) -> Result<()> {
        self.time = event.header.time;
        let tid = event.header.tid;
        self.last_tid = tid;
        let exit = matches!(event.data, EventData::Exit(_));
        if let Ok(regs) = task.regs() {
            // Where the task stands after the event (a sigreturn moved it).
            self.last_rsp.insert(tid, regs.rsp);
        }
        let stack_pointers = self.stack_pointers(None);
        let sent = self.pipeline.dispatch(
            event,
            &TaskMemory {
                task,
                stack_pointers,
            },
        );
        // An exited task's stack is no longer its own; but at its exit
        // event, snapshots of its memory still leave its dead stack out.
        if exit {
            self.last_rsp.remove(&tid);
        }
        sent
    }

    /// The stack pointers of every task, `now` = (tid, rsp) replacing what
    /// its last event said.
    pub fn stack_pointers(&self, now: Option<(i32, u64)>) -> Vec<u64> {
        let mut sps: Vec<u64> = self
            .last_rsp
            .iter()
            .filter(|(&t, _)| Some(t) != now.map(|n| n.0))
            .map(|(_, &sp)| sp)
            .collect();
        sps.extend(now.map(|n| n.1));
        sps
    }

    /// The next event of the recording, numbered by the global clock.
    pub fn next_event(&self, tid: i32, data: EventData, result: i64) -> Event {
        new_event(self.time + 1, tid, data, result)
    }
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
