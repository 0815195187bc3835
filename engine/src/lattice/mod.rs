//! Lattice merges of the Convex Data Lattice (spec: lattice.md).
//!
//! A [`Lattice`] describes how values of one region merge: [`Lattice::merge`] is the join of
//! an own (local) value and an other (incoming) value, [`Lattice::zero`] its identity,
//! [`Lattice::check_foreign`] the acceptance test for incoming values, and
//! [`Lattice::child`] the sub-lattice under a key. [`Lattice::root`] is the standard root
//! (`:data`, `:fs`, `:p2p`, `:local`); [`merge_at_path`] merges an incoming value at a path
//! (lattice.md §6.4).
//!
//! Rules that hold throughout:
//!
//! - **Prefer own** on ties (lattice.md §1), reproduced exactly.
//! - **Fail closed**: a malformed incoming value never aborts a merge; the lattice level that
//!   detects it keeps own (for DLFS: the whole drive, §7.5).
//! - Children are always read through the [`Resolver`]; [`ResolveError::Missing`] propagates
//!   so that the caller can fetch the missing cells and retry.
//! - Unchanged inputs are returned as they are (own when nothing changes, other when the merge
//!   equals it) and identical subtrees are skipped by Value ID, so merging a root with a value
//!   that differs in one place does not walk the rest.
//!
//! Our deviations from the reference (all in the safe direction) are listed in lattice.md
//! §6 and §12 and on the items that implement them: owner maps verify every incoming entry
//! even when own is nil, re-signing happens only with the owner's key, did:key owners are
//! checked, and DLFS merges fail closed.

use etch_formats::coll;
mod data;
pub mod dlfs;
mod generic;
pub mod hold;
pub mod incoming;
pub mod owner;
mod path;

use etch_formats::{Cell, Kind, ResolveError, Resolver};
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

pub use owner::{did_key, did_key_public_key, sign, signature_valid};
pub use path::{lookup_path, merge_at_path, stored_value, value_at_path, MergeError};

/// Result of an operation that reads cells through a resolver.
pub type Res<T> = Result<T, ResolveError>;

/// What to do with owners that cannot be checked against a signer key locally: Addresses
/// (they need CVM account state), DID methods other than `did:key`, and any other key type
/// (lattice.md §6.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OwnerPolicy {
    /// Accept any signer for such owners (the reference behaviour without a verifier).
    #[default]
    Lenient,
    /// Reject incoming entries for such owners.
    Reject,
}

/// The merge context (lattice.md §2): travels unchanged down the hierarchy during one merge.
#[derive(Clone, Default)]
pub struct MergeContext {
    /// Wall-clock ms of a local write (stamp-on-write); no merge function reads it.
    pub timestamp: Option<i64>,
    /// The node's key pair, used to re-sign merged values (§6.2): in an owner slot only when
    /// it passes [`MergeContext::verify_owner`] for that owner.
    pub signing_key: Option<ed25519_dalek::SigningKey>,
    /// Policy for owners that cannot be checked locally.
    pub owner_policy: OwnerPolicy,
}

impl fmt::Debug for MergeContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MergeContext")
            .field("timestamp", &self.timestamp)
            .field(
                "signing_key",
                &self
                    .signing_key
                    .as_ref()
                    .map(|k| hex::encode(k.verifying_key().to_bytes())),
            )
            .field("owner_policy", &self.owner_policy)
            .finish()
    }
}

impl MergeContext {
    /// A context with no timestamp, no signing key and the lenient owner policy.
    pub fn new() -> MergeContext {
        MergeContext::default()
    }

    /// A context that signs with `key`.
    pub fn with_signing_key(key: ed25519_dalek::SigningKey) -> MergeContext {
        MergeContext {
            signing_key: Some(key),
            ..MergeContext::default()
        }
    }

    /// The public key of the signing key, if any.
    pub fn public_key(&self) -> Option<[u8; 32]> {
        self.signing_key
            .as_ref()
            .map(|k| k.verifying_key().to_bytes())
    }

    /// `verify_owner(owner, signer)` (lattice.md §2, §6.3): may `signer` (a 32-byte Ed25519
    /// public key) write the slot of `owner`?
    ///
    /// - 32-byte Blob (AccountKey): iff it equals `signer`;
    /// - `did:key:z…` String: iff it decodes (base58btc, `ed 01` prefix) to `signer`;
    /// - Address, other DIDs, other types: per [`MergeContext::owner_policy`].
    pub fn verify_owner(&self, owner: &Cell, signer: &[u8]) -> bool {
        owner::verify_owner(owner, signer, self.owner_policy)
    }

