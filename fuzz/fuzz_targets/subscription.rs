#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tgparser::fuzzing::run("subscription", data, &|html| fake_telegram::botapi::html::visible(html));
});
