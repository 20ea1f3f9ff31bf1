//! The on-disk trace format, shared by the host (which reads it in replay
//! and dump) and the trace-writer plugin (which writes the event stream).
//!
//! A trace is a directory:
//!
//! - `header`: magic, format version, then the postcard-encoded [`TraceHeader`].
//! - `events`: magic, format version, then chunks. Each chunk is
//!   `[u32 compressed length][u32 event count][u64 xxh3 of the compressed
//!   bytes][zstd frame]`; the frame holds the events, each a u32 length
//!   followed by its postcard encoding. A chunk is written whole or not at
//!   all as far as readers can tell (length and checksum), so a recording
//!   that dies leaves a readable prefix and a truncated file is detected.
//! - `files/`: copies or hard links of the files the program mapped.
//! - `manifest.toml`: which files each component added.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// First bytes of `header`.
pub const HEADER_MAGIC: &[u8; 8] = b"RRPIPETR";
/// First bytes of `events`.
pub const EVENTS_MAGIC: &[u8; 8] = b"RRPIPEEV";
/// Version of the whole trace format; a reader refuses any other.
pub const FORMAT_VERSION: u32 = 7;
/// File names inside a trace directory.
pub const HEADER_FILE: &str = "header";
pub const EVENTS_FILE: &str = "events";
pub const MANIFEST_FILE: &str = "manifest.toml";
pub const FILES_DIR: &str = "files";

/// Events per chunk before the writer compresses and flushes. Small enough
/// that little is lost if the recorder dies, large enough to compress well.
const CHUNK_EVENTS: u32 = 512;
/// Also bytes per chunk: the last chunk is compressed after the program
/// ended, while the user waits; at 1 MiB that tail (a buffered program's
/// records fill chunks by size) was a millisecond. At 64 KiB rather than
/// 256, recording `cp -r` took 1.5-2.4 ms less and `ls -laR` 1.5-2 ms
/// (alternating runs of one binary): the writer compresses in smaller
/// pieces while the program runs, with less memory in use (zstd sizes its
/// tables to the input, and a chunk's buffer stays smaller), for event
/// files 1-6% larger. A syscall buffer's records (up to 256 KiB) are one
/// event, in one chunk.
const CHUNK_BYTES: usize = 1 << 16;
/// A chunk larger than this is taken as corruption, not allocated.
const MAX_CHUNK: u32 = 1 << 30;

/// What a trace needs before its first event: how to start the program again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceHeader {
    pub rrpipe_version: String,
    /// The path execve was given.
    pub exe: String,
    pub argv: Vec<String>,
    /// `NAME=value` strings, in order.
    pub env: Vec<String>,
    pub cwd: String,
    /// The CPU the recording was pinned to.
    pub cpu: u32,
    /// Seconds since the epoch when recording began.
    pub recorded_at: u64,
    /// Recorded with syscall buffering: replay runs the preload library in
    /// its replay mode.
    pub syscall_buffer: bool,
}

/// Why a trace cannot be read. Each names the file and the problem on one line.
#[derive(Debug)]
pub enum TraceError {
    Io(String, io::Error),
    BadMagic(String),
    Version { file: String, found: u32 },
    Truncated { file: String, events: u64 },
    Checksum { file: String, chunk: u64 },
    Decode { file: String, detail: String },
}

impl std::fmt::Display for TraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TraceError::Io(file, e) => write!(f, "cannot read {file}: {e}"),
            TraceError::BadMagic(file) => {
                write!(f, "{file} is not an rrpipe trace file (wrong magic)")
            }
            TraceError::Version { file, found } => write!(
                f,
                "{file} has trace format version {found}; this rrpipe reads version {FORMAT_VERSION}"
            ),
            TraceError::Truncated { file, events } => write!(
                f,
                "corrupt trace: {file} is truncated after {events} events"
            ),
            TraceError::Checksum { file, chunk } => {
                write!(f, "corrupt trace: {file} chunk {chunk} fails its checksum")
            }
            TraceError::Decode { file, detail } => {
                write!(f, "corrupt trace: {file}: {detail}")
            }
        }
    }
}

impl std::error::Error for TraceError {}

