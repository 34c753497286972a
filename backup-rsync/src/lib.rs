//! rsync invocations as data.
