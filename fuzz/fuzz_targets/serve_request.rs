#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sfn_fuzz::run("serve_request", data);
});