fn write_preamble(w: &mut impl Write, magic: &[u8; 8]) -> io::Result<()> {
    w.write_all(magic)?;
    w.write_all(&FORMAT_VERSION.to_le_bytes())
}

fn read_preamble(r: &mut impl Read, magic: &[u8; 8], file: &str) -> Result<(), TraceError> {
    let mut buf = [0u8; 12];
    r.read_exact(&mut buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            TraceError::BadMagic(file.to_string())
        } else {
            TraceError::Io(file.to_string(), e)
        }
    })?;
    if &buf[..8] != magic {
        return Err(TraceError::BadMagic(file.to_string()));
    }
    let version = u32::from_le_bytes(buf[8..12].try_into().unwrap());
    if version != FORMAT_VERSION {
        return Err(TraceError::Version {
            file: file.to_string(),
            found: version,
        });
    }
    Ok(())
}

/// Writes `header` into a trace directory. Not synced: it costs a disk
/// flush before the program even starts, and a trace is only ever complete
/// once its manifest says so at the end.
pub fn write_header(dir: &Path, header: &TraceHeader) -> io::Result<()> {
    let mut f = BufWriter::new(File::create(dir.join(HEADER_FILE))?);
    write_preamble(&mut f, HEADER_MAGIC)?;
    let bytes = postcard::to_stdvec(header).map_err(io::Error::other)?;
    f.write_all(&bytes)?;
    f.flush()
}

/// Reads `header` from a trace directory.
pub fn read_header(dir: &Path) -> Result<TraceHeader, TraceError> {
    let path = dir.join(HEADER_FILE);
    let name = path.display().to_string();
    let mut f = File::open(&path).map_err(|e| TraceError::Io(name.clone(), e))?;
    read_preamble(&mut f, HEADER_MAGIC, &name)?;
    let mut rest = Vec::new();
    f.read_to_end(&mut rest)
        .map_err(|e| TraceError::Io(name.clone(), e))?;
    postcard::from_bytes(&rest).map_err(|e| TraceError::Decode {
        file: name,
        detail: e.to_string(),
    })
}

/// Appends events to `events` in checksummed, compressed chunks.
pub struct EventWriter {
    out: BufWriter<File>,
    /// Room for a chunk and one more event of a whole syscall buffer's
    /// records, set aside at the start: a Vec that grows copies what it
    /// holds into fresh memory each time. Pages are touched only as they
    /// are filled.
    pending: Vec<u8>,
    pending_events: u32,
    /// Kept across chunks (a context is large to set up). Level -1 (zstd's
    /// fastest kind): compressing runs on the plugins' CPU while the
    /// program runs, and on this VM work there slows the program's CPU as
    /// well (a loop streaming through memory on it made native `cp -r` 6%
    /// slower); level 1 made `cp -r`'s recording
    /// 0.8-1.5 ms slower (same binary, 31 alternating runs, three times)
    /// for a trace of the same size (181 KB against 179). Level 3 made it
    /// a fifth smaller, but setting up its context took 0.2 ms more of
    /// every recording's end.
    compressor: zstd::bulk::Compressor<'static>,
    /// The compressed chunk, its memory kept from chunk to chunk (fresh
    /// memory costs a page fault per 4 KiB).
    compressed: Vec<u8>,
}

impl EventWriter {
    pub fn create(dir: &Path) -> io::Result<Self> {
        let mut out = BufWriter::new(File::create(dir.join(EVENTS_FILE))?);
        write_preamble(&mut out, EVENTS_MAGIC)?;
        out.flush()?;
        Ok(EventWriter {
            out,
            pending: Vec::with_capacity(CHUNK_BYTES + rrpipe_syscallbuf::CAPACITY + 4096),
            pending_events: 0,
            compressor: zstd::bulk::Compressor::new(-1)?,
            compressed: Vec::new(),
        })
    }

