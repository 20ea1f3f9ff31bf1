//! Dump policies: when the memory dumper (`plugins/memory-dump`) dumps.
//!
//! A policy looks at each event's [`EventHeader`] on the tracer thread,
//! while the tracee is stopped, and names a cause when the dumper should
//! write a core file of the task right then. It runs in phase 1 of the
//! plugin contract (see [`crate::plugin`]), so it must be cheap: the
//! memory is copied only for the events it picks.
//!
//! The dumper's own `dump_on` and `dump_at` options are policies; others
//! come from libraries that export one with [`export_dump_policy!`](crate::export_dump_policy)
//! (or, next to a plugin, with `export_plugin!(name, ctor, dump_policy = ctor)`),
//! named in the dumper's configuration:
//!
//! ```toml
//! [[plugin]]
//! name = "memory-dump"
//! [[plugin.config.policy]]
//! path = "libbig_write_policy.so"     # relative to this TOML file
//! config = { fd = 3, bytes = 1024 }
//! ```
//!
//! A policy sees the same events with the same global times in record and
//! in replay, so a deterministic policy dumps at the same instants in both.

// The sabi_trait macro defines impls inside generated items.
#![allow(non_local_definitions)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use abi_stable::sabi_trait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RBox, ROption, RResult, RString};

use crate::event::EventHeader;
use crate::library;
use crate::plugin::{panic_message, PluginContext, PluginError};

/// Decides at which events a core file is written.
pub trait DumpPolicy: Send + 'static {
    /// The cause of a dump at this event, or `None`. The cause becomes part
    /// of the dump's file name: keep it short (letters, digits, `-`, `_`;
    /// anything else is replaced).
    fn dump_at(&mut self, header: &EventHeader) -> Option<String>;
}

impl<F: FnMut(&EventHeader) -> Option<String> + Send + 'static> DumpPolicy for F {
    fn dump_at(&mut self, header: &EventHeader) -> Option<String> {
        self(header)
    }
}

/// The policy as the dumper calls it across the library boundary.
#[sabi_trait]
pub trait FfiDumpPolicy: Send {
    #[sabi(last_prefix_field)]
    fn dump_at(&mut self, header: &EventHeader) -> RResult<ROption<RString>, RString>;
}

struct PolicyAdapter(Box<dyn DumpPolicy>);

impl FfiDumpPolicy for PolicyAdapter {
    fn dump_at(&mut self, header: &EventHeader) -> RResult<ROption<RString>, RString> {
        match catch_unwind(AssertUnwindSafe(|| self.0.dump_at(header))) {
            Ok(cause) => RResult::ROk(cause.map(RString::from).into()),
            Err(p) => RResult::RErr(panic_message(p)),
        }
    }
}

/// A policy as it crosses the boundary.
pub type FfiPolicyBox = FfiDumpPolicy_TO<'static, RBox<()>>;

/// Wraps a policy for the boundary.
#[doc(hidden)]
pub fn into_ffi(policy: impl DumpPolicy) -> FfiPolicyBox {
    FfiDumpPolicy_TO::from_value(PolicyAdapter(Box::new(policy)), TD_Opaque)
}

/// Runs a policy constructor on the library's side of the boundary, with
/// panics caught. Used by the export macros.
#[doc(hidden)]
pub fn create_with<P: DumpPolicy>(
    ctx: &PluginContext,
    ctor: fn(&PluginContext) -> Result<P, PluginError>,
) -> RResult<FfiPolicyBox, RString> {
    match catch_unwind(AssertUnwindSafe(|| ctor(ctx))) {
        Ok(Ok(p)) => RResult::ROk(into_ffi(p)),
        Ok(Err(e)) => RResult::RErr(RString::from(e.0)),
        Err(p) => RResult::RErr(panic_message(p)),
    }
}

/// A policy loaded from a library, callable as a [`DumpPolicy`] whose
/// failures (errors and panics on its side) come back as errors.
pub struct LoadedPolicy {
    /// The library's own name, for messages.
    pub name: String,
    inner: FfiPolicyBox,
}

impl LoadedPolicy {
    /// Asks the policy about one event.
    pub fn dump_at(&mut self, header: &EventHeader) -> Result<Option<String>, PluginError> {
        match self.inner.dump_at(header) {
            RResult::ROk(cause) => Ok(cause.into_option().map(String::from)),
            RResult::RErr(e) => Err(PluginError(format!("policy {}: {e}", self.name))),
        }
    }
}

/// Loads the dump policy exported by the library at `path` and creates it
/// with `ctx` (whose `config_toml` is the policy's own table). Refuses a
/// library built against another interface, or one that exports no policy.
pub fn load(path: &Path, ctx: &PluginContext) -> Result<LoadedPolicy, PluginError> {
    let module = library::load(path).map_err(PluginError)?;
    let name = module.name().to_string();
    let create = match module.create_policy() {
        Some(create) => create,
        None => {
            return Err(PluginError(format!(
                "{} (library {name}) exports no dump policy \
                 (policies export one with rrpipe_plugin_api::export_dump_policy!)",
                path.display()
            )))
        }
    };
    match create(ctx) {
        RResult::ROk(inner) => Ok(LoadedPolicy { name, inner }),
        RResult::RErr(e) => Err(PluginError(format!("policy {name}: {e}"))),
    }
}
