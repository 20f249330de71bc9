//! fate-dag behaviour: golden plans for whole job definitions (`tests/data/<case>` ->
//! `tests/data/<stem>.plan.json`, rewritten with `UPDATE_GOLDEN=1`), then one test per kind of
//! mistake a job definition can contain.

use fate_dag::{InputSource, JobPlan, PlanError, PlanErrorKind as K, dsl_to_dag, parse_dag, plan};
use fate_types::component::{ArtifactKind, ArtifactSpec, ComponentSpec, ParamSpec};
use fate_types::{Party, Role};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Test components. The real registry lives in fate-runtime; these declare just enough.

fn param(name: &str, default: Option<Value>) -> ParamSpec {
    ParamSpec {
        name: name.to_string(),
        required: default.is_none(),
        default,
        description: String::new(),
        max: None,
    }
}

fn art(key: &str, kind: ArtifactKind, optional: bool, multi: bool, roles: &[Role]) -> ArtifactSpec {
    ArtifactSpec {
        key: key.to_string(),
        kind,
        optional,
        multi,
        roles: roles.to_vec(),
    }
}

fn component(
    name: &str,
    legacy: &[&str],
    roles: &[Role],
    params: Vec<ParamSpec>,
    inputs: Vec<ArtifactSpec>,
    outputs: Vec<ArtifactSpec>,
) -> ComponentSpec {
    ComponentSpec {
        name: name.to_string(),
        legacy_modules: legacy.iter().map(|s| s.to_string()).collect(),
        description: String::new(),
        roles: roles.to_vec(),
        params,
        inputs,
        outputs,
    }
}

use ArtifactKind::{Data, Model};
use Role::{Arbiter, Guest, Host};

fn components() -> Vec<ComponentSpec> {
    vec![
        // fate-spec §4.1: 2.x toy_example, both parameters required.
        component(
            "toy_example",
            &[],
            &[Guest, Host],
            vec![param("data_num", None), param("partition", None)],
            vec![],
            vec![art("output_data", Data, false, false, &[])],
        ),
        // fate-spec §4.1: 1.x SecureAddExample (defaults data_num 1000, partition 1, seed none).
        component(
            "secure_add_example",
            &["SecureAddExample"],
            &[Guest, Host],
            vec![
                param("data_num", Some(json!(1000))),
                param("partition", Some(json!(1))),
                param("seed", Some(Value::Null)),
            ],
            vec![],
            vec![],
        ),
        component(
            "reader",
            &["Reader"],
            &[Guest, Host],
            vec![param("name", None), param("namespace", None)],
            vec![],
            vec![art("output_data", Data, false, false, &[])],
        ),
        component(
            "psi",
            &["Intersection"],
            &[Guest, Host],
            vec![
                param("protocol", Some(json!("ecdh_psi"))),
                param("curve_type", Some(json!("curve25519"))),
            ],
            vec![art("input_data", Data, false, false, &[])],
            vec![art("output_data", Data, false, false, &[])],
        ),
        component(
            "coordinated_lr",
            &["HeteroLR"],
            &[Guest, Host, Arbiter],
            vec![
                param("epochs", Some(json!(20))),
                param("batch_size", Some(Value::Null)),
                param("early_stop", Some(json!("diff"))),
            ],
            vec![
                art("train_data", Data, true, false, &[Guest, Host]),
                art("validate_data", Data, true, false, &[Guest, Host]),
                art("test_data", Data, true, false, &[Guest, Host]),
                art("input_model", Model, true, false, &[]),
                art("warm_start_model", Model, true, false, &[]),
            ],
            vec![
                art("train_output_data", Data, false, false, &[Guest, Host]),
                art("test_output_data", Data, false, false, &[Guest, Host]),
                art("output_model", Model, false, false, &[]),
            ],
        ),
        component(
            "evaluation",
            &["Evaluation"],
            &[Guest],
            vec![param("default_eval_setting", Some(json!("binary")))],
            vec![art("input_datas", Data, false, true, &[])],
            vec![],
        ),
        component(
            "data_split",
            &["HeteroDataSplit"],
            &[Guest, Host],
            vec![param("train_size", Some(json!(0.8)))],
            vec![art("input_data", Data, false, false, &[])],
            vec![
                art("train_output_data", Data, false, false, &[]),
                art("validate_output_data", Data, false, false, &[]),
                art("test_output_data", Data, false, false, &[]),
            ],
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Golden plans.

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Plans `tests/data/<input>` and compares the pretty JSON with `<stem>.plan.json`. A JSON input
/// with a `dsl` key is a FATE 1.x submit body (`{dsl, runtime_conf}`) and goes through
/// `dsl_to_dag` first.
fn check(input: &str) -> JobPlan {
    let dir = data_dir();
    let text = std::fs::read_to_string(dir.join(input)).expect("read input");
    let comps = components();
    let dag = match serde_json::from_str::<Value>(&text) {
        Ok(v) if v.get("dsl").is_some() => dsl_to_dag(&v["dsl"], &v["runtime_conf"], &comps),
        _ => parse_dag(&text),
    }
    .unwrap_or_else(|e| panic!("{input}: {e}"));
    let plan = plan(&dag, &comps).unwrap_or_else(|e| panic!("{input}: {e}"));
    let actual = serde_json::to_string_pretty(&plan).expect("serialize") + "\n";

    let stem = input.split('.').next().unwrap_or(input);
    let golden = dir.join(format!("{stem}.plan.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&golden, &actual).expect("write golden");
    }
    let expected = std::fs::read_to_string(&golden)
        .unwrap_or_else(|_| panic!("{} is missing; run with UPDATE_GOLDEN=1", golden.display()));
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{input}: plan differs from {} at line {}:\n  expected: {:?}\n  actual:   {:?}\n\
             (run with UPDATE_GOLDEN=1 to accept)",
            golden.display(),
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line),
        );
    }
    // A plan survives a JSON round trip (the scheduler stores it).
    let back: JobPlan = serde_json::from_str(&actual).expect("plan deserializes");
    assert_eq!(back, plan);
    plan
}

#[test]
fn golden_toy_yaml() {
    let p = check("toy.yaml");
    assert_eq!(p.initiator, Party::new(Guest, "9999"));
    assert_eq!(p.stage, "default");
    let t = p.task("toy_example_0").expect("task");
    for party in &p.parties {
        let params = t.parameters_for(party).expect("params");
        assert_eq!(params["data_num"], 1024);
        assert_eq!(params["partition"], 4);
    }
}

#[test]
fn golden_toy_rest_body() {
    check("toy_rest.json");
}

#[test]
fn rest_body_and_yaml_give_the_same_plan() {
    let read = |f: &str| std::fs::read_to_string(data_dir().join(f)).expect("read");
    let a = plan(&parse_dag(&read("toy.yaml")).expect("yaml"), &components()).expect("plan");
    let b = plan(
        &parse_dag(&read("toy_rest.json")).expect("json"),
        &components(),
    )
    .expect("plan");
    assert_eq!(a, b);
}

#[test]
fn golden_secure_add_from_1x_dsl() {
    let p = check("secure_add_v1.json");
    let t = p.task("secure_add_example_0").expect("task");
    assert_eq!(t.component, "secure_add_example");
    let guest = t.parameters_for(&Party::new(Guest, "9999")).expect("guest");
    let host = t.parameters_for(&Party::new(Host, "10000")).expect("host");
    assert_eq!(
        (guest["seed"].clone(), host["seed"].clone()),
        (json!(123), json!(321))
    );
    assert_eq!(guest["data_num"], 1000);
    assert_eq!(host["partition"], 4);
    assert_eq!(p.conf.computing_partitions, Some(4));
    assert_eq!(p.conf.task_cores, Some(2));
}

#[test]
fn golden_psi_lr() {
    let p = check("psi_lr.yaml");
    let names: Vec<&str> = p.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["reader_0", "psi_0", "lr_0", "evaluation_0"]);
    let reader = p.task("reader_0").expect("reader");
    let host = Party::new(Host, "10000");
    assert_eq!(
        reader.parameters_for(&host).expect("host")["name"],
        "breast_hetero_host"
    );
    assert_eq!(reader.conf_for(&host)["launcher_name"], "default");
    let lr = p.task("lr_0").expect("lr");
    assert_eq!(lr.parties.len(), 3, "lr runs at guest, host and arbiter");
    let arbiter = Party::new(Arbiter, "10000");
    assert_eq!(lr.inputs_for(&arbiter).count(), 0, "arbiter reads no data");
    assert_eq!(
        p.task("evaluation_0").expect("eval").dependent_tasks,
        ["lr_0"]
    );
}

