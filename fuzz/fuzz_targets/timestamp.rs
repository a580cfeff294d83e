#![no_main]

use libfuzzer_sys::fuzz_target;
use webhook_guard_fuzz::{TimestampCase, check_timestamp};

fuzz_target!(|case: TimestampCase| {
    check_timestamp(&case);
});
