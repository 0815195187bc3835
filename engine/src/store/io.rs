//! The I/O seam under both stores (../shared/design.md, "crates and their seams"): every byte a
//! store reads from or writes to its record files (the native log and snapshots file, the
//! CAD047 file and its redo journal) passes through [`StorageFile`], opened through a [`Disk`].
//!
//! Production uses [`OsDisk`]: plain files, written with `pwrite` and made durable with
//! `fdatasync`; the native log's I/O thread may write the same file through io_uring instead,
//! using [`StorageFile::os_file`], and both stores memory-map what `os_file` exposes for reads.
//! Tests use [`sim::SimDisk`], a simulated disk that keeps what was written apart from what was
//! made durable and injects crashes, torn writes, `EIO` and `ENOSPC` at any numbered point.

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// One file of a store, addressed by offset.
// A file's length is asked for, never whether it is empty.
#[allow(clippy::len_without_is_empty)]
pub trait StorageFile: Send + Sync + Debug {
    /// Fills `buf` from `offset`; fails if the file ends first.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`, extending the file if needed. Not durable until
    /// [`StorageFile::sync`] returns.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Writes `buf` at the end of the file; returns the offset it was written at.
    fn append(&self, buf: &[u8]) -> io::Result<u64> {
        let at = self.len()?;
        self.write_at(buf, at)?;
        Ok(at)
    }
    /// Makes every write so far durable (`fdatasync`). After an error nothing is known about
    /// the writes since the last successful sync: a store must not retry, only reopen.
    fn sync(&self) -> io::Result<()>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// Cuts or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The operating-system file behind this one, for memory maps, locks and io_uring; `None`
    /// on a simulated disk, where every read goes through [`StorageFile::read_at`].
    fn os_file(&self) -> Option<&File> {
        None
    }
}

/// How [`Disk::open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// An existing file, read-only.
    Read,
    /// An existing file, for reading and writing.
    Write,
    /// For reading and writing, created empty if missing.
    Create,
    /// A new file, for reading and writing; fails if it exists.
    CreateNew,
}

/// Where a store's files live.
pub trait Disk: Send + Sync + Debug {
    /// Opens the file at `path`.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>>;
    /// True if a file exists at `path`.
    fn exists(&self, path: &Path) -> bool;
    /// Removes the file at `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
}

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsDisk;

/// The production disk, shared.
pub fn os_disk() -> Arc<dyn Disk> {
    Arc::new(OsDisk)
}

/// A file of the operating system.
#[derive(Debug)]
pub struct OsFile {
    file: File,
}

impl OsFile {
    /// Wraps an open file.
    pub fn new(file: File) -> OsFile {
        OsFile { file }
    }
}

impl StorageFile for OsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn os_file(&self) -> Option<&File> {
        Some(&self.file)
    }
}

impl Disk for OsDisk {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut o = OpenOptions::new();
        o.read(true);
        match mode {
            OpenMode::Read => {}
            OpenMode::Write => {
                o.write(true);
            }
            OpenMode::Create => {
                o.write(true).create(true).truncate(false);
            }
            OpenMode::CreateNew => {
                o.write(true).create_new(true);
            }
        }
        Ok(Arc::new(OsFile::new(o.open(path)?)))
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
}

pub mod sim {
    //! A simulated disk for crash-consistency tests, after redb's `StorageBackend` tests: each
    //! file has a *durable* image (what a power loss keeps) and the writes made since its last
    //! sync. Every `write_at`, `set_len` and `sync` is a numbered *point*; a [`Fault`] set at a
    //! point fires there. After a crash every call fails, as for a dead process; the images that
    //! survive are taken with [`SimDisk::after_process_crash`] (every returned write kept) and
    //! [`SimDisk::after_power_loss`] (only synced bytes, or any chosen subset of the writes
    //! since: pages reach the platter in any order). File creation and removal are durable at
    //! once (directory syncs are not modelled).

