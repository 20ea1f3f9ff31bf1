//! Recording the syscalls the preload library made without a stop: at each
//! stop of a task that has a syscall buffer, before that stop's own event,
//! its records become events (flagged `BUFFERED`) and the buffer is
//! emptied. A trailing fallback record marks the traced syscall this stop
//! is the entry of.

use rrpipe_plugin_api::{flags, EventData, MemBlock, Regs, SyscallInfo};
use rrpipe_syscallbuf as abi;

use super::Recorder;
use crate::error::{Error, Result};

/// A buffered call that went the traced way: its number and arguments.
pub(super) type Fallback = (i64, [u64; 6]);

impl Recorder {
    /// Turns task `tid`'s buffered syscalls into events; returns the call
    /// that fell back to the traced path, if the buffer ends with one.
    pub(super) fn flush_buffer(&mut self, tid: i32) -> Result<Option<Fallback>> {
        let Some(base) = self.session.buffer(tid) else {
            return Ok(None);
        };
        let Some(task) = self.tasks.get(&tid).map(|t| &t.task) else {
            return Ok(None);
        };
        let fail = |e: std::io::Error| {
            Error::internal(format!("read the syscall buffer of task {tid}"), e)
        };
        let raw = task.read_mem(base, abi::HEADER_SIZE).map_err(fail)?;
        let header = abi::Header::from_bytes(raw[..].try_into().expect("header size"));
        if header.used == 0 {
            return Ok(None);
        }
        if header.used as usize > abi::CAPACITY {
            return Err(Error::Internal(format!(
                "syscall buffer of task {tid} claims {} bytes",
                header.used
            )));
        }
        let records = task
            .read_mem(base + abi::HEADER_SIZE as u64, header.used as usize)
            .map_err(fail)?;
        // Emptied first: the events below may stop the recording.
        task.write_mem(base, &0u32.to_le_bytes()).map_err(fail)?;
        let mut fallback = None;
        let mut at = 0;
        while at < records.len() {
            let Some(bytes) = records.get(at..at + abi::RECORD_SIZE) else {
                return Err(corrupt(tid, at));
            };
            let rec = abi::Record::from_bytes(bytes.try_into().expect("record size"));
            let data_at = at + abi::RECORD_SIZE;
            let end = data_at + rec.data_len as usize;
            if (rec.size as usize) < abi::record_size(rec.data_len as usize)
                || at + rec.size as usize > records.len()
                || fallback.is_some()
            {
                return Err(corrupt(tid, at));
            }
            at += rec.size as usize;
            if rec.flags & abi::FALLBACK != 0 {
                fallback = Some((rec.nr, rec.args));
                continue;
            }
            let outputs = if rec.data_len > 0 {
                vec![MemBlock {
                    addr: rec.dest,
                    data: records[data_at..end].to_vec().into(),
                }]
            } else {
                Vec::new()
            };
            let info = SyscallInfo {
                regs: buffered_regs(&rec),
                inputs: Vec::new().into(),
                outputs: outputs.into(),
                file: None.into(),
            };
            let mut event = self
                .session
                .next_event(tid, EventData::Syscall(info), rec.result);
            event.header.flags = flags::BUFFERED;
            let task = &self.tasks[&tid].task;
            self.session.dispatch(event, task)?;
        }
        Ok(fallback)
    }
}

/// What is known of the registers of a buffered syscall: the number, the
/// arguments and the result, at the untraced instruction.
fn buffered_regs(rec: &abi::Record) -> Regs {
    Regs {
        orig_rax: rec.nr as u64,
        rax: rec.result as u64,
        rdi: rec.args[0],
        rsi: rec.args[1],
        rdx: rec.args[2],
        r10: rec.args[3],
        r8: rec.args[4],
        r9: rec.args[5],
        rip: abi::UNTRACED_IP,
        ..Regs::default()
    }
}

fn corrupt(tid: i32, at: usize) -> Error {
    Error::Internal(format!(
        "syscall buffer of task {tid}: malformed record at offset {at}"
    ))
}
