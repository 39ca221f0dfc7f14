//! The command line's own work besides serving: `faultline test` runs rule unit tests against
//! the real plugins, `faultline new` creates a plugin crate, `faultline check` validates a
//! rules directory, `faultline query` asks a running server which series a selector
//! matches, and `faultline backup` copies a running server's database.

pub mod backup;
pub mod check;
pub mod new;
pub mod query;
pub mod test;
