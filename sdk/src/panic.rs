//! Panics reported, not lost. A plugin is built with `panic = "abort"` (Wasm has no
//! unwinding), so a panic traps the call and the host would see only "unreachable
//! instruction executed". The export macros install [`install_hook`] first thing: it sends
//! the panic's message and location through the log import, at error level, as
//! `panicked at src/lib.rs:12:9: <message>`, and the host reports that line as the call's
//! error (in `/api/v1/rules` `lastError`) and logs it with the rule's name.

use std::panic::PanicHookInfo;
use std::sync::Once;

use crate::bindings::wit::log::Level;

/// Installs the hook, once per instance.
pub fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            crate::host::log(Level::Error, &message(info))
        }));
    });
}

/// `panicked at <file>:<line>:<column>: <message>`, as Rust's default hook words it.
fn message(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>");
    match info.location() {
        Some(l) => format!(
            "panicked at {}:{}:{}: {text}",
            l.file(),
            l.line(),
            l.column()
        ),
        None => format!("panicked: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn message_has_location_and_text() {
        let seen = Arc::new(Mutex::new(String::new()));
        let s = seen.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| *s.lock().unwrap() = message(info)));
        let line = line!() + 1;
        let _ = std::panic::catch_unwind(|| panic!("boom {}", 7));
        std::panic::set_hook(previous);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            format!("panicked at sdk/src/panic.rs:{line}:45: boom 7")
        );
    }
}
