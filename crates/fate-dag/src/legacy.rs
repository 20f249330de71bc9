//! FATE 1.x DSL v2 + runtime conf -> the equivalent FATE 2.x DAG (fate-spec §3.2 -> §3.3), so a
//! 1.x job runs through the same planner as a 2.x one.
//!
//! What maps where:
//! * DSL `module` -> the component whose `legacy_modules` lists it (or whose 2.x name it is).
//! * `conf.role` -> `dag.parties` (roles in guest, host, arbiter, local order);
//!   `conf.initiator.party_id` -> `dag.conf.initiator_party_id`.
//! * `component_parameters.common.<task>` -> the task's `parameters`;
//!   `component_parameters.role.<role>.<"0"|"0|1"|"all">.<task>` -> a `party_tasks` entry named
//!   `<role>_<party_id>` for each party those indexes select. `all` is applied first, then the
//!   indexed keys in key order. 1.x merges role parameters into common ones deeply; 2.x replaces
//!   whole top-level values, so a role value that is a map is stored merged with the common map.
//! * `job_parameters.common`: `job_type` -> `dag.stage` (`predict` also moves `model_id` and
//!   `model_version` into `conf.model_warehouse`), `computing_partitions`, `task_cores`,
//!   `auto_retries`, `model_id`, `model_version` -> the same `conf` keys, `task_cores *
//!   task_parallelism` -> `conf.cores`, `timeout` -> `conf.task.timeout`,
//!   `federated_status_collect_type` PUSH/PULL -> `sync_type` callback/poll;
//!   `computing_engine`, `storage_engine`, `federation_engine` -> the same `conf` keys and
//!   `spark_run` -> `conf.task.engine_run` ([`crate::engines`]).
//! * `job_parameters.role.<role>.<"0"|"0|1"|"all">`: the same engine keys -> the `conf` of the
//!   party's `party_tasks` entry (`<role>_<party_id>`); other per-role job parameters are not
//!   carried over. Engine errors name the 1.x field (`conf.job_parameters.role.host.0.spark_run`).
//! * DSL inputs `"<task>.<output>"` -> `task_output_artifact` refs plus `dependent_tasks`;
//!   `"pipeline.<task>.<output>"` (1.x predict DSL) -> `model_warehouse` refs. A 1.x data key
//!   (`data`, `train_data`, `validate_data`, `test_data`) becomes the 2.x input with the same key,
//!   else the component's only data input; `model`/`isometric_model` become the same-named input,
//!   else the only model input, else `input_model`. A 1.x output name becomes the producer's
//!   output of that key, else its only output of the kind, else `<name>_output_data` (Data
//!   Split's `train` -> `train_output_data`), else `train_output_data`/`test_output_data` by stage,
//!   else `output_data` / `output_model`.

