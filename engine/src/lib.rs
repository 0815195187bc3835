//! # etch-engine
//!
//! Stores, lattice merges, DLFS and the query evaluator, built on `etch-formats`.
//! Today: the Convex-compatible CAD047 Etch file ([`store::cad047`]).
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod dlfs;
pub mod gc;
pub mod lattice;
pub mod node;
pub mod pins;
pub mod query;
pub mod quota;
pub mod store;
