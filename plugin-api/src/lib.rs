//! The stable interface between the rrpipe host and its plugins.
//!
//! A plugin is a `cdylib` that depends on this crate (and on `abi_stable`,
//! whose export attribute it uses) and exports a constructor with
//! [`export_plugin!`]. The host loads it at run time and checks, before
//! calling anything, that both were built against the same interface: the
//! layout of every type crossing the boundary and [`INTERFACE_VERSION`].
//!
//! See the README's "Writing a plugin" section for a walk-through.

pub mod event;
pub mod library;
pub mod plugin;
pub mod policy;
#[cfg(feature = "trace")]
pub mod trace;

pub use abi_stable;
pub use event::*;
pub use plugin::{
    Handler, MemoryRequest, Mode, Plugin, PluginContext, PluginError, ProcessState, Range, Region,
    Request, Selector, Snapshot, INTERFACE_VERSION,
};
pub use policy::DumpPolicy;