use crate::error::{PlanError, PlanErrorKind as K};
use crate::spec::{
    ArtifactRef, DagSchema, DagSpec, InputSpec, JobConfSpec, OneOrMany, PartySpec, PartyTaskParams,
    PartyTaskSpec, TaskInputs, TaskSpec,
};
use fate_types::component::{ArtifactKind, ComponentSpec};
use fate_types::{PartyId, Role};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Converts a FATE 1.x DSL v2 and its runtime conf into the equivalent 2.x [`DagSchema`].
/// `components` is searched for each DSL `module` through [`ComponentSpec::legacy_modules`].
/// The result still has to go through [`crate::plan()`], which does the full validation; this
/// function only reports what stops the conversion itself.
pub fn dsl_to_dag(
    dsl: &Value,
    conf: &Value,
    components: &[ComponentSpec],
) -> Result<DagSchema, PlanError> {
    for (field, v) in [("dsl", dsl), ("conf", conf)] {
        if value_depth(v, crate::parse::MAX_DAG_DEPTH + 1) > crate::parse::MAX_DAG_DEPTH {
            return Err(PlanError::job(
                K::Syntax,
                field,
                format!(
                    "nested more than {} levels deep",
                    crate::parse::MAX_DAG_DEPTH
                ),
            ));
        }
    }
    let conf_obj = object(conf, "conf")?;
    if let Some(v) = conf_obj.get("dsl_version").filter(|v| !v.is_null()) {
        let is_2 = v.as_u64() == Some(2) || v.as_str() == Some("2");
        if !is_2 {
            return Err(PlanError::job(
                K::BadValue,
                "conf.dsl_version",
                format!("DSL version {v} is not supported; only DSL v2 converts to a 2.x DAG"),
            ));
        }
    }

    let roles = roles(conf_obj)?;
    let parties: Vec<PartySpec> = roles
        .iter()
        .map(|(role, ids)| PartySpec {
            role: *role,
            party_id: ids.clone(),
        })
        .collect();

    let mut job_conf = JobConfSpec::default();
    if let Some(init) = conf_obj.get("initiator").filter(|v| !v.is_null()) {
        job_conf.initiator_party_id = Some(initiator(init, &roles)?);
    }
    let stage = job_parameters(conf_obj, &mut job_conf)?;

    let dsl_obj = object(dsl, "dsl")?;
    let cpns = object(
        dsl_obj.get("components").unwrap_or(&Value::Null),
        "dsl.components",
    )?;
    if cpns.len() > crate::parse::MAX_DAG_ITEMS {
        return Err(PlanError::job(
            K::BadValue,
            "dsl.components",
            format!(
                "{} entries, more than the limit of {}",
                cpns.len(),
                crate::parse::MAX_DAG_ITEMS
            ),
        ));
    }
    // Resolve every module first so inputs can look at their producer's component.
    let mut resolved: BTreeMap<&str, &ComponentSpec> = BTreeMap::new();
    for (name, cpn) in cpns {
        let field = format!("dsl.components.{name}.module");
        let module = object(cpn, &format!("dsl.components.{name}"))?
            .get("module")
            .and_then(Value::as_str)
            .ok_or_else(|| PlanError::task(K::Syntax, name, &field, "`module` must be a string"))?;
        resolved.insert(name, component_for(module, components, name, &field)?);
    }

    let mut tasks: BTreeMap<String, TaskSpec> = BTreeMap::new();
    for (name, cpn) in cpns {
        let comp = resolved[name.as_str()];
        let cpn = object(cpn, &format!("dsl.components.{name}"))?;
        let (inputs, deps) = match cpn.get("input").filter(|v| !v.is_null()) {
            Some(input) => convert_inputs(name, input, comp, &resolved, stage.as_deref())?,
            None => (None, BTreeSet::new()),
        };
        tasks.insert(
            name.clone(),
            TaskSpec {
                component_ref: comp.name.clone(),
                dependent_tasks: deps.into_iter().collect(),
                inputs,
                ..TaskSpec::default()
            },
        );
    }

    let mut party_tasks = component_parameters(conf_obj, &roles, &mut tasks)?;
    role_job_parameters(conf_obj, &roles, &mut party_tasks)?;

    let dag = DagSchema {
        dag: DagSpec {
            parties,
            conf: Some(job_conf),
            stage,
            tasks,
            party_tasks,
        },
        schema_version: "2.2.0".to_string(),
        kind: None,
    };
    crate::parse::check_size(&dag)?;
    Ok(dag)
}

/// Nesting depth of a JSON value, counted no further than `cap` (so the walk is bounded too).
fn value_depth(v: &Value, cap: usize) -> usize {
    if cap == 0 {
        return 0;
    }
    match v {
        Value::Array(a) => 1 + a.iter().map(|x| value_depth(x, cap - 1)).max().unwrap_or(0),
        Value::Object(m) => {
            1 + m
                .values()
                .map(|x| value_depth(x, cap - 1))
                .max()
                .unwrap_or(0)
        }
        _ => 0,
    }
}