#[test]
fn golden_psi_lr_predict() {
    let p = check("psi_lr_predict.yaml");
    let lr = p.task("lr_0").expect("lr");
    assert_eq!(lr.stage, "predict");
    assert_eq!(
        lr.dependent_tasks,
        ["psi_0"],
        "a model_warehouse input is not a dependency"
    );
    let model = lr
        .inputs
        .iter()
        .find(|i| i.key == "input_model")
        .expect("model input");
    match &model.source {
        InputSource::ModelWarehouse {
            model_id,
            model_version,
            ..
        } => {
            assert_eq!(model_id.as_deref(), Some("202309081631313722080"));
            assert_eq!(model_version.as_deref(), Some("0"));
        }
        other => panic!("unexpected source {other:?}"),
    }
    let psi = p.task("psi_0").expect("psi");
    let guest_inputs: Vec<_> = psi.inputs_for(&Party::new(Guest, "9999")).collect();
    assert_eq!(guest_inputs.len(), 1);
    match &guest_inputs[0].source {
        InputSource::DataWarehouse { spec, .. } => assert_eq!(spec["name"], "breast_hetero_guest"),
        other => panic!("unexpected source {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers for the error cases.

/// A toy job between guest 9999 and host 10000 with `tasks` spliced in as YAML.
fn job(tasks: &str) -> String {
    job_with("", tasks)
}

/// Like `job`, with extra YAML under `dag:` (party_tasks, conf, ...).
fn job_with(extra: &str, tasks: &str) -> String {
    format!(
        "dag:\n  parties:\n  - {{role: guest, party_id: ['9999']}}\n  - {{role: host, party_id: ['10000']}}\n\
         {extra}  tasks:\n{tasks}schema_version: 2.1.0\n"
    )
}

fn plan_text(text: &str) -> Result<JobPlan, PlanError> {
    plan(&parse_dag(text)?, &components())
}

#[track_caller]
fn expect_err(text: &str, kind: K, task: Option<&str>, field: &str) -> PlanError {
    let e = plan_text(text).expect_err("the definition should be refused");
    assert_eq!(
        (e.kind, e.task.as_deref(), e.field.as_str()),
        (kind, task, field),
        "unexpected error: {e}"
    );
    e
}

const TOY: &str = "    toy_0:\n      component_ref: toy_example\n      parameters: {data_num: 10, partition: 2}\n";
const READER: &str =
    "    reader_0:\n      component_ref: reader\n      parameters: {name: t, namespace: ns}\n";

// ---------------------------------------------------------------------------------------------
// Parse errors.

#[test]
fn malformed_yaml_reports_line_and_column() {
    let text = "dag:\n  parties: [\n  tasks: {}\n";
    let e = parse_dag(text).expect_err("malformed");
    assert_eq!(e.kind, K::Syntax);
    assert!(e.line.is_some() && e.column.is_some(), "{e:?}");
    assert!(e.message.starts_with("invalid YAML"), "{e}");
}

#[test]
fn malformed_json_gets_a_json_error_with_position() {
    let text = "{\n  \"dag_schema\": {\n    \"dag\": {\"parties\": [}\n  }\n}";
    let e = parse_dag(text).expect_err("malformed");
    assert_eq!(
        (e.kind, e.line, e.column),
        (K::Syntax, Some(3), Some(25)),
        "{e}"
    );
    assert!(e.message.starts_with("invalid JSON"), "{e}");
    assert!(e.to_string().contains("line 3, column 25"), "{e}");
}

#[test]
fn wrong_shape_is_a_syntax_error_at_the_field() {
    // `component_ref` is missing; the parser points into the task.
    let text = job("    toy_0:\n      parameters: {data_num: 1}\n");
    let e = parse_dag(&text).expect_err("missing component_ref");
    assert_eq!(e.kind, K::Syntax);
    assert!(e.message.contains("component_ref"), "{e}");
    assert!(e.line.is_some_and(|l| l >= 5), "{e:?}");
}

#[test]
fn oversized_text_is_refused_before_parsing() {
    let text = " ".repeat(fate_dag::MAX_DAG_TEXT_BYTES + 1);
    assert_eq!(parse_dag(&text).expect_err("too big").kind, K::Syntax);
}

#[test]
fn non_map_document_is_refused() {
    assert_eq!(parse_dag("- a\n- b\n").expect_err("list").kind, K::Syntax);
    assert_eq!(parse_dag("{}").expect_err("empty").kind, K::Syntax);
}

// ---------------------------------------------------------------------------------------------
// Validation errors, one per kind of mistake.

#[test]
fn unknown_component_lists_the_known_ones() {
    let e = expect_err(
        &job("    lr_0:\n      component_ref: hetero_lr\n"),
        K::UnknownComponent,
        Some("lr_0"),
        "dag.tasks.lr_0.component_ref",
    );
    assert!(
        e.message.contains("hetero_lr") && e.message.contains("coordinated_lr, data_split"),
        "{e}"
    );
}

#[test]
fn cycle_names_the_tasks_on_it() {
    let tasks = "    a:\n      component_ref: psi\n      dependent_tasks: [c]\n\
                 \x20     inputs: {data: {input_data: {task_output_artifact: {producer_task: reader_0, output_artifact_key: output_data}}}}\n\
                 \x20   b:\n      component_ref: psi\n      dependent_tasks: [a]\n\
                 \x20     inputs: {data: {input_data: {task_output_artifact: {producer_task: reader_0, output_artifact_key: output_data}}}}\n\
                 \x20   c:\n      component_ref: psi\n\
                 \x20     inputs: {data: {input_data: {task_output_artifact: {producer_task: b, output_artifact_key: output_data}}}}\n";
    let e = expect_err(
        &job(&format!("{READER}{tasks}")),
        K::Cycle,
        Some("a"),
        "dag.tasks.a.dependent_tasks",
    );
    assert!(e.message.contains("a -> c -> b -> a"), "{e}");
    assert!(!e.message.contains("reader_0"), "{e}");
}

#[test]
fn self_dependency_is_a_cycle() {
    let tasks = format!("{TOY}      dependent_tasks: [toy_0]\n");
    expect_err(
        &job(&tasks),
        K::Cycle,
        Some("toy_0"),
        "dag.tasks.toy_0.dependent_tasks",
    );
}

#[test]
fn unknown_dependent_task() {
    let tasks = format!("{TOY}      dependent_tasks: [reader_9]\n");
    let e = expect_err(
        &job(&tasks),
        K::UnknownTask,
        Some("toy_0"),
        "dag.tasks.toy_0.dependent_tasks",
    );
    assert!(e.message.contains("reader_9"), "{e}");
}

#[test]
fn unknown_producer_task() {
    let tasks = "    psi_0:\n      component_ref: psi\n\
                 \x20     inputs: {data: {input_data: {task_output_artifact: {producer_task: reader_9, output_artifact_key: output_data}}}}\n";
    expect_err(
        &job(tasks),
        K::UnknownTask,
        Some("psi_0"),
        "dag.tasks.psi_0.inputs.data.input_data.task_output_artifact.producer_task",
    );
}

#[test]
fn task_party_outside_the_job() {
    let tasks = format!("{TOY}      parties: [{{role: host, party_id: ['9998']}}]\n");
    let e = expect_err(
        &job(&tasks),
        K::UnknownParty,
        Some("toy_0"),
        "dag.tasks.toy_0.parties",
    );
    assert!(e.message.contains("host:9998"), "{e}");
}

#[test]
fn party_tasks_party_outside_the_job() {
    let extra = "  party_tasks:\n    h:\n      parties: [{role: host, party_id: ['9998']}]\n      tasks: {toy_0: {parameters: {data_num: 5}}}\n";
    expect_err(
        &job_with(extra, TOY),
        K::UnknownParty,
        None,
        "dag.party_tasks.h.parties",
    );
}

#[test]
fn party_tasks_for_an_unknown_task() {
    let extra = "  party_tasks:\n    g:\n      parties: [{role: guest, party_id: ['9999']}]\n      tasks: {toy_9: {parameters: {data_num: 5}}}\n";
    expect_err(
        &job_with(extra, TOY),
        K::UnknownTask,
        Some("toy_9"),
        "dag.party_tasks.g.tasks.toy_9",
    );
}

#[test]
fn role_the_component_does_not_support() {
    let text = "dag:\n  parties:\n  - {role: guest, party_id: ['9999']}\n  - {role: arbiter, party_id: ['10000']}\n  tasks:\n\
                \x20   toy_0:\n      component_ref: toy_example\n      parameters: {data_num: 1, partition: 1}\n\
                \x20     parties: [{role: arbiter, party_id: ['10000']}]\n";
    let e = expect_err(
        text,
        K::UnsupportedRole,
        Some("toy_0"),
        "dag.tasks.toy_0.parties",
    );
    assert!(
        e.message.contains("arbiter") && e.message.contains("guest, host"),
        "{e}"
    );
}

#[test]
fn missing_required_parameter() {
    let tasks = "    toy_0:\n      component_ref: toy_example\n      parameters: {partition: 4}\n";
    let e = expect_err(
        &job(tasks),
        K::MissingParameter,
        Some("toy_0"),
        "dag.tasks.toy_0.parameters.data_num",
    );
    assert_eq!(
        e.to_string(),
        "task `toy_0`: dag.tasks.toy_0.parameters.data_num: required parameter is missing"
    );
}

#[test]
fn required_parameter_missing_for_one_party_only() {
    let extra = "  party_tasks:\n    g:\n      parties: [{role: guest, party_id: ['9999']}]\n      tasks: {toy_0: {parameters: {data_num: 5}}}\n";
    let tasks = "    toy_0:\n      component_ref: toy_example\n      parameters: {partition: 4}\n";
    let e = expect_err(
        &job_with(extra, tasks),
        K::MissingParameter,
        Some("toy_0"),
        "dag.tasks.toy_0.parameters.data_num",
    );
    assert!(
        e.message.contains("host:10000") && !e.message.contains("guest"),
        "{e}"
    );
}

#[test]
fn unknown_parameter() {
    let tasks = "    toy_0:\n      component_ref: toy_example\n      parameters: {data_num: 1, partition: 1, data_nmu: 3}\n";
    let e = expect_err(
        &job(tasks),
        K::UnknownParameter,
        Some("toy_0"),
        "dag.tasks.toy_0.parameters.data_nmu",
    );
    assert!(e.message.contains("data_num, partition"), "{e}");
}

#[test]
fn unknown_parameter_in_party_tasks() {
    let extra = "  party_tasks:\n    g:\n      parties: [{role: guest, party_id: ['9999']}]\n      tasks: {toy_0: {parameters: {sed: 5}}}\n";
    expect_err(
        &job_with(extra, TOY),
        K::UnknownParameter,
        Some("toy_0"),
        "dag.party_tasks.g.tasks.toy_0.parameters.sed",
    );
}

#[test]
fn input_key_the_component_does_not_declare() {
    let tasks = format!(
        "{READER}    psi_0:\n      component_ref: psi\n\
         \x20     inputs: {{data: {{train_data: {{task_output_artifact: {{producer_task: reader_0, output_artifact_key: output_data}}}}}}}}\n"
    );
    let e = expect_err(
        &job(&tasks),
        K::BadInput,
        Some("psi_0"),
        "dag.tasks.psi_0.inputs.data.train_data",
    );
    assert!(e.message.contains("input_data"), "{e}");
}

#[test]
fn output_key_the_producer_does_not_declare() {
    let tasks = format!(
        "{READER}    psi_0:\n      component_ref: psi\n\
         \x20     inputs: {{data: {{input_data: {{task_output_artifact: {{producer_task: reader_0, output_artifact_key: data_output}}}}}}}}\n"
    );
    expect_err(
        &job(&tasks),
        K::BadInput,
        Some("psi_0"),
        "dag.tasks.psi_0.inputs.data.input_data.task_output_artifact.output_artifact_key",
    );
}

#[test]
fn model_output_into_a_data_input() {
    let tasks = format!(
        "{READER}    lr_0:\n      component_ref: coordinated_lr\n\
         \x20     inputs: {{data: {{train_data: {{task_output_artifact: {{producer_task: reader_0, output_artifact_key: output_data}}}}}}}}\n\
         \x20   psi_0:\n      component_ref: psi\n\
         \x20     inputs: {{data: {{input_data: {{task_output_artifact: {{producer_task: lr_0, output_artifact_key: output_model}}}}}}}}\n"
    );
    let e = expect_err(
        &job(&tasks),
        K::BadInput,
        Some("psi_0"),
        "dag.tasks.psi_0.inputs.data.input_data.task_output_artifact.output_artifact_key",
    );
    assert!(e.message.contains("model"), "{e}");
}

#[test]
fn required_input_missing() {
    let tasks = "    psi_0:\n      component_ref: psi\n";
    let e = expect_err(
        &job(tasks),
        K::MissingInput,
        Some("psi_0"),
        "dag.tasks.psi_0.inputs.data.input_data",
    );
    assert!(e.message.contains("input_data"), "{e}");
}

#[test]
fn required_input_missing_where_the_producer_does_not_run() {
    let tasks = "    reader_0:\n      component_ref: reader\n      parameters: {name: t, namespace: ns}\n\
                 \x20     parties: [{role: guest, party_id: ['9999']}]\n\
                 \x20   psi_0:\n      component_ref: psi\n\
                 \x20     inputs: {data: {input_data: {task_output_artifact: {producer_task: reader_0, output_artifact_key: output_data}}}}\n";
    let e = expect_err(
        &job(tasks),
        K::MissingInput,
        Some("psi_0"),
        "dag.tasks.psi_0.inputs.data.input_data",
    );
    assert!(e.message.contains("host:10000"), "{e}");
}

#[test]
fn two_sources_for_a_single_input() {
    let tasks = format!(
        "{READER}    reader_1:\n      component_ref: reader\n      parameters: {{name: t, namespace: ns}}\n\
         \x20   psi_0:\n      component_ref: psi\n\
         \x20     inputs: {{data: {{input_data: {{task_output_artifact: [{{producer_task: reader_0, output_artifact_key: output_data}}, {{producer_task: reader_1, output_artifact_key: output_data}}]}}}}}}\n"
    );
    let e = expect_err(
        &job(&tasks),
        K::BadInput,
        Some("psi_0"),
        "dag.tasks.psi_0.inputs.data.input_data",
    );
    assert!(
        e.message
            .contains("reader_0.output_data, reader_1.output_data"),
        "{e}"
    );
}

#[test]
fn channel_party_that_does_not_run_the_consumer() {
    let tasks = format!(
        "{READER}    evaluation_0:\n      component_ref: evaluation\n\
         \x20     inputs: {{data: {{input_datas: {{task_output_artifact: {{producer_task: reader_0, output_artifact_key: output_data, parties: [{{role: host, party_id: ['10000']}}]}}}}}}}}\n"
    );
    expect_err(
        &job(&tasks),
        K::UnknownParty,
        Some("evaluation_0"),
        "dag.tasks.evaluation_0.inputs.data.input_datas.task_output_artifact.parties",
    );
}

#[test]
fn duplicate_party_ids_within_a_role() {
    let text = "dag:\n  parties:\n  - {role: guest, party_id: ['9999']}\n  - {role: host, party_id: ['10000', '10000']}\n  tasks:\n".to_string() + TOY;
    let e = expect_err(&text, K::DuplicateParty, None, "dag.parties[1].party_id");
    assert!(e.message.contains("10000"), "{e}");
}

#[test]
fn no_parties() {
    let text = format!("dag:\n  parties: []\n  tasks:\n{TOY}");
    expect_err(&text, K::NoParties, None, "dag.parties");
}

#[test]
fn no_party_plays_a_role_the_component_supports() {
    let text = format!("dag:\n  parties: [{{role: arbiter, party_id: ['1']}}]\n  tasks:\n{TOY}");
    expect_err(
        &text,
        K::NoParties,
        Some("toy_0"),
        "dag.tasks.toy_0.parties",
    );
}

#[test]
fn task_names_and_party_ids_that_could_escape_a_path() {
    let tasks = "    ../etc:\n      component_ref: toy_example\n      parameters: {data_num: 1, partition: 1}\n";
    expect_err(
        &job(tasks),
        K::InvalidName,
        Some("../etc"),
        "dag.tasks.../etc",
    );
    let text = format!("dag:\n  parties: [{{role: guest, party_id: ['a/b']}}]\n  tasks:\n{TOY}");
    expect_err(&text, K::InvalidName, None, "dag.parties[0].party_id");
}

#[test]
fn stage_outside_fates_set() {
    let text = job_with("  stage: training\n", TOY);
    expect_err(&text, K::BadValue, None, "dag.stage");
}

#[test]
fn initiator_must_be_a_job_party() {
    let text = job_with("  conf: {initiator_party_id: '8888'}\n", TOY);
    expect_err(&text, K::UnknownParty, None, "dag.conf.initiator_party_id");
}

// ---------------------------------------------------------------------------------------------
// Planning behaviour.

#[test]
fn initiator_and_scheduler_follow_conf() {
    let text = "dag:\n  parties:\n  - {role: host, party_id: ['10000']}\n  - {role: guest, party_id: ['9999', '10000']}\n\
                \x20 conf: {initiator_party_id: '10000'}\n  tasks:\n"
        .to_string()
        + TOY;
    let p = plan_text(&text).expect("plan");
    // 10000 plays host and guest; the guest role wins.
    assert_eq!(p.initiator, Party::new(Guest, "10000"));
    assert_eq!(p.scheduler_party_id.as_str(), "10000");
    assert_eq!(p.stage, "train");
    // Parties sorted by role then id.
    let ps: Vec<String> = p.parties.iter().map(Party::to_string).collect();
    assert_eq!(ps, ["guest:10000", "guest:9999", "host:10000"]);
}

#[test]
fn topological_order_breaks_ties_by_name() {
    let tasks = "    z_reader:\n      component_ref: reader\n      parameters: {name: t, namespace: ns}\n\
                 \x20   b_psi:\n      component_ref: psi\n\
                 \x20     inputs: {data: {input_data: {task_output_artifact: {producer_task: z_reader, output_artifact_key: output_data}}}}\n\
                 \x20   a_toy:\n      component_ref: toy_example\n      parameters: {data_num: 1, partition: 1}\n\
                 \x20     dependent_tasks: [b_psi]\n\
                 \x20   c_toy:\n      component_ref: toy_example\n      parameters: {data_num: 1, partition: 1}\n";
    let p = plan_text(&job(tasks)).expect("plan");
    let names: Vec<&str> = p.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["c_toy", "z_reader", "b_psi", "a_toy"]);
    assert_eq!(p.task("b_psi").expect("psi").dependent_tasks, ["z_reader"]);
}

#[test]
fn party_overrides_apply_in_alias_order_on_top_of_defaults() {
    let extra = "  party_tasks:\n\
                 \x20   a_all:\n      parties: [{role: guest, party_id: ['9999']}, {role: host, party_id: ['10000']}]\n      tasks: {psi_0: {parameters: {protocol: a}}}\n\
                 \x20   b_host:\n      parties: [{role: host, party_id: ['10000']}]\n      tasks: {psi_0: {parameters: {protocol: b}}}\n";
    let tasks = format!(
        "{READER}    psi_0:\n      component_ref: psi\n\
         \x20     inputs: {{data: {{input_data: {{task_output_artifact: {{producer_task: reader_0, output_artifact_key: output_data}}}}}}}}\n"
    );
    let p = plan_text(&job_with(extra, &tasks)).expect("plan");
    let psi = p.task("psi_0").expect("psi");
    let get = |party: Party| psi.parameters_for(&party).expect("params").clone();
    assert_eq!(get(Party::new(Guest, "9999"))["protocol"], "a");
    assert_eq!(get(Party::new(Host, "10000"))["protocol"], "b");
    assert_eq!(
        get(Party::new(Host, "10000"))["curve_type"],
        "curve25519",
        "defaults kept"
    );
}

// ---------------------------------------------------------------------------------------------
// 1.x conversion.

fn v1(dsl: Value, conf: Value) -> Result<JobPlan, PlanError> {
    let comps = components();
    plan(&dsl_to_dag(&dsl, &conf, &comps)?, &comps)
}

fn v1_conf(extra: Value) -> Value {
    let mut conf = json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000, 10001], "arbiter": [10000]},
    });
    if let (Some(c), Some(e)) = (conf.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    conf
}

