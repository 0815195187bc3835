//! Etch server: the lattice node speaking the Convex peer protocol (see ARCHITECTURE.md).
