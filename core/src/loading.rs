//! Loading the plugins on another CPU while the tracer starts the program.
//!
//! Loading the plugins (each library's dlopen and abi_stable layout check,
//! then each plugin's own set-up: the trace writer creates its file and its
//! compressor) takes about as long as starting the program (the spawn, the
//! rrpipe page, the exec's files): ~0.5 ms each. Neither needs the other
//! until the first event, so the plugins load on a worker CPU meanwhile,
//! and the first event waits for them ([`Loading::wait`]). A library that
//! fails to load still stops the session before the program has run an
//! instruction of its own: the program is held at its exec until then.

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rrpipe_plugin_api::Mode;

use crate::config::PluginSpec;
use crate::error::{Error, Result};
use crate::pipeline::Pipeline;

/// How long [`Loading::wait`] spins before it sleeps. The loader usually
/// finishes first; when not, the tracer's CPU has nothing else to do (the
/// program is stopped), and a sleeping tracer would be woken across CPUs,
/// which costs more than this on a VM (see `cpus`).
const SPIN: Duration = Duration::from_millis(2);

/// Plugins being loaded, or loaded.
pub struct Loading(State);

enum State {
    Done(Result<Pipeline>),
    Running(JoinHandle<Result<Pipeline>>),
}

impl Loading {
    /// Starts loading `specs` on `worker_cpus`; without other CPUs than the
    /// tracer's (or a thread to do it), loads them here and now.
    pub fn start(
        specs: Vec<PluginSpec>,
        mode: Mode,
        trace_dir: PathBuf,
        worker_cpus: Option<Vec<usize>>,
    ) -> Loading {
        let Some(cpus) = worker_cpus.filter(|c| !c.is_empty()) else {
            return Loading::now(&specs, mode, &trace_dir, None);
        };
        let (specs_, dir_, cpus_) = (specs.clone(), trace_dir.clone(), cpus.clone());
        // The default stack size: plugins' set-up is anyone's code.
        let spawned = std::thread::Builder::new()
            .name("rrpipe-loader".into())
            .spawn(move || {
                crate::cpus::pin_to(&cpus_);
                Pipeline::start(&specs_, mode, &dir_, Some(&cpus_))
            });
        match spawned {
            Ok(thread) => Loading(State::Running(thread)),
            Err(_) => Loading::now(&specs, mode, &trace_dir, Some(&cpus)),
        }
    }

    fn now(
        specs: &[PluginSpec],
        mode: Mode,
        trace_dir: &std::path::Path,
        cpus: Option<&[usize]>,
    ) -> Loading {
        Loading(State::Done(Pipeline::start(specs, mode, trace_dir, cpus)))
    }

    /// The loaded pipeline, or why a plugin could not be loaded.
    pub fn wait(self) -> Result<Pipeline> {
        match self.0 {
            State::Done(result) => result,
            State::Running(thread) => {
                let since = Instant::now();
                while !thread.is_finished() && since.elapsed() < SPIN {
                    std::hint::spin_loop();
                }
                thread
                    .join()
                    .map_err(|_| Error::Internal("the plugin loader thread panicked".into()))?
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_that_fails_to_load_fails_the_wait_as_it_would_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let spec = PluginSpec {
            name: "missing".into(),
            path: Some(dir.path().join("librrpipe_missing.so")),
            ..PluginSpec::default()
        };
        let cpus = crate::cpus::allowed();
        for workers in [None, Some(cpus)] {
            let loading = Loading::start(
                vec![spec.clone()],
                Mode::Record,
                dir.path().to_path_buf(),
                workers,
            );
            let Err(e) = loading.wait() else {
                panic!("a missing library loaded");
            };
            let msg = e.to_string();
            assert!(msg.starts_with("plugin missing: cannot load"), "{msg}");
            assert_eq!(e.exit_code(), crate::error::exit_code::PLUGIN);
        }
    }
}