#[test]
fn v1_role_index_keys_all_and_pipes() {
    let dsl = json!({"components": {
        "reader_0": {"module": "Reader", "output": {"data": ["data"]}},
        "intersection_0": {"module": "Intersection", "input": {"data": {"data": ["reader_0.data"]}}},
    }});
    let conf = v1_conf(json!({"component_parameters": {
        "common": {"intersection_0": {"curve_type": "curve25519"}},
        "role": {
            "guest": {"0": {"reader_0": {"name": "g", "namespace": "ns"}}},
            "host": {
                "all": {"reader_0": {"name": "h", "namespace": "ns"}},
                "1": {"reader_0": {"name": "h1"}},
            },
        },
    }}));
    let p = v1(dsl, conf).expect("plan");
    let reader = p.task("reader_0").expect("reader");
    let name =
        |id: &str| reader.parameters_for(&Party::new(Host, id)).expect("host")["name"].clone();
    assert_eq!((name("10000"), name("10001")), (json!("h"), json!("h1")));
    let psi = p.task("intersection_0").expect("psi");
    assert_eq!(psi.component, "psi");
    assert_eq!(psi.dependent_tasks, ["reader_0"]);
    assert_eq!(psi.inputs[0].key, "input_data");
    assert!(
        !psi.parties.iter().any(|p| p.role == Arbiter),
        "psi does not run at the arbiter"
    );
}