    pub fn push(&mut self, event: &Event) -> io::Result<()> {
        let start = self.pending.len();
        self.pending.extend_from_slice(&[0; 4]);
        let encoded = postcard::to_extend(event, std::mem::take(&mut self.pending))
            .map_err(io::Error::other)?;
        self.pending = encoded;
        let len = (self.pending.len() - start - 4) as u32;
        self.pending[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.pending_events += 1;
        if self.pending_events >= CHUNK_EVENTS || self.pending.len() >= CHUNK_BYTES {
            self.flush_chunk()?;
        }
        Ok(())
    }

    /// Compresses and writes the buffered events as one chunk.
    pub fn flush_chunk(&mut self) -> io::Result<()> {
        if self.pending_events == 0 {
            return Ok(());
        }
        let bound = zstd::zstd_safe::compress_bound(self.pending.len());
        if self.compressed.capacity() < bound {
            // Fresh memory rather than `reserve`, which would copy the
            // old contents over.
            self.compressed = Vec::with_capacity(bound);
        }
        let compressed = &mut self.compressed;
        compressed.clear();
        self.compressor
            .compress_to_buffer(&self.pending, compressed)?;
        let sum = xxhash_rust::xxh3::xxh3_64(compressed);
        self.out
            .write_all(&(compressed.len() as u32).to_le_bytes())?;
        self.out.write_all(&self.pending_events.to_le_bytes())?;
        self.out.write_all(&sum.to_le_bytes())?;
        self.out.write_all(compressed)?;
        self.out.flush()?;
        self.pending.clear();
        self.pending_events = 0;
        Ok(())
    }

    /// Flushes everything. Without an fsync: a crash of rrpipe or of the
    /// program loses nothing written (the kernel has it), and the manifest,
    /// written last, is what says the trace is whole; an fsync cost a
    /// millisecond per recording, a tenth of recording a short program.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush_chunk()?;
        self.out.into_inner()?;
        Ok(())
    }
}

/// Reads the events of a trace in order.
pub struct EventReader {
    input: BufReader<File>,
    name: String,
    chunk: Vec<u8>,
    pos: usize,
    left_in_chunk: u32,
    chunks: u64,
    events: u64,
    /// Kept across chunks: a fresh context per chunk (allocated and
    /// cleared each time) was a tenth of a syscall-buffered replay.
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

impl EventReader {
    pub fn open(dir: &Path) -> Result<Self, TraceError> {
        let path = dir.join(EVENTS_FILE);
        let name = path.display().to_string();
        let f = File::open(&path).map_err(|e| TraceError::Io(name.clone(), e))?;
        let mut input = BufReader::with_capacity(1 << 16, f);
        read_preamble(&mut input, EVENTS_MAGIC, &name)?;
        Ok(EventReader {
            input,
            name,
            chunk: Vec::new(),
            pos: 0,
            left_in_chunk: 0,
            chunks: 0,
            events: 0,
            decompressor: zstd::bulk::Decompressor::new().ok(),
        })
    }

    fn truncated(&self) -> TraceError {
        TraceError::Truncated {
            file: self.name.clone(),
            events: self.events,
        }
    }

