#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tgparser::fuzzing::run("channel_ref", data, &|html| fake_telegram::botapi::html::visible(html));
});
