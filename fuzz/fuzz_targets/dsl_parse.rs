//! FATE 1.x jobs: a DSL v2 and its runtime conf (`fate_dag::dsl_to_dag`), then the plan of the
//! converted DAG, as FATE 1.x submit does. The input is one JSON object
//! `{"dsl": ..., "runtime_conf": ...}` (the layout of the crate's test data), or any JSON value
//! used as both. Any panic is a bug.
#![no_main]

use std::sync::OnceLock;

use fate_types::component::ComponentSpec;
use serde_json::Value;

fn specs() -> &'static [ComponentSpec] {
    static SPECS: OnceLock<Vec<ComponentSpec>> = OnceLock::new();
    SPECS.get_or_init(|| fate_components::registry().specs())
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let (dsl, conf) = match (v.get("dsl"), v.get("runtime_conf")) {
        (Some(dsl), Some(conf)) => (dsl, conf),
        _ => (&v, &v),
    };
    if let Ok(dag) = fate_dag::dsl_to_dag(dsl, conf, specs()) {
        let _ = fate_dag::plan(&dag, specs());
    }
});
