//! The walk that finds what a store must write for a value: the cells of its tree not yet
//! stored complete, children first (both backends' `put`).

use super::StoreError;
use etch_formats::{Cell, Ref, ValueId};

/// Calls `emit` on every cell of `value`'s tree that a store must write, children before
/// parents (so a stored record never precedes the cells beneath it): the top cell always (a
/// top-level record, even when small enough to embed), and every branch cell that is not yet
/// complete in the store. `complete(id)` says whether a cell and everything beneath it are
/// already stored; such subtrees are not descended into. A branch known only by its ID must be
/// complete, else the walk fails with [`StoreError::Missing`] — or, with `partial` (a partial
/// replica's store, which holds only some subtrees by design), is passed over.
pub(crate) fn walk_new_cells(
    value: &Cell,
    partial: bool,
    complete: &dyn Fn(&ValueId) -> Result<bool, StoreError>,
    emit: &mut dyn FnMut(&Cell) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    // Post-order with an explicit stack (trees can be deep).
    let mut stack: Vec<(Cell, bool, bool)> = vec![(value.clone(), true, false)];
    while let Some((cell, top, expanded)) = stack.pop() {
        if !expanded {
            if (top || !cell.is_embedded()) && complete(cell.id())? {
                continue;
            }
            stack.push((cell.clone(), top, true));
            for r in cell.refs().iter().rev() {
                match r {
                    Ref::Embedded(c) if !c.refs().is_empty() => {
                        stack.push((c.clone(), false, false))
                    }
                    Ref::Embedded(_) => {}
                    Ref::Branch(_) => match r.cell() {
                        Some(c) => stack.push((c.clone(), false, false)),
                        None if partial || complete(&r.id())? => {}
                        None => return Err(StoreError::Missing(r.id())),
                    },
                }
            }
            continue;
        }
        if !top && cell.is_embedded() {
            continue;
        }
        emit(&cell)?;
    }
    Ok(())
}
