//! The model archive reader of `POST /v2/model/import` (`fate_api::read_model_archive`, the
//! handler's own parser): a zip of tar packages holding a JSON model and its YAML metadata.
//! Any panic is a bug: bad archives must be refused with a message.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fate_api::read_model_archive(data);
});
