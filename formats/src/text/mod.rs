//! Convex-Lisp text.
