//! [`DagSchema`] + component declarations -> [`JobPlan`]: every task resolved to the parties
//! that run it, the parameters each party gets, the artifacts each party reads, and an order to
//! run the tasks in. This is where FATE-Flow's `DagParser` (`fate_flow/controller/parser`) and
//! its submit-time checks live in fate-rs (fate-spec §3.3).

use crate::engines::EngineSettings;
use crate::error::{PlanError, PlanErrorKind as K};
use crate::spec::{
    ArtifactRef, DagSchema, InputSpec, JobConfSpec, PartySpec, TaskInputs, TaskSpec,
};
use fate_types::component::{ArtifactKind, ArtifactSpec, ComponentSpec};
use fate_types::{Party, PartyId, Role};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The stages FATE accepts for a job or a task (`DAGSpec.stage`).
pub const STAGES: [&str; 4] = ["train", "predict", "default", "cross_validation"];

/// Longest task name we accept; task names become parts of task ids and paths.
pub const MAX_TASK_NAME_LEN: usize = 128;
/// Longest party id we accept; party ids become parts of topics and paths.
pub const MAX_PARTY_ID_LEN: usize = 64;
/// Largest `conf.cores`, `conf.task_cores` and `conf.computing_partitions` a job may set.
pub const MAX_CONF_COUNT: u32 = 1024;
/// Largest `conf.auto_retries`.
pub const MAX_AUTO_RETRIES: u32 = 100;

/// A validated job, ready for a scheduler.
///
/// Invariants: `parties` is sorted and has no duplicates; every party named anywhere in the plan
/// is one of `parties`; `tasks` is in a topological order (every task after all of its
/// `dependent_tasks`, ties broken by name); every task's `parameters` has one entry per task
/// party, holding every required parameter of its component.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobPlan {
    pub parties: Vec<Party>,
    /// The party that submitted the job: `conf.initiator_party_id` if set (as guest if that id
    /// plays guest), else the first guest listed, else the first party listed.
    pub initiator: Party,
    /// `conf.scheduler_party_id`, defaulting to the initiator's party id (fate-spec §3.1).
    pub scheduler_party_id: PartyId,
    /// The job stage; `train` when the DAG does not say.
    pub stage: String,
    pub conf: JobConfSpec,
    pub tasks: Vec<TaskPlan>,
    /// The job definition as submitted.
    pub dag: DagSchema,
    /// Per party, the engine settings the job states for it (`dag.conf` overlaid by its
    /// `party_tasks` confs, [`crate::engines`]); parties it says nothing about are absent and
    /// run on their node's default engines.
    #[serde(
        default,
        with = "party_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub engines: BTreeMap<Party, EngineSettings>,
}

impl JobPlan {
    /// `conf.task.timeout` (FATE's task timeout, seconds): how long a task may wait on the
    /// other parties. `None` when the job does not set it.
    pub fn task_timeout(&self) -> Option<std::time::Duration> {
        let t = self.conf.task.as_ref()?.get("timeout")?.as_f64()?;
        (t > 0.0 && t.is_finite()).then(|| std::time::Duration::from_secs_f64(t.min(1e9)))
    }

    /// What the job says about `party`'s engines (empty when nothing).
    pub fn engines_for(&self, party: &Party) -> EngineSettings {
        self.engines.get(party).cloned().unwrap_or_default()
    }

    /// The task with this name.
    pub fn task(&self, name: &str) -> Option<&TaskPlan> {
        self.tasks.iter().find(|t| t.name == name)
    }
}

/// One task of a plan.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskPlan {
    pub name: String,
    /// The component's 2.x name (`component_ref`).
    pub component: String,
    pub stage: String,
    /// Explicit `dependent_tasks` plus the producers of this task's inputs; sorted, no
    /// duplicates.
    pub dependent_tasks: Vec<String>,
    /// The parties that run this task; sorted.
    pub parties: Vec<Party>,
    /// Per party: the component's defaults, then the task's `parameters`, then the
    /// `party_tasks` overrides that name this task and include that party (in alias order).
    /// Serialized with `role:party_id` keys.
    #[serde(with = "party_map")]
    pub parameters: BTreeMap<Party, Map<String, Value>>,
    /// Where each input comes from. An input key fed by several artifacts appears once per
    /// artifact, in the order given.
    pub inputs: Vec<InputPlan>,
    /// The task conf: the job's `conf.task` updated with the task's `conf`.
    pub conf: Value,
    /// Full conf for the parties whose `party_tasks` entries change it; every other party uses
    /// `conf`.
    #[serde(
        default,
        with = "party_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub party_conf: BTreeMap<Party, Value>,
}

impl TaskPlan {
    /// The parameters `party` runs this task with.
    pub fn parameters_for(&self, party: &Party) -> Option<&Map<String, Value>> {
        self.parameters.get(party)
    }

    /// The conf `party` runs this task with.
    pub fn conf_for(&self, party: &Party) -> &Value {
        self.party_conf.get(party).unwrap_or(&self.conf)
    }

    /// The inputs `party` reads, in plan order.
    pub fn inputs_for(&self, party: &Party) -> impl Iterator<Item = &InputPlan> + '_ {
        let party = party.clone();
        self.inputs
            .iter()
            .filter(move |i| i.source.applies_to(&party))
    }
}

/// One input artifact of a task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputPlan {
    /// The component's input key (`input_data`, `train_data`, ...).
    pub key: String,
    pub kind: ArtifactKind,
    pub source: InputSource,
}

