//! The two-phase plugin contract and the module every plugin library exports.
//!
//! Phase 1, [`Selector::wants`], runs synchronously on the tracer thread
//! while the tracee is stopped: it sees only the [`EventHeader`] and must be
//! cheap. It says whether the plugin wants the event and which tracee memory
//! to copy with it (copying later would be too late: the tracee moves on).
//!
//! Phase 2, [`Handler::on_event`], runs on the plugin's own worker thread,
//! fed by a bounded channel: slow work (compression, hashing, disk) happens
//! there without stalling the tracee more than back-pressure requires.
//!
//! Plugin authors implement the plain Rust traits [`Selector`] and
//! [`Handler`] and export a constructor with [`export_plugin!`](crate::export_plugin). The FFI
//! layer below them (`Ffi*` types) catches panics on the plugin's side of
//! the boundary and turns them into errors, so a broken plugin is disabled
//! and named instead of aborting the recording.

// The sabi_trait macro defines impls inside generated items.
#![allow(non_local_definitions)]

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::library::RootModule;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RBox, ROption, RResult, RStr, RString, RVec};
use abi_stable::{declare_root_module_statics, package_version_strings, sabi_trait, StableAbi};
use serde::de::DeserializeOwned;

use crate::event::{Event, EventHeader, Mapping, Regs};

/// Bumped whenever anything crossing the boundary changes shape or meaning.
/// The host refuses plugins whose number differs; abi_stable's layout check
/// catches what a forgotten bump would miss.
pub const INTERFACE_VERSION: u32 = 6;

/// Whether the host is recording or replaying.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Record,
    Replay,
}

/// Which tracee memory a plugin wants copied with an event.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub enum MemoryRequest {
    None,
    /// The buffers the syscall reads from the program (write's buffer,
    /// writev's iovecs, ...), as the syscall table describes them.
    SyscallInputs,
    /// These address ranges (`start`, `len`).
    Ranges(RVec<Range>),
    /// Every readable mapping, with its contents.
    AllReadable,
    /// What a core dump holds: the regions of [`MemoryRequest::AllReadable`]
    /// plus, in [`Snapshot::process`], every mapping (readable or not), the
    /// FPU registers and the auxiliary vector.
    Core,
}

/// An address range of tracee memory.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub len: u64,
}

/// A plugin's answer to [`Selector::wants`].
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Send the event to [`Handler::on_event`].
    pub deliver: bool,
    pub memory: MemoryRequest,
}

impl Request {
    /// Not interested in this event.
    pub const SKIP: Request = Request {
        deliver: false,
        memory: MemoryRequest::None,
    };
    /// The event, without memory.
    pub const EVENT: Request = Request {
        deliver: true,
        memory: MemoryRequest::None,
    };

    /// The event with a copy of the given memory.
    pub fn with_memory(memory: MemoryRequest) -> Request {
        Request {
            deliver: true,
            memory,
        }
    }
}

/// One copied region of tracee memory.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// The mapping it lies in, when the request was for whole mappings.
    pub mapping: ROption<Mapping>,
    pub addr: u64,
    pub data: RVec<u8>,
}

/// Tracee memory and registers copied at the instant of an event, while the
/// tracee was stopped.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub regs: Regs,
    pub regions: RVec<Region>,
    /// Filled for [`MemoryRequest::Core`] only.
    pub process: ROption<ProcessState>,
}

/// The rest of a task's state that a core dump needs.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct ProcessState {
    /// The whole address space, in address order, as `/proc/PID/maps`
    /// lists it (including mappings that cannot be read).
    pub maps: RVec<Mapping>,
    /// The x87/SSE registers as `PTRACE_GETFPREGS` returns them (the
    /// 512-byte `user_fpregs_struct`, i.e. an FXSAVE area).
    pub fpregs: RVec<u8>,
    /// The auxiliary vector (`/proc/PID/auxv`): pairs of native-endian
    /// u64 (type, value), ending with `AT_NULL`.
    pub auxv: RVec<u8>,
}

