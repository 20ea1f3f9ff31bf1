//! Where traces live: `trace_N` directories with a `latest-trace` link
//! beside them (the seed's layout), the manifest, and the saved copies of
//! mapped files.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use rrpipe_plugin_api::trace::{
    saved_file_name, Manifest, ManifestEntry, FILES_DIR, MANIFEST_FILE,
};
use rrpipe_plugin_api::SavedFile;

use crate::error::{Error, Result};
use crate::mailbox::{self, Mailbox};

pub const LATEST: &str = "latest-trace";

/// Creates the directory for a new recording: `output` if given (it must not
/// exist yet, or be empty), else the next free `trace_N` in the current
/// directory, then points `latest-trace` at it. Mode 0700: a trace holds the
/// program's memory.
pub fn create(output: Option<&Path>) -> Result<PathBuf> {
    let mut builder = fs::DirBuilder::new();
    builder.mode(0o700);
    let dir = match output {
        Some(dir) => {
            if let Ok(mut entries) = fs::read_dir(dir) {
                if entries.next().is_some() {
                    return Err(Error::Usage(format!(
                        "trace directory {} exists and is not empty",
                        dir.display()
                    )));
                }
            } else {
                builder
                    .recursive(true)
                    .create(dir)
                    .map_err(|e| Error::internal(format!("create {}", dir.display()), e))?;
            }
            dir.to_path_buf()
        }
        None => {
            let mut n = next_trace_number(Path::new("."));
            loop {
                let dir = PathBuf::from(format!("trace_{n}"));
                match builder.create(&dir) {
                    Ok(()) => break dir,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
                    Err(e) => return Err(Error::internal(format!("create {}", dir.display()), e)),
                }
            }
        }
    };
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::internal(format!("chmod {}", dir.display()), e))?;
    fs::create_dir_all(dir.join(FILES_DIR))
        .map_err(|e| Error::internal(format!("create {}/{FILES_DIR}", dir.display()), e))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| Error::internal(format!("resolve {}", dir.display()), e))?;
    if output.is_none() {
        point_latest_at(&dir)?;
    }
    Ok(dir)
}

fn next_trace_number(parent: &Path) -> u64 {
    fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("trace_")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .map_or(0, |n| n + 1)
}

