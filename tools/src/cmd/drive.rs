//! `etch drive …`: DLFS drives from the command line (docs/DLFS.md) — the same drives the
//! shell's `ls`, `put`, `read-file` … see, on the same store with the same node key.

use super::iso_time;
use super::shell::{open_node, Need, StoreTarget};
use etch_engine::dlfs::crypt::ContentKey;
use etch_engine::dlfs::host::{self, PutOptions, TransferError};
use etch_engine::dlfs::{self, DlfsError, DlfsUri, DrivePath, StatKind};
use etch_engine::lattice::did_key_public_key;
use etch_engine::node::{LocalNode, NodeError};
use etch_engine::store::CellStore;
use etch_formats::text::print;
use etch_formats::text::read::read_one;
use etch_formats::{Cell, Kind, Resolver};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `etch drive`.
#[derive(clap::Args)]
#[command(
    long_about = "Works with DLFS drives (the Data Lattice File System, docs/DLFS.md): \
directory trees of files stored as lattice values under [:fs owner :value drive], signed by \
the owner's key, merged with other replicas by last-writer-wins per node.\n\n\
A location is `drive/path/in/drive` in the drives of the node's own key (node.key in the Etch \
directory, as in the shell), or another owner's with --owner, or a URI \
`dlfs:OWNER/drive/path`, `dlfs:local:OWNER/drive/path`, `dlfs://host/OWNER/drive/path` where \
OWNER is a did:key or a 32-byte hex key. Every command takes the store options of `etch eval` \
(--store, default: the shell's default store), so `etch drive` and the shell see the same \
drives.\n\n\
Examples:\n  etch drive mkdrive home\n  etch drive import ~/Documents home/docs\n  \
etch drive ls home/docs\n  etch drive put --encrypt secret.pdf home/private.pdf\n  \
etch drive cat home/private.pdf > out.pdf\n  etch drive export home/docs /tmp/docs-copy"
)]
pub struct DriveArgs {
    #[command(subcommand)]
    what: DriveCommand,
}

#[derive(clap::Subcommand)]
enum DriveCommand {
    /// List the owner's drives.
    Drives(Common),
    /// Create an empty drive.
    Mkdrive(NameArgs),
    /// List a directory: kind, size, update time, name.
    Ls(LocArgs),
    /// Show a file's or directory's kind, size, update time, hash and metadata.
    Stat(LocArgs),
    /// Create a directory (its parent must exist).
    Mkdir(LocArgs),
    /// Store a host file (or stdin, `-`) as a file of a drive.
    ///
    /// The file is streamed in constant memory: cut into 4096-byte chunks, hashed on every
    /// core, stored once per distinct chunk. An existing file is replaced (its metadata kept);
    /// the parent directory must exist. With --encrypt the contents are encrypted with the
    /// owner's content key first (docs/DLFS.md, "Private files").
    Put(PutArgs),
    /// Write a file's contents to stdout (decrypting a private file).
    ///
    /// A private file is decrypted with the content key of the node key (or of --key-file); a
    /// wrong key, or stored bytes that were altered, stop with an error before or at the
    /// damaged 64 KiB segment.
    Cat(LocArgs),
    /// Delete a file or an empty directory (leaves a tombstone that replicates).
    Rm(LocArgs),
    /// Move or rename a file or directory within its drive.
    ///
    /// Leaves a tombstone at the old place and puts the node at the new one with the write
    /// time, so the move replicates as a delete plus a create. The target must not exist.
    Mv(MvArgs),
    /// Show a node's metadata, or set one key of it.
    Meta(MetaArgs),
    /// Import a host folder tree into a drive (a sync: unchanged files stay as they are).
    ///
    /// Files are stored on every core; identical files and chunks are stored once. A file whose
    /// contents equal the drive's keeps its node (time and hash); entries the drive has and the
    /// host lacks are kept. Symbolic links and special files are skipped and listed. A file or
    /// folder whose name a drive cannot hold as given (not UTF-8, not a valid name, or the same
    /// first 32 bytes as another name in its folder: DLFS tells names apart by those) is not
    /// imported: each is listed with why, the rest is imported, and the exit status is 1.
    /// Prints bytes read against bytes newly stored. One commit at the end.
    Import(ImportArgs),
    /// Export a drive directory to a new host folder, byte for byte.
    ///
    /// The folder must not exist or be empty: nothing on the host is overwritten. Private
    /// files are decrypted with the owner's key.
    Export(ExportArgs),
    /// Remove tombstones older than a retention period (tombstone expiry).
    ///
    /// Deletions are kept as tombstones so that they replicate. Purging one older than DAYS is
    /// safe only if every replica has synced since: a replica still holding an older live
    /// version would bring the name back (the spec recommends 30 days or more).
    Purge(PurgeArgs),
    /// Measure put/cat throughput next to the raw disk and SHA3 on this machine.
    ///
    /// Writes N MiB of generated data to a host file, then times, on the same bytes: a raw
    /// write + fdatasync, SHA3-256 on one and on all cores, put into a new store with a
    /// durable commit, cat back to a file, and an encrypted put. Prints MB/s per step.
    Bench(BenchArgs),
}