    /// Loads the next chunk; `Ok(false)` at a clean end of file.
    fn next_chunk(&mut self) -> Result<bool, TraceError> {
        let mut head = [0u8; 16];
        let mut got = 0;
        while got < head.len() {
            match self.input.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TraceError::Io(self.name.clone(), e)),
            }
        }
        if got == 0 {
            return Ok(false);
        }
        if got < head.len() {
            return Err(self.truncated());
        }
        let len = u32::from_le_bytes(head[0..4].try_into().unwrap());
        let count = u32::from_le_bytes(head[4..8].try_into().unwrap());
        let sum = u64::from_le_bytes(head[8..16].try_into().unwrap());
        if len > MAX_CHUNK || count == 0 {
            return Err(TraceError::Checksum {
                file: self.name.clone(),
                chunk: self.chunks,
            });
        }
        let mut compressed = vec![0u8; len as usize];
        self.input.read_exact(&mut compressed).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.truncated()
            } else {
                TraceError::Io(self.name.clone(), e)
            }
        })?;
        if xxhash_rust::xxh3::xxh3_64(&compressed) != sum {
            return Err(TraceError::Checksum {
                file: self.name.clone(),
                chunk: self.chunks,
            });
        }
        let size = zstd::zstd_safe::get_frame_content_size(&compressed)
            .ok()
            .flatten()
            .filter(|&n| n <= MAX_CHUNK as u64 * 8);
        let decoded = match (self.decompressor.as_mut(), size) {
            (Some(d), Some(n)) => {
                self.chunk.clear();
                self.chunk.reserve(n as usize);
                d.decompress_to_buffer(&compressed[..], &mut self.chunk)
                    .map(drop)
            }
            _ => zstd::stream::decode_all(&compressed[..]).map(|c| self.chunk = c),
        };
        decoded.map_err(|e| TraceError::Decode {
            file: self.name.clone(),
            detail: format!("chunk {}: {e}", self.chunks),
        })?;
        self.pos = 0;
        self.left_in_chunk = count;
        self.chunks += 1;
        Ok(true)
    }

    /// The next event, `Ok(None)` at the end of the stream.
    pub fn next_event(&mut self) -> Result<Option<Event>, TraceError> {
        if self.left_in_chunk == 0 && !self.next_chunk()? {
            return Ok(None);
        }
        let bad = |detail: String| TraceError::Decode {
            file: self.name.clone(),
            detail,
        };
        let rest = &self.chunk[self.pos..];
        if rest.len() < 4 {
            return Err(bad(format!("event {} cut short", self.events + 1)));
        }
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        if rest.len() < 4 + len {
            return Err(bad(format!("event {} cut short", self.events + 1)));
        }
        let event: Event = postcard::from_bytes(&rest[4..4 + len])
            .map_err(|e| bad(format!("event {}: {e}", self.events + 1)))?;
        self.pos += 4 + len;
        self.left_in_chunk -= 1;
        self.events += 1;
        Ok(Some(event))
    }
}

impl Iterator for EventReader {
    type Item = Result<Event, TraceError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

/// The name under `files/` for a saved copy of a mapped file: unique per
/// (device, inode, modification time), readable by a person.
pub fn saved_file_name(original: &str, dev: u64, inode: u64, mtime: i64) -> String {
    let base = Path::new(original)
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    format!("{FILES_DIR}/{dev:x}-{inode:x}-{mtime:x}-{base}")
}

/// Which files each component put into a trace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Set when recording ended; absent in a trace whose recorder died.
    pub complete: bool,
    pub events: u64,
    #[serde(default)]
    pub components: Vec<ManifestEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub name: String,
    pub files: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;

    fn exit_event(time: u64) -> Event {
        Event {
            header: EventHeader {
                time,
                tid: 7,
                kind: EventKind::Exit,
                syscall: -1,
                args: [0; 6],
                result: 3,
                signal: 0,
                flags: 0,
            },
            data: EventData::Exit(ExitInfo { code: 3, signal: 0 }),
        }
    }

    #[test]
    fn events_round_trip_across_chunks() {
        let dir = tempdir();
        let mut w = EventWriter::create(&dir).unwrap();
        for t in 1..=1500 {
            w.push(&exit_event(t)).unwrap();
        }
        w.finish().unwrap();
        let times: Vec<u64> = EventReader::open(&dir)
            .unwrap()
            .map(|e| e.unwrap().header.time)
            .collect();
        assert_eq!(times, (1..=1500).collect::<Vec<_>>());
    }

    #[test]
    fn truncation_and_magic_are_detected() {
        let dir = tempdir();
        let mut w = EventWriter::create(&dir).unwrap();
        for t in 1..=10 {
            w.push(&exit_event(t)).unwrap();
        }
        w.finish().unwrap();
        let path = dir.join(EVENTS_FILE);
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        let err = EventReader::open(&dir)
            .unwrap()
            .find_map(|e| e.err())
            .unwrap();
        assert!(matches!(err, TraceError::Truncated { .. }), "{err}");

        std::fs::write(&path, b"NOTATRACE...").unwrap();
        assert!(matches!(
            EventReader::open(&dir).err().unwrap(),
            TraceError::BadMagic(_)
        ));
        let header = TraceHeader {
            rrpipe_version: "x".into(),
            exe: "/bin/true".into(),
            argv: vec!["true".into()],
            env: vec![],
            cwd: "/".into(),
            cpu: 0,
            recorded_at: 0,
            syscall_buffer: false,
        };
        write_header(&dir, &header).unwrap();
        assert_eq!(read_header(&dir).unwrap(), header);
    }

    fn tempdir() -> std::path::PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "rrpipe-trace-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}