#[test]
fn v1_pipe_index_selects_several_parties_and_role_maps_merge_deeply() {
    let dsl = json!({"components": {"lr_0": {"module": "HeteroLR"}}});
    let conf = v1_conf(json!({"component_parameters": {
        "common": {"lr_0": {"early_stop": {"kind": "diff", "tol": 1}}},
        "role": {"host": {"0|1": {"lr_0": {"early_stop": {"tol": 2}}}}},
    }}));
    let p = v1(dsl, conf).expect("plan");
    let lr = p.task("lr_0").expect("lr");
    for id in ["10000", "10001"] {
        let params = lr.parameters_for(&Party::new(Host, id)).expect("host");
        assert_eq!(params["early_stop"], json!({"kind": "diff", "tol": 2}));
    }
    let guest = lr
        .parameters_for(&Party::new(Guest, "9999"))
        .expect("guest");
    assert_eq!(guest["early_stop"], json!({"kind": "diff", "tol": 1}));
}

#[test]
fn v1_role_index_out_of_range() {
    let dsl = json!({"components": {"lr_0": {"module": "HeteroLR"}}});
    let conf = v1_conf(
        json!({"component_parameters": {"role": {"host": {"2": {"lr_0": {"epochs": 1}}}}}}),
    );
    let e = v1(dsl, conf).expect_err("index 2 of 2 hosts");
    assert_eq!(
        (e.kind, e.field.as_str()),
        (K::UnknownParty, "conf.component_parameters.role.host.2")
    );
}

