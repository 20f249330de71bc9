//! FATE 2.x `toy_example` (fate-spec §4.1, `components/toy_example.py`): a connectivity test.
//! Both parties build `data_num` rows `[i, i, i]`; the guest sends its sample index to the
//! hosts, each host answers with the rows it has of that index, and the guest checks that every
//! row came back.

use crate::{artifact, param};
use fate_computing::{Combine, ComputingError, Kernel, KernelRegistry, MapValues, Table};
use fate_runtime::{Component, ComponentError, Ctx, DataFrame, Row, Schema};
use fate_types::Role;
use fate_types::component::{ArtifactKind, ComponentSpec};
use serde_json::json;

pub struct ToyExample;

/// The guest's sample index: every row to `()`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct IndexOnly;
impl Kernel for IndexOnly {
    const NAME: &'static str = "fate_components.toy.index_only";
}
impl MapValues for IndexOnly {
    type In = Row;
    type Out = ();
    fn apply(&self, _: &Row) {}
}

/// The guest's rows the host has (join with the host's index).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct KeepRow;
impl Kernel for KeepRow {
    const NAME: &'static str = "fate_components.toy.keep_row";
}
impl Combine for KeepRow {
    type A = Row;
    type B = ();
    type Out = Row;
    fn apply(&self, row: &Row, _: &()) -> Row {
        row.clone()
    }
}

/// The host's part of the guest's index (join with the host's rows).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Present;
impl Kernel for Present {
    const NAME: &'static str = "fate_components.toy.present";
}
impl Combine for Present {
    type A = ();
    type B = Row;
    type Out = ();
    fn apply(&self, _: &(), _: &Row) {}
}

pub(crate) fn register_kernels(r: &mut KernelRegistry) -> Result<(), ComputingError> {
    r.map_values::<IndexOnly>()?
        .combine::<KeepRow>()?
        .combine::<Present>()?;
    Ok(())
}

const TAG: &str = "toy_example";

fn frame(ctx: &Ctx, data_num: u64, partition: usize) -> DataFrame {
    let rows = (0..data_num).map(|i| {
        (
            i.to_string(),
            Row {
                match_id: i.to_string(),
                label: None,
                weight: None,
                features: vec![i as f64],
            },
        )
    });
    DataFrame {
        schema: Schema {
            sample_id_name: "sample_id".into(),
            match_id_name: "match_id".into(),
            feature_names: vec!["x0".into()],
            dtype: "float64".into(),
            dataset_type: None,
            ..Schema::default()
        },
        table: ctx.computing.parallelize(rows, partition),
    }
}

impl Component for ToyExample {
    fn spec(&self) -> ComponentSpec {
        ComponentSpec {
            name: "toy_example".into(),
            legacy_modules: vec![],
            description: "FATE 2.x toy: guest and hosts exchange a sample index".into(),
            roles: vec![Role::Guest, Role::Host],
            params: vec![
                param("data_num", true, None, "rows each party builds")
                    .max(crate::limits::DATA_NUM),
                param("partition", true, None, "table partitions").max(crate::limits::PARTITIONS),
            ],
            inputs: vec![],
            outputs: vec![
                artifact("output_data", ArtifactKind::Data, true, &[]),
                artifact("json_model_output", ArtifactKind::Model, true, &[]),
            ],
        }
    }

    fn run(&self, ctx: &Ctx) -> Result<(), ComponentError> {
        let data_num: u64 = ctx.param("data_num")?;
        let partition: usize = ctx.param("partition")?;
        if partition == 0 {
            return Err(ComponentError::param("partition", "must be at least 1"));
        }
        let df = frame(ctx, data_num, partition);
        let fed = &ctx.federation;
        match ctx.role() {
            Role::Guest => {
                let hosts = ctx.parties_of(Role::Host);
                let index: Table<String, ()> = df.table.map_values(&IndexOnly);
                fate_runtime::fedtable::remote_table(fed, "guest_index", TAG, &hosts, &index)?;
                for host in &hosts {
                    let host_index: Table<String, ()> = fate_runtime::fedtable::get_table(
                        fed,
                        &ctx.computing,
                        "host_index",
                        TAG,
                        host,
                    )?;
                    let matched = df.table.join(&host_index, &KeepRow);
                    let matched = matched.count()?;
                    if matched as u64 != data_num {
                        return Err(ComponentError::Failed(format!(
                            "{host} returned {matched} of {data_num} rows"
                        )));
                    }
                }
            }
            Role::Host => {
                let guest = ctx.guest()?;
                let guest_index: Table<String, ()> = fate_runtime::fedtable::get_table(
                    fed,
                    &ctx.computing,
                    "guest_index",
                    TAG,
                    &guest,
                )?;
                let mine = guest_index.join(&df.table, &Present);
                fate_runtime::fedtable::remote_table(
                    fed,
                    "host_index",
                    TAG,
                    std::slice::from_ref(&guest),
                    &mine,
                )?;
            }
            other => {
                return Err(ComponentError::Failed(format!(
                    "toy_example does not run as {other}"
                )));
            }
        }
        ctx.info(format!(
            "toy_example finished at {} with {data_num} rows",
            ctx.local
        ));
        ctx.output_data("output_data", &df)?;
        ctx.output_model(
            "json_model_output",
            json!({"test_role": ctx.role().as_str()}),
        );
        Ok(())
    }
}
