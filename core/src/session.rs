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
}

impl Session {
    pub fn new(pipeline: Pipeline) -> Session {
        Session { pipeline, time: 0 }
    }

    /// Sends an event through the plugins while `task` is stopped at it.
    pub fn dispatch(&mut self, event: Event, task: &Task) -> Result<()> {
        self.time = event.header.time;
        self.pipeline.dispatch(event, &TaskMemory { task })
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