#[test]
fn v1_unknown_module_lists_known_modules() {
    let dsl = json!({"components": {"x_0": {"module": "HeteroPoisson"}}});
    let e = v1(dsl, v1_conf(json!({}))).expect_err("unknown module");
    assert_eq!(
        (e.kind, e.task.as_deref(), e.field.as_str()),
        (
            K::UnknownComponent,
            Some("x_0"),
            "dsl.components.x_0.module"
        )
    );
    assert!(
        e.message
            .contains("HeteroDataSplit, HeteroLR, Intersection"),
        "{e}"
    );
}

#[test]
fn v1_unknown_upstream() {
    let dsl = json!({"components": {
        "intersection_0": {"module": "Intersection", "input": {"data": {"data": ["reader_0.data"]}}},
    }});
    let e = v1(dsl, v1_conf(json!({}))).expect_err("no reader_0");
    assert_eq!(
        (e.kind, e.field.as_str()),
        (
            K::UnknownTask,
            "dsl.components.intersection_0.input.data.data"
        )
    );
}

#[test]
fn v1_data_split_outputs_and_predict_models() {
    let dsl = json!({"components": {
        "reader_0": {"module": "Reader"},
        "split_0": {"module": "HeteroDataSplit", "input": {"data": {"data": ["reader_0.data"]}}},
        "lr_0": {"module": "HeteroLR", "input": {
            "data": {"test_data": ["split_0.test"]},
            "model": ["pipeline.lr_0.model"],
        }},
    }});
    let conf = v1_conf(json!({
        "job_parameters": {"common": {"job_type": "predict", "model_id": "guest#9999#model", "model_version": 202301}},
        "component_parameters": {"common": {"reader_0": {"name": "t", "namespace": "ns"}}},
    }));
    let p = v1(dsl, conf).expect("plan");
    assert_eq!(p.stage, "predict");
    assert_eq!(
        p.conf.model_warehouse,
        Some(json!({"model_id": "guest#9999#model", "model_version": "202301"}))
    );
    let lr = p.task("lr_0").expect("lr");
    assert_eq!(lr.dependent_tasks, ["split_0"]);
    let sources: Vec<(&str, &InputSource)> = lr
        .inputs
        .iter()
        .map(|i| (i.key.as_str(), &i.source))
        .collect();
    assert!(sources.iter().any(|(k, s)| *k == "test_data"
        && matches!(s, InputSource::Task { output_key, .. } if output_key == "test_output_data")));
    assert!(sources.iter().any(|(k, s)| *k == "input_model"
        && matches!(s, InputSource::ModelWarehouse { model_id: Some(id), output_key, .. }
            if id == "guest#9999#model" && output_key == "output_model")));
}

