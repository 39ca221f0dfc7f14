//! The command line's own work besides serving: `faultline test` runs rule unit tests against
//! the real plugins, `faultline new` creates a plugin crate, and `faultline check` validates a
//! rules directory.

pub mod check;
pub mod new;
pub mod test;
