//! `Config::parse` on arbitrary text: an error with a position, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = lookout::config::Config::parse(text, "fuzz.toml") {
            // The message is built (Display) as the daemon would log it.
            let _ = e.to_string();
        }
    }
});
