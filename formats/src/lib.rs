//! # etch-formats
//!
//! The cell model of the Convex Data Lattice and its canonical CAD003 encoding, byte-compatible
//! with the Convex reference implementation. Pure: no I/O.
//!
//! - [`Cell`]: an immutable value node with its encoding, cached [`ValueId`] and child [`Ref`]s.
//! - [`decode_cell`] / [`Body::decode`]: validating decoders (single cell; multi-cell bodies).
//! - `Cell::vector`, `Cell::map`, `Cell::blob`, …: canonical builders (trees in parallel).
//! - [`structure::verify_tree`]: full stage-B verification through a [`Resolver`].
//! - [`text`]: the Convex-Lisp reader and printer.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod body;
pub mod build;
pub mod cell;
pub mod coll;
pub mod decode;
pub mod error;
pub mod gen;
pub mod id;
pub mod message;
pub mod shape;
pub mod structure;
pub mod text;
pub mod value;
pub mod vlq;

pub use body::{branches_preorder, encode_body, encode_full_body, Body};
pub use build::BuildError;
pub use cell::{tag, Cell, Kind, NoResolver, Ref, ResolveError, Resolver};
pub use decode::{decode_cell, decode_checked_cell};
pub use error::{DecodeError, Rule};
pub use id::ValueId;
pub use message::{Message, MessageError, MessageType, ResultRecord};
