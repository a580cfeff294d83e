#![no_main]

use libfuzzer_sys::fuzz_target;
use webhook_guard_fuzz::check_event;

fuzz_target!(|data: &[u8]| {
    check_event(data);
});
