//! backup-lvm: parsers on captured output and bad input, and transcripts of restores.

mod parsers;
mod restore;
