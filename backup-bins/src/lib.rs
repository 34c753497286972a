//! The binaries.