fn object<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, PlanError> {
    v.as_object().ok_or_else(|| {
        let what = if v.is_null() {
            "is missing"
        } else {
            "must be a map"
        };
        PlanError::job(K::Syntax, field, format!("`{field}` {what}"))
    })
}

fn party_id(v: &Value, field: &str) -> Result<PartyId, PlanError> {
    match v {
        Value::String(s) => Ok(PartyId::new(s.clone())),
        Value::Number(n) if n.is_u64() => Ok(PartyId::new(n.to_string())),
        _ => Err(PlanError::job(
            K::BadValue,
            field,
            format!("party id {v} must be a number or a string"),
        )),
    }
}

/// `conf.role` in FATE's role order.
fn roles(conf: &Map<String, Value>) -> Result<Vec<(Role, Vec<PartyId>)>, PlanError> {
    let Some(role_obj) = conf.get("role").and_then(Value::as_object) else {
        return Err(PlanError::job(
            K::NoParties,
            "conf.role",
            "`conf.role` must map roles to party id lists, e.g. {\"guest\": [9999], \"host\": [10000]}",
        ));
    };
    let mut by_role: BTreeMap<Role, Vec<PartyId>> = BTreeMap::new();
    for (name, ids) in role_obj {
        let field = format!("conf.role.{name}");
        let role: Role = name.parse().map_err(|e: fate_types::party::UnknownRole| {
            PlanError::job(K::BadValue, &field, e.to_string())
        })?;
        let list = ids
            .as_array()
            .ok_or_else(|| PlanError::job(K::BadValue, &field, "expected a list of party ids"))?;
        let ids = list
            .iter()
            .map(|v| party_id(v, &field))
            .collect::<Result<Vec<_>, _>>()?;
        by_role.insert(role, ids);
    }
    Ok(Role::ALL
        .iter()
        .filter_map(|r| by_role.remove(r).map(|ids| (*r, ids)))
        .collect())
}

fn initiator(v: &Value, roles: &[(Role, Vec<PartyId>)]) -> Result<PartyId, PlanError> {
    let field = "conf.initiator";
    let obj = object(v, field)?;
    let id = party_id(
        obj.get("party_id").unwrap_or(&Value::Null),
        "conf.initiator.party_id",
    )?;
    let role: Option<Role> = obj
        .get("role")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok());
    let found = roles
        .iter()
        .filter(|(r, _)| role.is_none_or(|want| want == *r))
        .any(|(_, ids)| ids.contains(&id));
    if !found {
        let who = match role {
            Some(r) => format!("{r}:{id}"),
            None => id.to_string(),
        };
        return Err(PlanError::job(
            K::UnknownParty,
            field,
            format!("initiator {who} is not listed in `conf.role`"),
        ));
    }
    Ok(id)
}

