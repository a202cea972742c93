#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tgparser::fuzzing::run("tl_message", data, &|html| fake_telegram::botapi::html::visible(html));
});