/// Where an input artifact comes from. `parties` lists the consuming parties the source feeds;
/// `None` means every party of the consuming task. A party always reads a task output produced
/// at itself (same role and party id), as in FATE.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum InputSource {
    /// An output of another task of this job.
    Task {
        producer_task: String,
        output_key: String,
        parties: Option<Vec<Party>>,
    },
    /// A model saved by an earlier job; ids fall back to the job's `conf.model_warehouse`.
    ModelWarehouse {
        model_id: Option<String>,
        model_version: Option<String>,
        producer_task: String,
        output_key: String,
        parties: Option<Vec<Party>>,
    },
    /// A stored table (`{name, namespace}` or `{job_id, producer_task, output_artifact_key}`),
    /// passed on as written.
    DataWarehouse {
        spec: Value,
        parties: Option<Vec<Party>>,
    },
}

impl InputSource {
    /// The consuming parties this source is restricted to, if any.
    pub fn parties(&self) -> Option<&[Party]> {
        match self {
            InputSource::Task { parties, .. }
            | InputSource::ModelWarehouse { parties, .. }
            | InputSource::DataWarehouse { parties, .. } => parties.as_deref(),
        }
    }

    /// Whether a party of the consuming task reads this source.
    pub fn applies_to(&self, party: &Party) -> bool {
        self.parties().is_none_or(|ps| ps.contains(party))
    }

    fn set_parties(&mut self, value: Option<Vec<Party>>) {
        match self {
            InputSource::Task { parties, .. }
            | InputSource::ModelWarehouse { parties, .. }
            | InputSource::DataWarehouse { parties, .. } => *parties = value,
        }
    }

    fn producer(&self) -> Option<&str> {
        match self {
            InputSource::Task { producer_task, .. } => Some(producer_task),
            _ => None,
        }
    }
}

/// Validates a job definition against the components it uses and resolves it into a plan.
/// The first problem found is returned; tasks are checked in name order, so the error for a
/// given definition is always the same.
pub fn plan(dag: &DagSchema, components: &[ComponentSpec]) -> Result<JobPlan, PlanError> {
    let spec = &dag.dag;
    let conf = spec.conf.clone().unwrap_or_default();

    let (parties, listed) = job_parties(&spec.parties)?;
    let job_set: BTreeSet<Party> = parties.iter().cloned().collect();
    let initiator = initiator(&conf, &listed)?;
    let scheduler_party_id = match &conf.scheduler_party_id {
        Some(id) if !parties.iter().any(|p| &p.party_id == id) => {
            return Err(PlanError::job(
                K::UnknownParty,
                "dag.conf.scheduler_party_id",
                format!(
                    "party id {id} is not a party of the job ({})",
                    join(&parties)
                ),
            ));
        }
        Some(id) => id.clone(),
        None => initiator.party_id.clone(),
    };
    check_conf(&conf)?;
    let stage = spec.stage.clone().unwrap_or_else(|| "train".to_string());
    check_stage(&stage, None, "dag.stage")?;
    if spec.tasks.is_empty() {
        return Err(PlanError::job(
            K::BadValue,
            "dag.tasks",
            "the job has no tasks",
        ));
    }

    let mut by_name: BTreeMap<&str, &ComponentSpec> = BTreeMap::new();
    for c in components {
        by_name.entry(c.name.as_str()).or_insert(c);
    }

    // Pass 1: who runs what.
    let mut ctxs: BTreeMap<&str, TaskCtx<'_>> = BTreeMap::new();
    for (name, task) in &spec.tasks {
        let ctx = task_ctx(name, task, &stage, &by_name, &job_set)?;
        ctxs.insert(name.as_str(), ctx);
    }

    // Party overrides, validated once.
    let mut overrides: Vec<Override<'_>> = Vec::new();
    for (alias, pt) in &spec.party_tasks {
        let field = format!("dag.party_tasks.{alias}.parties");
        let pt_parties = resolve_parties(&pt.parties, &job_set, None, &field)?;
        for task_name in pt.tasks.keys() {
            if !ctxs.contains_key(task_name.as_str()) {
                return Err(PlanError::task(
                    K::UnknownTask,
                    task_name,
                    format!("dag.party_tasks.{alias}.tasks.{task_name}"),
                    format!(
                        "no task named `{task_name}` in this job ({})",
                        join(ctxs.keys())
                    ),
                ));
            }
        }
        if let Some(c) = &pt.conf {
            as_object(c, None, &format!("dag.party_tasks.{alias}.conf"))?;
        }
        overrides.push(Override {
            alias,
            parties: pt_parties,
            spec: pt,
        });
    }

    let by_alias: BTreeMap<&str, Vec<Party>> = overrides
        .iter()
        .map(|o| (o.alias, o.parties.clone()))
        .collect();
    let engines = crate::engines::job_engines(dag, &parties, &by_alias)?;

    // Pass 2: parameters, conf, inputs and dependencies of each task.
    let task_conf = match &conf.task {
        Some(v) => as_object(v, None, "dag.conf.task")?.clone(),
        None => Map::new(),
    };
    let mut tasks: BTreeMap<&str, TaskPlan> = BTreeMap::new();
    for (name, ctx) in &ctxs {
        let tp = plan_task(ctx, &ctxs, &overrides, &task_conf, &conf)?;
        tasks.insert(name, tp);
    }

    let order = topo_order(&tasks)?;
    let tasks = order
        .into_iter()
        .filter_map(|n| tasks.remove(n.as_str()))
        .collect();

    Ok(JobPlan {
        parties,
        initiator,
        scheduler_party_id,
        stage,
        conf,
        tasks,
        dag: dag.clone(),
        engines,
    })
}

