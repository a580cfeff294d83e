#![no_main]

use libfuzzer_sys::fuzz_target;
use webhook_guard_fuzz::{SignatureCase, check_signature};

fuzz_target!(|case: SignatureCase| {
    check_signature(&case);
});