/// What a plugin is told when it is created.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct PluginContext {
    /// The name the plugin was configured under.
    pub name: RString,
    pub mode: Mode,
    /// The trace directory; plugins may add their own files to it.
    pub trace_dir: RString,
    /// The plugin's free configuration table from the TOML file,
    /// re-serialized as TOML text. Read it with [`PluginContext::config`].
    pub config_toml: RString,
    /// The directory of the TOML file the configuration came from (empty
    /// when it came from the command line): resolve relative paths in the
    /// configuration against it with [`PluginContext::resolve`].
    pub config_dir: RString,
}

impl PluginContext {
    /// Deserializes the plugin's configuration table.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        toml::from_str(self.config_toml.as_str())
            .map_err(|e| PluginError::new(format!("bad configuration: {}", e.message())))
    }

    /// A path from the configuration, relative to the TOML file that gave
    /// it (or to the current directory, for command-line flags).
    pub fn resolve(&self, path: impl AsRef<std::path::Path>) -> std::path::PathBuf {
        std::path::Path::new(self.config_dir.as_str()).join(path)
    }
}

/// An error a plugin reports to the host: one line, shown with the plugin's
/// name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError(pub String);

impl PluginError {
    pub fn new(msg: impl Into<String>) -> Self {
        PluginError(msg.into())
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PluginError {}

impl From<std::io::Error> for PluginError {
    fn from(e: std::io::Error) -> Self {
        PluginError(e.to_string())
    }
}

/// Phase 1: decides, on the tracer thread, which events to receive.
pub trait Selector: Send + 'static {
    fn wants(&mut self, header: &EventHeader) -> Request;
}

impl<F: FnMut(&EventHeader) -> Request + Send + 'static> Selector for F {
    fn wants(&mut self, header: &EventHeader) -> Request {
        self(header)
    }
}

/// Phase 2: handles the selected events on the plugin's worker thread.
pub trait Handler: Send + 'static {
    fn on_event(&mut self, event: &Event, snapshot: Option<&Snapshot>) -> Result<(), PluginError>;

    /// Called once after the last event. Returns the files the plugin added
    /// to the trace directory (relative names), for the trace manifest.
    fn finish(&mut self) -> Result<Vec<String>, PluginError> {
        Ok(Vec::new())
    }
}

/// A created plugin: its selector (or the one request it makes of every
/// event) and its handler.
pub struct Plugin {
    selector: Choice,
    handler: Box<dyn Handler>,
}

enum Choice {
    Every(Request),
    Selector(Box<dyn Selector>),
}

impl Plugin {
    /// A plugin that receives every event, without memory.
    pub fn new(handler: impl Handler) -> Self {
        Plugin {
            selector: Choice::Every(Request::EVENT),
            handler: Box::new(handler),
        }
    }

    /// Replaces the selector.
    pub fn with_selector(mut self, selector: impl Selector) -> Self {
        self.selector = Choice::Selector(Box::new(selector));
        self
    }

    /// Makes the same request of every event, instead of a selector. The
    /// host then asks nothing: a selector is offered every call of a
    /// stretch of buffered syscalls (thousands per stop), this answer is
    /// taken once per event.
    pub fn with_request(mut self, request: Request) -> Self {
        self.selector = Choice::Every(request);
        self
    }

    #[doc(hidden)]
    pub fn into_ffi(self) -> FfiPlugin {
        let (every, selector): (_, Box<dyn Selector>) = match self.selector {
            Choice::Every(r) => (
                ROption::RSome(r.clone()),
                Box::new(move |_: &EventHeader| r.clone()),
            ),
            Choice::Selector(s) => (ROption::RNone, s),
        };
        FfiPlugin {
            selector: FfiSelector_TO::from_value(SelectorAdapter(selector), TD_Opaque),
            every,
            handler: FfiHandler_TO::from_value(HandlerAdapter(self.handler), TD_Opaque),
        }
    }
}

