//! `/v2/job/clean`: what FATE-Flow's `JobController.clean_job` does to a job's outputs. FATE
//! stops the job and destroys the output data tables its tasks tracked; the job's rows stay.
//! Here the tables a task created live in the namespace `output_data_<job_id>`
//! (`Ctx::output_data`); a table a task only passed on (`reader`'s input, an upload's user
//! table) lives elsewhere and is never removed.

use crate::job::{Scheduler, SchedulerError};
use std::time::Duration;

/// How long `clean` waits for a stopped job to end before removing its tables.
const STOP_WAIT: Duration = Duration::from_secs(60);

impl Scheduler {
    /// Stops `job_id` if it has not ended, then removes the output data tables its tasks
    /// created at the parties this node keeps. Returns the removed tables as `namespace.name`.
    pub async fn clean(&self, job_id: &str) -> Result<Vec<String>, SchedulerError> {
        let jobs = self.jobs_of(job_id).await?;
        if jobs.iter().any(|j| !j.status.is_end()) {
            self.stop(job_id).await?;
            self.wait(job_id, STOP_WAIT).await?;
        }
        let own_namespace = format!("output_data_{job_id}");
        let store = self.store();
        let mut removed = Vec::new();
        for job in self.jobs_of(job_id).await? {
            for rec in store
                .output_data(job_id, job.role, &job.party_id, None)
                .await?
            {
                if rec.namespace != own_namespace {
                    continue;
                }
                let what = format!("{}.{}", rec.namespace, rec.name);
                if removed.contains(&what) {
                    continue;
                }
                self.delete_table(&rec.namespace, &rec.name)
                    .await
                    .map_err(|e| clean_error(&what, e))?;
                removed.push(what);
            }
        }
        Ok(removed)
    }
}

fn clean_error(what: &str, e: impl std::fmt::Display) -> SchedulerError {
    SchedulerError::Store(fate_store::StoreError::Invalid {
        field: "tables",
        reason: format!("cannot remove {what}: {e}"),
    })
}