    /// The context passed to children by the lattices whose reference implementation uses the
    /// context-free merge (Index, Tuple, Vector): no signing key, no timestamp.
    pub(crate) fn context_free(&self) -> MergeContext {
        MergeContext {
            timestamp: None,
            signing_key: None,
            owner_policy: self.owner_policy,
        }
    }
}

/// The function of a [`Comparator`].
pub type CompareFn = dyn Fn(&Cell, &Cell, &dyn Resolver) -> Res<Ordering> + Send + Sync;

/// A comparator for [`Lattice::Compare`]: own is kept when `cmp(own, other)` is not `Less`.
#[derive(Clone)]
pub struct Comparator(pub Arc<CompareFn>);

impl Comparator {
    /// Wraps a comparison function.
    pub fn new(
        f: impl Fn(&Cell, &Cell, &dyn Resolver) -> Res<Ordering> + Send + Sync + 'static,
    ) -> Comparator {
        Comparator(Arc::new(f))
    }
}

impl fmt::Debug for Comparator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Comparator")
    }
}

/// The function of a [`MergeFn`].
pub type MergeFunction =
    dyn Fn(&MergeContext, &Cell, &Cell, &dyn Resolver) -> Res<Cell> + Send + Sync;

/// A merge function for [`Lattice::Function`], called with both values non-nil.
#[derive(Clone)]
pub struct MergeFn(pub Arc<MergeFunction>);

impl MergeFn {
    /// Wraps a merge function; the caller guarantees the lattice laws.
    pub fn new(
        f: impl Fn(&MergeContext, &Cell, &Cell, &dyn Resolver) -> Res<Cell> + Send + Sync + 'static,
    ) -> MergeFn {
        MergeFn(Arc::new(f))
    }
}

impl fmt::Debug for MergeFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MergeFn")
    }
}

/// A custom timestamp reader for [`Timestamp::Custom`].
pub type TimestampFn = dyn Fn(&Cell, &dyn Resolver) -> Res<i64> + Send + Sync;

/// How [`Lattice::Lww`] and [`Lattice::Lwp`] read a value's timestamp.
#[derive(Clone)]
pub enum Timestamp {
    /// The Long under this keyword (name without the colon) of a hash map, else 0.
    Key(String),
    /// A custom function.
    Custom(Arc<TimestampFn>),
}

impl Default for Timestamp {
    /// The reference default: the Long under `:timestamp`.
    fn default() -> Timestamp {
        Timestamp::Key("timestamp".to_string())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timestamp::Key(k) => write!(f, "Key(:{k})"),
            Timestamp::Custom(_) => f.write_str("Custom"),
        }
    }
}

impl Timestamp {
    /// The timestamp of a value (0 for nil and values without one).
    pub fn of(&self, v: &Cell, r: &dyn Resolver) -> Res<i64> {
        match self {
            Timestamp::Key(name) => {
                if v.kind() != Kind::Map {
                    return Ok(0);
                }
                let Ok(key) = Cell::keyword(name) else {
                    return Ok(0);
                };
                Ok(coll::map_get(v, &key, r)?
                    .and_then(|t| t.as_long())
                    .unwrap_or(0))
            }
            Timestamp::Custom(f) => f(v, r),
        }
    }
}