/// Options every drive command takes.
#[derive(clap::Args, Clone)]
struct Common {
    #[command(flatten)]
    target: StoreTarget,
    /// The drives' owner: a did:key or a 32-byte key in hex (default: the node's own key).
    #[arg(long)]
    owner: Option<String>,
    /// Key for private files: a file holding a 32-byte Ed25519 seed (like node.key) whose
    /// content key is used. Default: the node key.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
}

#[derive(clap::Args)]
struct NameArgs {
    /// The drive name.
    name: String,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct LocArgs {
    /// The location: drive/path, or a dlfs: URI.
    loc: String,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct PutArgs {
    /// The host file (`-`: standard input).
    file: PathBuf,
    /// The location of the file in the drive.
    loc: String,
    /// Encrypt the contents with the owner's content key before they are stored.
    #[arg(long)]
    encrypt: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct MvArgs {
    /// What to move.
    from: String,
    /// Where to (in the same drive; must not exist).
    to: String,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct MetaArgs {
    /// The file or directory.
    loc: String,
    /// A metadata key (a keyword, without the colon) to set.
    key: Option<String>,
    /// The value to give it, as Convex-Lisp text (`"text/plain"`, `42`, `nil` removes it).
    value: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct ImportArgs {
    /// The host folder.
    dir: PathBuf,
    /// The drive (created if missing) or a directory in it (created if missing; its parent
    /// must exist).
    loc: String,
    /// Encrypt every file with the owner's content key.
    #[arg(long)]
    encrypt: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// The drive or a directory in it.
    loc: String,
    /// The host folder to create (it must not exist, or be empty).
    dir: PathBuf,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct PurgeArgs {
    /// The drive.
    drive: String,
    /// Remove tombstones older than this many days (the spec recommends at least 30).
    #[arg(long, value_name = "DAYS")]
    older_than: f64,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// MiB of data to put.
    #[arg(long, default_value_t = 1024)]
    mib: usize,
    /// Where to work: a new directory `etch-drive-bench-<pid>` is made in it for the data and
    /// the stores, and removed afterwards. Default: the current directory.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Runs `etch drive`.
pub fn run(args: DriveArgs) -> io::Result<ExitCode> {
    let result = match args.what {
        DriveCommand::Bench(b) => return bench(b),
        DriveCommand::Drives(c) => with_node(&c, Need::Read, drives),
        DriveCommand::Mkdrive(a) => with_node(&a.common, Need::Write, |s| mkdrive(s, &a.name)),
        DriveCommand::Ls(a) => with_node(&a.common, Need::Read, |s| ls(s, &a.loc)),
        DriveCommand::Stat(a) => with_node(&a.common, Need::Read, |s| stat(s, &a.loc)),
        DriveCommand::Mkdir(a) => with_node(&a.common, Need::Write, |s| mkdir(s, &a.loc)),
        DriveCommand::Put(a) => with_node(&a.common, Need::Write, |s| {
            put(s, &a.file, &a.loc, a.encrypt)
        }),
        DriveCommand::Cat(a) => with_node(&a.common, Need::Read, |s| cat(s, &a.loc)),
        DriveCommand::Rm(a) => with_node(&a.common, Need::Write, |s| rm(s, &a.loc)),
        DriveCommand::Mv(a) => with_node(&a.common, Need::Write, |s| mv(s, &a.from, &a.to)),
        DriveCommand::Meta(a) => {
            let need = if a.value.is_some() {
                Need::Write
            } else {
                Need::Read
            };
            with_node(&a.common, need, |s| {
                meta(s, &a.loc, a.key.as_deref(), a.value.as_deref())
            })
        }
        DriveCommand::Import(a) => with_node(&a.common, Need::Write, |s| {
            import(s, &a.dir, &a.loc, a.encrypt)
        }),
        DriveCommand::Export(a) => with_node(&a.common, Need::Read, |s| export(s, &a.loc, &a.dir)),
        DriveCommand::Purge(a) => {
            with_node(&a.common, Need::Write, |s| purge(s, &a.drive, a.older_than))
        }
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            eprintln!("etch: {e}");
            Ok(ExitCode::from(super::EXIT_USAGE))
        }
        Err(e) => {
            eprintln!("etch: {e}");
            Ok(ExitCode::from(super::EXIT_FAILED))
        }
    }
}

/// The opened store and node with the options of one command.
struct Session {
    store: Arc<dyn CellStore>,
    node: Arc<LocalNode>,
    owner_arg: Option<String>,
    key_file: Option<PathBuf>,
}

fn with_node(c: &Common, need: Need, f: impl FnOnce(&Session) -> io::Result<()>) -> io::Result<()> {
    if let Some(addr) = &c.target.connect {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "--connect {addr}: etch drive works on a store (--store PATH), not on a running \
                 node; reach a node's drives over HTTP (WebDAV at http://HOST:PORT/dlfs/ with \
                 etch serve --http, e.g. rclone or curl), over MCP, or with queries: etch eval \
                 --connect {addr} '(ls \"drive/path\")'"
            ),
        ));
    }
    let path = match &c.target.store {
        Some(p) => p.clone(),
        None => etch_shell::paths::default_store()?,
    };
    let super::shell::Opened { store, node, .. } =
        open_node(&path, &c.target, need).map_err(io::Error::other)?;
    f(&Session {
        store,
        node,
        owner_arg: c.owner.clone(),
        key_file: c.key_file.clone(),
    })
}

fn err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn node_err(e: NodeError) -> io::Error {
    err(e)
}

/// An owner written as a did:key or a 32-byte hex key (with or without `0x`).
fn parse_owner(text: &str) -> io::Result<Cell> {
    if let Some(pk) = did_key_public_key(text) {
        return Ok(Cell::blob(&pk));
    }
    let hex_text = text.strip_prefix("0x").unwrap_or(text);
    match hex::decode(hex_text) {
        Ok(b) if b.len() == 32 => Ok(Cell::blob(&b)),
        _ => Err(err(format!(
            "cannot resolve owner {text:?}: give a did:key or a 32-byte key in hex (user names \
need CNS, which this node does not have)"
        ))),
    }
}

impl Session {
    fn r(&self) -> &dyn Resolver {
        self.store.as_ref()
    }

    fn default_owner(&self) -> io::Result<Cell> {
        match &self.owner_arg {
            Some(o) => parse_owner(o),
            None => match self.node.public_key() {
                Some(pk) => Ok(Cell::blob(&pk)),
                None => Err(err("no node key, so no default owner: give --owner")),
            },
        }
    }

    /// A location argument: the owner and the path in the owner's drives.
    fn location(&self, text: &str) -> io::Result<(Cell, DrivePath)> {
        match DlfsUri::parse(text) {
            Some(Ok(uri)) => {
                if uri.host.is_some() {
                    return Err(err(format!(
                        "{text}: a URI with a host names a remote drive; this command works on \
the local store (replicate the drive with `etch serve` first)"
                    )));
                }
                Ok((parse_owner(&uri.owner)?, uri.location))
            }
            Some(Err(e)) => Err(err(e)),
            None => Ok((self.default_owner()?, DrivePath::parse(text).map_err(err)?)),
        }
    }

    fn drive(&self, owner: &Cell, name: &str) -> io::Result<Cell> {
        self.node.drive(owner, name).map_err(node_err)
    }

    fn content_key(&self) -> io::Result<ContentKey> {
        let seed: [u8; 32] = match &self.key_file {
            Some(f) => {
                let b = std::fs::read(f).map_err(|e| err(format!("{}: {e}", f.display())))?;
                b.try_into()
                    .map_err(|_| err(format!("{}: a key file holds 32 bytes", f.display())))?
            }
            None => match self.node.signing_key() {
                Some(k) => k.to_bytes(),
                None => return Err(err("no node key for private files: give --key-file")),
            },
        };
        Ok(ContentKey::from_owner_seed(&seed))
    }

    /// Writes drive `name` of `owner` with `edit` (signed and committed by the node); returns
    /// the new drive value.
    fn write(
        &self,
        owner: &Cell,
        name: &str,
        edit: impl FnOnce(&Cell, i64, &dyn Resolver) -> Result<Cell, DlfsError>,
    ) -> io::Result<Cell> {
        let d = self.node.write_drive(owner, name, edit).map_err(node_err)?;
        Ok(d)
    }
}

fn drives(s: &Session) -> io::Result<()> {
    let owner = s.default_owner()?;
    let mut out = io::stdout().lock();
    for n in s.node.drive_names(&owner).map_err(node_err)? {
        writeln!(out, "{n}")?;
    }
    Ok(())
}

fn mkdrive(s: &Session, name: &str) -> io::Result<()> {
    let (owner, p) = s.location(name)?;
    if !p.path.is_empty() {
        return Err(err(DlfsError::InvalidDriveName(name.to_string())));
    }
    let d = s.write(&owner, &p.drive, |cur, _, _| dlfs::mkdrive(cur, &p.drive))?;
    println!("{}", d.id().to_hex());
    Ok(())
}

fn kind_char(k: StatKind) -> char {
    match k {
        StatKind::File => '-',
        StatKind::Directory => 'd',
    }
}

fn ls(s: &Session, loc: &str) -> io::Result<()> {
    let (owner, p) = s.location(loc)?;
    let d = s.drive(&owner, &p.drive)?;
    let entries = dlfs::ls_long(&d, &p, s.r()).map_err(err)?;
    let mut out = io::stdout().lock();
    for (name, st) in entries {
        let enc = host::is_encrypted(&st.metadata, s.r()).map_err(err)?;
        let size = if enc {
            etch_engine::dlfs::crypt::plaintext_len(st.size).unwrap_or(st.size)
        } else {
            st.size
        };
        let mark = if enc { "  (encrypted)" } else { "" };
        writeln!(
            out,
            "{} {:>14} {} {name}{}{mark}",
            kind_char(st.kind),
            size,
            iso_time(st.utime),
            if st.kind == StatKind::Directory {
                "/"
            } else {
                ""
            },
        )?;
    }
    Ok(())
}

fn stat(s: &Session, loc: &str) -> io::Result<()> {
    let (owner, p) = s.location(loc)?;
    let d = s.drive(&owner, &p.drive)?;
    let st = dlfs::stat(&d, &p, s.r()).map_err(err)?;
    let kind = match st.kind {
        StatKind::File => "file",
        StatKind::Directory => "directory",
    };
    let mut out = io::stdout().lock();
    writeln!(out, "type      {kind}")?;
    match st.kind {
        StatKind::File => {
            writeln!(out, "size      {} bytes stored", st.size)?;
            if host::is_encrypted(&st.metadata, s.r()).map_err(err)? {
                let plain = etch_engine::dlfs::crypt::plaintext_len(st.size).unwrap_or(0);
                writeln!(out, "encrypted {plain} bytes of contents")?;
            }
        }
        StatKind::Directory => writeln!(out, "entries   {}", st.size)?,
    }
    writeln!(out, "utime     {} ({})", st.utime, iso_time(st.utime))?;
    writeln!(out, "hash      {}", st.hash.to_hex())?;
    writeln!(
        out,
        "metadata  {}",
        print(&st.metadata, s.r()).map_err(err)?
    )?;
    Ok(())
}

fn mkdir(s: &Session, loc: &str) -> io::Result<()> {
    let (owner, p) = s.location(loc)?;
    let d = s.write(&owner, &p.drive, |cur, now, r| dlfs::mkdir(cur, &p, now, r))?;
    println!("{}", d.id().to_hex());
    Ok(())
}

fn rm(s: &Session, loc: &str) -> io::Result<()> {
    let (owner, p) = s.location(loc)?;
    let d = s.write(&owner, &p.drive, |cur, now, r| dlfs::rm(cur, &p, now, r))?;
    println!("{}", d.id().to_hex());
    Ok(())
}

fn mv(s: &Session, from: &str, to: &str) -> io::Result<()> {
    let (owner, pf) = s.location(from)?;
    let (owner2, pt) = s.location(to)?;
    if owner != owner2 {
        return Err(err("a move stays within one owner's drive"));
    }
    let d = s.write(&owner, &pf.drive, |cur, now, r| {
        dlfs::mv(cur, &pf, &pt, now, r)
    })?;
    println!("{}", d.id().to_hex());
    Ok(())
}

fn meta(s: &Session, loc: &str, key: Option<&str>, value: Option<&str>) -> io::Result<()> {
    let (owner, p) = s.location(loc)?;
    let Some(key) = key else {
        let d = s.drive(&owner, &p.drive)?;
        let st = dlfs::stat(&d, &p, s.r()).map_err(err)?;
        println!("{}", print(&st.metadata, s.r()).map_err(err)?);
        return Ok(());
    };
    let Some(value) = value else {
        return Err(err(
            "give the value to set (Convex-Lisp text; nil removes the key)",
        ));
    };
    let k = Cell::keyword(key.trim_start_matches(':')).map_err(err)?;
    let v = read_one(value).map_err(|e| err(format!("value {value:?}: {e}")))?;
    if k == etch_engine::dlfs::host::encryption_marker_key() {
        return Err(err(":encrypted is set by put --encrypt only"));
    }
    let d = s.write(&owner, &p.drive, |cur, now, r| {
        let old = dlfs::stat(cur, &p, r)?.metadata;
        let mut entries = Vec::new();
        match old.kind() {
            Kind::Nil => {}
            Kind::Map => {
                etch_formats::value::for_each_entry(&old, r, &mut |k, v| {
                    entries.push((k, v.unwrap_or_else(Cell::nil)));
                    Ok(())
                })?;
            }
            _ => {
                return Err(DlfsError::Malformed(format!(
                    "{}: its metadata is not a map",
                    p.text
                )))
            }
        }
        entries.retain(|(ek, _)| *ek != k);
        if !v.is_nil() {
            entries.push((k.clone(), v.clone()));
        }
        let new = if entries.is_empty() {
            Cell::nil()
        } else {
            Cell::map(entries)
        };
        dlfs::set_metadata(cur, &p, new, now, r)
    })?;
    println!("{}", d.id().to_hex());
    Ok(())
}

fn bytes_bar(total: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(total);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:40}}] {{bytes}}/{{total_bytes}} {{bytes_per_sec}} eta {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// Runs a drive write whose work may fail with a [`TransferError`]: the error is carried out
/// of the edit (which can only return a [`DlfsError`]) and reported as it is.
fn write_transfer<T>(
    s: &Session,
    owner: &Cell,
    drive: &str,
    work: impl FnOnce(&Cell, i64, &dyn Resolver) -> Result<(Cell, T), TransferError>,
) -> io::Result<(Cell, T)> {
    let mut failure: Option<TransferError> = None;
    let mut result: Option<T> = None;
    let written = s
        .node
        .write_drive(owner, drive, |cur, now, r| match work(cur, now, r) {
            Ok((d, t)) => {
                result = Some(t);
                Ok(d)
            }
            Err(TransferError::Dlfs(e)) => Err(e),
            Err(e) => {
                failure = Some(e);
                Err(DlfsError::InvalidPath(String::new()))
            }
        });
    match (written, failure, result) {
        (_, Some(e), _) => Err(err(e)),
        (Ok(d), None, Some(t)) => Ok((d, t)),
        (Err(e), None, _) => Err(node_err(e)),
        (Ok(_), None, None) => Err(err("the write did not run")),
    }
}

fn put(s: &Session, file: &Path, loc: &str, encrypt: bool) -> io::Result<()> {
    let (owner, p) = s.location(loc)?;
    let key = encrypt.then(|| s.content_key()).transpose()?;
    let options = PutOptions {
        encrypt: key.as_ref(),
    };
    let started = Instant::now();
    let stdin = file == Path::new("-");
    let total = if stdin {
        0
    } else {
        std::fs::metadata(file)
            .map_err(|e| err(format!("{}: {e}", file.display())))?
            .len()
    };
    let bar = if stdin {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template("put {spinner} {bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b
    } else {
        bytes_bar(total, "put")
    };
    let store = s.store.clone();
    let (_, n) =
        write_transfer(s, &owner, &p.drive, |cur, now, r| {
            let mut reader: Box<dyn io::Read> = if stdin {
                Box::new(io::stdin().lock())
            } else {
                Box::new(std::fs::File::open(file).map_err(|e| TransferError::Host {
                    path: file.to_path_buf(),
                    source: e,
                })?)
            };
            let mut counted = bar.wrap_read(&mut reader);
            let (blob, meta, n) = host::store_contents(store.as_ref(), &mut counted, options)
                .map_err(|e| TransferError::Host {
                    path: file.to_path_buf(),
                    source: e,
                })?;
            let d = dlfs::put(cur, &p, blob, now, r)?;
            let d = if meta.is_nil() && !was_encrypted(cur, &p, r)? {
                d
            } else {
                // An encrypted file carries its marker; a plain one written over an encrypted
                // one loses it.
                let t = dlfs::stat(&d, &p, r)?.utime;
                dlfs::set_metadata(&d, &p, meta, t, r)?
            };
            Ok((d, n))
        })?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "put {} bytes to {}{} in {:.2} s ({:.1} MB/s)",
        n,
        p.normalised(),
        if encrypt { " (encrypted)" } else { "" },
        secs,
        n as f64 / 1e6 / secs.max(1e-9)
    );
    Ok(())
}

fn was_encrypted(drive: &Cell, p: &DrivePath, r: &dyn Resolver) -> Result<bool, DlfsError> {
    match dlfs::stat(drive, p, r) {
        Ok(st) => Ok(host::is_encrypted(&st.metadata, r)?),
        Err(DlfsError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

fn cat(s: &Session, loc: &str) -> io::Result<()> {
    let (owner, p) = s.location(loc)?;
    let d = s.drive(&owner, &p.drive)?;
    let Some(n) = dlfs::find(&d, &p.path, s.r()).map_err(err)? else {
        return Err(err(DlfsError::NotFound(p.text.clone())));
    };
    let key = s.content_key().ok();
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 20, stdout.lock());
    match host::copy_file_to(
        &n,
        &p.text,
        key.as_ref(),
        s.r(),
        &mut out,
        Path::new("stdout"),
    ) {
        Ok(_) => out.flush(),
        Err(TransferError::Host { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => {
            Ok(())
        }
        Err(e) => Err(err(e)),
    }
}

fn import(s: &Session, dir: &Path, loc: &str, encrypt: bool) -> io::Result<()> {
    let (owner, p) = s.location(loc)?;
    let key = encrypt.then(|| s.content_key()).transpose()?;
    let options = PutOptions {
        encrypt: key.as_ref(),
    };
    let started = Instant::now();
    let (tree, scan) = host::scan_host(dir).map_err(err)?;
    for (path, why) in &scan.skipped {
        eprintln!("etch: skipped {}: {why}", path.display());
    }
    for (path, why) in &scan.refused {
        eprintln!("etch: not imported: {}: {why}", path.display());
    }
    let before = s.store.stats().map_err(err)?.encoding_bytes;
    let bar = bytes_bar(scan.bytes, "import");
    let store = s.store.clone();
    let on_bytes = |n: u64| bar.inc(n);
    let (_, report) = write_transfer(s, &owner, &p.drive, |cur, now, _| {
        host::import_tree(store.as_ref(), cur, &p, &tree, now, options, &on_bytes)
    })?;
    bar.finish_and_clear();
    let written = s.store.stats().map_err(err)?.encoding_bytes - before;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "imported {} files, {} directories into {}: {} bytes read, {} bytes newly stored \
({:.1}%), {} files unchanged, {} skipped, {:.2} s ({:.1} MB/s)",
        report.files,
        scan.directories,
        p.normalised(),
        report.bytes_read,
        written,
        100.0 * written as f64 / (report.bytes_read.max(1)) as f64,
        report.files_unchanged,
        scan.skipped.len(),
        secs,
        report.bytes_read as f64 / 1e6 / secs.max(1e-9)
    );
    for (at, why) in &report.refused {
        eprintln!("etch: not imported: {at}: {why}");
    }
    let refused = scan.refused.len() + report.refused.len();
    if refused > 0 {
        return Err(io::Error::other(format!(
            "{refused} files or folders were not imported (listed above: rename them and \
             import again); everything else was imported and committed"
        )));
    }
    Ok(())
}

fn export(s: &Session, loc: &str, dir: &Path) -> io::Result<()> {
    let (owner, p) = s.location(loc)?;
    let d = s.drive(&owner, &p.drive)?;
    if d.is_nil() {
        return Err(err(DlfsError::NotFound(p.text.clone())));
    }
    let key = s.content_key().ok();
    let started = Instant::now();
    let top = dlfs::find(&d, &p.path, s.r())
        .map_err(err)?
        .ok_or_else(|| err(DlfsError::NotFound(p.text.clone())))?;
    let (_, stored) = host::tree_size(&top, s.r()).map_err(err)?;
    let bar = bytes_bar(stored, "export");
    let on_bytes = |n: u64| bar.inc(n);
    let report =
        host::export_tree(&d, &p, dir, key.as_ref(), s.store.as_ref(), &on_bytes).map_err(err)?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "exported {} files, {} directories, {} bytes to {} in {:.2} s ({:.1} MB/s)",
        report.files,
        report.directories,
        report.bytes,
        dir.display(),
        secs,
        report.bytes as f64 / 1e6 / secs.max(1e-9)
    );
    Ok(())
}

fn purge(s: &Session, drive: &str, days: f64) -> io::Result<()> {
    if !(days.is_finite() && days >= 0.0) {
        return Err(err("--older-than takes a number of days, 0 or more"));
    }
    let (owner, p) = s.location(drive)?;
    if !p.path.is_empty() {
        return Err(err("purge works on a whole drive: give its name"));
    }
    let mut removed = 0;
    // The cast saturates for absurd day counts; the subtraction must too.
    let cutoff_of = |now: i64| now.saturating_sub((days * 86_400_000.0) as i64);
    s.write(&owner, &p.drive, |cur, now, r| {
        if cur.is_nil() {
            return Err(DlfsError::NotFound(p.text.clone()));
        }
        let (d, n) = dlfs::purge_tombstones(cur, cutoff_of(now), r)?;
        removed = n.tombstones;
        Ok(d)
    })?;
    println!(
        "removed {removed} tombstones older than {days} days from {}",
        p.drive
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bench
// ---------------------------------------------------------------------------------------------

fn bench(args: BenchArgs) -> io::Result<ExitCode> {
    use etch_engine::store::{NativeOptions, NativeStore};
    use etch_formats::gen::SplitMix64;
    use rayon::prelude::*;
    use sha3::{Digest, Sha3_256};

    // Always a new directory of our own, removed afterwards.
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("."))
        .join(format!("etch-drive-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _cleanup = RemoveOnDrop(dir.clone());
    let n = args.mib << 20;
    // Incompressible, deterministic data; generated before any clock starts.
    let source = dir.join("source.bin");
    {
        let mut f = io::BufWriter::with_capacity(8 << 20, std::fs::File::create(&source)?);
        let mut g = SplitMix64(42);
        let mut left = n;
        while left > 0 {
            let k = left.min(8 << 20);
            f.write_all(&g.bytes(k))?;
            left -= k;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    let mb = n as f64 / 1e6;
    let rate = |secs: f64| mb / secs.max(1e-9);
    println!(
        "etch drive bench: {} MiB, {} threads, in {}",
        args.mib,
        rayon::current_num_threads(),
        dir.display()
    );
    let data = std::fs::read(&source)?;

    // Raw disk: the same bytes, 8 MiB writes, one fdatasync at the end.
    let t = Instant::now();
    {
        let mut f = std::fs::File::create(dir.join("raw.bin"))?;
        for chunk in data.chunks(8 << 20) {
            f.write_all(chunk)?;
        }
        f.sync_data()?;
    }
    let raw = t.elapsed().as_secs_f64();
    std::fs::remove_file(dir.join("raw.bin"))?;

    // SHA3-256 of the bytes: one stream on one core, and 4 KiB chunks on every core.
    let t = Instant::now();
    let mut h = Sha3_256::new();
    h.update(&data);
    let _ = h.finalize();
    let sha_one = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let _: Vec<[u8; 32]> = data
        .par_chunks(4096)
        .map(|c| Sha3_256::digest(c).into())
        .collect();
    let sha_all = t.elapsed().as_secs_f64();
    drop(data);

    let options = NativeOptions::default();
    let mut put_secs = Vec::new();
    for (label, encrypt) in [("put", false), ("put --encrypt", true)] {
        let store_dir = dir.join(format!("store-{}", put_secs.len()));
        let store: Arc<dyn CellStore> =
            Arc::new(NativeStore::create(&store_dir, options.clone()).map_err(err)?);
        let key = ContentKey::from_owner_seed(&[7; 32]);
        let t = Instant::now();
        let mut f = std::fs::File::open(&source)?;
        let (blob, _, len) = host::store_contents(
            store.as_ref(),
            &mut f,
            PutOptions {
                encrypt: encrypt.then_some(&key),
            },
        )?;
        store.set_root(&blob).map_err(err)?;
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(len as usize, n);
        put_secs.push((label, secs));
        if !encrypt {
            // cat: read the Blob back to a file, fdatasync.
            let t = Instant::now();
            let mut out =
                io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("cat.bin"))?);
            etch_engine::dlfs::blob::write_blob(&blob, store.as_ref(), &mut out, &mut |_| {})
                .map_err(err)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_data()?;
            put_secs.push(("cat (to a file, fdatasync)", t.elapsed().as_secs_f64()));
            std::fs::remove_file(dir.join("cat.bin"))?;
        }
        drop(store);
        std::fs::remove_dir_all(&store_dir)?;
    }
    println!("{:<34} {:>9} {:>10}", "step", "seconds", "MB/s");
    let line = |what: &str, secs: f64| println!("{what:<34} {secs:>9.2} {:>10.1}", rate(secs));
    line("raw write + fdatasync", raw);
    line("SHA3-256, one core", sha_one);
    line("SHA3-256 of 4 KiB chunks, all cores", sha_all);
    for (what, secs) in put_secs {
        line(what, secs);
    }
    Ok(ExitCode::SUCCESS)
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
