//! selector (stub)