fn point_latest_at(dir: &Path) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let target = dir.file_name().unwrap_or(dir.as_os_str());
    let tmp = parent.join(format!(".{LATEST}.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .and_then(|()| fs::rename(&tmp, parent.join(LATEST)))
        .map_err(|e| Error::internal(format!("update {LATEST}"), e))
}

/// The trace to replay: the one named, or `latest-trace` in the current
/// directory.
pub fn resolve(trace: Option<&Path>) -> Result<PathBuf> {
    let dir = trace.map_or_else(|| PathBuf::from(LATEST), Path::to_path_buf);
    if !dir.is_dir() {
        return Err(Error::TraceNotFound(dir));
    }
    dir.canonicalize()
        .map_err(|e| Error::internal(format!("resolve {}", dir.display()), e))
}

/// Writes `manifest.toml`.
pub fn write_manifest(
    dir: &Path,
    complete: bool,
    events: u64,
    components: Vec<ManifestEntry>,
) -> Result<()> {
    let manifest = Manifest {
        complete,
        events,
        components,
    };
    let text = toml::to_string(&manifest).map_err(|e| Error::internal("encode manifest", e))?;
    fs::write(dir.join(MANIFEST_FILE), text)
        .map_err(|e| Error::internal(format!("write {MANIFEST_FILE}"), e))
}

struct SaveJob {
    source: File,
    dest: PathBuf,
    link_ok: bool,
}

/// Saves mapped files into the trace off the tracer thread. The tracer
/// opens the file (cheap, and pins the very inode the program mapped, even
/// if it is deleted or renamed next), the saver thread hard-links it when
/// that is safe or copies it. Jobs go to the thread [`SAVE_BATCH`] at a
/// time, through a [`Mailbox`] that does not wake it (the last ones the
/// tracer saves itself, see [`FileSaver::finish`]): waking it (an
/// interrupt to another CPU) cost ~20 µs per file in a VM, and a program's
/// start maps a few dozen (libraries, locale files). Not waking it at all
/// made recording `cp -r` 0.3–0.6 ms and `python3 -c pass` 0.2 ms shorter
/// than waking it for each batch (31 and 21 alternating runs).
pub struct FileSaver {
    trace_dir: PathBuf,
    saved: HashMap<String, SavedFile>,
    /// The same files by (device, inode, mtime), for [`FileSaver::save_mapped`].
    by_inode: HashMap<(u64, u64, i64), SavedFile>,
    pending: Vec<SaveJob>,
    jobs: Option<Mailbox<Vec<SaveJob>>>,
    worker: Option<JoinHandle<Vec<String>>>,
}

/// Files opened and waiting for the saver thread before it is woken (each
/// holds a descriptor of rrpipe's until then).
const SAVE_BATCH: usize = 16;

/// Batches queued to the saver thread before the tracer waits for it.
const SAVE_QUEUE: usize = 64;

impl FileSaver {
    pub fn new(trace_dir: &Path, worker_cpus: Option<Vec<usize>>) -> FileSaver {
        let builder = std::thread::Builder::new()
            .name("rrpipe-files".into())
            .stack_size(crate::HELPER_STACK);
        let started = mailbox::spawn(
            builder,
            SAVE_QUEUE,
            move |inbox: mailbox::Inbox<Vec<SaveJob>>| {
                if let Some(cpus) = worker_cpus {
                    crate::cpus::pin_to(&cpus);
                }
                let mut errors = Vec::new();
                while let Some(jobs) = inbox.recv() {
                    save_all(&jobs, &mut errors);
                }
                errors
            },
        )
        .ok();
        let (tx, worker) = started.unzip();
        FileSaver {
            trace_dir: trace_dir.to_path_buf(),
            saved: HashMap::new(),
            by_inode: HashMap::new(),
            pending: Vec::with_capacity(SAVE_BATCH),
            jobs: tx,
            worker,
        }
    }

    /// Saves the file at `path` as seen through `open_path` (a
    /// `/proc/PID/fd/N` or `/proc/PID/map_files/..` link, or the path).
    /// Returns None for what is not a regular file (devices), which replay
    /// maps as anonymous memory.
    pub fn save(
        &mut self,
        path: &str,
        open_path: &Path,
        writable_shared: bool,
    ) -> Result<Option<SavedFile>> {
        // A stat first: a file already saved needs no open (a walk of
        // `/proc` and the file's own open) nor close.
        let meta = std::fs::metadata(open_path)
            .map_err(|e| Error::internal(format!("stat mapped file {path}"), e))?;
        let Some(name) = trace_name(path, &meta) else {
            return Ok(None);
        };
        if let Some(s) = self.saved.get(&name) {
            return Ok(Some(s.clone()));
        }
        self.save_new(path, open_path, writable_shared)
    }

    /// Opens the file at `open_path` and has it saved, unless the file
    /// opened turns out to be saved already.
    fn save_new(
        &mut self,
        path: &str,
        open_path: &Path,
        writable_shared: bool,
    ) -> Result<Option<SavedFile>> {
        let source = File::open(open_path)
            .map_err(|e| Error::internal(format!("open mapped file {path}"), e))?;
        // Named after the file opened, which the copy reads: a path (not
        // a `/proc/PID/fd/N` link) may have been replaced since a stat.
        let meta = source
            .metadata()
            .map_err(|e| Error::internal(format!("stat {path}"), e))?;
        let Some(name) = trace_name(path, &meta) else {
            return Ok(None);
        };
        if let Some(s) = self.saved.get(&name) {
            return Ok(Some(s.clone()));
        }
        let saved = SavedFile {
            original: path.into(),
            in_trace: name.clone().into(),
        };
        // A hard link shares the inode: only safe where nobody but root
        // may rewrite the file in place, and the program does not write
        // through a shared mapping.
        let link_ok = !writable_shared && meta.mode() & 0o022 == 0 && meta.uid() == 0;
        let job = SaveJob {
            source,
            dest: self.trace_dir.join(&name),
            link_ok,
        };
        self.pending.push(job);
        if self.pending.len() >= SAVE_BATCH {
            self.send_pending();
        }
        self.saved.insert(name, saved.clone());
        self.by_inode
            .insert((meta.dev(), meta.ino(), meta.mtime()), saved.clone());
        Ok(Some(saved))
    }

    fn send_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(SAVE_BATCH));
        if let Some(tx) = &self.jobs {
            let _ = tx.send(batch, false);
        }
    }

    /// Saves the file a program maps through `open_path` (a
    /// `/proc/PID/fd/N` link), asking for its path (a `readlink` in `/proc`,
    /// ~10 µs here) only when the file was not saved yet: a library is
    /// mapped a few times over. An already saved file keeps the path it was
    /// first seen under (what `rrpipe dump` shows); replay maps the saved
    /// copy either way.
    pub fn save_mapped(
        &mut self,
        open_path: &Path,
        path: impl FnOnce() -> Result<String>,
        writable_shared: bool,
    ) -> Result<Option<SavedFile>> {
        let meta =
            std::fs::metadata(open_path).map_err(|e| Error::internal("stat a mapped file", e))?;
        if !meta.is_file() {
            return Ok(None);
        }
        if let Some(s) = self.by_inode.get(&(meta.dev(), meta.ino(), meta.mtime())) {
            return Ok(Some(s.clone()));
        }
        self.save_new(&path()?, open_path, writable_shared)
    }

    /// Tells the saver thread that no more files come, without waiting:
    /// it finishes the batches it has. The files not handed to it yet are
    /// left for [`FileSaver::finish`]. No file may be saved after this;
    /// closing again does nothing.
    pub fn close(&mut self) {
        drop(self.jobs.take());
    }

    /// Saves the files still pending on the caller's thread, waits for the
    /// saver thread's; returns the saved names for the manifest. Called
    /// once the program is gone, its CPU idle: the saver thread's is the
    /// plugins', busy finishing the trace then. Recording `cp -r`, whose
    /// last six files were linked here, took 0.37 and 0.74 ms less than
    /// with the saver thread linking them (median of 31 alternating runs,
    /// twice).
    pub fn finish(mut self) -> Result<Vec<String>> {
        self.close();
        let mut errors = Vec::new();
        save_all(&std::mem::take(&mut self.pending), &mut errors);
        if let Some(worker) = self.worker.take() {
            let mut theirs = worker
                .join()
                .map_err(|_| Error::Internal("file saver thread panicked".into()))?;
            errors.append(&mut theirs);
        }
        if let Some(first) = errors.first() {
            return Err(Error::Internal(format!("cannot save mapped file {first}")));
        }
        let mut names: Vec<String> = self.saved.into_keys().collect();
        names.sort();
        Ok(names)
    }
}