    use super::{Disk, OpenMode, StorageFile};
    use std::collections::BTreeMap;
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex, MutexGuard};

    /// What happens at a fault point.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Fault {
        /// The process dies before the operation takes effect.
        Crash,
        /// A write reaches the disk only up to this many bytes, then the process dies (a torn
        /// write). On other operations, as `Crash`.
        Torn(usize),
        /// The operation fails with `EIO`. A failed sync also loses the file's unsynced writes
        /// (as Linux may after writeback errors: the PostgreSQL "fsyncgate" lesson); the disk
        /// works again afterwards.
        Eio,
        /// A write or length change fails with `ENOSPC` and has no effect; later ones work.
        Enospc,
    }

    /// The kind of operation at a point.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Op {
        /// `write_at` (and `append`).
        Write,
        /// `set_len`.
        SetLen,
        /// `sync`.
        Sync,
    }

    #[derive(Debug, Clone, Default)]
    struct Image {
        durable: Vec<u8>,
        /// The durable image with `pending` applied: what reads see.
        written: Vec<u8>,
        /// Writes and length changes since the last sync, in order.
        pending: Vec<Pending>,
    }

    #[derive(Debug, Clone)]
    enum Pending {
        Write(u64, Vec<u8>),
        SetLen(u64),
    }

    fn apply(bytes: &mut Vec<u8>, p: &Pending) {
        match p {
            Pending::Write(at, b) => {
                let at = *at as usize;
                if bytes.len() < at + b.len() {
                    bytes.resize(at + b.len(), 0);
                }
                bytes[at..at + b.len()].copy_from_slice(b);
            }
            Pending::SetLen(n) => bytes.resize(*n as usize, 0),
        }
    }

    impl Image {
        fn push(&mut self, p: Pending) {
            apply(&mut self.written, &p);
            self.pending.push(p);
        }
    }

    /// One numbered operation.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Point {
        /// What it was.
        pub op: Op,
        /// On which file.
        pub path: PathBuf,
        /// Bytes written (writes), or the new length (`set_len`); 0 for syncs.
        pub bytes: u64,
    }

    #[derive(Debug, Default)]
    struct State {
        files: BTreeMap<PathBuf, Image>,
        points: Vec<Point>,
        fault: Option<(usize, Fault)>,
        crashed: bool,
    }

    /// A simulated disk (cheap to clone: clones share it).
    #[derive(Debug, Clone, Default)]
    pub struct SimDisk {
        state: Arc<Mutex<State>>,
    }

    fn crashed() -> io::Error {
        io::Error::other("simulated crash: the process is gone")
    }

    impl SimDisk {
        /// An empty disk.
        pub fn new() -> SimDisk {
            SimDisk::default()
        }

        fn lock(&self) -> MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(|p| p.into_inner())
        }

        /// Points so far, in order.
        pub fn points(&self) -> Vec<Point> {
            self.lock().points.clone()
        }

        /// Makes `fault` fire at point number `point` (counted from 0 on this disk).
        pub fn fail_at(&self, point: usize, fault: Fault) {
            self.lock().fault = Some((point, fault));
        }

        /// True once a crash fault fired.
        pub fn crashed(&self) -> bool {
            self.lock().crashed
        }

        /// Writes since the last sync, over all files: what [`SimDisk::after_power_loss`]
        /// chooses from.
        pub fn unsynced_writes(&self) -> usize {
            self.lock().files.values().map(|i| i.pending.len()).sum()
        }

        fn rebuilt(&self, keep: &mut dyn FnMut(usize) -> bool) -> SimDisk {
            let st = self.lock();
            let mut n = 0usize;
            let mut files = BTreeMap::new();
            for (path, img) in &st.files {
                let mut b = img.durable.clone();
                for p in &img.pending {
                    if keep(n) {
                        apply(&mut b, p);
                    }
                    n += 1;
                }
                files.insert(
                    path.clone(),
                    Image {
                        durable: b.clone(),
                        written: b,
                        pending: Vec::new(),
                    },
                );
            }
            SimDisk {
                state: Arc::new(Mutex::new(State {
                    files,
                    ..State::default()
                })),
            }
        }

        /// A new disk holding what a process crash leaves: every write that took effect.
        pub fn after_process_crash(&self) -> SimDisk {
            self.rebuilt(&mut |_| true)
        }

        /// A new disk holding what a power loss leaves: the durable images plus the unsynced
        /// writes for which `keep(n)` is true (`n` numbers them over all files, in order).
        pub fn after_power_loss(&self, keep: &mut dyn FnMut(usize) -> bool) -> SimDisk {
            self.rebuilt(keep)
        }

        /// The bytes of a file as written (durable or not), if it exists.
        pub fn written(&self, path: &Path) -> Option<Vec<u8>> {
            self.lock().files.get(path).map(|i| i.written.clone())
        }

        /// Runs one numbered operation: `Err` when a fault fires or the process is gone;
        /// otherwise `f` applies it.
        fn point(
            &self,
            op: Op,
            path: &Path,
            bytes: u64,
            f: &mut dyn FnMut(&mut Image, Option<Fault>) -> io::Result<()>,
        ) -> io::Result<()> {
            let mut st = self.lock();
            if st.crashed {
                return Err(crashed());
            }
            let n = st.points.len();
            st.points.push(Point {
                op,
                path: path.to_path_buf(),
                bytes,
            });
            let fault = st.fault.filter(|(at, _)| *at == n).map(|(_, f)| f);
            if matches!(fault, Some(Fault::Crash) | Some(Fault::Torn(_))) {
                st.crashed = true;
            }
            let img = st
                .files
                .get_mut(path)
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            f(img, fault)
        }
    }

    /// A file of a [`SimDisk`].
    #[derive(Debug)]
    struct SimFile {
        disk: SimDisk,
        path: PathBuf,
        writable: bool,
    }

    impl StorageFile for SimFile {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            let st = self.disk.lock();
            if st.crashed {
                return Err(crashed());
            }
            let img = st
                .files
                .get(&self.path)
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            let at = offset as usize;
            match img.written.get(at..at + buf.len()) {
                Some(b) => {
                    buf.copy_from_slice(b);
                    Ok(())
                }
                None => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            }
        }

        fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            if !self.writable {
                return Err(io::Error::from(io::ErrorKind::PermissionDenied));
            }
            self.disk.point(
                Op::Write,
                &self.path,
                buf.len() as u64,
                &mut |img, fault| match fault {
                    None => {
                        img.push(Pending::Write(offset, buf.to_vec()));
                        Ok(())
                    }
                    Some(Fault::Torn(n)) => {
                        let n = n.min(buf.len());
                        img.push(Pending::Write(offset, buf[..n].to_vec()));
                        Err(crashed())
                    }
                    Some(Fault::Crash) => Err(crashed()),
                    Some(Fault::Eio) => Err(io::Error::from_raw_os_error(libc::EIO)),
                    Some(Fault::Enospc) => Err(io::Error::from_raw_os_error(libc::ENOSPC)),
                },
            )
        }

        fn sync(&self) -> io::Result<()> {
            self.disk
                .point(Op::Sync, &self.path, 0, &mut |img, fault| match fault {
                    None => {
                        img.durable = img.written.clone();
                        img.pending.clear();
                        Ok(())
                    }
                    Some(Fault::Eio) => {
                        img.written = img.durable.clone();
                        img.pending.clear();
                        Err(io::Error::from_raw_os_error(libc::EIO))
                    }
                    Some(Fault::Enospc) => Err(io::Error::from_raw_os_error(libc::ENOSPC)),
                    Some(_) => Err(crashed()),
                })
        }

        fn len(&self) -> io::Result<u64> {
            let st = self.disk.lock();
            if st.crashed {
                return Err(crashed());
            }
            st.files
                .get(&self.path)
                .map(|i| i.written.len() as u64)
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }

        fn set_len(&self, len: u64) -> io::Result<()> {
            if !self.writable {
                return Err(io::Error::from(io::ErrorKind::PermissionDenied));
            }
            self.disk
                .point(Op::SetLen, &self.path, len, &mut |img, fault| match fault {
                    None => {
                        img.push(Pending::SetLen(len));
                        Ok(())
                    }
                    Some(Fault::Eio) => Err(io::Error::from_raw_os_error(libc::EIO)),
                    Some(Fault::Enospc) => Err(io::Error::from_raw_os_error(libc::ENOSPC)),
                    Some(_) => Err(crashed()),
                })
        }
    }

    impl Disk for SimDisk {
        fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
            let mut st = self.lock();
            if st.crashed {
                return Err(crashed());
            }
            let exists = st.files.contains_key(path);
            match mode {
                OpenMode::Read | OpenMode::Write if !exists => {
                    return Err(io::Error::from(io::ErrorKind::NotFound))
                }
                OpenMode::CreateNew if exists => {
                    return Err(io::Error::from(io::ErrorKind::AlreadyExists))
                }
                OpenMode::Create | OpenMode::CreateNew if !exists => {
                    st.files.insert(path.to_path_buf(), Image::default());
                }
                _ => {}
            }
            Ok(Arc::new(SimFile {
                disk: self.clone(),
                path: path.to_path_buf(),
                writable: mode != OpenMode::Read,
            }))
        }

        fn exists(&self, path: &Path) -> bool {
            self.lock().files.contains_key(path)
        }

        fn remove_file(&self, path: &Path) -> io::Result<()> {
            let mut st = self.lock();
            if st.crashed {
                return Err(crashed());
            }
            st.files
                .remove(path)
                .map(|_| ())
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
    }
}
