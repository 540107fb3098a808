#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| costream_fuzz::signaling(data));
