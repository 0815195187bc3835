//! `etch key`: the node key (Ed25519), which signs a node's drives and NodeInfo and proves its
//! identity to peers (CHALLENGE).

use ed25519_dalek::SigningKey;
use etch_engine::lattice::did_key;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `etch key`.
#[derive(clap::Args)]
#[command(
    long_about = "Creates or shows a node key: an Ed25519 key pair whose 32-byte seed is kept in a \
file (mode 0600). The public key is the node's identity: the default owner of its DLFS drives, \
the owner of its NodeInfo under [:p2p :nodes], and the key it proves to peers when challenged. \
The default file is node.key in the Etch directory ($ETCH_HOME, else $XDG_DATA_HOME/etch, else \
~/.local/share/etch), the key `etch shell`, `etch eval` and `etch serve` use.\n\n\
`etch key new` creates a key (refusing to replace an existing file unless --force) and prints \
it; `etch key show` prints the public key of an existing file, as 0x-hex and as a did:key.\n\n\
`etch key token --aud NODE-DID` prints a bearer token (an EdDSA JWT) of the key for a node's HTTP \
door (`Authorization: Bearer TOKEN`); `etch key grant --to DID --drive NAME` prints a UCAN that \
lets another identity use one of the key's drives (crud/read by default), for the `ucans` header \
of WebDAV requests or the `ucans` argument of MCP tools; --proof delegates further a grant the \
key received."
)]
pub struct KeyArgs {
    #[command(subcommand)]
    action: KeyAction,
}

#[derive(clap::Subcommand)]
enum KeyAction {
    /// Create a new key file and print its public key.
    New {
        /// The key file (default: node.key in the Etch directory).
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
        /// Replace an existing key file (its old identity is lost).
        #[arg(long)]
        force: bool,
    },
    /// Print the public key of a key file.
    Show {
        /// The key file (default: node.key in the Etch directory).
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
    },
    /// Print a bearer token (EdDSA JWT) of the key for a node's HTTP door.
    Token {
        /// The node's did:key (`etch key show` on the node, or its /status).
        #[arg(long, value_name = "DID")]
        aud: String,
        /// How long the token is valid, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
        ttl: i64,
        /// The key file (default: node.key in the Etch directory).
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
    },
    /// Print a UCAN granting another identity rights over one drive (or a path in it).
    Grant {
        /// The grantee's did:key.
        #[arg(long, value_name = "DID")]
        to: String,
        /// The drive, optionally with a path inside it (`docs` or `docs/public`).
        #[arg(long, value_name = "DRIVE[/PATH]")]
        drive: String,
        /// The ability: crud/read, crud/write, crud/delete, crud (all three) or *.
        #[arg(long, default_value = "crud/read")]
        can: String,
        /// The owner whose drive it is (default: the key's own did; give the owner's did when
        /// delegating further a grant received, with --proof).
        #[arg(long, value_name = "DID")]
        owner: Option<String>,
        /// How long the grant is valid, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 30 * 24 * 3600)]
        ttl: i64,
        /// A grant this key received that covers the new one (a UCAN JWT); repeatable.
        #[arg(long, value_name = "UCAN")]
        proof: Vec<String>,
        /// The key file (default: node.key in the Etch directory).
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
    },
}

/// The key of `key_file`, or of the Etch directory's node.key.
fn key_of(key_file: Option<PathBuf>) -> io::Result<SigningKey> {
    let path = match key_file {
        Some(p) => p,
        None => default_key_file()?,
    };
    read_key_file(&path)
}

fn did_arg(name: &str, did: &str) -> io::Result<()> {
    if etch_engine::lattice::did_key_public_key(did).is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name}: {did:?} is not an Ed25519 did:key (did:key:z6Mk…)"),
        ));
    }
    Ok(())
}

/// The default key file: node.key in the Etch directory.
pub fn default_key_file() -> io::Result<PathBuf> {
    etch_shell::paths::etch_home()
        .map(|h| h.join(etch_shell::paths::NODE_KEY_NAME))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no Etch directory: set ETCH_HOME or HOME",
            )
        })
}

