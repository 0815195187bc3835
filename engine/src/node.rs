//! A lattice node over a store: the committed root value, merges into it by the root lattice
//! (lattice.md §4), and durable commits (lattice.md §9). The shell and the server both work
//! through this.
//!
//! Commits are serialised by one lock held from reading the root to making the new root
//! durable, so an older root can never overwrite a newer one, and every operation that
//! changes the root returns only after the store's root slot is durable.

use crate::dlfs::{self, kw, DlfsError};
use crate::lattice::owner::verify_owner;
use crate::lattice::{
    merge_at_path, sign, signature_valid, value_at_path, Lattice, MergeContext, MergeError,
    OwnerPolicy,
};
use crate::query::{DriveEdit, EvalError, QueryNode};
use crate::quota::{self, Charge, Quotas};
use crate::store::{CellStore, Root, StoreError};
use ed25519_dalek::SigningKey;
use etch_formats::coll::{self, Change, MapKind};
use etch_formats::{Cell, Kind, ResolveError, Resolver, ValueId};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

/// The `:version` a node publishes in its NodeInfo: this crate's version.
pub const NODE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `:type` a node publishes in its NodeInfo (lattice.md §8.1).
pub const NODE_TYPE: &str = "Convex Lattice Node";

/// A source of wall-clock time in ms since the epoch (injectable for tests).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Errors of node operations.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The store failed; the operation did not take effect.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A merge could not be done (missing cells, no lattice at the path, rejected path).
    #[error(transparent)]
    Merge(#[from] MergeError),
    /// A cell needed was not available.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The value is not acceptable as a root of the root lattice.
    #[error("Invalid root value")]
    InvalidRoot,
    /// The store's root is not a lattice root (an Index), so nothing can merge into it.
    #[error("the store's root is a {0}, not a lattice root (#Index); set-root! replaces it")]
    RootNotLattice(&'static str),
    /// A DLFS operation failed (not found, exists, not authorised, ...).
    #[error(transparent)]
    Dlfs(#[from] DlfsError),
    /// A value that cannot be stored (`nil`, or one that does not fit an Index entry).
    #[error("{0}")]
    Argument(String),
    /// A client write past its quota (`crate::quota`); nothing was stored.
    #[error("{0}")]
    Quota(String),
}

impl From<NodeError> for EvalError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Store(StoreError::Missing(id)) => {
                EvalError::new("MISSING", format!("Missing data: 0x{}", id.to_hex()))
            }
            NodeError::Store(s) => EvalError::new("IO", s.to_string()),
            NodeError::Resolve(ResolveError::Missing(id)) => {
                EvalError::new("MISSING", format!("Missing data: 0x{}", id.to_hex()))
            }
            NodeError::Resolve(r) => EvalError::new("IO", r.to_string()),
            NodeError::Merge(MergeError::Resolve(ResolveError::Missing(id))) => {
                EvalError::new("MISSING", format!("Missing data: 0x{}", id.to_hex()))
            }
            NodeError::Merge(m) => EvalError::new("ARGUMENT", m.to_string()),
            NodeError::InvalidRoot => EvalError::new("ARGUMENT", "Invalid root value"),
            NodeError::RootNotLattice(_) => EvalError::new("STATE", e.to_string()),
            NodeError::Dlfs(d) => d.into(),
            NodeError::Argument(m) => EvalError::new("ARGUMENT", m),
            NodeError::Quota(m) => EvalError::new("QUOTA", m),
        }
    }
}

/// A lattice node on one store.
pub struct LocalNode {
    store: Arc<dyn CellStore>,
    lattice: Lattice,
    /// The committed root; the lock also serialises commits.
    root: Mutex<Cell>,
    signing_key: Option<SigningKey>,
    clock: Clock,
    /// Roots committed since the node opened.
    commits: std::sync::atomic::AtomicU64,
    /// Limits on client writes.
    quotas: Quotas,
    /// What `(gc)` compacts, when the node can compact while it serves.
    gc: Option<crate::gc::GcTarget>,
    /// The last compaction while serving: when it ended (ms since the epoch) and what it did.
    last_gc: Mutex<Option<(i64, crate::gc::GcReport)>>,
    /// Commits held back by [`LocalNode::defer_commits`] (a script's writes).
    deferred: Mutex<Option<Deferred>>,
}

