//! The FATE 2.x DAG schema as submitted to `POST /v2/job/submit` (fate-spec §3.3,
//! `fate_flow/entity/spec/dag/_job.py` and `_artifact.py`). These types mirror FATE's field names
//! exactly so a FATE user's YAML or JSON deserializes unchanged; validation into a runnable plan
//! lives in [`crate::plan()`].
//!
//! FATE's pydantic models make most fields optional and accept `null` for them, so every list or
//! map field here accepts a missing key and an explicit `null` alike. Unknown keys are ignored as
//! pydantic does, except in [`JobConfSpec`], which keeps them in `extra` so they round-trip.

use fate_types::{PartyId, Role};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// A whole job definition: `{dag: {...}, schema_version: "2.2.0"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DagSchema {
    pub dag: DagSpec,
    #[serde(default = "default_schema_version")]
    pub schema_version: String,
    /// `fate` (default) or `bfia`; we run `fate` DAGs only but keep the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

fn default_schema_version() -> String {
    "2.2.0".to_string()
}

/// The job graph: who takes part, job-level configuration and the tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DagSpec {
    pub parties: Vec<PartySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<JobConfSpec>,
    /// `train`, `predict`, `default` or `cross_validation`; tasks inherit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub tasks: BTreeMap<String, TaskSpec>,
    /// Per-site overrides keyed by a free alias (FATE's pipeline writes `guest_9999`).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub party_tasks: BTreeMap<String, PartyTaskSpec>,
}

/// One role and the party ids that play it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartySpec {
    pub role: Role,
    pub party_id: Vec<PartyId>,
}

/// One task: which component runs, on whom, with what parameters and inputs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TaskSpec {
    pub component_ref: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dependent_tasks: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "serde_json::Map::is_empty"
    )]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<TaskInputs>,
    /// Output declarations; FATE's planner ignores them for validation and so do we.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<serde_json::Value>,
    /// The parties that run the task; absent means every job party whose role the component
    /// supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parties: Option<Vec<PartySpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// Inputs by kind, then by the component's input key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TaskInputs {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub data: BTreeMap<String, InputSpec>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub model: BTreeMap<String, InputSpec>,
}

/// Where one input comes from: a map with exactly one key naming the source
/// (`{task_output_artifact: ...}`). FATE allows a single channel or a list of them.
///
/// Serde is hand-written because serde_yaml_ng reads externally tagged enums only from YAML
/// tags (`!task_output_artifact`), while FATE writes a one-key map in YAML and JSON alike.
#[derive(Debug, Clone, PartialEq)]
pub enum InputSpec {
    /// The output of a task of this job.
    TaskOutputArtifact(OneOrMany<ArtifactRef>),
    /// A model saved by an earlier job (predict DAGs).
    ModelWarehouse(OneOrMany<ArtifactRef>),
    /// A stored table, e.g. `{name, namespace}` or `{job_id, producer_task, output_artifact_key}`.
    DataWarehouse(OneOrMany<serde_json::Value>),
}

const INPUT_SOURCES: [&str; 3] = ["task_output_artifact", "model_warehouse", "data_warehouse"];

impl Serialize for InputSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            InputSpec::TaskOutputArtifact(v) => m.serialize_entry(INPUT_SOURCES[0], v)?,
            InputSpec::ModelWarehouse(v) => m.serialize_entry(INPUT_SOURCES[1], v)?,
            InputSpec::DataWarehouse(v) => m.serialize_entry(INPUT_SOURCES[2], v)?,
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for InputSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = InputSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map with one of the keys task_output_artifact, model_warehouse, data_warehouse")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(
                        "empty input: expected one of task_output_artifact, model_warehouse, data_warehouse",
                    ));
                };
                let spec = match key.as_str() {
                    "task_output_artifact" => InputSpec::TaskOutputArtifact(map.next_value()?),
                    "model_warehouse" => InputSpec::ModelWarehouse(map.next_value()?),
                    "data_warehouse" => InputSpec::DataWarehouse(map.next_value()?),
                    other => return Err(de::Error::unknown_variant(other, &INPUT_SOURCES)),
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "an input has exactly one source, found `{key}` and `{extra}`"
                    )));
                }
                Ok(spec)
            }
        }
        d.deserialize_map(V)
    }
}

/// One value or a list of them; FATE accepts both wherever an input channel is expected.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(t) => std::slice::from_ref(t),
            OneOrMany::Many(v) => v,
        }
    }
}

/// Hand-written instead of `#[serde(untagged)]` so that an error inside the value keeps the
/// parser's message and position rather than "did not match any variant".
impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map or a list of maps")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(OneOrMany::Many)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(OneOrMany::One)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A reference to an artifact: a task's output (`task_output_artifact`) or a saved model
/// (`model_warehouse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRef {
    pub producer_task: String,
    pub output_artifact_key: String,
    /// The consuming parties this channel feeds; absent means every party of the consuming task
    /// where the producer also runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parties: Option<Vec<PartySpec>>,
    /// FATE 2.0.0-beta spelling of `parties`: the consuming roles this channel feeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Role>>,
    #[serde(
        default,
        deserialize_with = "opt_string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub model_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "opt_string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub model_version: Option<String>,
}

/// Overrides for a group of parties (usually one site).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartyTaskSpec {
    #[serde(default, deserialize_with = "null_as_default")]
    pub parties: Vec<PartySpec>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tasks: BTreeMap<String, PartyTaskParams>,
    /// Task conf applied to every task these parties run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<serde_json::Value>,
}

/// Per-party overrides for one task (`PartyTaskRefSpec` in FATE).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PartyTaskParams {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "serde_json::Map::is_empty"
    )]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Party-specific inputs; FATE's predict DAGs put each party's `data_warehouse` table here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<TaskInputs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<serde_json::Value>,
}

/// Job configuration. Unknown keys (`inheritance`, `engine`, ...) are kept in `extra` so that a
/// FATE DAG with options we do not act on still round-trips.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct JobConfSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_party_id: Option<PartyId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator_party_id: Option<PartyId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_cores: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computing_partitions: Option<u32>,
    /// `poll` or `callback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_retries: Option<u32>,
    #[serde(
        default,
        deserialize_with = "opt_string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub model_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "opt_string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub model_version: Option<String>,
    /// `{model_id, model_version}` of the trained model a predict job loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_warehouse: Option<serde_json::Value>,
    /// Default task conf (`engine_run`, `provider`, `timeout`, `launcher_name`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<serde_json::Value>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Treats an explicit `null` like a missing key.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// FATE types `model_version` as `Union[str, int]`; we keep it as a string either way.
fn opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        U(u64),
        I(i64),
    }
    Ok(Option::<Raw>::deserialize(d)?.map(|r| match r {
        Raw::S(s) => s,
        Raw::U(n) => n.to_string(),
        Raw::I(n) => n.to_string(),
    }))
}