std::thread_local! {
    /// Set while the adapter runs plugin code: a panic there is caught and
    /// reported by the host, so the panic hook stays silent and only notes
    /// where it happened.
    static CAUGHT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static LOCATION: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs plugin code with its panics caught, without the panic hook's
/// multi-line report (the plugin has its own copy of std, hence of the hook).
pub(crate) fn guarded<R>(f: impl FnOnce() -> R) -> Result<R, RString> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CAUGHT.with(|c| c.get()) {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                previous(info)
            }
        }));
    });
    let outer = CAUGHT.with(|c| c.replace(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    CAUGHT.with(|c| c.set(outer));
    r.map_err(|p| {
        let mut m = panic_message(p).into_string();
        if let Some(at) = LOCATION.with(|l| l.borrow_mut().take()) {
            m.push_str(&format!(" (at {at})"));
        }
        RString::from(m)
    })
}

pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> RString {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_string());
    RString::from(format!("panicked: {text}"))
}

/// The selector as the host calls it across the boundary.
#[sabi_trait]
pub trait FfiSelector: Send {
    #[sabi(last_prefix_field)]
    fn wants(&mut self, header: &EventHeader) -> RResult<Request, RString>;
}

/// The handler as the host calls it across the boundary.
#[sabi_trait]
pub trait FfiHandler: Send {
    fn on_event(&mut self, event: &Event, snapshot: ROption<&Snapshot>) -> RResult<(), RString>;
    #[sabi(last_prefix_field)]
    fn finish(&mut self) -> RResult<RVec<RString>, RString>;
}

struct SelectorAdapter(Box<dyn Selector>);

impl FfiSelector for SelectorAdapter {
    fn wants(&mut self, header: &EventHeader) -> RResult<Request, RString> {
        match guarded(|| self.0.wants(header)) {
            Ok(r) => RResult::ROk(r),
            Err(m) => RResult::RErr(m),
        }
    }
}

struct HandlerAdapter(Box<dyn Handler>);

impl FfiHandler for HandlerAdapter {
    fn on_event(&mut self, event: &Event, snapshot: ROption<&Snapshot>) -> RResult<(), RString> {
        let snapshot = snapshot.into_option();
        match guarded(|| self.0.on_event(event, snapshot)) {
            Ok(Ok(())) => RResult::ROk(()),
            Ok(Err(e)) => RResult::RErr(RString::from(e.0)),
            Err(m) => RResult::RErr(m),
        }
    }

    fn finish(&mut self) -> RResult<RVec<RString>, RString> {
        match guarded(|| self.0.finish()) {
            Ok(Ok(files)) => RResult::ROk(files.into_iter().map(RString::from).collect()),
            Ok(Err(e)) => RResult::RErr(RString::from(e.0)),
            Err(m) => RResult::RErr(m),
        }
    }
}

/// A created plugin as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiPlugin {
    pub selector: FfiSelector_TO<'static, RBox<()>>,
    /// The request the plugin makes of every event (the host then never
    /// calls `selector`), or none: ask `selector`.
    pub every: ROption<Request>,
    pub handler: FfiHandler_TO<'static, RBox<()>>,
}

/// Constructs a plugin; exported by [`export_plugin!`](crate::export_plugin).
pub type CreatePlugin = extern "C" fn(&PluginContext) -> RResult<FfiPlugin, RString>;

/// Constructs a dump policy; exported by [`export_dump_policy!`](crate::export_dump_policy).
pub type CreatePolicy =
    extern "C" fn(&PluginContext) -> RResult<crate::policy::FfiPolicyBox, RString>;

/// The root module of a plugin library: a plugin, a dump policy, or both.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// [`INTERFACE_VERSION`] as the library was built.
    pub interface_version: u32,
    /// The library's own name, for messages.
    pub name: RStr<'static>,
    // Spelled out, not through the aliases: abi_stable's derive reads
    // function pointer types from the field's syntax.
    pub create: Option<extern "C" fn(&PluginContext) -> RResult<FfiPlugin, RString>>,
    #[sabi(last_prefix_field)]
    pub create_policy:
        Option<extern "C" fn(&PluginContext) -> RResult<crate::policy::FfiPolicyBox, RString>>,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "rrpipe_plugin";
    const NAME: &'static str = "rrpipe_plugin";
    const VERSION_STRINGS: abi_stable::sabi_types::VersionStrings = package_version_strings!();
}

