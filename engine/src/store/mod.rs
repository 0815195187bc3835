//! Cell stores.

pub mod cad047;