/// While commits are deferred, a root change waits this long at most before it is committed.
pub const DEFERRED_COMMIT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The state of deferred commits: whether the root changed since the last commit, and when
/// that commit was.
struct Deferred {
    dirty: bool,
    last: std::time::Instant,
}

/// The zero of the root lattice: the root of a node that has none yet.
pub fn empty_root() -> Cell {
    Lattice::root().zero()
}

/// The wall clock in ms since the epoch.
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl LocalNode {
    /// A node on `store`, starting from its committed root (the root lattice's zero if it has
    /// none). `signing_key` is the node's own key, used to sign slots it owns.
    pub fn open(
        store: Arc<dyn CellStore>,
        signing_key: Option<ed25519_dalek::SigningKey>,
    ) -> Result<LocalNode, NodeError> {
        let root = match store.root()? {
            Root::Unset => empty_root(),
            Root::Value(v) => v,
        };
        Ok(LocalNode {
            store,
            lattice: Lattice::root(),
            root: Mutex::new(root),
            signing_key,
            clock: Arc::new(wall_clock_ms),
            commits: std::sync::atomic::AtomicU64::new(0),
            quotas: Quotas::default(),
            gc: None,
            last_gc: Mutex::new(None),
            deferred: Mutex::new(None),
        })
    }

    /// This node able to compact its store while it serves (`crate::gc`).
    pub fn with_gc(mut self, target: crate::gc::GcTarget) -> LocalNode {
        self.gc = Some(target);
        self
    }

    /// Compacts the store while the node serves (`crate::gc`), holding the commit lock: writes
    /// wait, reads go on.
    pub fn gc(&self) -> Result<crate::gc::GcReport, NodeError> {
        let Some(target) = &self.gc else {
            return Err(NodeError::Argument(
                "this node cannot compact while it serves (not a native store run by etch serve)"
                    .into(),
            ));
        };
        let root = self.lock();
        let report = crate::gc::compact_live(target, &root)?;
        *self.last_gc.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((self.now(), report.clone()));
        Ok(report)
    }

    /// Marks the store as a partial replica's (`lattice::hold::HOLD_KEY`), committing when it
    /// was not marked yet.
    pub fn mark_partial(&self) -> Result<(), NodeError> {
        let mut root = self.lock();
        if root.kind() != Kind::Index {
            return Err(NodeError::RootNotLattice(root.kind().name()));
        }
        let r = self.store.as_ref();
        if crate::lattice::hold::is_partial(&root, r)? {
            return Ok(());
        }
        let new_root = crate::lattice::hold::with_partial_mark(&root, r)?;
        self.commit_root(&new_root)?;
        *root = new_root;
        Ok(())
    }

    /// Whether the node can compact while it serves, and its last such compaction.
    pub fn gc_state(&self) -> (bool, Option<(i64, crate::gc::GcReport)>) {
        let last = self
            .last_gc
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        (self.gc.is_some(), last)
    }

    /// This node with limits on client writes (those made through [`ClientNode`]).
    pub fn with_quotas(mut self, quotas: Quotas) -> LocalNode {
        self.quotas = quotas;
        self
    }

    /// The limits on client writes.
    pub fn quotas(&self) -> Quotas {
        self.quotas
    }

    /// `new_root`, replacing `root`, with the bytes it adds to the store charged to `charge`
    /// (the commit lock held); [`NodeError::Quota`] past a quota. `bytes` is what to charge,
    /// or `None` to measure the whole new tree against the store.
    fn charged(
        &self,
        root: &Cell,
        new_root: Cell,
        charge: Option<&Charge>,
        bytes: Option<u64>,
    ) -> Result<Cell, NodeError> {
        let Some(c) = charge else {
            return Ok(new_root);
        };
        let r = self.store.as_ref();
        let bytes = c.stored_bytes.saturating_add(match bytes {
            Some(b) => b,
            None => quota::new_bytes(&new_root, r, &mut HashSet::new())?,
        });
        if bytes == 0 {
            return Ok(new_root);
        }
        if let Some(why) = quota::refusal(&self.quotas, root, c, bytes, r)? {
            return Err(NodeError::Quota(why));
        }
        let used = quota::used(root, &c.owner, r)?;
        Ok(quota::with_used(
            &new_root,
            &c.owner,
            used.saturating_add(bytes),
            r,
        )?)
    }

    /// This node with another clock (the time DLFS writes and NodeInfo are stamped with).
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> LocalNode {
        self.clock = Arc::new(clock);
        self
    }

    /// The current time of the node's clock, in ms since the epoch.
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// The node's own key pair, if it has one.
    pub fn signing_key(&self) -> Option<&SigningKey> {
        self.signing_key.as_ref()
    }

    /// The node's own public key (its identity: the default DLFS owner and the NodeInfo owner).
    pub fn public_key(&self) -> Option<[u8; 32]> {
        self.signing_key
            .as_ref()
            .map(|k| k.verifying_key().to_bytes())
    }

    /// The store under this node.
    pub fn store(&self) -> &Arc<dyn CellStore> {
        &self.store
    }

    /// The root lattice.
    pub fn lattice(&self) -> &Lattice {
        &self.lattice
    }

    fn lock(&self) -> MutexGuard<'_, Cell> {
        // A panic while holding the lock cannot leave a half-updated root: the root is only
        // replaced after its commit succeeded.
        self.root.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The committed root value.
    pub fn root_value(&self) -> Cell {
        self.lock().clone()
    }

    /// The context local merges run with: now, the node key, the default owner policy.
    pub fn merge_context(&self) -> MergeContext {
        MergeContext {
            timestamp: Some(self.now()),
            signing_key: self.signing_key.clone(),
            ..MergeContext::default()
        }
    }

    /// From now on, root changes are committed at most every [`DEFERRED_COMMIT_EVERY`]
    /// instead of one by one, and always by [`LocalNode::flush`]: a script of many small
    /// writes then commits a few roots instead of one per write, and the store does not keep
    /// the cells of every intermediate root. Writes that did not reach a commit are lost in a
    /// crash, so the caller must `flush` before it reports them done.
    pub fn defer_commits(&self) {
        *self.deferred_state() = Some(Deferred {
            dirty: false,
            last: std::time::Instant::now(),
        });
    }

    /// Commits the root if a deferred change is waiting; after `Ok`, every write so far is
    /// durable.
    pub fn flush(&self) -> Result<(), NodeError> {
        let root = self.lock();
        let mut deferred = self.deferred_state();
        if let Some(d) = deferred.as_mut().filter(|d| d.dirty) {
            self.store.set_root(&root)?;
            self.commits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            d.dirty = false;
            d.last = std::time::Instant::now();
        }
        Ok(())
    }

    fn deferred_state(&self) -> MutexGuard<'_, Option<Deferred>> {
        self.deferred.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `value` the store's durable root (one commit), counted in [`LocalNode::commits`];
    /// while commits are deferred, only once [`DEFERRED_COMMIT_EVERY`] has passed since the
    /// last. Called with the root lock held.
    fn commit_root(&self, value: &Cell) -> Result<(), StoreError> {
        if let Some(d) = self.deferred_state().as_mut() {
            if d.last.elapsed() < DEFERRED_COMMIT_EVERY {
                d.dirty = true;
                return Ok(());
            }
            d.dirty = false;
            d.last = std::time::Instant::now();
        }
        self.store.set_root(value)?;
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Roots this node committed since it opened (merges, drive writes, stored values).
    pub fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Merges `value` into the root at `path` by the root lattice, commits, and returns the
    /// new root. Nothing is written when the merge changes nothing.
    pub fn merge(&self, path: &[Cell], value: &Cell) -> Result<Cell, NodeError> {
        self.merge_charged(path, value, None)
    }

    /// [`LocalNode::merge`], charging what the merge adds to the store to `charge`.
    pub fn merge_charged(
        &self,
        path: &[Cell],
        value: &Cell,
        charge: Option<&Charge>,
    ) -> Result<Cell, NodeError> {
        let mut root = self.lock();
        if root.kind() != Kind::Index {
            return Err(NodeError::RootNotLattice(root.kind().name()));
        }
        let ctx = self.merge_context();
        let merged = merge_at_path(&self.lattice, &ctx, &root, path, value, self.store.as_ref())?;
        if merged != *root {
            let merged = self.charged(&root, merged, charge, None)?;
            self.commit_root(&merged)?;
            *root = merged;
        }
        Ok(root.clone())
    }

    /// Stores values for a client (what `(store v)` through a server does): as
    /// [`LocalNode::store_values`], and each value not pinned yet is pinned for the writer
    /// with the bytes it added, charged to it (crate::quota). One commit, or nothing past a
    /// quota.
    pub fn store_for(&self, values: &[Cell], charge: &Charge) -> Result<Cell, NodeError> {
        let (entry, unique) = data_entries(values)?;
        let r = self.store.as_ref();
        let mut root = self.lock();
        if root.kind() != Kind::Index {
            return Err(NodeError::RootNotLattice(root.kind().name()));
        }
        let ctx = self.merge_context();
        let mut new_root = merge_at_path(&self.lattice, &ctx, &root, &[kw("data")], &entry, r)?;
        let (mut seen, mut total) = (HashSet::new(), 0u64);
        let pins = crate::pins::pin_set(&root, r)?;
        for v in unique {
            let bytes = quota::new_bytes(v, r, &mut seen)?;
            total += bytes;
            let key = Cell::blob(v.id().as_bytes());
            if value_at_path(&pins, std::slice::from_ref(&key), r)?.is_nil() {
                let record =
                    crate::pins::owned_record(v, "store", self.now(), &charge.owner, bytes);
                new_root = crate::pins::with_pin(&new_root, v.id(), Some(record), r)?;
            }
        }
        let new_root = self.charged(&root, new_root, Some(charge), Some(total))?;
        if new_root != *root {
            self.commit_root(&new_root)?;
            *root = new_root;
        }
        Ok(root.clone())
    }

    /// Stores values the way `(store v)` does (lattice.md §5): each under its Value ID in the
    /// root's `:data` Index, so it stays reachable (compaction keeps it) and an embedded value,
    /// which has no record of its own, can still be fetched by ID. One merge and one durable
    /// commit for the whole batch; when this returns `Ok`, every value is durable. `nil` cannot
    /// be stored (`:data` holds no nil values).
    pub fn store_values(&self, values: &[Cell]) -> Result<Cell, NodeError> {
        let (entry, _) = data_entries(values)?;
        self.merge(&[kw("data")], &entry)
    }

    /// Replaces the root (not a merge), commits. The value must pass the root lattice's
    /// foreign check.
    pub fn replace_root(&self, value: &Cell) -> Result<(), NodeError> {
        if !self.lattice.check_foreign(value, self.store.as_ref())? {
            return Err(NodeError::InvalidRoot);
        }
        let mut root = self.lock();
        self.commit_root(value)?;
        *root = value.clone();
        Ok(())
    }

    /// The key that may sign `owner`'s slot: the node key when it passes the owner check
    /// strictly (a 32-byte key equal to ours, or our `did:key`); Addresses and other DIDs cannot
    /// be checked locally, so the node never writes for them.
    fn key_for(&self, owner: &Cell) -> Result<&SigningKey, DlfsError> {
        match &self.signing_key {
            Some(k) if verify_owner(owner, &k.verifying_key().to_bytes(), OwnerPolicy::Reject) => {
                Ok(k)
            }
            _ => Err(DlfsError::NotAuthorised(
                // Shortly: the owner may come from a query and be any (huge) value.
                etch_formats::text::print_limited(owner, self.store.as_ref(), 200)
                    .unwrap_or_else(|_| format!("{} ({:?})", owner.id(), owner.kind())),
            )),
        }
    }

    /// The names of `owner`'s drives in the committed root, in byte order.
    pub fn drive_names(&self, owner: &Cell) -> Result<Vec<String>, NodeError> {
        Ok(dlfs::drive_names(
            &self.root_value(),
            owner,
            self.store.as_ref(),
        )?)
    }

    /// The drive `name` of `owner` in the committed root (its root node); nil when absent.
    pub fn drive(&self, owner: &Cell, name: &str) -> Result<Cell, NodeError> {
        Ok(dlfs::drive(
            &self.root_value(),
            owner,
            name,
            self.store.as_ref(),
        )?)
    }

    /// Writes drive `name` of `owner` (lattice.md §6.4, §7.7): `edit` gets the drive's current
    /// value (nil when absent), the clock's time and the store, and returns the new drive value;
    /// the owner's drives map with it is signed with the node key and written back as the
    /// owner slot at `[:fs owner]`, and the root is committed. Returns the new drive value.
    ///
    /// The slot is replaced, not merged: a local write is authoritative (the reference writes
    /// through a cursor the same way), so a write in the same millisecond as the previous one
    /// (equal DLFS times, where a merge would keep own) still takes effect. Everything runs
    /// under the commit lock, so no concurrent change is lost.
    ///
    /// Fails with [`DlfsError::NotAuthorised`] when the node does not hold `owner`'s key.
    pub fn write_drive<F>(&self, owner: &Cell, name: &str, edit: F) -> Result<Cell, NodeError>
    where
        F: FnOnce(&Cell, i64, &dyn Resolver) -> Result<Cell, DlfsError>,
    {
        self.write_drive_charged(owner, name, None, edit)
    }

    /// [`LocalNode::write_drive`], charging what the write adds to the store to `charge`.
    pub fn write_drive_charged<F>(
        &self,
        owner: &Cell,
        name: &str,
        charge: Option<&Charge>,
        edit: F,
    ) -> Result<Cell, NodeError>
    where
        F: FnOnce(&Cell, i64, &dyn Resolver) -> Result<Cell, DlfsError>,
    {
        let key = self.key_for(owner)?;
        let r: &dyn Resolver = self.store.as_ref();
        let mut root = self.lock();
        if root.kind() != Kind::Index {
            return Err(NodeError::RootNotLattice(root.kind().name()));
        }
        let fs_key = kw("fs");
        let fs = value_at_path(&root, std::slice::from_ref(&fs_key), r)?;
        let fs = if fs.kind() == Kind::Map {
            fs
        } else {
            MapKind::Hash.empty()
        };
        let slot = value_at_path(&fs, std::slice::from_ref(owner), r)?;
        let drives = value_at_path(&slot, &[kw("value")], r)?;
        let drives = if slot.kind() == Kind::Signed && drives.kind() == Kind::Map {
            drives
        } else {
            MapKind::Hash.empty()
        };
        let name_key = Cell::string(name);
        let stored = value_at_path(&drives, std::slice::from_ref(&name_key), r)?;
        // A deleted drive (a tombstone) is absent to every edit: it may be made again.
        let current = if !stored.is_nil() && crate::lattice::dlfs::is_tombstone(&stored, r)? {
            Cell::nil()
        } else {
            stored.clone()
        };
        let new_drive = edit(&current, self.now(), r)?;
        if new_drive == stored {
            return Ok(new_drive);
        }
        let set = |key: Cell, had: bool, value: Cell| Change {
            key,
            kid: None,
            had,
            value: Some(value),
        };
        let drives = coll::apply_changes(
            MapKind::Hash,
            &drives,
            vec![set(name_key, !current.is_nil(), new_drive.clone())],
            r,
        )?;
        let new_fs = coll::apply_changes(
            MapKind::Hash,
            &fs,
            vec![set(owner.clone(), !slot.is_nil(), sign(key, drives))],
            r,
        )?;
        let kid = coll::key_id(&fs_key, r)?;
        let new_root = coll::apply_changes(
            MapKind::Index,
            &root,
            vec![Change {
                key: fs_key,
                kid,
                had: true,
                value: Some(new_fs),
            }],
            r,
        )?;
        let new_root = self.charged(&root, new_root, charge, None)?;
        self.commit_root(&new_root)?;
        *root = new_root;
        Ok(new_drive)
    }

    /// Pins `value` (crate::pins) under its ID with `label`; `source` says what was pinned (`id`
    /// or a drive location). Pinning it again replaces the label. Commits; returns the ID.
    pub fn pin(&self, value: &Cell, label: &str, source: &str) -> Result<ValueId, NodeError> {
        if label.len() > crate::pins::LABEL_BYTES_MAX {
            return Err(NodeError::Argument(format!(
                "a pin label has at most {} bytes",
                crate::pins::LABEL_BYTES_MAX
            )));
        }
        // On a partial replica the value may be only partly held: its whole tree is read
        // (fetched from peers) first, so that the commit below writes all of it.
        crate::store::hold::hold_tree(value, self.store.as_ref())?;
        let mut root = self.lock();
        if root.kind() != Kind::Index {
            return Err(NodeError::RootNotLattice(root.kind().name()));
        }
        let id = *value.id();
        let record = crate::pins::record(value, label, source, self.now());
        let new_root = crate::pins::with_pin(&root, &id, Some(record), self.store.as_ref())?;
        if new_root != *root {
            self.commit_root(&new_root)?;
            *root = new_root;
        }
        Ok(id)
    }

    /// Removes the pin of `id`; whether there was one. Commits when there was.
    pub fn unpin(&self, id: &ValueId) -> Result<bool, NodeError> {
        let mut root = self.lock();
        if root.kind() != Kind::Index {
            return Ok(false);
        }
        let r = self.store.as_ref();
        let refund = crate::pins::owner_of(&root, id, r)?;
        let mut new_root = crate::pins::with_pin(&root, id, None, r)?;
        if new_root == *root {
            return Ok(false);
        }
        if let Some((owner, bytes)) = refund {
            let used = quota::used(&root, &owner, r)?;
            new_root = quota::with_used(&new_root, &owner, used.saturating_sub(bytes), r)?;
        }
        self.commit_root(&new_root)?;
        *root = new_root;
        Ok(true)
    }

    /// The NodeInfo this node publishes (lattice.md §8.1).
    fn node_info(timestamp: i64, transports: &[String]) -> Cell {
        Cell::map(vec![
            (kw("timestamp"), Cell::long(timestamp)),
            (
                kw("transports"),
                Cell::vector(transports.iter().map(|t| Cell::string(t)).collect()),
            ),
            (kw("type"), Cell::string(NODE_TYPE)),
            (kw("version"), Cell::string(NODE_VERSION)),
        ])
    }

    /// Publishes this node's NodeInfo (lattice.md §8.1): merges
    /// `{own-key → sign({:timestamp now :transports [...] :type "Convex Lattice Node"
    /// :version "<crate version>"})}` at `[:p2p :nodes]` and commits, but only when the node's
    /// entry is absent, not validly signed by it, or differs in anything but `:timestamp` (so
    /// reopening a node does not commit every time). The timestamp is past the old entry's, so
    /// the LWW slot takes it. Returns whether it published; a node without a key does nothing.
    pub fn publish_node_info(&self, transports: &[String]) -> Result<bool, NodeError> {
        let Some(key) = &self.signing_key else {
            return Ok(false);
        };
        let pk = key.verifying_key().to_bytes();
        let owner = Cell::blob(&pk);
        let r: &dyn Resolver = self.store.as_ref();
        let path = [kw("p2p"), kw("nodes")];
        let mut at = path.to_vec();
        at.push(owner.clone());
        let existing = value_at_path(&self.root_value(), &at, r)?;
        let mut old_ts = None;
        if existing.kind() == Kind::Signed
            && existing.signed_public_key() == Some(pk.as_slice())
            && signature_valid(&existing)
        {
            let info = value_at_path(&existing, &[kw("value")], r)?;
            let ts = value_at_path(&info, &[kw("timestamp")], r)?.as_long();
            if let Some(ts) = ts {
                if Self::node_info(ts, transports) == info {
                    return Ok(false);
                }
            }
            old_ts = ts;
        }
        let ts = match old_ts {
            Some(old) => self.now().max(old.saturating_add(1)),
            None => self.now(),
        };
        let entry = Cell::map(vec![(owner, sign(key, Self::node_info(ts, transports)))]);
        self.merge(&path, &entry)?;
        Ok(true)
    }
}

impl QueryNode for LocalNode {
    fn root(&self) -> Result<Cell, EvalError> {
        Ok(self.root_value())
    }

    fn store(&self, value: &Cell) -> Result<ValueId, EvalError> {
        let id = *value.id();
        self.store_values(std::slice::from_ref(value))?;
        Ok(id)
    }

    fn merge_at(&self, path: &[Cell], value: &Cell) -> Result<Cell, EvalError> {
        let root = self.merge(path, value)?;
        Ok(value_at_path(&root, path, self.store.as_ref())?)
    }

    fn set_root(&self, value: &Cell) -> Result<ValueId, EvalError> {
        self.replace_root(value)?;
        Ok(*value.id())
    }

    fn public_key(&self) -> Option<[u8; 32]> {
        LocalNode::public_key(self)
    }

    fn edit_drive(
        &self,
        owner: &Cell,
        drive: &str,
        edit: &mut DriveEdit<'_>,
    ) -> Result<Cell, EvalError> {
        Ok(self.write_drive(owner, drive, |cur, now, r| edit(cur, now, r))?)
    }

    fn pin(&self, value: &Cell, label: &str, source: &str) -> Result<ValueId, EvalError> {
        Ok(LocalNode::pin(self, value, label, source)?)
    }

    fn unpin(&self, id: &ValueId) -> Result<bool, EvalError> {
        Ok(LocalNode::unpin(self, id)?)
    }

    fn gc(&self) -> Result<crate::gc::GcReport, EvalError> {
        Ok(LocalNode::gc(self)?)
    }
}

/// The `:data` Index entry for `values` (each under its ID) and the distinct values, in order.
fn data_entries(values: &[Cell]) -> Result<(Cell, Vec<&Cell>), NodeError> {
    let mut entries: Vec<(Cell, Cell)> = Vec::with_capacity(values.len());
    let mut unique = Vec::with_capacity(values.len());
    let mut seen = HashSet::with_capacity(values.len());
    for v in values {
        if v.is_nil() {
            return Err(NodeError::Argument("Cannot store nil".into()));
        }
        if seen.insert(*v.id()) {
            entries.push((Cell::blob(v.id().as_bytes()), v.clone()));
            unique.push(v);
        }
    }
    let entry = Cell::index(entries).map_err(|e| NodeError::Argument(e.to_string()))?;
    Ok((entry, unique))
}

/// The node as a client's query sees it (a server's QUERY, HTTP and MCP writes): what it
/// stores is pinned for it and charged to it, merges and drive writes are charged
/// (crate::quota).
pub struct ClientNode<'a> {
    /// The node.
    pub node: &'a LocalNode,
    /// Who the writes are charged to.
    pub charge: Charge,
}

