//! Faultline: fault handling for distributed systems, with detection, localization and
//! recovery rules that run as WebAssembly sandboxes.

pub mod alerts;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod db;
pub mod detect;
pub mod dispatch;
#[cfg(test)]
mod fuzz;
pub mod history;
pub mod ingest;
pub mod lag;
pub mod localize;
pub mod metrics;
pub mod model;
pub mod outbox;
pub mod reload;
pub mod retention;
pub mod rules;
pub mod runtime;
pub mod schedule;
pub mod server;
pub mod service;
pub mod store;
pub mod workers;