/// Fills `conf` from `job_parameters.common`; returns the stage.
fn job_parameters(
    conf: &Map<String, Value>,
    out: &mut JobConfSpec,
) -> Result<Option<String>, PlanError> {
    let Some(common) = conf
        .get("job_parameters")
        .and_then(|j| j.get("common"))
        .filter(|v| !v.is_null())
    else {
        return Ok(None);
    };
    let common = object(common, "conf.job_parameters.common")?;
    let field = |k: &str| format!("conf.job_parameters.common.{k}");
    let uint = |k: &str| -> Result<Option<u32>, PlanError> {
        match common.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    PlanError::job(
                        K::BadValue,
                        field(k),
                        format!("expected a non-negative integer, got {v}"),
                    )
                }),
        }
    };
    let string = |k: &str| -> Result<Option<String>, PlanError> {
        match common.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(v) => Err(PlanError::job(
                K::BadValue,
                field(k),
                format!("expected a string, got {v}"),
            )),
        }
    };

    out.computing_partitions = uint("computing_partitions")?;
    out.task_cores = uint("task_cores")?;
    out.auto_retries = uint("auto_retries")?;
    if let (Some(cores), Some(par)) = (out.task_cores, uint("task_parallelism")?) {
        out.cores = Some(cores.saturating_mul(par));
    }
    if let Some(t) = common.get("timeout").filter(|v| !v.is_null()) {
        let mut task = Map::new();
        task.insert("timeout".to_string(), t.clone());
        out.task = Some(Value::Object(task));
    }
    if let Some(s) = string("federated_status_collect_type")? {
        out.sync_type = Some(match s.to_ascii_uppercase().as_str() {
            "PUSH" => "callback".to_string(),
            "PULL" => "poll".to_string(),
            _ => {
                return Err(PlanError::job(
                    K::BadValue,
                    field("federated_status_collect_type"),
                    format!("`{s}` is not PUSH or PULL"),
                ));
            }
        });
    }
    let stage = match string("job_type")?.as_deref() {
        None => None,
        Some("train") => Some("train".to_string()),
        Some("predict") => Some("predict".to_string()),
        Some(other) => {
            return Err(PlanError::job(
                K::BadValue,
                field("job_type"),
                format!("`{other}` is not a job type (expected train or predict)"),
            ));
        }
    };
    for (k, v) in engine_conf(common, "conf.job_parameters.common")? {
        if k == "engine_run" {
            let task = out.task.get_or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(t) = task {
                t.insert(k, v);
            }
        } else {
            out.extra.insert(k, v);
        }
    }
    let (model_id, model_version) = (string("model_id")?, string("model_version")?);
    if stage.as_deref() == Some("predict") {
        // A 1.x predict job names the trained model it loads.
        let mut wh = Map::new();
        if let Some(id) = model_id {
            wh.insert("model_id".to_string(), Value::String(id));
        }
        if let Some(v) = model_version {
            wh.insert("model_version".to_string(), Value::String(v));
        }
        if !wh.is_empty() {
            out.model_warehouse = Some(Value::Object(wh));
        }
    } else {
        out.model_id = model_id;
        out.model_version = model_version;
    }
    Ok(stage)
}

fn component_for<'a>(
    module: &str,
    components: &'a [ComponentSpec],
    task: &str,
    field: &str,
) -> Result<&'a ComponentSpec, PlanError> {
    components
        .iter()
        .find(|c| c.legacy_modules.iter().any(|m| m == module))
        .or_else(|| components.iter().find(|c| c.name == module))
        .ok_or_else(|| {
            let known: BTreeSet<&str> = components
                .iter()
                .flat_map(|c| c.legacy_modules.iter().map(String::as_str))
                .collect();
            let known: Vec<&str> = known.into_iter().collect();
            PlanError::task(
                K::UnknownComponent,
                task,
                field,
                format!(
                    "unknown module `{module}` (known 1.x modules: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })
}

/// One 1.x reference, `task.output` or `pipeline.task.output`.
struct Ref<'a> {
    warehouse: bool,
    task: &'a str,
    output: &'a str,
}

fn parse_ref<'a>(s: &'a str, task: &str, field: &str) -> Result<Ref<'a>, PlanError> {
    let parts: Vec<&str> = s.split('.').collect();
    match parts.as_slice() {
        ["pipeline", t, o] if !t.is_empty() && !o.is_empty() => Ok(Ref {
            warehouse: true,
            task: t,
            output: o,
        }),
        [t, o] if !t.is_empty() && !o.is_empty() => Ok(Ref {
            warehouse: false,
            task: t,
            output: o,
        }),
        _ => Err(PlanError::task(
            K::BadInput,
            task,
            field,
            format!("`{s}` is not an input reference (expected `task.output`)"),
        )),
    }
}

fn ref_list<'a>(v: &'a Value, task: &str, field: &str) -> Result<Vec<&'a str>, PlanError> {
    let bad = || {
        PlanError::task(
            K::Syntax,
            task,
            field,
            "expected a list of `task.output` strings",
        )
    };
    match v {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) => items.iter().map(|i| i.as_str().ok_or_else(bad)).collect(),
        _ => Err(bad()),
    }
}

type Inputs = (Option<TaskInputs>, BTreeSet<String>);