impl QueryNode for ClientNode<'_> {
    fn root(&self) -> Result<Cell, EvalError> {
        Ok(self.node.root_value())
    }

    fn store(&self, value: &Cell) -> Result<ValueId, EvalError> {
        self.node
            .store_for(std::slice::from_ref(value), &self.charge)?;
        Ok(*value.id())
    }

    fn merge_at(&self, path: &[Cell], value: &Cell) -> Result<Cell, EvalError> {
        let root = self.node.merge_charged(path, value, Some(&self.charge))?;
        Ok(value_at_path(&root, path, self.node.store.as_ref())?)
    }

    fn set_root(&self, value: &Cell) -> Result<ValueId, EvalError> {
        QueryNode::set_root(self.node, value)
    }

    fn public_key(&self) -> Option<[u8; 32]> {
        self.node.public_key()
    }

    fn edit_drive(
        &self,
        owner: &Cell,
        drive: &str,
        edit: &mut DriveEdit<'_>,
    ) -> Result<Cell, EvalError> {
        Ok(self
            .node
            .write_drive_charged(owner, drive, Some(&self.charge), |cur, now, r| {
                edit(cur, now, r)
            })?)
    }

    fn pin(&self, value: &Cell, label: &str, source: &str) -> Result<ValueId, EvalError> {
        Ok(self.node.pin(value, label, source)?)
    }

    fn unpin(&self, id: &ValueId) -> Result<bool, EvalError> {
        Ok(self.node.unpin(id)?)
    }

    fn gc(&self) -> Result<crate::gc::GcReport, EvalError> {
        Ok(self.node.gc()?)
    }
}

