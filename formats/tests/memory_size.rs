#![allow(clippy::unwrap_used)]
//! Memory sizes (encoding.md §10) of the spec's worked examples.

use etch_formats::value::memory_size;
use etch_formats::{Cell, NoResolver};

#[test]
fn spec_examples() {
    let s = Cell::string(&"a".repeat(200));
    assert_eq!(s.len(), 203);
    assert_eq!(memory_size(&s, &NoResolver).unwrap(), 267);
    let one = Cell::vector(vec![s.clone()]);
    assert_eq!(one.len(), 35);
    assert_eq!(memory_size(&one, &NoResolver).unwrap(), 267);
    let five = Cell::vector(vec![s.clone(); 5]);
    assert_eq!(five.len(), 167);
    assert_eq!(memory_size(&five, &NoResolver).unwrap(), 5 * 267 + 167 + 64);
    let blob = Cell::blob(&[0u8; 4097]);
    assert_eq!(blob.len(), 39);
    assert_eq!(memory_size(&blob, &NoResolver).unwrap(), 4163);
    assert_eq!(memory_size(&Cell::long(5), &NoResolver).unwrap(), 0);
    assert_eq!(memory_size(&Cell::nil(), &NoResolver).unwrap(), 0);
    // A Syntax whose metadata map is written inline counts the map's slots, not the map itself.
    let meta = Cell::map(vec![(Cell::keyword("doc").unwrap(), s.clone())]);
    let syn = Cell::syntax(Cell::long(1), meta).unwrap();
    assert_eq!(memory_size(&syn, &NoResolver).unwrap(), 267);
}

/// A resolver that hands out the same cell objects every time (as a store's cache does), so a
/// child may come back with its memory size already computed.
struct SameCells(std::collections::HashMap<etch_formats::ValueId, etch_formats::Cell>);

impl etch_formats::Resolver for SameCells {
    fn resolve(
        &self,
        id: &etch_formats::ValueId,
    ) -> Result<Option<etch_formats::Cell>, etch_formats::ResolveError> {
        Ok(self.0.get(id).cloned())
    }
}

#[test]
fn presized_children_from_a_resolver_count() {
    use etch_formats::value::memory_size;
    use etch_formats::{decode_cell, Cell, Ref};
    let kids: Vec<Cell> = (0..4u8).map(|i| Cell::blob(&[i; 500])).collect();
    let parent = Cell::vector(kids.clone());
    let want = memory_size(&parent, &etch_formats::NoResolver).unwrap();
    // The same parent decoded from its bytes (refs unattached), its children served as cells
    // whose sizes are already cached.
    let mut map = std::collections::HashMap::new();
    for k in &kids {
        memory_size(k, &etch_formats::NoResolver).unwrap();
        map.insert(*k.id(), k.clone());
    }
    let bare = decode_cell(parent.encoding().to_vec()).unwrap();
    assert!(bare
        .refs()
        .iter()
        .all(|r| matches!(r, Ref::Branch(_)) && r.cell().is_none()));
    assert_eq!(memory_size(&bare, &SameCells(map)).unwrap(), want);
}
