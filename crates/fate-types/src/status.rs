//! Job and task statuses with FATE-Flow 2.x's transition rules (fate-spec §3.1,
//! `fate_flow/entity/types/_status.py`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! status_enum {
    ($name:ident { $($variant:ident => $s:literal),* $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.to_ascii_lowercase().as_str() {
                    $($s => Ok($name::$variant),)*
                    _ => Err(format!("unknown {} `{}`", stringify!($name), s)),
                }
            }
        }
    };
}

status_enum!(JobStatus {
    Ready => "ready",
    Waiting => "waiting",
    Running => "running",
    Success => "success",
    Failed => "failed",
    Canceled => "canceled",
    Timeout => "timeout",
});

status_enum!(TaskStatus {
    Waiting => "waiting",
    Running => "running",
    Success => "success",
    Pass => "pass",
    Failed => "failed",
    Canceled => "canceled",
    Timeout => "timeout",
});

impl JobStatus {
    /// FATE's `JobStatus.StateTransitionRule`.
    pub fn can_transition_to(self, to: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, to),
            (Ready, Waiting | Canceled | Timeout | Failed)
                | (Waiting, Running | Canceled | Timeout | Failed | Success)
                | (Running, Canceled | Timeout | Failed | Success)
                | (Canceled, Waiting)
                | (Timeout, Failed | Success | Waiting)
                | (Failed, Waiting | Canceled)
                | (Success, Waiting)
        )
    }

    pub fn is_end(self) -> bool {
        matches!(
            self,
            JobStatus::Success | JobStatus::Failed | JobStatus::Canceled | JobStatus::Timeout
        )
    }
}

impl TaskStatus {
    /// FATE's `TaskStatus.StateTransitionRule`: waiting → running → an end status; a canceled
    /// task may wait again (rerun); timeout may still settle as failed or success.
    pub fn can_transition_to(self, to: TaskStatus) -> bool {
        use TaskStatus::*;
        matches!(
            (self, to),
            (Waiting, Running | Success | Pass | Canceled | Failed)
                | (Running, Success | Pass | Failed | Canceled | Timeout)
                | (Timeout, Failed | Success)
                | (Canceled | Failed | Timeout | Success | Pass, Waiting)
        )
    }

    pub fn is_end(self) -> bool {
        !matches!(self, TaskStatus::Waiting | TaskStatus::Running)
    }

    /// The federated status of a task from its per-party statuses
    /// (`calculate_multi_party_task_status`): `pass` counts as `success`; if all parties agree,
    /// that status; otherwise the first present of canceled > timeout > failed; else running.
    pub fn federated(statuses: &[TaskStatus]) -> TaskStatus {
        let norm: Vec<TaskStatus> = statuses
            .iter()
            .map(|s| {
                if *s == TaskStatus::Pass {
                    TaskStatus::Success
                } else {
                    *s
                }
            })
            .collect();
        if let Some(first) = norm.first()
            && norm.iter().all(|s| s == first)
        {
            return *first;
        }
        for s in [
            TaskStatus::Canceled,
            TaskStatus::Timeout,
            TaskStatus::Failed,
        ] {
            if norm.contains(&s) {
                return s;
            }
        }
        if norm.is_empty() {
            TaskStatus::Waiting
        } else {
            TaskStatus::Running
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_transitions_follow_fate_rules() {
        use JobStatus::*;
        assert!(Ready.can_transition_to(Waiting));
        assert!(Waiting.can_transition_to(Running));
        assert!(Running.can_transition_to(Success));
        assert!(Success.can_transition_to(Waiting), "rerun");
        assert!(!Success.can_transition_to(Running));
        assert!(!Running.can_transition_to(Ready));
        assert!(!Ready.can_transition_to(Success));
        for s in JobStatus::ALL {
            assert!(!s.can_transition_to(*s), "{s} -> {s} is not a transition");
        }
    }

    #[test]
    fn federated_task_status() {
        use TaskStatus::*;
        assert_eq!(TaskStatus::federated(&[Success, Pass]), Success);
        assert_eq!(
            TaskStatus::federated(&[Running, Failed, Canceled]),
            Canceled
        );
        assert_eq!(TaskStatus::federated(&[Running, Success]), Running);
        assert_eq!(TaskStatus::federated(&[Failed, Timeout]), Timeout);
    }

    #[test]
    fn status_names_round_trip() {
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>().unwrap(), *s);
        }
        assert_eq!(
            serde_json::to_string(&JobStatus::Success).unwrap(),
            "\"success\""
        );
    }
}