#[test]
fn v1_initiator_must_be_listed() {
    let dsl = json!({"components": {"lr_0": {"module": "HeteroLR"}}});
    let mut conf = v1_conf(json!({}));
    conf["initiator"] = json!({"role": "host", "party_id": 9999});
    let e = v1(dsl, conf).expect_err("guest 9999 is not a host");
    assert_eq!(
        (e.kind, e.field.as_str()),
        (K::UnknownParty, "conf.initiator")
    );
}

#[test]
fn v1_rejects_dsl_v1() {
    let dsl = json!({"components": {}});
    let mut conf = v1_conf(json!({}));
    conf["dsl_version"] = json!(1);
    assert_eq!(v1(dsl, conf).expect_err("v1").kind, K::BadValue);
}

#[test]
fn dags_round_trip_through_yaml_and_json() {
    for f in ["psi_lr.yaml", "psi_lr_predict.yaml", "toy_rest.json"] {
        let text = std::fs::read_to_string(data_dir().join(f)).expect("read");
        let dag = parse_dag(&text).expect("parse");
        let yaml = serde_yaml_ng::to_string(&dag).expect("to yaml");
        assert!(
            !yaml.contains('!'),
            "{f}: FATE cannot read YAML tags:\n{yaml}"
        );
        assert_eq!(parse_dag(&yaml).expect("reparse yaml"), dag, "{f}");
        let json = serde_json::to_string(&dag).expect("to json");
        assert_eq!(parse_dag(&json).expect("reparse json"), dag, "{f}");
    }
}