/// Runs a plugin constructor on the plugin's side of the boundary, with
/// panics caught. Used by [`export_plugin!`].
#[doc(hidden)]
pub fn create_with(
    ctx: &PluginContext,
    ctor: fn(&PluginContext) -> Result<Plugin, PluginError>,
) -> RResult<FfiPlugin, RString> {
    match guarded(|| ctor(ctx)) {
        Ok(Ok(p)) => RResult::ROk(p.into_ffi()),
        Ok(Err(e)) => RResult::RErr(RString::from(e.0)),
        Err(m) => RResult::RErr(m),
    }
}

/// Exports a library's root module. Every library exports exactly one.
///
/// - `export_plugin!("name", constructor)`: a plugin, where `constructor`
///   is a `fn(&PluginContext) -> Result<Plugin, PluginError>`;
/// - `export_plugin!("name", constructor, dump_policy = policy_constructor)`:
///   a plugin and a dump policy (see [`export_dump_policy!`](crate::export_dump_policy)).
///
/// The crate must be a `cdylib` and depend on `abi_stable` (its export
/// attribute names it).
#[macro_export]
macro_rules! export_plugin {
    ($name:expr, $ctor:path) => {
        $crate::__export_root_module!(
            $name,
            $crate::__plugin_ctor!($ctor),
            ::std::option::Option::None
        );
    };
    ($name:expr, $ctor:path, dump_policy = $policy:path) => {
        $crate::__export_root_module!(
            $name,
            $crate::__plugin_ctor!($ctor),
            $crate::__policy_ctor!($policy)
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_ctor {
    ($ctor:path) => {
        ::std::option::Option::Some({
            // Not called `create`: an item of that name in this block would
            // shadow a constructor called `create` passed as `$ctor`.
            extern "C" fn __rrpipe_plugin_create(
                ctx: &$crate::plugin::PluginContext,
            ) -> ::abi_stable::std_types::RResult<
                $crate::plugin::FfiPlugin,
                ::abi_stable::std_types::RString,
            > {
                $crate::plugin::create_with(ctx, $ctor)
            }
            __rrpipe_plugin_create as $crate::plugin::CreatePlugin
        })
    };
}

/// Exports a library whose root module provides a dump policy only.
///
/// `export_dump_policy!("name", constructor)` where `constructor` is a
/// `fn(&PluginContext) -> Result<P, PluginError>` for some
/// [`DumpPolicy`](crate::policy::DumpPolicy) `P`.
#[macro_export]
macro_rules! export_dump_policy {
    ($name:expr, $ctor:path) => {
        $crate::__export_root_module!(
            $name,
            ::std::option::Option::None,
            $crate::__policy_ctor!($ctor)
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __policy_ctor {
    ($ctor:path) => {
        ::std::option::Option::Some({
            extern "C" fn __rrpipe_policy_create(
                ctx: &$crate::plugin::PluginContext,
            ) -> ::abi_stable::std_types::RResult<
                $crate::policy::FfiPolicyBox,
                ::abi_stable::std_types::RString,
            > {
                $crate::policy::create_with(ctx, $ctor)
            }
            __rrpipe_policy_create as $crate::plugin::CreatePolicy
        })
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_root_module {
    ($name:expr, $create:expr, $create_policy:expr) => {
        #[::abi_stable::export_root_module]
        pub fn rrpipe_plugin_root_module() -> $crate::plugin::PluginModuleRef {
            use ::abi_stable::prefix_type::PrefixTypeTrait;
            $crate::plugin::PluginModule {
                interface_version: $crate::plugin::INTERFACE_VERSION,
                name: ::abi_stable::std_types::RStr::from_str($name),
                create: $create,
                create_policy: $create_policy,
            }
            .leak_into_prefix()
        }

        /// Lets a host built from the same interface skip checking the
        /// layout of every type (see `rrpipe_plugin_api::library`).
        #[no_mangle]
        pub extern "C" fn rrpipe_plugin_interface_fingerprint() -> u64 {
            $crate::library::interface_fingerprint()
        }
    };
}
