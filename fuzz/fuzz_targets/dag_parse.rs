//! FATE 2.x job definitions (DAG YAML or JSON, `fate_dag::parse_dag`) and, when they parse,
//! their validation into a plan against fate-rs's real components (`fate_dag::plan`), as
//! `POST /v2/job/submit` does. Any panic is a bug: bad jobs must be a `PlanError`.
#![no_main]

use std::sync::OnceLock;

use fate_types::component::ComponentSpec;

fn specs() -> &'static [ComponentSpec] {
    static SPECS: OnceLock<Vec<ComponentSpec>> = OnceLock::new();
    SPECS.get_or_init(|| fate_components::registry().specs())
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(dag) = fate_dag::parse_dag(text) {
        let _ = fate_dag::plan(&dag, specs());
    }
});