struct TaskCtx<'a> {
    name: &'a str,
    spec: &'a TaskSpec,
    component: &'a ComponentSpec,
    stage: String,
    parties: Vec<Party>,
}

struct Override<'a> {
    alias: &'a str,
    parties: Vec<Party>,
    spec: &'a crate::spec::PartyTaskSpec,
}

/// The job's parties (sorted, deduplicated) and the same in the order listed.
fn job_parties(specs: &[PartySpec]) -> Result<(Vec<Party>, Vec<Party>), PlanError> {
    let mut seen = BTreeSet::new();
    let mut listed = Vec::new();
    for (i, ps) in specs.iter().enumerate() {
        let field = format!("dag.parties[{i}].party_id");
        for id in &ps.party_id {
            check_party_id(id, &field)?;
            let party = Party::new(ps.role, id.clone());
            if !seen.insert(party.clone()) {
                return Err(PlanError::job(
                    K::DuplicateParty,
                    field,
                    format!(
                        "party id {id} is listed more than once for role {}",
                        ps.role
                    ),
                ));
            }
            listed.push(party);
        }
    }
    if listed.is_empty() {
        return Err(PlanError::job(
            K::NoParties,
            "dag.parties",
            "the job has no parties; list at least one role with its party ids",
        ));
    }
    Ok((seen.into_iter().collect(), listed))
}

fn initiator(conf: &JobConfSpec, listed: &[Party]) -> Result<Party, PlanError> {
    let pick = |id: Option<&PartyId>| {
        let matches = |p: &&Party| id.is_none_or(|id| &p.party_id == id);
        listed
            .iter()
            .filter(matches)
            .find(|p| p.role == Role::Guest)
            .or_else(|| listed.iter().find(matches))
            .cloned()
    };
    match &conf.initiator_party_id {
        Some(id) => pick(Some(id)).ok_or_else(|| {
            PlanError::job(
                K::UnknownParty,
                "dag.conf.initiator_party_id",
                format!("party id {id} is not a party of the job ({})", join(listed)),
            )
        }),
        None => pick(None)
            .ok_or_else(|| PlanError::job(K::NoParties, "dag.parties", "the job has no parties")),
    }
}

fn check_conf(conf: &JobConfSpec) -> Result<(), PlanError> {
    for (field, value, max) in [
        ("dag.conf.cores", conf.cores, MAX_CONF_COUNT),
        ("dag.conf.task_cores", conf.task_cores, MAX_CONF_COUNT),
        (
            "dag.conf.computing_partitions",
            conf.computing_partitions,
            MAX_CONF_COUNT,
        ),
        ("dag.conf.auto_retries", conf.auto_retries, MAX_AUTO_RETRIES),
    ] {
        if let Some(v) = value
            && v > max
        {
            return Err(PlanError::job(
                K::BadValue,
                field,
                format!("{v} is more than the limit of {max}"),
            ));
        }
    }
    // Model ids and versions name exported files and model keys.
    for (field, value) in [
        ("dag.conf.model_id", &conf.model_id),
        ("dag.conf.model_version", &conf.model_version),
    ] {
        if let Some(v) = value {
            fate_types::check_name(field, v)
                .map_err(|e| PlanError::job(K::InvalidName, field, e.reason))?;
        }
    }
    if let Some(s) = &conf.sync_type
        && s != "poll"
        && s != "callback"
    {
        return Err(PlanError::job(
            K::BadValue,
            "dag.conf.sync_type",
            format!("`{s}` is not a sync type (expected poll or callback)"),
        ));
    }
    if let Some(v) = &conf.model_warehouse {
        as_object(v, None, "dag.conf.model_warehouse")?;
    }
    if let Some(task) = &conf.task {
        let task = as_object(task, None, "dag.conf.task")?;
        if let Some(t) = task.get("timeout")
            && !t.as_f64().is_some_and(|t| t > 0.0 && t.is_finite())
        {
            return Err(PlanError::job(
                K::BadValue,
                "dag.conf.task.timeout",
                format!("{t} is not a positive number of seconds"),
            ));
        }
    }
    Ok(())
}

fn check_stage(stage: &str, task: Option<&str>, field: &str) -> Result<(), PlanError> {
    if STAGES.contains(&stage) {
        return Ok(());
    }
    let msg = format!("`{stage}` is not a stage (expected {})", STAGES.join(", "));
    Err(match task {
        Some(t) => PlanError::task(K::BadValue, t, field, msg),
        None => PlanError::job(K::BadValue, field, msg),
    })
}

fn check_party_id(id: &PartyId, field: &str) -> Result<(), PlanError> {
    let s = id.as_str();
    let ok = !s.is_empty()
        && s.len() <= MAX_PARTY_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        return Ok(());
    }
    Err(PlanError::job(
        K::InvalidName,
        field,
        format!(
            "party id `{}` must be 1 to {MAX_PARTY_ID_LEN} letters, digits, `_` or `-`",
            s.escape_debug()
        ),
    ))
}

