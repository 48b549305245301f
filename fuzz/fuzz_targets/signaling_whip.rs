#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sfu_signaling::fuzzing::signaling_whip(data));