fn convert_inputs(
    name: &str,
    input: &Value,
    comp: &ComponentSpec,
    resolved: &BTreeMap<&str, &ComponentSpec>,
    stage: Option<&str>,
) -> Result<Inputs, PlanError> {
    let prefix = format!("dsl.components.{name}.input");
    let input = object(input, &prefix)?;
    // 2.x kind -> 2.x key -> refs, in DSL order.
    let mut data: BTreeMap<String, Vec<ArtifactRef>> = BTreeMap::new();
    let mut model: BTreeMap<String, Vec<(bool, ArtifactRef)>> = BTreeMap::new();
    let mut deps = BTreeSet::new();

    for (section, v) in input {
        match section.as_str() {
            "data" => {
                let field = format!("{prefix}.data");
                for (key, refs) in object(v, &field)? {
                    let field = format!("{field}.{key}");
                    let key2 = map_input_key(comp, key, ArtifactKind::Data, name, &field)?;
                    for s in ref_list(refs, name, &field)? {
                        let r = parse_ref(s, name, &field)?;
                        if r.warehouse {
                            return Err(PlanError::task(
                                K::BadInput,
                                name,
                                &field,
                                format!("`{s}`: only models can come from `pipeline.`"),
                            ));
                        }
                        let producer = producer_of(&r, resolved, name, &field)?;
                        let out = map_output_key(
                            producer,
                            r.output,
                            ArtifactKind::Data,
                            stage,
                            name,
                            &field,
                        )?;
                        deps.insert(r.task.to_string());
                        data.entry(key2.clone())
                            .or_default()
                            .push(artifact(r.task, out));
                    }
                }
            }
            "model" | "isometric_model" => {
                let field = format!("{prefix}.{section}");
                let key2 = map_input_key(comp, section, ArtifactKind::Model, name, &field)?;
                for s in ref_list(v, name, &field)? {
                    let r = parse_ref(s, name, &field)?;
                    // A `pipeline.` model comes from the training job, whose task usually used
                    // the same component as this one.
                    let producer = if r.warehouse {
                        resolved.get(r.task).copied().unwrap_or(comp)
                    } else {
                        producer_of(&r, resolved, name, &field)?
                    };
                    let out = map_output_key(
                        producer,
                        r.output,
                        ArtifactKind::Model,
                        stage,
                        name,
                        &field,
                    )?;
                    if !r.warehouse {
                        deps.insert(r.task.to_string());
                    }
                    model
                        .entry(key2.clone())
                        .or_default()
                        .push((r.warehouse, artifact(r.task, out)));
                }
            }
            other => {
                return Err(PlanError::task(
                    K::BadInput,
                    name,
                    format!("{prefix}.{other}"),
                    format!(
                        "1.x input section `{other}` has no 2.x equivalent (expected data, model or isometric_model)"
                    ),
                ));
            }
        }
    }

    let one_or_many = |mut v: Vec<ArtifactRef>| {
        if v.len() == 1 {
            OneOrMany::One(v.remove(0))
        } else {
            OneOrMany::Many(v)
        }
    };
    let mut inputs = TaskInputs::default();
    for (key, refs) in data {
        inputs
            .data
            .insert(key, InputSpec::TaskOutputArtifact(one_or_many(refs)));
    }
    for (key, refs) in model {
        let (warehouse, task): (Vec<_>, Vec<_>) = refs.into_iter().partition(|(w, _)| *w);
        let strip = |v: Vec<(bool, ArtifactRef)>| v.into_iter().map(|(_, r)| r).collect::<Vec<_>>();
        match (warehouse.is_empty(), task.is_empty()) {
            (true, _) => inputs
                .model
                .insert(key, InputSpec::TaskOutputArtifact(one_or_many(strip(task)))),
            (false, true) => inputs.model.insert(
                key,
                InputSpec::ModelWarehouse(one_or_many(strip(warehouse))),
            ),
            (false, false) => {
                return Err(PlanError::task(
                    K::BadInput,
                    name,
                    format!("{prefix}.model"),
                    format!("input `{key}` mixes `pipeline.` models with models of this job"),
                ));
            }
        };
    }
    let empty = inputs.data.is_empty() && inputs.model.is_empty();
    Ok((if empty { None } else { Some(inputs) }, deps))
}