fn check_task_name(name: &str) -> Result<(), PlanError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TASK_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        return Ok(());
    }
    Err(PlanError::task(
        K::InvalidName,
        name,
        format!("dag.tasks.{name}"),
        format!("task names must be 1 to {MAX_TASK_NAME_LEN} letters, digits, `_` or `-`"),
    ))
}

/// Resolves a party list against the job's parties; sorted, deduplicated.
fn resolve_parties(
    specs: &[PartySpec],
    job: &BTreeSet<Party>,
    task: Option<&str>,
    field: &str,
) -> Result<Vec<Party>, PlanError> {
    let mut out = BTreeSet::new();
    for ps in specs {
        for id in &ps.party_id {
            let p = Party::new(ps.role, id.clone());
            if !job.contains(&p) {
                let msg = format!("{p} is not a party of the job ({})", join(job));
                return Err(match task {
                    Some(t) => PlanError::task(K::UnknownParty, t, field, msg),
                    None => PlanError::job(K::UnknownParty, field, msg),
                });
            }
            out.insert(p);
        }
    }
    Ok(out.into_iter().collect())
}

fn task_ctx<'a>(
    name: &'a str,
    task: &'a TaskSpec,
    job_stage: &str,
    components: &BTreeMap<&str, &'a ComponentSpec>,
    job: &BTreeSet<Party>,
) -> Result<TaskCtx<'a>, PlanError> {
    check_task_name(name)?;
    let component = *components.get(task.component_ref.as_str()).ok_or_else(|| {
        PlanError::task(
            K::UnknownComponent,
            name,
            format!("dag.tasks.{name}.component_ref"),
            format!(
                "unknown component `{}` (known components: {})",
                task.component_ref,
                join(components.keys())
            ),
        )
    })?;
    let stage = task.stage.clone().unwrap_or_else(|| job_stage.to_string());
    check_stage(&stage, Some(name), &format!("dag.tasks.{name}.stage"))?;

    let supported = |r: Role| component.roles.contains(&r);
    let roles = || join(component.roles.iter());
    let parties = match &task.parties {
        Some(specs) => {
            let field = format!("dag.tasks.{name}.parties");
            let ps = resolve_parties(specs, job, Some(name), &field)?;
            if let Some(p) = ps.iter().find(|p| !supported(p.role)) {
                return Err(PlanError::task(
                    K::UnsupportedRole,
                    name,
                    field,
                    format!(
                        "{p}: component `{}` does not run as {} (it supports {})",
                        component.name,
                        p.role,
                        roles()
                    ),
                ));
            }
            if ps.is_empty() {
                return Err(PlanError::task(
                    K::NoParties,
                    name,
                    field,
                    "the task's party list is empty",
                ));
            }
            ps
        }
        None => {
            let ps: Vec<Party> = job.iter().filter(|p| supported(p.role)).cloned().collect();
            if ps.is_empty() {
                return Err(PlanError::task(
                    K::NoParties,
                    name,
                    format!("dag.tasks.{name}.parties"),
                    format!(
                        "no job party plays a role component `{}` supports ({})",
                        component.name,
                        roles()
                    ),
                ));
            }
            ps
        }
    };
    Ok(TaskCtx {
        name,
        spec: task,
        component,
        stage,
        parties,
    })
}

/// A source before its party set is final.
struct Pending {
    key: String,
    kind: ArtifactKind,
    source: InputSource,
    /// The consuming parties it feeds (already restricted to parties that have the input).
    applies: BTreeSet<Party>,
    /// Whether it comes from `party_tasks` (and so replaces task-level sources of its key).
    party_level: bool,
    field: String,
}