/// Reads a key file: exactly 32 bytes (the seed).
pub fn read_key_file(path: &Path) -> io::Result<SigningKey> {
    let bytes = std::fs::read(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: a key file is 32 bytes, this one has {}",
                path.display(),
                bytes.len()
            ),
        )
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes a fresh key to `path` (mode 0600, durable): atomically, and without replacing an
/// existing file unless `force`.
fn write_new_key(path: &Path, force: bool) -> io::Result<SigningKey> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    let tmp = dir.join(format!(".etch-key.{}.tmp", std::process::id()));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(&seed)?;
        f.sync_all()?;
        if force {
            std::fs::rename(&tmp, path)
        } else {
            // A hard link fails if the name exists: an existing key is never replaced.
            std::fs::hard_link(&tmp, path)
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result.map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            io::Error::new(
                e.kind(),
                format!(
                    "{}: a key exists (use --force to replace it)",
                    path.display()
                ),
            )
        } else {
            io::Error::new(e.kind(), format!("{}: {e}", path.display()))
        }
    })?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(SigningKey::from_bytes(&seed))
}

fn show(key: &SigningKey) -> io::Result<()> {
    let pk = key.verifying_key().to_bytes();
    let mut out = io::stdout().lock();
    writeln!(out, "public key: 0x{}", hex::encode(pk))?;
    writeln!(out, "did: {}", did_key(&pk))
}

/// Runs `etch key`.
pub fn run(args: KeyArgs) -> io::Result<ExitCode> {
    let outcome = match args.action {
        KeyAction::New { key_file, force } => {
            let key_file_given = key_file.is_some();
            let path = match key_file {
                Some(p) => p,
                None => default_key_file()?,
            };
            if !force {
                if let Ok(k) = read_key_file(&path) {
                    let pk = k.verifying_key().to_bytes();
                    let why = if key_file_given {
                        ""
                    } else {
                        " (the Etch directory's key is made on first use by etch shell, eval, \
                         drive and serve: it is already this node's identity)"
                    };
                    return super::failed(format!(
                        "{}: a key is already there, so nothing was changed: public key 0x{}, \
                         {}{why}. `etch key show` prints it; --force replaces it (drives the \
                         old key signed stay readable, but only the old key can write them)",
                        path.display(),
                        hex::encode(pk),
                        did_key(&pk)
                    ));
                }
            }
            write_new_key(&path, force).and_then(|k| {
                eprintln!("etch: new key written to {}", path.display());
                show(&k)
            })
        }
        KeyAction::Show {
            key_file: Some(path),
        } => read_key_file(&path).and_then(|k| show(&k)),
        // The Etch directory's key is made on first use, here as by the shell.
        KeyAction::Show { key_file: None } => {
            super::shell::node_key_announced().and_then(|k| show(&k))
        }
        KeyAction::Token { aud, ttl, key_file } => did_arg("--aud", &aud)
            .and_then(|()| key_of(key_file))
            .and_then(|k| {
                let now = etch_engine::node::wall_clock_ms().div_euclid(1000);
                writeln!(
                    io::stdout().lock(),
                    "{}",
                    etch_server::token::bearer(&k, &aud, now, ttl)
                )
            }),
        KeyAction::Grant {
            to,
            drive,
            can,
            owner,
            ttl,
            proof,
            key_file,
        } => did_arg("--to", &to)
            .and_then(|()| key_of(key_file))
            .and_then(|k| {
                let owner = owner.unwrap_or_else(|| did_key(&k.verifying_key().to_bytes()));
                did_arg("--owner", &owner)?;
                let with = format!("{owner}/dlfs/{}", drive.trim_matches('/'));
                let exp = etch_engine::node::wall_clock_ms().div_euclid(1000) + ttl;
                let t = etch_server::token::ucan(&k, &to, &with, &can, exp, &proof);
                writeln!(io::stdout().lock(), "{t}")
            }),
    };
    match outcome {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(e),
        Err(e) => {
            eprintln!("etch: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
