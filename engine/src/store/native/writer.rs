//! The log's I/O thread: writes sealed frames in order, with io_uring (registered buffers,
//! many writes in flight) or `pwrite`, and makes them durable with one `fdatasync` for every
//! batch of sync requests that arrive together (group commit).

use crate::store::io::StorageFile;
use crossbeam_channel::{Receiver, Sender};
use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// How the log is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// io_uring, falling back to `pwrite` (logged once) where the kernel or sandbox refuses it.
    Uring,
    /// Plain `pwrite` + `fdatasync`.
    Pwrite,
}

/// A request to the I/O thread.
pub enum WriteRequest {
    /// Write `bytes` at `offset` (frames arrive in log order, back to back).
    Frame {
        /// Log offset.
        offset: u64,
        /// The sealed frame.
        bytes: Arc<Vec<u8>>,
    },
    /// Reply once everything sent before this request is written and synced.
    Sync(Sender<io::Result<()>>),
}

/// Bytes of sealed frames not yet written that a store holds before an append waits for the
/// I/O thread: unwritten data stays near 32 MiB whatever the ingest rate. A bound in bytes,
/// not in messages: a commit sends two small frames and a sync request, and a queue of 8
/// messages held about three commits, so every `fdatasync` covered about three commits
/// however many committers waited (group commit levelled off near 10,000 commits/s).
pub const QUEUE_BYTES_MAX: usize = 32 << 20;
/// Bytes of frames from which a batch is written through io_uring (several writes in flight)
/// rather than with `pwrite`.
const URING_BATCH_MIN_BYTES: usize = 1 << 20;
/// Frames the I/O thread takes into one batch (one `fdatasync` for every sync request among
/// them) at most.
const BATCH_FRAMES_MAX: usize = 4096;
/// Frames smaller than this are copied together into one `pwrite`.
const COALESCE_BYTES_MAX: usize = 256 << 10;
/// Registered buffers (and writes in flight) of the io_uring writer.
const URING_BUFFERS: usize = 8;
/// Size of each registered buffer: a full frame.
const URING_BUFFER_BYTES: usize = super::format::FRAME_TARGET_BYTES
    + super::format::RECORD_ENCODING_MAX
    + super::format::RECORD_HEADER_BYTES
    + 64;

/// Shared between the I/O thread and readers: the end of the prefix of the log that is written.
#[derive(Default)]
pub struct Progress {
    /// Bytes of the log written (not necessarily synced).
    pub written_end: AtomicU64,
    /// Bytes of the log synced.
    pub synced_end: AtomicU64,
    /// `fdatasync` calls made (group commit makes this fewer than commits).
    pub syncs: AtomicU64,
    /// The I/O thread failed or ended: `written_end` will not move again.
    stopped: AtomicBool,
    /// Held to wait for `written_end` to move ([`Progress::wait_written`]).
    wake: Mutex<()>,
    advanced: Condvar,
}

impl Progress {
    /// Waits until the log is written up to `end`; false if the I/O thread stopped first.
    pub fn wait_written(&self, end: u64) -> bool {
        let mut guard = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.written_end.load(Ordering::Acquire) >= end {
                return true;
            }
            if self.stopped.load(Ordering::Acquire) {
                return false;
            }
            guard = self
                .advanced
                .wait_timeout(guard, WAIT_CHECK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Wakes the appenders waiting in [`Progress::wait_written`].
    fn notify(&self) {
        let _guard = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        self.advanced.notify_all();
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.notify();
    }
}

/// How often a waiting appender looks again without being woken (a safety net only).
const WAIT_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// Marks the I/O thread stopped when it ends, also by a panic: nobody waits for it forever.
struct StopOnDrop(Arc<Progress>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Starts the I/O thread for `file`; returns the request channel, the mode actually used and
/// the thread handle. The thread ends when every sender is dropped.
pub fn start(
    file: Arc<dyn StorageFile>,
    mode: IoMode,
    progress: Arc<Progress>,
) -> io::Result<(Sender<WriteRequest>, IoMode, std::thread::JoinHandle<()>)> {
    // Unbounded: appenders bound the bytes in flight themselves (QUEUE_BYTES_MAX).
    let (tx, rx) = crossbeam_channel::unbounded();
    let backend = match mode {
        IoMode::Pwrite => Backend::Pwrite,
        // io_uring writes the OS file behind the seam; a simulated disk has none.
        IoMode::Uring => match file.os_file().map(UringWriter::new) {
            Some(Ok(u)) => Backend::Uring(Box::new(u)),
            Some(Err(e)) => {
                log_uring_fallback(&e);
                Backend::Pwrite
            }
            None => Backend::Pwrite,
        },
    };
    let used = match backend {
        Backend::Uring(_) => IoMode::Uring,
        Backend::Pwrite => IoMode::Pwrite,
    };
    let handle = std::thread::Builder::new()
        .name("etch-log-writer".into())
        .spawn(move || run(file, backend, rx, progress))?;
    Ok((tx, used, handle))
}

fn log_uring_fallback(e: &io::Error) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        eprintln!("etch: io_uring unavailable ({e}); writing with pwrite");
    });
}

