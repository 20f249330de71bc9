//! FATE 1.x `secure_add_example` (fate-spec §4.1,
//! `federatedml/toy_example/secure_add_{guest,host}.py`): guest and host each hold `data_num`
//! ones, split every value into two random shares, swap one share table, and sum so that the
//! guest learns the total (2 × data_num) and neither party sees the other's values.

use crate::{artifact, param};
use fate_computing::{Combine, ComputingError, Fold, Kernel, KernelRegistry, MapRow, Table};
use fate_runtime::{Component, ComponentError, Ctx};
use fate_types::Role;
use fate_types::component::{ArtifactKind, ComponentSpec};
use rand::{Rng, SeedableRng};
use serde_json::json;

pub struct SecureAddExample;

const TAG: &str = "secure_add";

/// The random share r ~ Uniform(-v, v) of every value v, seeded per party.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct RandomShare {
    pub seed: u64,
}
impl Kernel for RandomShare {
    const NAME: &'static str = "fate_components.secure_add.random_share";
}
impl MapRow for RandomShare {
    type K = u64;
    type V = f64;
    type K2 = u64;
    type V2 = f64;
    fn apply(&self, k: &u64, v: &f64) -> (u64, f64) {
        // One generator per key keeps the shares deterministic for a seed whatever the
        // partitioning and thread schedule.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
            self.seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let r = if *v == 0.0 {
            0.0
        } else {
            rng.gen_range(-v.abs()..v.abs())
        };
        (*k, r)
    }
}

/// `v - r`: the other share.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Minus;
impl Kernel for Minus {
    const NAME: &'static str = "fate_components.secure_add.minus";
}
impl Combine for Minus {
    type A = f64;
    type B = f64;
    type Out = f64;
    fn apply(&self, v: &f64, r: &f64) -> f64 {
        v - r
    }
}

/// `x + y` of two shares of one key.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Plus;
impl Kernel for Plus {
    const NAME: &'static str = "fate_components.secure_add.plus";
}
impl Combine for Plus {
    type A = f64;
    type B = f64;
    type Out = f64;
    fn apply(&self, x: &f64, y: &f64) -> f64 {
        x + y
    }
}

/// The sum of all values.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Sum;
impl Kernel for Sum {
    const NAME: &'static str = "fate_components.secure_add.sum";
}
impl Fold for Sum {
    type V = f64;
    fn apply(&self, x: f64, y: f64) -> f64 {
        x + y
    }
}

pub(crate) fn register_kernels(r: &mut KernelRegistry) -> Result<(), ComputingError> {
    r.map::<RandomShare>()?
        .combine::<Minus>()?
        .combine::<Plus>()?
        .fold::<Sum>()?;
    Ok(())
}

/// Splits every value v into (r, v - r) with r ~ Uniform(-v, v), seeded per party.
fn share(table: &Table<u64, f64>, seed: u64) -> (Table<u64, f64>, Table<u64, f64>) {
    let rs = table.map(&RandomShare { seed });
    let rest = table.join(&rs, &Minus);
    (rs, rest)
}

fn sum_of(a: &Table<u64, f64>, b: &Table<u64, f64>) -> Result<f64, ComputingError> {
    Ok(a.join(b, &Plus).reduce(&Sum)?.unwrap_or(0.0))
}

impl Component for SecureAddExample {
    fn spec(&self) -> ComponentSpec {
        ComponentSpec {
            name: "secure_add_example".into(),
            legacy_modules: vec!["SecureAddExample".into()],
            description: "FATE 1.x toy: secure sum of both parties' values by secret sharing"
                .into(),
            roles: vec![Role::Guest, Role::Host],
            params: vec![
                param(
                    "data_num",
                    false,
                    Some(json!(1000)),
                    "rows per party, each of value 1",
                )
                .max(crate::limits::DATA_NUM),
                param("partition", false, Some(json!(4)), "table partitions")
                    .max(crate::limits::PARTITIONS),
                param(
                    "seed",
                    false,
                    None,
                    "share seed (guest 123, host 321 by default)",
                ),
            ],
            inputs: vec![],
            outputs: vec![artifact("output_model", ArtifactKind::Model, true, &[])],
        }
    }

    fn run(&self, ctx: &Ctx) -> Result<(), ComponentError> {
        let data_num: u64 = ctx.param("data_num")?;
        let partition: usize = ctx.param("partition")?;
        if partition == 0 {
            return Err(ComponentError::param("partition", "must be at least 1"));
        }
        let table = ctx
            .computing
            .parallelize((0..data_num).map(|i| (i, 1.0f64)), partition);
        let fed = &ctx.federation;
        match ctx.role() {
            Role::Guest => {
                let seed = ctx.param_opt::<u64>("seed")?.unwrap_or(123);
                let hosts = ctx.parties_of(Role::Host);
                let host = hosts.first().ok_or_else(|| {
                    ComponentError::Failed("secure_add_example needs a host".into())
                })?;
                let (x1, x2) = share(&table, seed);
                fate_runtime::fedtable::remote_table(
                    fed,
                    "guest_share",
                    TAG,
                    std::slice::from_ref(host),
                    &x2,
                )?;
                let y1: Table<u64, f64> = fate_runtime::fedtable::get_table(
                    fed,
                    &ctx.computing,
                    "host_share",
                    TAG,
                    host,
                )?;
                let guest_sum = sum_of(&x1, &y1)?;
                let host_sum: f64 = fed.get_one("host_sum", TAG, host)?;
                let secure_sum = ((guest_sum + host_sum) * 1e6).round() / 1e6;
                let expected = 2.0 * data_num as f64;
                if (secure_sum - expected).abs() >= 1e-6 {
                    return Err(ComponentError::Failed(format!(
                        "secure sum {secure_sum} differs from the expected {expected}"
                    )));
                }
                ctx.info(format!(
                    "success to calculate secure_sum, it is {secure_sum:?}"
                ));
                ctx.metric(
                    "secure_sum",
                    "secure_add",
                    json!({"secure_sum": secure_sum}),
                );
                ctx.output_model("output_model", json!({"secure_sum": secure_sum}));
            }
            Role::Host => {
                let seed = ctx.param_opt::<u64>("seed")?.unwrap_or(321);
                let guest = ctx.guest()?;
                let (y1, y2) = share(&table, seed);
                fate_runtime::fedtable::remote_table(
                    fed,
                    "host_share",
                    TAG,
                    std::slice::from_ref(&guest),
                    &y1,
                )?;
                let x2: Table<u64, f64> = fate_runtime::fedtable::get_table(
                    fed,
                    &ctx.computing,
                    "guest_share",
                    TAG,
                    &guest,
                )?;
                let host_sum = sum_of(&y2, &x2)?;
                fed.remote("host_sum", TAG, std::slice::from_ref(&guest), &host_sum)?;
                ctx.info("sent host_sum to guest");
            }
            other => {
                return Err(ComponentError::Failed(format!(
                    "secure_add_example does not run as {other}"
                )));
            }
        }
        Ok(())
    }
}