fn artifact(task: &str, output: String) -> ArtifactRef {
    ArtifactRef {
        producer_task: task.to_string(),
        output_artifact_key: output,
        parties: None,
        roles: None,
        model_id: None,
        model_version: None,
    }
}

fn producer_of<'a>(
    r: &Ref<'_>,
    resolved: &BTreeMap<&str, &'a ComponentSpec>,
    task: &str,
    field: &str,
) -> Result<&'a ComponentSpec, PlanError> {
    resolved.get(r.task).copied().ok_or_else(|| {
        let known: Vec<&str> = resolved.keys().copied().collect();
        PlanError::task(
            K::UnknownTask,
            task,
            field,
            format!(
                "no component named `{}` in the DSL ({})",
                r.task,
                known.join(", ")
            ),
        )
    })
}

fn map_input_key(
    comp: &ComponentSpec,
    key: &str,
    kind: ArtifactKind,
    task: &str,
    field: &str,
) -> Result<String, PlanError> {
    let of_kind: Vec<&str> = comp
        .inputs
        .iter()
        .filter(|a| a.kind == kind)
        .map(|a| a.key.as_str())
        .collect();
    if let Some(a) = comp.input(key).filter(|a| a.kind == kind) {
        return Ok(a.key.clone());
    }
    if let [only] = of_kind.as_slice() {
        return Ok(only.to_string());
    }
    if kind == ArtifactKind::Model && of_kind.contains(&"input_model") {
        return Ok("input_model".to_string());
    }
    let kind_s = if kind == ArtifactKind::Data {
        "data"
    } else {
        "model"
    };
    Err(PlanError::task(
        K::BadInput,
        task,
        field,
        format!(
            "cannot map 1.x {kind_s} input `{key}` to an input of component `{}` (its {kind_s} inputs: {})",
            comp.name,
            if of_kind.is_empty() {
                "none".to_string()
            } else {
                of_kind.join(", ")
            }
        ),
    ))
}

fn map_output_key(
    producer: &ComponentSpec,
    out: &str,
    kind: ArtifactKind,
    stage: Option<&str>,
    task: &str,
    field: &str,
) -> Result<String, PlanError> {
    let of_kind: Vec<&str> = producer
        .outputs
        .iter()
        .filter(|a| a.kind == kind)
        .map(|a| a.key.as_str())
        .collect();
    if of_kind.contains(&out) {
        return Ok(out.to_string());
    }
    if let [only] = of_kind.as_slice() {
        return Ok(only.to_string());
    }
    let mut candidates = Vec::new();
    if kind == ArtifactKind::Data {
        candidates.push(format!("{out}_output_data"));
        candidates.push(
            if stage == Some("predict") {
                "test_output_data"
            } else {
                "train_output_data"
            }
            .to_string(),
        );
        candidates.push("output_data".to_string());
    } else {
        candidates.push("output_model".to_string());
    }
    if let Some(c) = candidates
        .into_iter()
        .find(|c| of_kind.contains(&c.as_str()))
    {
        return Ok(c);
    }
    Err(PlanError::task(
        K::BadInput,
        task,
        field,
        format!(
            "cannot map 1.x output `{out}` to an output of component `{}` (its outputs: {})",
            producer.name,
            if of_kind.is_empty() {
                "none".to_string()
            } else {
                of_kind.join(", ")
            }
        ),
    ))
}