/// The name of a file's copy in the trace; None for what is not a
/// regular file.
fn trace_name(path: &str, meta: &std::fs::Metadata) -> Option<String> {
    meta.is_file()
        .then(|| saved_file_name(path, meta.dev(), meta.ino(), meta.mtime()))
}

/// Saves `jobs`, adding a line to `errors` for each that fails.
fn save_all(jobs: &[SaveJob], errors: &mut Vec<String>) {
    for job in jobs {
        if let Err(e) = save(job) {
            errors.push(format!("{}: {e}", job.dest.display()));
        }
    }
}

fn save(job: &SaveJob) -> io::Result<()> {
    if job.link_ok {
        let fd_path = format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&job.source)
        );
        let c_src = std::ffi::CString::new(fd_path)?;
        let c_dst = std::ffi::CString::new(job.dest.as_os_str().as_encoded_bytes())?;
        let r = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                c_src.as_ptr(),
                libc::AT_FDCWD,
                c_dst.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if r == 0 {
            return Ok(());
        }
    }
    let mut dest = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode_0700()
        .open(&job.dest)?;
    let mut src = &job.source;
    io::copy(&mut src, &mut dest)?;
    Ok(())
}

trait Mode0700 {
    fn mode_0700(&mut self) -> &mut Self;
}

impl Mode0700 for fs::OpenOptions {
    fn mode_0700(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o700)
    }
}
