//! backup-sqlite against databases in every state a snapshot can catch, with real SQLite.

mod hostile;
mod live_writer;
mod snapshot_states;
