//! Etch engine: stores, lattice merges, DLFS and the query evaluator (see ARCHITECTURE.md). Builds on `etch-formats`.
