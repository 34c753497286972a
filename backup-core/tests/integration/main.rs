//! Integration tests of backup-core: property tests of every planner, the retention table and
//! the configuration error messages.

mod config_errors;
mod dashboard;
mod metric_names;
mod plan_props;
mod retention_table;
