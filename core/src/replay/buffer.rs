//! Replaying buffered syscalls: before a task runs to its next recorded
//! stop, the records of the syscalls it buffered on the way go into its
//! buffer, where the preload library (in replay mode) takes each call's
//! result and data instead of making it; once it is there, everything must
//! have been taken, and the events go to the plugins, as in record.

use rrpipe_plugin_api::{flags, BufferedCalls, Event, EventData};
use rrpipe_syscallbuf as abi;

use super::Replayer;
use crate::error::{Error, Result};

impl Replayer {
    /// Loads the current task's buffered syscalls (and the fallback record
    /// of `event`, a syscall the library sent down the traced path) into
    /// its buffer, before it runs to `event`.
    pub(super) fn load_buffer(&mut self, event: &Event) -> Result<()> {
        let tid = self.cur;
        let t = &self.tasks[&tid];
        let fallback = event.header.flags & flags::BUFFER_FALLBACK != 0
            && matches!(event.data, EventData::Syscall(_) | EventData::Blocked(_))
            && !t.at_entry
            && !t.in_kernel;
        if t.batch.is_empty() && !fallback {
            return Ok(());
        }
        let base = self.session.buffer(tid).ok_or_else(|| {
            Error::BadTrace(format!(
                "event {}: buffered syscalls of task {tid}, which registered no buffer",
                event.header.time
            ))
        })?;
        let mut bytes = Vec::new();
        for e in &t.batch {
            let EventData::Buffered(info) = &e.data else {
                return Err(Error::BadTrace(format!(
                    "event {}: a {:?} event whose data is not buffered syscalls",
                    e.header.time, e.header.kind
                )));
            };
            // Checked here, not by the library: it trusts its buffer.
            let mut records = BufferedCalls::new(&info.records);
            while let Some(next) = records.next_record() {
                match next {
                    Ok((rec, _)) if rec.flags == 0 => {}
                    Ok(_) => {
                        return Err(Error::BadTrace(format!(
                            "event {}: a flagged record among buffered syscalls",
                            e.header.time
                        )))
                    }
                    Err(bad) => {
                        return Err(Error::BadTrace(format!("event {}: {bad}", e.header.time)))
                    }
                }
            }
            bytes.extend_from_slice(&info.records);
        }
        if fallback {
            let rec = abi::Record {
                size: abi::record_size(0) as u32,
                flags: abi::FALLBACK,
                nr: event.header.syscall,
                args: event.header.args,
                ..abi::Record::default()
            };
            bytes.extend_from_slice(&rec.to_bytes());
        }
        if bytes.len() > abi::CAPACITY {
            return Err(Error::BadTrace(format!(
                "event {}: {} bytes of buffered syscalls for task {tid}, more than a buffer holds",
                event.header.time,
                bytes.len()
            )));
        }
        let task = &t.task;
        let fail = |e: std::io::Error| {
            Error::internal(format!("fill the syscall buffer of task {tid}"), e)
        };
        task.write_mem(base + abi::HEADER_SIZE as u64, &bytes)
            .map_err(fail)?;
        // used = 0, avail = what was loaded; `locked` stays as it is.
        let mut counts = 0u32.to_le_bytes().to_vec();
        counts.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        task.write_mem(base, &counts).map_err(fail)?;
        self.t_mut().loaded = Some(bytes.len() as u32);
        Ok(())
    }

    /// The current task reached the stop of `event`: checks that it took
    /// every record loaded for the way, and dispatches their events.
    pub(super) fn arrived(&mut self, event: &Event) -> Result<()> {
        let tid = self.cur;
        let Some(avail) = self.t_mut().loaded.take() else {
            return Ok(());
        };
        let base = self.session.buffer(tid).unwrap_or_default();
        let task = &self.tasks[&tid].task;
        let fail = |e: std::io::Error| {
            Error::internal(format!("read the syscall buffer of task {tid}"), e)
        };
        let raw = task.read_mem(base, abi::HEADER_SIZE).map_err(fail)?;
        let header = abi::Header::from_bytes(raw[..].try_into().expect("header size"));
        if header.used != avail {
            return Err(self.diverged(
                event,
                format!(
                    "the program made fewer buffered syscalls than recorded before it ({} of {} bytes of records taken)",
                    header.used, avail
                ),
            ));
        }
        task.write_mem(base, &[0u8; 8]).map_err(fail)?;
        for e in std::mem::take(&mut self.t_mut().batch) {
            let task = &self.tasks[&tid].task;
            self.session.dispatch(e, task)?;
        }
        Ok(())
    }
}
