#![no_main]

use libfuzzer_sys::fuzz_target;
use webhook_guard_fuzz::{RequestCase, check_request};

fuzz_target!(|case: RequestCase| {
    check_request(&case);
});