/// A lattice type (lattice.md §3–§8). Build nested lattices with the constructors
/// ([`Lattice::root`], [`Lattice::owner`], [`Lattice::map`], …) or the variants directly.
#[derive(Clone, Debug)]
pub enum Lattice {
    /// Integers, numeric max (own on equality); zero `0`.
    Max,
    /// Integers, numeric min (own on equality); zero nil.
    Min,
    /// Any non-nil value: own if `cmp(own, other) ≥ 0`, else other; zero nil.
    Compare(Comparator),
    /// `f(own, other)` for two non-nil values; zero nil; accepts anything.
    Function(MergeFn),
    /// Set union; zero `#{}`.
    Set,
    /// Hash map merged per key with the value lattice; zero `{}`.
    Map(Box<Lattice>),
    /// Index merged per key with the value lattice (children get the context-free context);
    /// zero `#Index {}`.
    Index(Box<Lattice>),
    /// Index union where other's value replaces own's on a shared key; zero `#Index {}`.
    Cas,
    /// Index keyed by keywords (names without the colon): configured keys merge with their
    /// lattice, other keys of other are ignored, own's are kept; zero `#Index {}`.
    Keyed(Vec<(String, Lattice)>),
    /// Hash map keyed by Strings, otherwise as [`Lattice::Keyed`]; zero `{}`.
    StringKeyed(Vec<(String, Lattice)>),
    /// Vector of exactly n elements merged element-wise; zero: the child zeros.
    Tuple(Vec<Lattice>),
    /// Vector merged element-wise over the longer length (missing elements nil); zero `[]`.
    Vector(Box<Lattice>),
    /// Last write wins on the timestamp read from the values (own on ties); zero nil.
    Lww(Timestamp),
    /// Last writer's priority: the newer value becomes the inner "own" so it wins the inner
    /// lattice's ties; zero the inner zero.
    Lwp(Box<Lattice>, Timestamp),
    /// JSON-like values: maps (same map kind) merge per key recursively, anything else keeps
    /// own; zero `{}`.
    JsonValue,
    /// As [`Lattice::JsonValue`] with zero `#Index {}`.
    JsonValueIndex,
    /// SignedData of a value of the inner lattice (§6.2); zero nil.
    Signed(Box<Lattice>),
    /// Hash map owner → SignedData, with owner checks (§6.1). The box holds the slot lattice,
    /// `Signed(L)`; build with [`Lattice::owner`]. (A non-Signed inner lattice is treated as
    /// the value lattice of the slots.)
    Owner(Box<Lattice>),
    /// The content-addressed store `#Index {H(v) v}` (§5); zero `#Index {}`.
    Data,
    /// A DLFS drive (§7); zero `[#Index {} nil nil 0]`.
    Dlfs,
}

impl Lattice {
    /// The standard root (lattice.md §4): a keyed lattice with `:data` (DataLattice), `:fs`
    /// (owner → drives map of DLFS), `:p2p` (`:nodes` → owner → LWW NodeInfo) and `:local`
    /// (owner → map of LWW). `:kv` and `:queue` are not configured (ignored when incoming).
    pub fn root() -> Lattice {
        Lattice::Keyed(vec![
            ("data".into(), Lattice::Data),
            ("fs".into(), Lattice::owner(Lattice::map(Lattice::Dlfs))),
            (
                "p2p".into(),
                Lattice::Keyed(vec![("nodes".into(), Lattice::owner(Lattice::lww()))]),
            ),
            ("local".into(), Lattice::owner(Lattice::map(Lattice::lww()))),
        ])
    }

    /// `OwnerLattice(l)`: owner → SignedData of an `l` value.
    pub fn owner(l: Lattice) -> Lattice {
        Lattice::Owner(Box::new(Lattice::signed(l)))
    }

    /// `SignedLattice(l)`.
    pub fn signed(l: Lattice) -> Lattice {
        Lattice::Signed(Box::new(l))
    }

    /// `MapLattice(l)`.
    pub fn map(l: Lattice) -> Lattice {
        Lattice::Map(Box::new(l))
    }

    /// `IndexLattice(l)`.
    pub fn index(l: Lattice) -> Lattice {
        Lattice::Index(Box::new(l))
    }

    /// `VectorLattice(l)`.
    pub fn vector(l: Lattice) -> Lattice {
        Lattice::Vector(Box::new(l))
    }

    /// The default LWW lattice (timestamp under `:timestamp`).
    pub fn lww() -> Lattice {
        Lattice::Lww(Timestamp::default())
    }

    /// `LWPLattice(l)` with the default timestamp (`:timestamp`).
    pub fn lwp(l: Lattice) -> Lattice {
        Lattice::Lwp(Box::new(l), Timestamp::default())
    }

    /// `CompareLattice(cmp)`.
    pub fn compare(
        cmp: impl Fn(&Cell, &Cell, &dyn Resolver) -> Res<Ordering> + Send + Sync + 'static,
    ) -> Lattice {
        Lattice::Compare(Comparator::new(cmp))
    }

