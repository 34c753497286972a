//! backup-kubectl: its parsers on captured `kubectl -o json` output, and bad input.

mod parsers;
