#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tgparser::fuzzing::run("bot_update", data, &|html| fake_telegram::botapi::html::visible(html));
});