    /// The identity element (may be nil).
    pub fn zero(&self) -> Cell {
        match self {
            Lattice::Max => Cell::long(0),
            Lattice::Min
            | Lattice::Compare(_)
            | Lattice::Function(_)
            | Lattice::Lww(_)
            | Lattice::Signed(_) => Cell::nil(),
            Lattice::Set => Cell::set(Vec::new()),
            Lattice::Map(_) | Lattice::StringKeyed(_) | Lattice::JsonValue | Lattice::Owner(_) => {
                Cell::map(Vec::new())
            }
            Lattice::Index(_)
            | Lattice::Cas
            | Lattice::Keyed(_)
            | Lattice::JsonValueIndex
            | Lattice::Data => coll::MapKind::Index.empty(),
            Lattice::Tuple(ls) => Cell::vector(ls.iter().map(Lattice::zero).collect()),
            Lattice::Vector(_) => Cell::vector(Vec::new()),
            Lattice::Lwp(l, _) => l.zero(),
            Lattice::Dlfs => dlfs::zero(),
        }
    }

    /// Is a value received from outside acceptable before merging (lattice.md §1, §3)?
    pub fn check_foreign(&self, v: &Cell, r: &dyn Resolver) -> Res<bool> {
        Ok(match self {
            Lattice::Max | Lattice::Min => matches!(v.kind(), Kind::Long | Kind::BigInt),
            Lattice::Compare(_) => !v.is_nil(),
            Lattice::Function(_)
            | Lattice::Lww(_)
            | Lattice::JsonValue
            | Lattice::JsonValueIndex => true,
            Lattice::Set => v.kind() == Kind::Set,
            Lattice::Map(_) | Lattice::StringKeyed(_) | Lattice::Owner(_) => v.kind() == Kind::Map,
            Lattice::Index(_) | Lattice::Cas | Lattice::Keyed(_) | Lattice::Data => {
                v.kind() == Kind::Index
            }
            Lattice::Tuple(ls) => v.kind() == Kind::Vector && v.count() == ls.len() as u64,
            Lattice::Vector(_) => v.kind() == Kind::Vector,
            Lattice::Lwp(l, _) => l.check_foreign(v, r)?,
            Lattice::Signed(_) => owner::signature_valid(v),
            Lattice::Dlfs => dlfs::check_foreign(v, r)?,
        })
    }

    /// The join of `own` (local) and `other` (incoming) under `ctx`. Never fails on malformed
    /// input (fail closed); fails only when a cell cannot be resolved.
    pub fn merge(
        &self,
        ctx: &MergeContext,
        own: &Cell,
        other: &Cell,
        r: &dyn Resolver,
    ) -> Res<Cell> {
        match self {
            Lattice::Max => generic::max(own, other, Ordering::Greater, r),
            Lattice::Min => generic::max(own, other, Ordering::Less, r),
            Lattice::Compare(cmp) => generic::compare(cmp, own, other, r),
            Lattice::Function(f) => generic::function(f, ctx, own, other, r),
            Lattice::Set => generic::set(own, other, r),
            Lattice::Map(v) => generic::map(v, coll::MapKind::Hash, ctx, own, other, r),
            Lattice::Index(v) => {
                generic::map(v, coll::MapKind::Index, &ctx.context_free(), own, other, r)
            }
            Lattice::Cas => generic::cas(own, other, r),
            Lattice::Keyed(ls) => generic::keyed(ls, ctx, own, other, r),
            Lattice::StringKeyed(ls) => generic::string_keyed(ls, ctx, own, other, r),
            Lattice::Tuple(ls) => generic::tuple(ls, &ctx.context_free(), own, other, r),
            Lattice::Vector(l) => generic::vector(l, &ctx.context_free(), own, other, r),
            Lattice::Lww(ts) => generic::lww(ts, own, other, r),
            Lattice::Lwp(l, ts) => generic::lwp(l, ts, ctx, own, other, r),
            Lattice::JsonValue | Lattice::JsonValueIndex => generic::json(own, other, r),
            Lattice::Signed(l) => owner::signed_merge(l, ctx, None, own, other, r),
            Lattice::Owner(s) => owner::owner_merge(s.slot_value_lattice(), ctx, own, other, r),
            Lattice::Data => data::merge(own, other, r),
            Lattice::Dlfs => dlfs::merge(own, other, r),
        }
    }

