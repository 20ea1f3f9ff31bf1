//! Recording the syscalls the preload library made without a stop: at each
//! stop of a task that has a syscall buffer, before that stop's own event,
//! its records go out as one `Buffered` event, byte for byte as the library
//! wrote them, and the buffer is emptied. A trailing fallback record marks
//! the traced syscall this stop is the entry of.
//!
//! The records are checked here but not unpacked: a stretch of buffered
//! calls costs the tracer two reads and one event, whatever its length
//! (unpacked into an event per call, it cost more than the calls did).

use rrpipe_plugin_api::{BufferedCalls, BufferedInfo, EventData};
use rrpipe_syscallbuf as abi;

use super::Recorder;
use crate::error::{Error, Result};

/// A buffered call that went the traced way: its number and arguments.
pub(super) type Fallback = (i64, [u64; 6]);

impl Recorder {
    /// Emits task `tid`'s buffered syscalls; returns the call that fell
    /// back to the traced path, if the buffer ends with one.
    pub(super) fn flush_buffer(&mut self, tid: i32) -> Result<Option<Fallback>> {
        let Some(base) = self.session.buffer(tid) else {
            return Ok(None);
        };
        if !self.tasks.contains_key(&tid) {
            return Ok(None);
        }
        let fail = |e: std::io::Error| {
            Error::internal(format!("read the syscall buffer of task {tid}"), e)
        };
        // Through rrpipe's own mapping of it when it is shared (see
        // `shared_buffer`), else through the kernel.
        self.forget_stale_shared(tid);
        let shared = self.shared.get(&tid);
        let task = &self.tasks[&tid].task;
        let header = match shared {
            Some(s) => s.header(),
            None => {
                let raw = task.read_mem(base, abi::HEADER_SIZE).map_err(fail)?;
                abi::Header::from_bytes(raw[..].try_into().expect("header size"))
            }
        };
        if header.used == 0 {
            return Ok(None);
        }
        if header.used as usize > abi::CAPACITY {
            return Err(Error::Internal(format!(
                "syscall buffer of task {tid} claims {} bytes",
                header.used
            )));
        }
        let mut records = self.session.pipeline.spare_records(header.used as usize);
        // Emptied first: the event below may stop the recording. The other
        // fields as they are (the thread is stopped), but a new stretch.
        let emptied = abi::Header {
            used: 0,
            stretch: header.stretch.wrapping_add(1),
            ..header
        };
        match shared {
            Some(s) => {
                records.extend_from_slice(s.records(header.used as usize));
                s.set_header(&emptied);
            }
            None => {
                task.read_mem_into(
                    base + abi::HEADER_SIZE as u64,
                    header.used as usize,
                    &mut records,
                )
                .map_err(fail)?;
                task.write_mem(base, &emptied.to_bytes()).map_err(fail)?;
            }
        }
        let mut fallback = None;
        let mut calls = 0i64;
        let mut parser = BufferedCalls::new(&records);
        let mut end = 0;
        while let Some(next) = parser.next_extent() {
            let (bytes, flags) = next.map_err(|e| corrupt(tid, e))?;
            if fallback.is_some() {
                return Err(corrupt(tid, "a record after a fallback"));
            }
            if flags & abi::FALLBACK != 0 {
                let rec = abi::Record::read(&records[bytes]).expect("a whole record");
                fallback = Some((rec.nr, rec.args));
            } else {
                calls += 1;
                end = bytes.end;
            }
        }
        if calls > 0 {
            records.truncate(end);
            let info = BufferedInfo {
                records: records.into(),
            };
            self.dispatch_now(tid, EventData::Buffered(info), calls, 0)?;
        }
        Ok(fallback)
    }
}

fn corrupt(tid: i32, what: impl std::fmt::Display) -> Error {
    Error::Internal(format!("syscall buffer of task {tid}: {what}"))
}
