//! A lattice node over a store: the committed root value, merges into it by the root lattice
//! (lattice.md §4), and durable commits (lattice.md §9). The shell and the server both work
//! through this.
//!
//! Commits are serialised by one lock held from reading the root to making the new root
//! durable, so an older root can never overwrite a newer one, and every operation that
//! changes the root returns only after the store's root slot is durable.

use crate::lattice::{merge_at_path, value_at_path, Lattice, MergeContext, MergeError};
use crate::query::{EvalError, QueryNode};
use crate::store::{CellStore, Root, StoreError};
use etch_formats::{Cell, Kind, ResolveError, ValueId};
use std::sync::{Arc, Mutex, MutexGuard};

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
        }
    }
}

/// A lattice node on one store.
pub struct LocalNode {
    store: Arc<dyn CellStore>,
    lattice: Lattice,
    /// The committed root; the lock also serialises commits.
    root: Mutex<Cell>,
    signing_key: Option<ed25519_dalek::SigningKey>,
}

/// The zero of the root lattice: the root of a node that has none yet.
pub fn empty_root() -> Cell {
    Lattice::root().zero()
}

fn wall_clock_ms() -> i64 {
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
        })
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
            timestamp: Some(wall_clock_ms()),
            signing_key: self.signing_key.clone(),
            ..MergeContext::default()
        }
    }

    /// Merges `value` into the root at `path` by the root lattice, commits, and returns the
    /// new root. Nothing is written when the merge changes nothing.
    pub fn merge(&self, path: &[Cell], value: &Cell) -> Result<Cell, NodeError> {
        let mut root = self.lock();
        if root.kind() != Kind::Index {
            return Err(NodeError::RootNotLattice(root.kind().name()));
        }
        let ctx = self.merge_context();
        let merged = merge_at_path(&self.lattice, &ctx, &root, path, value, self.store.as_ref())?;
        if merged != *root {
            self.store.set_root(&merged)?;
            *root = merged.clone();
        }
        Ok(merged)
    }

    /// Replaces the root (not a merge), commits. The value must pass the root lattice's
    /// foreign check.
    pub fn replace_root(&self, value: &Cell) -> Result<(), NodeError> {
        if !self.lattice.check_foreign(value, self.store.as_ref())? {
            return Err(NodeError::InvalidRoot);
        }
        let mut root = self.lock();
        self.store.set_root(value)?;
        *root = value.clone();
        Ok(())
    }
}

impl QueryNode for LocalNode {
    fn root(&self) -> Result<Cell, EvalError> {
        Ok(self.root_value())
    }

    fn store(&self, value: &Cell) -> Result<ValueId, EvalError> {
        let id = *value.id();
        let entry = Cell::index(vec![(Cell::blob(id.as_bytes()), value.clone())])
            .map_err(|e| EvalError::new("ARGUMENT", e.to_string()))?;
        let data = Cell::keyword("data").map_err(|e| EvalError::new("ARGUMENT", e.to_string()))?;
        self.merge(&[data], &entry)?;
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
}