    /// The value lattice of the slots of an owner map (`L` of `Owner(Signed(L))`).
    fn slot_value_lattice(&self) -> &Lattice {
        match self {
            Lattice::Signed(l) => l,
            l => l,
        }
    }

    /// The sub-lattice governing the value under `key` (lattice.md §3 "Child lattices"):
    /// Map/Index → the value lattice for any key; Keyed → the configured lattice for a key
    /// whose name bytes match (Keyword, String or Symbol); StringKeyed → the configured lattice
    /// for a String (or Keyword) key; Owner → the slot's Signed lattice for any owner;
    /// Signed → the inner lattice for `:value`; Tuple/Vector → the element lattice for an
    /// Integer index in range; LWP → the inner lattice's child; JSON → itself; value lattices
    /// (Max, Min, Compare, Function, LWW, Set, CAS, Data, DLFS) → none.
    pub fn child(&self, key: &Cell) -> Option<&Lattice> {
        match self {
            Lattice::Map(v) | Lattice::Index(v) => Some(v),
            Lattice::Keyed(ls) | Lattice::StringKeyed(ls) => {
                let name = name_bytes(key)?;
                ls.iter()
                    .find(|(n, _)| n.as_bytes() == name)
                    .map(|(_, l)| l)
            }
            Lattice::Owner(s) => Some(s),
            Lattice::Signed(l) => (key.kind() == Kind::Keyword
                && key.name_bytes() == Some(b"value".as_slice()))
            .then_some(&**l),
            Lattice::Tuple(ls) => {
                let i = key.as_long()?;
                usize::try_from(i).ok().and_then(|i| ls.get(i))
            }
            Lattice::Vector(l) => (key.as_long()? >= 0).then_some(&**l),
            Lattice::Lwp(l, _) => l.child(key),
            Lattice::JsonValue | Lattice::JsonValueIndex => Some(self),
            Lattice::Max
            | Lattice::Min
            | Lattice::Compare(_)
            | Lattice::Function(_)
            | Lattice::Set
            | Lattice::Cas
            | Lattice::Lww(_)
            | Lattice::Data
            | Lattice::Dlfs => None,
        }
    }

    /// The lattice at a path (lattice.md §4.1): `child` applied per key; `None` once a level
    /// has no child lattice (deeper keys address plain data).
    pub fn at_path(&self, path: &[Cell]) -> Option<&Lattice> {
        path.iter().try_fold(self, |l, k| l.child(k))
    }

    /// Maps an external (String/JSON) key to the canonical key at this level (lattice.md §1):
    /// Keyed → the configured Keyword; StringKeyed → the configured String; Signed → `:value`;
    /// Tuple/Vector → an Integer (from an Integer or a decimal String); Map, Index, Owner,
    /// JSON → the key itself; `None` when the key has no meaning here.
    pub fn resolve_key(&self, key: &Cell) -> Option<Cell> {
        match self {
            Lattice::Keyed(ls) => {
                let name = name_bytes(key)?;
                let (n, _) = ls.iter().find(|(n, _)| n.as_bytes() == name)?;
                Cell::keyword(n).ok()
            }
            Lattice::StringKeyed(ls) => {
                let name = name_bytes(key)?;
                let (n, _) = ls.iter().find(|(n, _)| n.as_bytes() == name)?;
                Some(Cell::string(n))
            }
            Lattice::Signed(_) => {
                (name_bytes(key)? == b"value").then(|| Cell::keyword("value").ok())?
            }
            Lattice::Tuple(_) | Lattice::Vector(_) => {
                let i = match key.as_long() {
                    Some(i) => i,
                    None => std::str::from_utf8(key.flat_bytes()?).ok()?.parse().ok()?,
                };
                self.child(&Cell::long(i)).map(|_| Cell::long(i))
            }
            Lattice::Lwp(l, _) => l.resolve_key(key),
            Lattice::Map(_)
            | Lattice::Index(_)
            | Lattice::Owner(_)
            | Lattice::JsonValue
            | Lattice::JsonValueIndex => Some(key.clone()),
            _ => None,
        }
    }
}

/// The name bytes of a Keyword, Symbol or flat String.
fn name_bytes(key: &Cell) -> Option<&[u8]> {
    match key.kind() {
        Kind::Keyword | Kind::Symbol => key.name_bytes(),
        Kind::String => key.flat_bytes(),
        _ => None,
    }
}