/// `component_parameters` -> task parameters and `party_tasks`.
fn component_parameters(
    conf: &Map<String, Value>,
    roles: &[(Role, Vec<PartyId>)],
    tasks: &mut BTreeMap<String, TaskSpec>,
) -> Result<BTreeMap<String, PartyTaskSpec>, PlanError> {
    let Some(cp) = conf.get("component_parameters").filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    let cp = object(cp, "conf.component_parameters")?;
    let known =
        |tasks: &BTreeMap<String, TaskSpec>| tasks.keys().cloned().collect::<Vec<_>>().join(", ");

    if let Some(common) = cp.get("common").filter(|v| !v.is_null()) {
        for (task, params) in object(common, "conf.component_parameters.common")? {
            let field = format!("conf.component_parameters.common.{task}");
            let list = known(tasks);
            let Some(t) = tasks.get_mut(task) else {
                return Err(PlanError::task(
                    K::UnknownTask,
                    task,
                    field,
                    format!("no component named `{task}` in the DSL ({list})"),
                ));
            };
            t.parameters = object(params, &field)?.clone();
        }
    }

    // (role, party id) -> task -> parameters, merged in application order.
    let mut per_party: BTreeMap<(Role, PartyId), BTreeMap<String, Map<String, Value>>> =
        BTreeMap::new();
    if let Some(by_role) = cp.get("role").filter(|v| !v.is_null()) {
        for (role_name, by_idx) in object(by_role, "conf.component_parameters.role")? {
            let field = format!("conf.component_parameters.role.{role_name}");
            let ids = role_name.parse::<Role>().ok().and_then(|r| {
                roles
                    .iter()
                    .find(|(x, _)| *x == r)
                    .map(|(r, ids)| (*r, ids))
            });
            let Some((role, ids)) = ids else {
                return Err(PlanError::job(
                    K::UnknownParty,
                    field,
                    format!("role `{role_name}` is not listed in `conf.role`"),
                ));
            };
            let by_idx = object(by_idx, &field)?;
            let mut keys: Vec<&String> = by_idx.keys().collect();
            keys.sort_by_key(|k| (k.as_str() != "all", k.as_str()));
            for key in keys {
                let field = format!("{field}.{key}");
                let idxs = role_indexes(key, role, ids.len(), &field)?;
                for (task, params) in object(&by_idx[key.as_str()], &field)? {
                    let tfield = format!("{field}.{task}");
                    if !tasks.contains_key(task) {
                        return Err(PlanError::task(
                            K::UnknownTask,
                            task,
                            tfield,
                            format!("no component named `{task}` in the DSL ({})", known(tasks)),
                        ));
                    }
                    let params = object(params, &tfield)?;
                    for &i in &idxs {
                        let slot = per_party
                            .entry((role, ids[i].clone()))
                            .or_default()
                            .entry(task.clone())
                            .or_default();
                        deep_merge(slot, params);
                    }
                }
            }
        }
    }

    let mut out = BTreeMap::new();
    for ((role, id), by_task) in per_party {
        let tasks_out = by_task
            .into_iter()
            .map(|(task, mut params)| {
                // 2.x replaces whole values; pre-merge maps with the common value (1.x semantics).
                if let Some(common) = tasks.get(&task).map(|t| &t.parameters) {
                    for (k, v) in params.iter_mut() {
                        if let (Some(Value::Object(c)), Value::Object(p)) = (common.get(k), &*v) {
                            let mut merged = c.clone();
                            deep_merge(&mut merged, p);
                            *v = Value::Object(merged);
                        }
                    }
                }
                (
                    task,
                    PartyTaskParams {
                        parameters: params,
                        ..PartyTaskParams::default()
                    },
                )
            })
            .collect();
        out.insert(
            format!("{role}_{id}"),
            PartyTaskSpec {
                parties: vec![PartySpec {
                    role,
                    party_id: vec![id],
                }],
                tasks: tasks_out,
                conf: None,
            },
        );
    }
    Ok(out)
}

