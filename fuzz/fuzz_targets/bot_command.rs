#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tgparser::fuzzing::run("bot_command", data, &|html| fake_telegram::botapi::html::visible(html));
});
