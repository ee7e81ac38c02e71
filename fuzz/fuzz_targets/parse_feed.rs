//! `parse_page` with format `feed` on arbitrary bytes: must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let _ = common::parse(data, "feed");
});