/// The indexes into `conf.role.<role>` a role key selects: `"0"`, `"0|1"` or `"all"`.
fn role_indexes(key: &str, role: Role, n: usize, field: &str) -> Result<Vec<usize>, PlanError> {
    if key == "all" {
        return Ok((0..n).collect());
    }
    key.split('|')
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|i| *i < n)
                .ok_or_else(|| {
                    PlanError::job(
                        K::UnknownParty,
                        field,
                        format!("`{s}` is not an index into `conf.role.{role}` ({n} parties)"),
                    )
                })
        })
        .collect()
}

/// The 1.x keys of `job_parameters` that name engines, carried into the 2.x DAG.
fn engine_conf(params: &Map<String, Value>, prefix: &str) -> Result<Map<String, Value>, PlanError> {
    let spark_field = format!("{prefix}.spark_run");
    // Checked here so that errors name the 1.x fields.
    crate::engines::read_settings(
        params,
        prefix,
        params.get("spark_run").map(|v| (v, spark_field.as_str())),
    )?;
    let mut out = Map::new();
    for key in crate::engines::ENGINE_KEYS
        .into_iter()
        .chain(crate::engines::BROKER_RUN_KEYS)
    {
        if let Some(v) = params.get(key).filter(|v| !v.is_null()) {
            out.insert(key.to_string(), v.clone());
        }
    }
    if let Some(v) = params.get("spark_run").filter(|v| !v.is_null()) {
        out.insert("engine_run".to_string(), v.clone());
    }
    Ok(out)
}

/// `job_parameters.role.<role>.<idx>` engine settings -> the `conf` of each selected party's
/// `party_tasks` entry (`<role>_<party_id>`, shared with its component parameters). Other
/// per-role job parameters are not carried over.
fn role_job_parameters(
    conf: &Map<String, Value>,
    roles: &[(Role, Vec<PartyId>)],
    party_tasks: &mut BTreeMap<String, PartyTaskSpec>,
) -> Result<(), PlanError> {
    let Some(by_role) = conf
        .get("job_parameters")
        .and_then(|j| j.get("role"))
        .filter(|v| !v.is_null())
    else {
        return Ok(());
    };
    for (role_name, by_idx) in object(by_role, "conf.job_parameters.role")? {
        let field = format!("conf.job_parameters.role.{role_name}");
        let found = role_name
            .parse::<Role>()
            .ok()
            .and_then(|r| roles.iter().find(|(x, _)| *x == r));
        let Some((role, ids)) = found else {
            return Err(PlanError::job(
                K::UnknownParty,
                field,
                format!("role `{role_name}` is not listed in `conf.role`"),
            ));
        };
        let by_idx = object(by_idx, &field)?;
        let mut keys: Vec<&String> = by_idx.keys().collect();
        keys.sort_by_key(|k| (k.as_str() != "all", k.as_str()));
        for key in keys {
            let field = format!("{field}.{key}");
            let idxs = role_indexes(key, *role, ids.len(), &field)?;
            let engines = engine_conf(object(&by_idx[key.as_str()], &field)?, &field)?;
            if engines.is_empty() {
                continue;
            }
            for i in idxs {
                let id = &ids[i];
                let entry = party_tasks
                    .entry(format!("{role}_{id}"))
                    .or_insert_with(|| PartyTaskSpec {
                        parties: vec![PartySpec {
                            role: *role,
                            party_id: vec![id.clone()],
                        }],
                        tasks: BTreeMap::new(),
                        conf: None,
                    });
                let conf = entry.conf.get_or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(c) = conf {
                    for (k, v) in &engines {
                        match (c.get_mut(k), v) {
                            // A later index key adds Spark options to an earlier one's.
                            (Some(Value::Object(d)), Value::Object(s)) => deep_merge(d, s),
                            _ => {
                                c.insert(k.clone(), v.clone());
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Recursively merges `src` into `dst`; maps merge, everything else is replaced.
fn deep_merge(dst: &mut Map<String, Value>, src: &Map<String, Value>) {
    for (k, v) in src {
        match (dst.get_mut(k), v) {
            (Some(Value::Object(d)), Value::Object(s)) => deep_merge(d, s),
            _ => {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
}
