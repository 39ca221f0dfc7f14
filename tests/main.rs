//! Whole-system tests: Faultline run as its users run it, against real programs. One module
//! per area; they build into one test binary, so the dependencies are linked once.
//!
//! Run one area with `cargo test -p faultline-system-tests -- outbox::`.

mod alert_senders;
mod alertmanager_api;
mod auth;
mod bad_input;
mod cli;
mod cluster;
mod connections;
mod console;
mod detectors;
mod durability;
mod elasticsearch;
mod faults;
mod foundation;
mod isolation;
mod kafka_source;
mod lifecycle;
mod listener;
mod localization;
mod log_shipper;
mod logging;
mod notifications;
mod outbox;
mod plugin_limits;
mod query_api;
mod recovery;
mod reload;
mod remote_write;
mod resolved_after_mute;
mod rollback;
mod sandbox;
mod scrape;
mod time_intervals;