fn plan_task(
    ctx: &TaskCtx<'_>,
    all: &BTreeMap<&str, TaskCtx<'_>>,
    overrides: &[Override<'_>],
    job_task_conf: &Map<String, Value>,
    conf: &JobConfSpec,
) -> Result<TaskPlan, PlanError> {
    let name = ctx.name;
    let comp = ctx.component;
    let task_parties: BTreeSet<Party> = ctx.parties.iter().cloned().collect();

    // Parameters: defaults, task, party overrides.
    let mut base = Map::new();
    for p in &comp.params {
        if let Some(d) = &p.default {
            base.insert(p.name.clone(), d.clone());
        }
    }
    let prefix = format!("dag.tasks.{name}.parameters");
    for (k, v) in &ctx.spec.parameters {
        check_param(comp, name, k, &prefix)?;
        base.insert(k.clone(), v.clone());
    }
    let mut parameters: BTreeMap<Party, Map<String, Value>> = ctx
        .parties
        .iter()
        .map(|p| (p.clone(), base.clone()))
        .collect();

    // Conf: job task conf, task conf, party overrides.
    let mut task_conf = job_task_conf.clone();
    if let Some(c) = &ctx.spec.conf {
        let c = as_object(c, Some(name), &format!("dag.tasks.{name}.conf"))?;
        task_conf.extend(c.clone());
    }
    let mut party_conf: BTreeMap<Party, Map<String, Value>> = BTreeMap::new();

    let mut pending: Vec<Pending> = Vec::new();
    if let Some(inputs) = &ctx.spec.inputs {
        let field = format!("dag.tasks.{name}.inputs");
        collect_inputs(ctx, all, inputs, None, &field, conf, &mut pending)?;
    }

    for ov in overrides {
        let scope: BTreeSet<Party> = ov
            .parties
            .iter()
            .filter(|p| task_parties.contains(p))
            .cloned()
            .collect();
        if scope.is_empty() {
            continue;
        }
        if let Some(c) = ov.spec.conf.as_ref().and_then(Value::as_object) {
            for p in &scope {
                party_conf
                    .entry(p.clone())
                    .or_insert_with(|| task_conf.clone())
                    .extend(c.clone());
            }
        }
        let Some(pt) = ov.spec.tasks.get(name) else {
            continue;
        };
        let prefix = format!("dag.party_tasks.{}.tasks.{name}", ov.alias);
        for (k, v) in &pt.parameters {
            check_param(comp, name, k, &format!("{prefix}.parameters"))?;
            for p in &scope {
                if let Some(m) = parameters.get_mut(p) {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(c) = &pt.conf {
            let c = as_object(c, Some(name), &format!("{prefix}.conf"))?;
            for p in &scope {
                party_conf
                    .entry(p.clone())
                    .or_insert_with(|| task_conf.clone())
                    .extend(c.clone());
            }
        }
        if let Some(inputs) = &pt.inputs {
            let field = format!("{prefix}.inputs");
            collect_inputs(ctx, all, inputs, Some(&scope), &field, conf, &mut pending)?;
        }
    }

    // Required parameters, per party.
    for param in comp.params.iter().filter(|p| p.required) {
        let missing: Vec<&Party> = parameters
            .iter()
            .filter(|(_, m)| !m.contains_key(&param.name))
            .map(|(p, _)| p)
            .collect();
        if missing.is_empty() {
            continue;
        }
        let msg = if missing.len() == parameters.len() {
            "required parameter is missing".to_string()
        } else {
            format!(
                "required parameter is missing for {} (set it in the task's parameters or in a \
                 party_tasks entry for that party)",
                join(missing)
            )
        };
        return Err(PlanError::task(
            K::MissingParameter,
            name,
            format!("dag.tasks.{name}.parameters.{}", param.name),
            msg,
        ));
    }

    // Bounded parameters (rows, partitions, rounds, ...), per party.
    for param in &comp.params {
        let Some(max) = param.max else { continue };
        for (party, m) in &parameters {
            let Some(v) = m.get(&param.name) else {
                continue;
            };
            let too_big = match v {
                Value::Number(n) => n.as_f64().is_some_and(|x| x > max as f64),
                _ => false,
            };
            if too_big {
                return Err(PlanError::task(
                    K::BadValue,
                    name,
                    format!("dag.tasks.{name}.parameters.{}", param.name),
                    format!("{v} (for {party}) is more than the limit of {max}"),
                ));
            }
        }
    }

    let inputs = finish_inputs(ctx, pending)?;

    let mut deps: BTreeSet<String> = BTreeSet::new();
    for d in &ctx.spec.dependent_tasks {
        let field = format!("dag.tasks.{name}.dependent_tasks");
        if d == name {
            return Err(PlanError::task(
                K::Cycle,
                name,
                field,
                format!("tasks form a dependency cycle: {name} -> {name}"),
            ));
        }
        if !all.contains_key(d.as_str()) {
            return Err(PlanError::task(
                K::UnknownTask,
                name,
                field,
                format!("no task named `{d}` in this job ({})", join(all.keys())),
            ));
        }
        deps.insert(d.clone());
    }
    for i in &inputs {
        if let Some(p) = i.source.producer() {
            deps.insert(p.to_string());
        }
    }

    Ok(TaskPlan {
        name: name.to_string(),
        component: comp.name.clone(),
        stage: ctx.stage.clone(),
        dependent_tasks: deps.into_iter().collect(),
        parties: ctx.parties.clone(),
        parameters,
        inputs,
        conf: Value::Object(task_conf),
        party_conf: party_conf
            .into_iter()
            .map(|(p, m)| (p, Value::Object(m)))
            .collect(),
    })
}

fn check_param(comp: &ComponentSpec, task: &str, key: &str, prefix: &str) -> Result<(), PlanError> {
    if comp.param(key).is_some() {
        return Ok(());
    }
    Err(PlanError::task(
        K::UnknownParameter,
        task,
        format!("{prefix}.{key}"),
        format!(
            "component `{}` has no parameter `{key}` (it declares {})",
            comp.name,
            join(comp.params.iter().map(|p| p.name.as_str()))
        ),
    ))
}

fn kind_name(kind: ArtifactKind) -> &'static str {
    match kind {
        ArtifactKind::Data => "data",
        ArtifactKind::Model => "model",
        ArtifactKind::Metric => "metric",
    }
}

/// Whether a party of this role has the artifact.
fn role_has(a: &ArtifactSpec, role: Role) -> bool {
    a.roles.is_empty() || a.roles.contains(&role)
}

/// Validates one `inputs` block (task-level when `scope` is `None`, else a party override) and
/// appends its sources to `out`.
fn collect_inputs(
    ctx: &TaskCtx<'_>,
    all: &BTreeMap<&str, TaskCtx<'_>>,
    inputs: &TaskInputs,
    scope: Option<&BTreeSet<Party>>,
    prefix: &str,
    conf: &JobConfSpec,
    out: &mut Vec<Pending>,
) -> Result<(), PlanError> {
    let name = ctx.name;
    let comp = ctx.component;
    let bad = |field: &str, msg: String| PlanError::task(K::BadInput, name, field, msg);
    for (kind, map) in [
        (ArtifactKind::Data, &inputs.data),
        (ArtifactKind::Model, &inputs.model),
    ] {
        for (key, spec) in map {
            let field = format!("{prefix}.{}.{key}", kind_name(kind));
            let Some(decl) = comp.input(key) else {
                return Err(bad(
                    &field,
                    format!(
                        "component `{}` has no input `{key}` (its inputs: {})",
                        comp.name,
                        join(comp.inputs.iter().map(|a| a.key.as_str()))
                    ),
                ));
            };
            if decl.kind != kind {
                return Err(bad(
                    &field,
                    format!(
                        "input `{key}` of component `{}` takes {} artifacts; list it under `{}`",
                        comp.name,
                        kind_name(decl.kind),
                        kind_name(decl.kind)
                    ),
                ));
            }
            // The consuming parties that have this input, within the override's scope.
            let eligible: BTreeSet<Party> = ctx
                .parties
                .iter()
                .filter(|p| role_has(decl, p.role))
                .filter(|p| scope.is_none_or(|s| s.contains(*p)))
                .cloned()
                .collect();
            let push = |out: &mut Vec<Pending>, source, applies, f: String| {
                out.push(Pending {
                    key: key.clone(),
                    kind,
                    source,
                    applies,
                    party_level: scope.is_some(),
                    field: f,
                })
            };
            match spec {
                InputSpec::TaskOutputArtifact(refs) => {
                    let many = matches!(refs, crate::spec::OneOrMany::Many(_));
                    for (i, r) in refs.as_slice().iter().enumerate() {
                        let rf = channel_field(&field, "task_output_artifact", many, i);
                        let producer = all.get(r.producer_task.as_str()).ok_or_else(|| {
                            PlanError::task(
                                K::UnknownTask,
                                name,
                                format!("{rf}.producer_task"),
                                format!(
                                    "no task named `{}` in this job ({})",
                                    r.producer_task,
                                    join(all.keys())
                                ),
                            )
                        })?;
                        if producer.name == name {
                            return Err(PlanError::task(
                                K::Cycle,
                                name,
                                format!("{rf}.producer_task"),
                                format!(
                                    "tasks form a dependency cycle: {name} -> {name} (the task reads its own output)"
                                ),
                            ));
                        }
                        let pc = producer.component;
                        let Some(out_decl) = pc.output(&r.output_artifact_key) else {
                            return Err(bad(
                                &format!("{rf}.output_artifact_key"),
                                format!(
                                    "task `{}` (component `{}`) has no output `{}` (its outputs: {})",
                                    producer.name,
                                    pc.name,
                                    r.output_artifact_key,
                                    join(pc.outputs.iter().map(|a| a.key.as_str()))
                                ),
                            ));
                        };
                        if out_decl.kind != kind {
                            return Err(bad(
                                &format!("{rf}.output_artifact_key"),
                                format!(
                                    "output `{}` of task `{}` is a {} artifact but input `{key}` takes {}",
                                    r.output_artifact_key,
                                    producer.name,
                                    kind_name(out_decl.kind),
                                    kind_name(kind)
                                ),
                            ));
                        }
                        // Parties where the producer writes this output.
                        let produced: BTreeSet<&Party> = producer
                            .parties
                            .iter()
                            .filter(|p| role_has(out_decl, p.role))
                            .collect();
                        let applies = match explicit_parties(ctx, r, &rf, decl)? {
                            Some(ps) => {
                                if let Some(p) = ps.iter().find(|p| !produced.contains(p)) {
                                    return Err(bad(
                                        &format!("{rf}.parties"),
                                        format!(
                                            "task `{}` does not produce `{}` at {p}",
                                            producer.name, r.output_artifact_key
                                        ),
                                    ));
                                }
                                ps.into_iter().filter(|p| eligible.contains(p)).collect()
                            }
                            None => eligible
                                .iter()
                                .filter(|p| produced.contains(p))
                                .cloned()
                                .collect(),
                        };
                        push(
                            out,
                            InputSource::Task {
                                producer_task: r.producer_task.clone(),
                                output_key: r.output_artifact_key.clone(),
                                parties: None,
                            },
                            applies,
                            field.clone(),
                        );
                    }
                }
                InputSpec::ModelWarehouse(refs) => {
                    let many = matches!(refs, crate::spec::OneOrMany::Many(_));
                    let wh = conf.model_warehouse.as_ref().and_then(Value::as_object);
                    let from_conf = |k: &str| {
                        wh.and_then(|m| m.get(k)).and_then(|v| match v {
                            Value::String(s) => Some(s.clone()),
                            Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        })
                    };
                    for (i, r) in refs.as_slice().iter().enumerate() {
                        let rf = channel_field(&field, "model_warehouse", many, i);
                        let applies = match explicit_parties(ctx, r, &rf, decl)? {
                            Some(ps) => ps.into_iter().filter(|p| eligible.contains(p)).collect(),
                            None => eligible.clone(),
                        };
                        push(
                            out,
                            InputSource::ModelWarehouse {
                                model_id: r.model_id.clone().or_else(|| from_conf("model_id")),
                                model_version: r
                                    .model_version
                                    .clone()
                                    .or_else(|| from_conf("model_version")),
                                producer_task: r.producer_task.clone(),
                                output_key: r.output_artifact_key.clone(),
                                parties: None,
                            },
                            applies,
                            field.clone(),
                        );
                    }
                }
                InputSpec::DataWarehouse(vals) => {
                    let many = matches!(vals, crate::spec::OneOrMany::Many(_));
                    for (i, v) in vals.as_slice().iter().enumerate() {
                        let rf = channel_field(&field, "data_warehouse", many, i);
                        let obj = v.as_object().ok_or_else(|| {
                            bad(&rf, "a data_warehouse source must be a map".to_string())
                        })?;
                        let applies = match warehouse_parties(ctx, obj, &rf, decl)? {
                            Some(ps) => ps.into_iter().filter(|p| eligible.contains(p)).collect(),
                            None => eligible.clone(),
                        };
                        push(
                            out,
                            InputSource::DataWarehouse {
                                spec: v.clone(),
                                parties: None,
                            },
                            applies,
                            field.clone(),
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

fn channel_field(field: &str, source: &str, many: bool, i: usize) -> String {
    if many {
        format!("{field}.{source}[{i}]")
    } else {
        format!("{field}.{source}")
    }
}

/// The consuming parties a channel names through `parties` or (FATE 2.0 beta) `roles`; each must
/// run the consuming task with a role that has the input.
fn explicit_parties(
    ctx: &TaskCtx<'_>,
    r: &ArtifactRef,
    field: &str,
    decl: &ArtifactSpec,
) -> Result<Option<Vec<Party>>, PlanError> {
    if let Some(specs) = &r.parties {
        return consumer_parties(ctx, specs, &format!("{field}.parties"), decl).map(Some);
    }
    if let Some(roles) = &r.roles {
        return Ok(Some(
            ctx.parties
                .iter()
                .filter(|p| roles.contains(&p.role) && role_has(decl, p.role))
                .cloned()
                .collect(),
        ));
    }
    Ok(None)
}

fn warehouse_parties(
    ctx: &TaskCtx<'_>,
    obj: &Map<String, Value>,
    field: &str,
    decl: &ArtifactSpec,
) -> Result<Option<Vec<Party>>, PlanError> {
    let bad = |f: String, msg: String| PlanError::task(K::BadInput, ctx.name, f, msg);
    if let Some(v) = obj.get("parties").filter(|v| !v.is_null()) {
        let f = format!("{field}.parties");
        let specs: Vec<PartySpec> = serde_json::from_value(v.clone())
            .map_err(|e| bad(f.clone(), format!("not a party list: {e}")))?;
        return consumer_parties(ctx, &specs, &f, decl).map(Some);
    }
    if let Some(v) = obj.get("roles").filter(|v| !v.is_null()) {
        let f = format!("{field}.roles");
        let roles: Vec<Role> = serde_json::from_value(v.clone())
            .map_err(|e| bad(f, format!("not a role list: {e}")))?;
        return Ok(Some(
            ctx.parties
                .iter()
                .filter(|p| roles.contains(&p.role) && role_has(decl, p.role))
                .cloned()
                .collect(),
        ));
    }
    Ok(None)
}

/// Resolves a channel's `parties`: each must be a party of the consuming task whose role has
/// the input.
fn consumer_parties(
    ctx: &TaskCtx<'_>,
    specs: &[PartySpec],
    field: &str,
    decl: &ArtifactSpec,
) -> Result<Vec<Party>, PlanError> {
    let mut out = BTreeSet::new();
    for ps in specs {
        for id in &ps.party_id {
            let p = Party::new(ps.role, id.clone());
            if !ctx.parties.contains(&p) {
                return Err(PlanError::task(
                    K::UnknownParty,
                    ctx.name,
                    field,
                    format!(
                        "{p} does not run task `{}` (its parties: {})",
                        ctx.name,
                        join(&ctx.parties)
                    ),
                ));
            }
            if !role_has(decl, p.role) {
                return Err(PlanError::task(
                    K::BadInput,
                    ctx.name,
                    field,
                    format!("input `{}` is not read by role {}", decl.key, p.role),
                ));
            }
            out.insert(p);
        }
    }
    Ok(out.into_iter().collect())
}

/// Applies party overrides, checks arity and required inputs, and fixes each source's party
/// list.
fn finish_inputs(
    ctx: &TaskCtx<'_>,
    mut pending: Vec<Pending>,
) -> Result<Vec<InputPlan>, PlanError> {
    let name = ctx.name;
    // A party-level source for a key replaces the task-level sources of that key at its parties
    // (FATE updates the party's input dict key by key).
    let overridden: BTreeSet<(String, Party)> = pending
        .iter()
        .filter(|p| p.party_level)
        .flat_map(|p| p.applies.iter().map(|party| (p.key.clone(), party.clone())))
        .collect();
    for p in pending.iter_mut().filter(|p| !p.party_level) {
        p.applies
            .retain(|party| !overridden.contains(&(p.key.clone(), party.clone())));
    }

    // Arity per party.
    let mut count: BTreeMap<(&str, &Party), Vec<&Pending>> = BTreeMap::new();
    for p in &pending {
        for party in &p.applies {
            count.entry((p.key.as_str(), party)).or_default().push(p);
        }
    }
    for ((key, party), srcs) in &count {
        let decl = ctx.component.input(key);
        if srcs.len() > 1 && decl.is_some_and(|d| !d.multi) {
            let from: Vec<String> = srcs.iter().map(|s| describe(&s.source)).collect();
            return Err(PlanError::task(
                K::BadInput,
                name,
                srcs[0].field.clone(),
                format!(
                    "input `{key}` takes one artifact but {party} gets {} ({})",
                    srcs.len(),
                    from.join(", ")
                ),
            ));
        }
    }

    // Required inputs, per party that has them.
    for decl in ctx.component.inputs.iter().filter(|d| !d.optional) {
        let needing: Vec<&Party> = ctx
            .parties
            .iter()
            .filter(|p| role_has(decl, p.role))
            .collect();
        let missing: Vec<&Party> = needing
            .iter()
            .copied()
            .filter(|p| !count.contains_key(&(decl.key.as_str(), *p)))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let kind = kind_name(decl.kind);
        let msg = if missing.len() == needing.len() {
            format!("required {kind} input `{}` is missing", decl.key)
        } else {
            format!(
                "required {kind} input `{}` has no source for {} (a producer that does not run \
                 there, or a party list that leaves it out)",
                decl.key,
                join(missing)
            )
        };
        return Err(PlanError::task(
            K::MissingInput,
            name,
            format!("dag.tasks.{name}.inputs.{kind}.{}", decl.key),
            msg,
        ));
    }

    let all: BTreeSet<Party> = ctx.parties.iter().cloned().collect();
    let mut out = Vec::new();
    for p in pending {
        if p.applies.is_empty() {
            continue;
        }
        let mut source = p.source;
        let parties = if p.applies == all {
            None
        } else {
            Some(p.applies.into_iter().collect())
        };
        source.set_parties(parties);
        out.push(InputPlan {
            key: p.key,
            kind: p.kind,
            source,
        });
    }
    Ok(out)
}

fn describe(s: &InputSource) -> String {
    match s {
        InputSource::Task {
            producer_task,
            output_key,
            ..
        } => format!("{producer_task}.{output_key}"),
        InputSource::ModelWarehouse {
            producer_task,
            output_key,
            ..
        } => format!("model_warehouse {producer_task}.{output_key}"),
        InputSource::DataWarehouse { spec, .. } => format!("data_warehouse {spec}"),
    }
}

/// Kahn's algorithm; among ready tasks the smallest name goes first.
fn topo_order(tasks: &BTreeMap<&str, TaskPlan>) -> Result<Vec<String>, PlanError> {
    let mut indeg: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, t) in tasks {
        indeg.insert(name, t.dependent_tasks.len());
        for d in &t.dependent_tasks {
            dependents.entry(d.as_str()).or_default().push(name);
        }
    }
    let mut ready: BTreeSet<&str> = indeg
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(t, _)| *t)
        .collect();
    let mut order = Vec::with_capacity(tasks.len());
    while let Some(t) = ready.pop_first() {
        order.push(t.to_string());
        for d in dependents.get(t).into_iter().flatten() {
            if let Some(n) = indeg.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    ready.insert(d);
                }
            }
        }
    }
    if order.len() == tasks.len() {
        return Ok(order);
    }
    // Every task left has a dependency that is also left: walk dependencies from the smallest
    // one until a task repeats; the walk from that task on is a cycle.
    let left: BTreeSet<&str> = indeg
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(t, _)| *t)
        .collect();
    let mut path: Vec<&str> = Vec::new();
    let mut cur = left.first().copied();
    while let Some(t) = cur {
        if let Some(pos) = path.iter().position(|p| *p == t) {
            let cycle = &path[pos..];
            // Start the report at the smallest name so it does not depend on the walk.
            let start = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, n)| **n)
                .map_or(0, |(i, _)| i);
            let mut names: Vec<&str> = cycle[start..]
                .iter()
                .chain(&cycle[..start])
                .copied()
                .collect();
            let first = names[0];
            names.push(first);
            return Err(PlanError::task(
                K::Cycle,
                first,
                format!("dag.tasks.{first}.dependent_tasks"),
                format!(
                    "tasks form a dependency cycle: {} (each task depends on the next)",
                    names.join(" -> ")
                ),
            ));
        }
        path.push(t);
        cur = tasks
            .get(t)
            .and_then(|tp| {
                tp.dependent_tasks
                    .iter()
                    .find(|d| left.contains(d.as_str()))
            })
            .map(|d| d.as_str());
        if path.len() > tasks.len() {
            break;
        }
    }
    Err(PlanError::job(
        K::Cycle,
        "dag.tasks",
        format!("tasks form a dependency cycle among: {}", join(left)),
    ))
}

fn as_object<'a>(
    v: &'a Value,
    task: Option<&str>,
    field: &str,
) -> Result<&'a Map<String, Value>, PlanError> {
    v.as_object().ok_or_else(|| {
        let msg = "expected a map".to_string();
        match task {
            Some(t) => PlanError::task(K::BadValue, t, field, msg),
            None => PlanError::job(K::BadValue, field, msg),
        }
    })
}

fn join<I, T>(items: I) -> String
where
    I: IntoIterator<Item = T>,
    T: std::fmt::Display,
{
    let v: Vec<String> = items.into_iter().map(|t| t.to_string()).collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

/// `BTreeMap<Party, V>` as a JSON object keyed `role:party_id`.
mod party_map {
    use fate_types::{Party, PartyId};
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer, V: Serialize>(
        m: &BTreeMap<Party, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(p, v)| (p.to_string(), v)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        d: D,
    ) -> Result<BTreeMap<Party, V>, D::Error> {
        let raw = BTreeMap::<String, V>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| {
                let (role, id) = k
                    .split_once(':')
                    .ok_or_else(|| D::Error::custom(format!("`{k}` is not `role:party_id`")))?;
                let role = role.parse().map_err(D::Error::custom)?;
                Ok((Party::new(role, PartyId::new(id)), v))
            })
            .collect()
    }
}
