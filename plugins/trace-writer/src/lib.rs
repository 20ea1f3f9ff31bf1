//! rrpipe plugin `trace-writer`: records the event stream of a recording
//! into the trace directory's `events` file (compressed, checksummed chunks;
//! see `rrpipe_plugin_api::trace`).
//!
//! It receives every event, without memory: everything replay needs is in
//! the events themselves. It refuses to run in replay, where it would
//! overwrite the trace being replayed.

use std::path::Path;

use rrpipe_plugin_api::trace::{EventWriter, EVENTS_FILE};
use rrpipe_plugin_api::{Event, Handler, Mode, Plugin, PluginContext, PluginError, Snapshot};

rrpipe_plugin_api::export_plugin!("trace-writer", create);

struct TraceWriter {
    /// `None` once finished.
    writer: Option<EventWriter>,
    path: String,
}

impl Handler for TraceWriter {
    fn on_event(&mut self, event: &Event, _: Option<&Snapshot>) -> Result<(), PluginError> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| PluginError::new("event after finish"))?;
        writer
            .push(event)
            .map_err(|e| PluginError::new(format!("cannot write {}: {e}", self.path)))
    }

    fn finish(&mut self) -> Result<Vec<String>, PluginError> {
        if let Some(writer) = self.writer.take() {
            writer
                .finish()
                .map_err(|e| PluginError::new(format!("cannot write {}: {e}", self.path)))?;
        }
        Ok(vec![EVENTS_FILE.to_string()])
    }
}

fn create(ctx: &PluginContext) -> Result<Plugin, PluginError> {
    if ctx.mode == Mode::Replay {
        return Err(PluginError::new(
            "trace-writer only runs while recording (it would overwrite the trace being replayed)",
        ));
    }
    let dir = Path::new(ctx.trace_dir.as_str());
    let path = dir.join(EVENTS_FILE).display().to_string();
    let writer = EventWriter::create(dir)
        .map_err(|e| PluginError::new(format!("cannot create {path}: {e}")))?;
    Ok(Plugin::new(TraceWriter {
        writer: Some(writer),
        path,
    }))
}
