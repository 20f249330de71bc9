//! Where job and task logs live: `<logs_dir>/<job_id>/<role>/<party_id>/<task_name>.log` for
//! tasks, `<logs_dir>/<job_id>/schedule.log` for the scheduler's own lines.
//!
//! The path builders are a second line of defence behind the checks at every entry (REST,
//! partner create, DAG plan): they build no path from an identifier that could leave the logs
//! dir (`fate_types::ids`).

use serde::Serialize;
use std::path::{Path, PathBuf};

/// The log file of a task at one party; `None` when an identifier is not a plain path
/// component.
pub(crate) fn task_log_path(
    logs_dir: &Path,
    job_id: &str,
    role: &str,
    party_id: &str,
    task: &str,
) -> Option<PathBuf> {
    fate_types::check_job_id("job_id", job_id).ok()?;
    for (field, v) in [("role", role), ("party_id", party_id), ("task_name", task)] {
        fate_types::check_path_id(field, v).ok()?;
    }
    Some(
        logs_dir
            .join(job_id)
            .join(role)
            .join(party_id)
            .join(format!("{task}.log")),
    )
}

/// The scheduler's log of a job; `None` when `job_id` is not a valid job id.
pub(crate) fn schedule_log_path(logs_dir: &Path, job_id: &str) -> Option<PathBuf> {
    fate_types::check_job_id("job_id", job_id).ok()?;
    Some(logs_dir.join(job_id).join("schedule.log"))
}

/// One log line with where it came from.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogLine {
    pub role: String,
    pub party_id: String,
    pub task_name: String,
    pub line: String,
}

/// Reads the logs of a job, optionally narrowed to a role, party and task. Job ids are checked
/// to be plain digits/word characters before they touch the file system.
pub(crate) fn read_logs(
    logs_dir: &Path,
    job_id: &str,
    role: Option<&str>,
    party_id: Option<&str>,
    task: Option<&str>,
) -> std::io::Result<Vec<LogLine>> {
    let Some(schedule_log) = schedule_log_path(logs_dir, job_id) else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    let job_dir = logs_dir.join(job_id);
    if role.is_none() && task.is_none_or(|t| t == "schedule") {
        push_file(&schedule_log, "", "", "schedule", &mut out)?;
    }
    let Ok(roles) = std::fs::read_dir(&job_dir) else {
        return Ok(out);
    };
    let mut roles: Vec<_> = roles.flatten().filter(|e| e.path().is_dir()).collect();
    roles.sort_by_key(|e| e.file_name());
    for r in roles {
        let rname = r.file_name().to_string_lossy().to_string();
        if role.is_some_and(|x| x != rname) {
            continue;
        }
        let mut parties: Vec<_> = std::fs::read_dir(r.path())?.flatten().collect();
        parties.sort_by_key(|e| e.file_name());
        for p in parties {
            let pname = p.file_name().to_string_lossy().to_string();
            if party_id.is_some_and(|x| x != pname) {
                continue;
            }
            let mut files: Vec<_> = std::fs::read_dir(p.path())?.flatten().collect();
            files.sort_by_key(|e| e.file_name());
            for f in files {
                // Only logs: a task's transcript (`<task>.transcript.json`) lives here too.
                let file_name = f.file_name().to_string_lossy().to_string();
                let Some(fname) = file_name.strip_suffix(".log").map(str::to_string) else {
                    continue;
                };
                if task.is_some_and(|x| x != fname) {
                    continue;
                }
                push_file(&f.path(), &rname, &pname, &fname, &mut out)?;
            }
        }
    }
    Ok(out)
}

fn push_file(
    path: &Path,
    role: &str,
    party: &str,
    task: &str,
    out: &mut Vec<LogLine>,
) -> std::io::Result<()> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            out.extend(text.lines().map(|l| LogLine {
                role: role.into(),
                party_id: party.into(),
                task_name: task.into(),
                line: l.to_string(),
            }));
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
