//! Test support: the engine the component suites run on (feature `testing`, never in release
//! builds).

use fate_computing::{Computing, ComputingConfig, EncodedEngine, KernelRegistry};

/// The environment variable that picks the engine of the component suites: unset or
/// `local` (typed partitions), or `encoded` ([`EncodedEngine`]: every kernel through the
/// registry over encoded rows, as on Spark). `scripts/test.sh` runs the suites on both.
pub const ENGINE_VAR: &str = "FATE_TEST_ENGINE";

/// A computing of `cfg` on the engine [`ENGINE_VAR`] names; any other value panics.
pub fn computing(cfg: ComputingConfig) -> Computing {
    match std::env::var(ENGINE_VAR).as_deref() {
        Err(_) | Ok("local") => Computing::new(cfg).expect("computing starts"),
        Ok("encoded") => encoded(cfg),
        Ok(other) => panic!("{ENGINE_VAR}={other}: expected `local` or `encoded`"),
    }
}

/// A computing of `cfg` on an [`EncodedEngine`] holding every component kernel.
pub fn encoded(cfg: ComputingConfig) -> Computing {
    let mut registry = KernelRegistry::new();
    crate::register_kernels(&mut registry).expect("kernel names are unique");
    let engine = EncodedEngine::new(registry, cfg.cores).expect("engine starts");
    Computing::on_engine(cfg, engine).expect("computing starts")
}
