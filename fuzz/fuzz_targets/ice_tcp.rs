#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sfu::fuzzing::ice_tcp(data));
