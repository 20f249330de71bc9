//! The one error type of this crate: what is wrong, in which task, at which field of the job
//! definition.

use fate_types::RetCode;
use serde::Serialize;
use std::fmt;

/// What kind of mistake a job definition contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PlanErrorKind {
    /// The text is not valid YAML/JSON or does not have the shape of a DAG (or of a 1.x DSL/conf).
    Syntax,
    /// The job (or a task) has no parties.
    NoParties,
    /// A party id is listed twice for the same role.
    DuplicateParty,
    /// A party that is not one of the job's parties.
    UnknownParty,
    /// A party plays a role the component does not support.
    UnsupportedRole,
    /// `component_ref` (or a 1.x `module`) names no known component.
    UnknownComponent,
    /// A task name (dependency, producer, override target) that the job does not define.
    UnknownTask,
    /// Tasks depend on each other in a circle.
    Cycle,
    /// A required component parameter has no value for some party.
    MissingParameter,
    /// A parameter the component does not declare.
    UnknownParameter,
    /// An input or output key the component does not declare, or an input wired wrongly.
    BadInput,
    /// A required input has no source for some party.
    MissingInput,
    /// A task name or party id with characters that are not allowed (they end up in ids and
    /// paths).
    InvalidName,
    /// A value outside its allowed set (e.g. `stage`).
    BadValue,
}

/// A job definition that cannot be planned. `field` is a dotted path into the submitted document
/// (`dag.tasks.lr_0.component_ref`); `line`/`column` are set for parse errors when the parser
/// knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct PlanError {
    pub kind: PlanErrorKind,
    pub task: Option<String>,
    pub field: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl PlanError {
    /// An error about the job as a whole (no task).
    pub fn job(kind: PlanErrorKind, field: impl Into<String>, message: impl Into<String>) -> Self {
        PlanError {
            kind,
            task: None,
            field: field.into(),
            message: message.into(),
            line: None,
            column: None,
        }
    }

    /// An error about one task.
    pub fn task(
        kind: PlanErrorKind,
        task: &str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        PlanError {
            task: Some(task.to_string()),
            ..PlanError::job(kind, field, message)
        }
    }

    pub(crate) fn at(mut self, line: Option<usize>, column: Option<usize>) -> Self {
        self.line = line;
        self.column = column;
        self
    }

    /// The FATE-Flow error code a REST layer should answer with (1000, "job params").
    pub fn ret_code(&self) -> RetCode {
        RetCode::JobParams
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(task) = &self.task {
            write!(f, "task `{task}`: ")?;
        }
        f.write_str(&self.field)?;
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, " (line {l}, column {c})")?,
            (Some(l), None) => write!(f, " (line {l})")?,
            _ => {}
        }
        write!(f, ": {}", self.message)
    }
}