#[test]
fn input_with_two_sources_is_a_syntax_error() {
    let tasks = "    psi_0:\n      component_ref: psi\n\
                 \x20     inputs: {data: {input_data: {data_warehouse: {name: a}, model_warehouse: {producer_task: x, output_artifact_key: y}}}}\n";
    let e = parse_dag(&job(tasks)).expect_err("two sources");
    assert_eq!(e.kind, K::Syntax);
    assert!(e.message.contains("exactly one source"), "{e}");
}

#[test]
fn the_task_timeout_comes_from_the_job_conf_and_must_be_positive() {
    let ok = plan_text(&job_with("  conf: {task: {timeout: 90}}\n", TOY)).unwrap();
    assert_eq!(ok.task_timeout(), Some(std::time::Duration::from_secs(90)));
    assert_eq!(plan_text(&job(TOY)).unwrap().task_timeout(), None);
    for bad in ["0", "-5", "soon"] {
        let e = expect_err(
            &job_with(&format!("  conf: {{task: {{timeout: {bad}}}}}\n"), TOY),
            K::BadValue,
            None,
            "dag.conf.task.timeout",
        );
        assert!(e.message.contains("positive number of seconds"), "{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Per-job engine settings (`fate_dag::engines`).

fn guest() -> Party {
    Party::new(Role::Guest, "9999")
}

fn host() -> Party {
    Party::new(Role::Host, "10000")
}

#[test]
fn engine_settings_come_from_the_job_conf_and_party_confs() {
    use fate_dag::ComputingEngine as C;
    let extra = "  conf:\n    computing_engine: SPARK\n    task: {engine_run: {num-executors: 2, conf: {spark.sql.shuffle.partitions: 4}}}\n\
                 \x20 party_tasks:\n    h:\n      parties: [{role: host, party_id: ['10000']}]\n      conf: {computing_engine: standalone}\n";
    let plan = plan_text(&job_with(extra, TOY)).unwrap();
    let g = plan.engines_for(&guest());
    assert_eq!(g.computing_engine.as_ref().unwrap().value, C::Spark);
    assert_eq!(
        g.computing_engine.unwrap().field,
        "dag.conf.computing_engine"
    );
    let run = g.spark_run.unwrap();
    assert_eq!(run.options["spark.executor.instances"].value, "2");
    assert_eq!(
        run.conf["spark.sql.shuffle.partitions"].field,
        "dag.conf.task.engine_run.conf.spark.sql.shuffle.partitions"
    );
    let h = plan.engines_for(&host());
    assert_eq!(h.computing_engine.as_ref().unwrap().value, C::Standalone);
    assert_eq!(
        h.computing_engine.unwrap().field,
        "dag.party_tasks.h.conf.computing_engine"
    );
    // A job that says nothing leaves every party to its node.
    assert!(plan_text(&job(TOY)).unwrap().engines.is_empty());
}

#[test]
fn bad_engine_settings_name_the_field() {
    let cases = [
        (
            "  conf: {computing_engine: EGGROLL}\n",
            "dag.conf.computing_engine",
            "not supported by fate-rs, use STANDALONE or SPARK",
        ),
        (
            "  conf: {computing_engine: flink}\n",
            "dag.conf.computing_engine",
            "not a computing engine",
        ),
        (
            "  conf: {storage_engine: 7}\n",
            "dag.conf.storage_engine",
            "expected the name",
        ),
        (
            "  conf: {federation_engine: KAFKA}\n",
            "dag.conf.federation_engine",
            "`KAFKA` is not a federation engine",
        ),
        (
            "  conf: {task: {engine_run: [1]}}\n",
            "dag.conf.task.engine_run",
            "expected an object",
        ),
        (
            "  conf: {task: {engine_run: {executor-cores: many}}}\n",
            "dag.conf.task.engine_run.executor-cores",
            "positive whole number",
        ),
        (
            "  party_tasks:\n    h:\n      parties: [{role: host, party_id: ['10000']}]\n      conf: {engine_run: {conf: {spark.sql.x: {a: 1}}}}\n",
            "dag.party_tasks.h.conf.engine_run.conf.spark.sql.x",
            "expected a string, number or boolean",
        ),
    ];
    for (extra, field, words) in cases {
        let e = expect_err(&job_with(extra, TOY), K::BadValue, None, field);
        assert!(e.message.contains(words), "{extra}: {e}");
    }
}

fn v1_engine_conf(job_parameters: Value) -> Value {
    json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000, 10001]},
        "job_parameters": job_parameters,
        "component_parameters": {"common": {"secure_add_example_0": {"data_num": 10}}}
    })
}

fn v1_plan(job_parameters: Value) -> Result<JobPlan, PlanError> {
    let dsl = json!({"components": {"secure_add_example_0": {"module": "SecureAddExample"}}});
    let comps = components();
    plan(
        &dsl_to_dag(&dsl, &v1_engine_conf(job_parameters), &comps)?,
        &comps,
    )
}