enum Backend {
    Uring(Box<UringWriter>),
    Pwrite,
}

fn run(
    file: Arc<dyn StorageFile>,
    mut backend: Backend,
    rx: Receiver<WriteRequest>,
    progress: Arc<Progress>,
) {
    let _stop = StopOnDrop(progress.clone());
    // Once a write fails, the log's tail is unknown: every later request fails too, and the
    // store must be reopened (recovery cuts the tail back to the last commit).
    let mut failed: Option<String> = None;
    while let Ok(first) = rx.recv() {
        let mut frames: Vec<(u64, Arc<Vec<u8>>)> = Vec::new();
        let mut syncs: Vec<Sender<io::Result<()>>> = Vec::new();
        let take = |req: WriteRequest,
                    frames: &mut Vec<(u64, Arc<Vec<u8>>)>,
                    syncs: &mut Vec<Sender<io::Result<()>>>| match req {
            WriteRequest::Frame { offset, bytes } => frames.push((offset, bytes)),
            WriteRequest::Sync(s) => syncs.push(s),
        };
        take(first, &mut frames, &mut syncs);
        // Everything queued now goes in this batch: writes together, one sync for all (the
        // queue holds at most QUEUE_BYTES_MAX of frames plus one frame per appender).
        while frames.len() < BATCH_FRAMES_MAX {
            match rx.try_recv() {
                Ok(more) => take(more, &mut frames, &mut syncs),
                Err(_) => break,
            }
        }
        if failed.is_none() && !frames.is_empty() {
            let end = frames.last().map(|(o, b)| o + b.len() as u64).unwrap_or(0);
            let bytes: usize = frames.iter().map(|(_, b)| b.len()).sum();
            let r = match &mut backend {
                // A small batch (a commit's worth) costs one `pwrite` here; through io_uring
                // the kernel hands a buffered write to a worker thread, one more wake-up.
                Backend::Uring(u) if bytes >= URING_BATCH_MIN_BYTES => u.write_all(&frames),
                _ => write_coalesced(file.as_ref(), &frames),
            };
            match r {
                Ok(()) => {
                    progress.written_end.store(end, Ordering::Release);
                    progress.notify();
                }
                Err(e) => {
                    failed = Some(format!("log write failed: {e}"));
                    progress.stop();
                }
            }
        }
        if syncs.is_empty() {
            continue;
        }
        let r = match &failed {
            Some(msg) => Err(io::Error::other(msg.clone())),
            None => {
                let target = progress.written_end.load(Ordering::Acquire);
                progress.syncs.fetch_add(1, Ordering::Relaxed);
                match file.sync() {
                    Ok(()) => {
                        progress.synced_end.store(target, Ordering::Release);
                        Ok(())
                    }
                    Err(e) => {
                        failed = Some(format!("log sync failed: {e}"));
                        Err(e)
                    }
                }
            }
        };
        for s in syncs {
            let reply = match &r {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            // A committer that gave up waiting is not an error here.
            let _ = s.send(reply);
        }
    }
}

/// Writes `frames` (back to back in the log, in order) with as few `pwrite`s as possible:
/// the small frames of many commits (each commit sends its own COMMIT frame) go out in one.
fn write_coalesced(file: &dyn StorageFile, frames: &[(u64, Arc<Vec<u8>>)]) -> io::Result<()> {
    let mut run: Vec<u8> = Vec::new();
    let mut run_at = 0u64;
    for (offset, bytes) in frames {
        let follows = !run.is_empty() && run_at + run.len() as u64 == *offset;
        if follows && run.len() + bytes.len() <= COALESCE_BYTES_MAX {
            run.extend_from_slice(bytes);
            continue;
        }
        if !run.is_empty() {
            file.write_at(&run, run_at)?;
            run.clear();
        }
        if bytes.len() >= COALESCE_BYTES_MAX {
            file.write_at(bytes, *offset)?;
        } else {
            run_at = *offset;
            run.extend_from_slice(bytes);
        }
    }
    if !run.is_empty() {
        file.write_at(&run, run_at)?;
    }
    Ok(())
}

/// io_uring with a pool of registered buffers: each frame is copied into a free buffer and
/// written with WRITE_FIXED; up to [`URING_BUFFERS`] writes are in flight.
struct UringWriter {
    ring: io_uring::IoUring,
    fd: i32,
    buffers: Vec<Vec<u8>>,
    registered: bool,
}

impl UringWriter {
    fn new(file: &File) -> io::Result<UringWriter> {
        let ring = io_uring::IoUring::new((URING_BUFFERS * 2) as u32)?;
        let mut buffers: Vec<Vec<u8>> = (0..URING_BUFFERS)
            .map(|_| vec![0u8; URING_BUFFER_BYTES])
            .collect();
        let iovecs: Vec<libc::iovec> = buffers
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: the buffers live as long as the ring (both are fields of this struct, and
        // the ring is dropped first, unregistering them); they are never reallocated.
        let registered = unsafe { ring.submitter().register_buffers(&iovecs) }.is_ok();
        let mut w = UringWriter {
            ring,
            fd: file.as_raw_fd(),
            buffers,
            registered,
        };
        // Prove the ring works on this kernel before relying on it: a zero-length write.
        w.write_all(&[(0, Arc::new(Vec::new()))])?;
        Ok(w)
    }

    /// Writes every frame at its offset; returns when all are written.
    fn write_all(&mut self, frames: &[(u64, Arc<Vec<u8>>)]) -> io::Result<()> {
        // Work items: (offset, source frame, start within it).
        let mut queue: std::collections::VecDeque<(u64, usize, usize)> =
            (0..frames.len()).map(|i| (frames[i].0, i, 0)).collect();
        let mut free: Vec<usize> = (0..self.buffers.len()).collect();
        let mut in_flight = 0usize;
        while !queue.is_empty() || in_flight > 0 {
            while let (Some(&(offset, fi, start)), Some(&buf)) = (queue.front(), free.last()) {
                let src = &frames[fi].1[start..];
                let n = src.len().min(URING_BUFFER_BYTES);
                self.buffers[buf][..n].copy_from_slice(&src[..n]);
                let ptr = self.buffers[buf].as_ptr();
                let entry = if self.registered {
                    io_uring::opcode::WriteFixed::new(
                        io_uring::types::Fd(self.fd),
                        ptr,
                        n as u32,
                        buf as u16,
                    )
                    .offset(offset)
                    .build()
                } else {
                    io_uring::opcode::Write::new(io_uring::types::Fd(self.fd), ptr, n as u32)
                        .offset(offset)
                        .build()
                };
                // user_data: buffer, frame, start, length — to resubmit short writes.
                let tag = ((buf as u64) << 56) | ((fi as u64) << 32) | (start as u64);
                // SAFETY: the buffer stays untouched (not in `free`) until its completion is
                // reaped below, and the fd outlives the ring's use in this call.
                let pushed = unsafe { self.ring.submission().push(&entry.user_data(tag)) };
                if pushed.is_err() {
                    break;
                }
                queue.pop_front();
                free.pop();
                in_flight += 1;
                if n < src.len() {
                    queue.push_front((offset + n as u64, fi, start + n));
                }
            }
            self.ring.submit_and_wait(1)?;
            let done: Vec<(u64, i32)> = self
                .ring
                .completion()
                .map(|c| (c.user_data(), c.result()))
                .collect();
            for (tag, res) in done {
                in_flight -= 1;
                let buf = (tag >> 56) as usize;
                let fi = ((tag >> 32) & 0xff_ffff) as usize;
                let start = (tag & 0xffff_ffff) as usize;
                free.push(buf);
                if res < 0 {
                    return Err(io::Error::from_raw_os_error(-res));
                }
                let frame = &frames[fi].1;
                let want = (frame.len() - start).min(URING_BUFFER_BYTES);
                let wrote = res as usize;
                if wrote < want {
                    if wrote == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::WriteZero,
                            "io_uring wrote 0 bytes",
                        ));
                    }
                    // A short write: the rest goes again, from the frame.
                    queue.push_back((frames[fi].0 + (start + wrote) as u64, fi, start + wrote));
                }
            }
        }
        Ok(())
    }
}

impl Drop for UringWriter {
    fn drop(&mut self) {
        if self.registered {
            let _ = self.ring.submitter().unregister_buffers();
        }
    }
}
