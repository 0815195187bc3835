//! The rules for lattice values that arrive from others and for what a node serves
//! (lattice.md §4, §6.1, §8.2): which owner slots of an incoming value verify, whether a path
//! reaches inside a signed value, and which root regions are propagated.

use super::{owner::signature_valid, value_at_path, Lattice, MergeContext};
use etch_formats::value::for_each_entry;
use etch_formats::{Cell, Kind, ResolveError, Resolver};

/// Why an incoming value is refused: a Convex error code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The error code (`:TRUST`, `:STATE`, `:MISSING`).
    pub code: &'static str,
    /// What is wrong, for the sender.
    pub message: String,
}

impl Refused {
    fn new(code: &'static str, message: impl Into<String>) -> Refused {
        Refused {
            code,
            message: message.into(),
        }
    }
}

impl From<ResolveError> for Refused {
    fn from(e: ResolveError) -> Refused {
        Refused::new("MISSING", e.to_string())
    }
}

/// The root keys served to others: the propagated lattice regions (lattice.md §4). Not
/// `:local` (this node's own settings, not propagated, §8.2) nor `:pins` (this node's pin set,
/// `crate::pins`), nor anything else a `set-root!` may have put there.
pub const SERVED_KEYS: [&str; 3] = ["data", "fs", "p2p"];

/// The root as served to others: only its [`SERVED_KEYS`].
pub fn served_root(root: &Cell, r: &dyn Resolver) -> Cell {
    if root.kind() != Kind::Index {
        return root.clone();
    }
    let served = |k: &Cell| {
        k.kind() == Kind::Keyword
            && SERVED_KEYS
                .iter()
                .any(|s| k.name_bytes() == Some(s.as_bytes()))
    };
    let mut entries = Vec::new();
    let mut dropped = false;
    let walked = etch_formats::value::for_each_index_entry(root, r, &mut |k, v| {
        if served(&k) {
            entries.push((k, v));
        } else {
            dropped = true;
        }
        Ok(())
    });
    if walked.is_err() || !dropped {
        return root.clone();
    }
    Cell::index(entries).unwrap_or_else(|_| root.clone())
}

/// Whether `path` goes through the `:value` of a Signed lattice (an owner slot's content),
/// which only the owner's signature may change.
pub fn crosses_signature(root: &Lattice, path: &[Cell]) -> bool {
    let mut lat = root;
    for key in path {
        if matches!(lat, Lattice::Signed(_))
            && key.kind() == Kind::Keyword
            && key.name_bytes() == Some(b"value".as_slice())
        {
            return true;
        }
        match lat.child(key) {
            Some(c) => lat = c,
            None => return false,
        }
    }
    false
}

/// Most bytes of an owner key shown in a refusal.
const OWNER_TEXT_BYTES_MAX: usize = 200;

/// An owner key as text for a refusal, at most [`OWNER_TEXT_BYTES_MAX`] bytes: an owner key is
/// the sender's data and may be a huge tree (a DAG printed in full could grow without bound).
fn owner_text(owner: &Cell, r: &dyn Resolver) -> String {
    match etch_formats::text::print_limited(owner, r, OWNER_TEXT_BYTES_MAX) {
        Ok(t) => t,
        Err(_) => format!("{} (a {:?} too long to show)", owner.id(), owner.kind()),
    }
}

/// Verifies every signed value the lattice `l` governs in the incoming `v` before anything is
/// merged: each owner slot must be SignedData with a valid signature by a key that passes the
/// owner check; standalone Signed values must verify. Returns the owner slots that fail (owner
/// and why), which the merge leaves out (lattice.md §6.1); the whole value is refused only when
/// an owner map brings no valid slot at all, or a standalone Signed value fails. With
/// `refuse_stale`, an owner slot that brings nothing new over the slot held in `own` (a
/// replayed older state) refuses the value.
pub fn check_signed(
    l: &Lattice,
    v: &Cell,
    own: &Cell,
    refuse_stale: bool,
    r: &dyn Resolver,
) -> Result<Vec<(String, String)>, Refused> {
    match l {
        Lattice::Keyed(children) => {
            let mut refused = Vec::new();
            for (name, sub) in children {
                let key = Cell::keyword(name).unwrap_or_else(|_| Cell::nil());
                let child = value_at_path(v, std::slice::from_ref(&key), r)?;
                if child.is_nil() {
                    continue;
                }
                let own_child = value_at_path(own, std::slice::from_ref(&key), r)?;
                refused.extend(check_signed(sub, &child, &own_child, refuse_stale, r)?);
            }
            Ok(refused)
        }
        Lattice::Owner(slot_lattice) => check_owner_slots(slot_lattice, v, own, refuse_stale, r),
        Lattice::Signed(_) => {
            if signature_valid(v) {
                Ok(Vec::new())
            } else {
                Err(Refused::new("TRUST", "Bad signature"))
            }
        }
        _ => Ok(Vec::new()),
    }
}

/// [`check_signed`] for an owner map: each slot in turn.
fn check_owner_slots(
    slot_lattice: &Lattice,
    v: &Cell,
    own: &Cell,
    refuse_stale: bool,
    r: &dyn Resolver,
) -> Result<Vec<(String, String)>, Refused> {
    if v.kind() != Kind::Map {
        return Ok(Vec::new());
    }
    let ctx = MergeContext::default();
    let mut failure: Option<Refused> = None;
    let (mut refused, mut valid) = (Vec::new(), 0usize);
    for_each_entry(v, r, &mut |owner, slot| {
        if failure.is_some() {
            return Ok(());
        }
        let slot = slot.unwrap_or_else(Cell::nil);
        let who = || owner_text(&owner, r);
        if slot.kind() != Kind::Signed || !signature_valid(&slot) {
            refused.push((who(), "bad signature".to_string()));
            return Ok(());
        }
        let signer = slot.signed_public_key().unwrap_or_default();
        if !ctx.verify_owner(&owner, signer) {
            refused.push((who(), "signed by another key".to_string()));
            return Ok(());
        }
        valid += 1;
        if refuse_stale {
            let held = value_at_path(own, std::slice::from_ref(&owner), r)?;
            if !held.is_nil() && held.id() != slot.id() {
                let m = slot_lattice.merge(&ctx, &held, &slot, r)?;
                if m.id() == held.id() {
                    failure = Some(Refused::new(
                        "STATE",
                        format!(
                            "Stale value for owner {}: nothing newer than the slot held",
                            who()
                        ),
                    ));
                }
            }
        }
        Ok(())
    })?;
    if let Some(f) = failure {
        return Err(f);
    }
    if valid == 0 {
        if let Some((owner, why)) = refused.first() {
            let text = if why == "bad signature" {
                format!("Bad signature in the slot of owner {owner}")
            } else {
                format!("The slot of owner {owner} is {why}")
            };
            return Err(Refused::new("TRUST", text));
        }
    }
    Ok(refused)
}