/// A UTC time split into its calendar parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// Year.
    pub year: i64,
    /// Month, 1–12.
    pub month: i64,
    /// Day of the month, 1–31.
    pub day: i64,
    /// Day of the week, 0 = Sunday.
    pub weekday: i64,
    /// Seconds since midnight.
    pub seconds: i64,
    /// Milliseconds past the second.
    pub millis: i64,
}

/// The calendar parts of `ms` since the epoch, UTC (Howard Hinnant's civil-from-days).
pub fn civil_time(ms: i64) -> CivilTime {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    CivilTime {
        year: yoe + era * 400 + i64::from(month <= 2),
        month,
        day,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7),
        seconds: rem,
        millis: ms.rem_euclid(1000),
    }
}

/// Formats ms since the epoch as an ISO 8601 UTC time (`2026-11-22T06:33:31.123Z`).
pub fn iso_time(ms: i64) -> String {
    let t = civil_time(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year,
        t.month,
        t.day,
        t.seconds / 3600,
        t.seconds % 3600 / 60,
        t.seconds % 60,
        t.millis
    )
}

/// Formats ms since the epoch as an HTTP date (RFC 9110 IMF-fixdate:
/// `Mon, 07 Dec 2026 02:33:01 GMT`).
pub fn http_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = civil_time(ms);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[t.weekday as usize],
        t.day,
        MONTHS[(t.month - 1) as usize],
        t.year,
        t.seconds / 3600,
        t.seconds % 3600 / 60,
        t.seconds % 60
    )
}
