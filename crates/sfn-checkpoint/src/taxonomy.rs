//! taxonomy (stub)