#[test]
fn v1_job_parameters_carry_engines_for_every_party() {
    use fate_dag::ComputingEngine as C;
    let plan = v1_plan(json!({
        "common": {"computing_engine": "SPARK", "spark_run": {"executor-memory": "2g"}},
        "role": {"host": {"1": {"computing_engine": "STANDALONE"},
                          "all": {"spark_run": {"conf": {"spark.sql.shuffle.partitions": 3}}}}}
    }))
    .unwrap();
    let g = plan.engines_for(&guest());
    assert_eq!(g.computing_engine.unwrap().value, C::Spark);
    let h0 = plan.engines_for(&host());
    assert_eq!(h0.computing_engine.unwrap().value, C::Spark);
    let run = h0.spark_run.unwrap();
    assert_eq!(run.options["spark.executor.memory"].value, "2g");
    assert_eq!(run.conf["spark.sql.shuffle.partitions"].value, "3");
    let h1 = plan.engines_for(&Party::new(Role::Host, "10001"));
    assert_eq!(h1.computing_engine.unwrap().value, C::Standalone);
    // The converted DAG says it in 2.x terms: `conf.task.engine_run`, party confs.
    let conf = plan.dag.dag.conf.as_ref().unwrap();
    assert_eq!(conf.extra["computing_engine"], json!("SPARK"));
    assert_eq!(
        conf.task.as_ref().unwrap()["engine_run"],
        json!({"executor-memory": "2g"})
    );
}

#[test]
fn bad_v1_engine_settings_name_the_party_and_the_1x_field() {
    let cases = [
        (
            json!({"common": {"computing_engine": "EGGROLL"}}),
            "conf.job_parameters.common.computing_engine",
            "not supported by fate-rs",
        ),
        (
            json!({"role": {"host": {"0": {"computing_engine": "eggroll"}}}}),
            "conf.job_parameters.role.host.0.computing_engine",
            "use STANDALONE or SPARK",
        ),
        (
            json!({"role": {"host": {"1": {"spark_run": "fast"}}}}),
            "conf.job_parameters.role.host.1.spark_run",
            "expected an object",
        ),
        (
            json!({"role": {"host": {"0|1": {"spark_run": {"num-executors": [2]}}}}}),
            "conf.job_parameters.role.host.0|1.spark_run.num-executors",
            "expected a string, number or boolean",
        ),
        (
            json!({"role": {"host": {"2": {"computing_engine": "SPARK"}}}}),
            "conf.job_parameters.role.host.2",
            "not an index",
        ),
        (
            json!({"role": {"arbiter": {"0": {"computing_engine": "SPARK"}}}}),
            "conf.job_parameters.role.arbiter",
            "not listed",
        ),
    ];
    for (jp, field, words) in cases {
        let e = v1_plan(jp.clone()).expect_err("should be refused");
        assert_eq!(e.field, field, "{jp}: {e}");
        assert!(e.message.contains(words), "{jp}: {e}");
    }
}

/// FATE's `rabbitmq_run` / `pulsar_run` job parameters: the options fate-rs takes, per party
/// (a role's entry over the common one), carried into the 2.x DAG's confs.
#[test]
fn v1_broker_run_options_are_typed_per_party() {
    use fate_types::BrokerCompression;
    let plan = v1_plan(json!({
        "common": {"rabbitmq_run": {"max_message_size": 65536, "connection": {"heartbeat": 30},
                                    "queue": {"durable": true}},
                   "pulsar_run": {"producer": {"compression_type": "zstd"}, "topic_ttl": 10}},
        "role": {"host": {"1": {"rabbitmq_run": {"connection": {"heartbeat": 0}},
                                "pulsar_run": {"max_message_size": 2048}}}}
    }))
    .unwrap();
    let g = plan.engines_for(&guest());
    let r = g.broker_run("rabbitmq").unwrap();
    assert_eq!(
        (r.max_message_size, r.heartbeat_secs),
        (Some(65536), Some(30))
    );
    let p = g.broker_run("pulsar").unwrap();
    assert_eq!(p.compression, Some(BrokerCompression::Zstd));
    assert_eq!(p.topic_ttl_minutes, Some(10));
    assert!(g.broker_run("grpc").is_none());
    let h1 = plan.engines_for(&Party::new(Role::Host, "10001"));
    let r = h1.broker_run("rabbitmq").unwrap();
    assert_eq!(
        (r.max_message_size, r.heartbeat_secs),
        (Some(65536), Some(0))
    );
    let p = h1.broker_run("pulsar").unwrap();
    assert_eq!(
        (p.max_message_size, p.topic_ttl_minutes),
        (Some(2048), Some(10))
    );
    let conf = plan.dag.dag.conf.as_ref().unwrap();
    assert_eq!(
        conf.extra["rabbitmq_run"]["connection"]["heartbeat"],
        json!(30)
    );
}

#[test]
fn bad_broker_run_options_name_the_field() {
    let cases = [
        (
            json!({"common": {"rabbitmq_run": {"queue": {"durable": false}}}}),
            "conf.job_parameters.common.rabbitmq_run.queue.durable",
            "always durable",
        ),
        (
            json!({"common": {"rabbitmq_run": {"connection": {"socket_timeout": 3}}}}),
            "conf.job_parameters.common.rabbitmq_run.connection.socket_timeout",
            "does not take this option",
        ),
        (
            json!({"common": {"rabbitmq_run": {"producer": {}}}}),
            "conf.job_parameters.common.rabbitmq_run.producer",
            "does not take this option",
        ),
        (
            json!({"common": {"pulsar_run": {"max_message_size": 64 << 20}}}),
            "conf.job_parameters.common.pulsar_run.max_message_size",
            "from 1024 to 4194304",
        ),
        (
            json!({"common": {"pulsar_run": {"producer": {"compression_type": "brotli"}}}}),
            "conf.job_parameters.common.pulsar_run.producer.compression_type",
            "expected NONE, LZ4",
        ),
        (
            json!({"role": {"host": {"0": {"pulsar_run": {"topic_ttl": 0}}}}}),
            "conf.job_parameters.role.host.0.pulsar_run.topic_ttl",
            "whole number of minutes",
        ),
        (
            json!({"common": {"pulsar_run": "fast"}}),
            "conf.job_parameters.common.pulsar_run",
            "expected an object",
        ),
    ];
    for (jp, field, words) in cases {
        let e = v1_plan(jp.clone()).expect_err("should be refused");
        assert_eq!(e.field, field, "{jp}: {e}");
        assert!(e.message.contains(words), "{jp}: {e}");
    }
}
