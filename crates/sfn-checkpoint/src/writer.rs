//! writer (stub)
