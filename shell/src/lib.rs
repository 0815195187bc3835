//! Etch shell: the REPL, local or remote (see ARCHITECTURE.md).
