//! FATE-Flow 2.x REST error codes (fate-spec §3.4). The numeric values are part of the API:
//! FATE's client and board branch on them.

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetCode {
    Success,
    /// 1000: job parameters are invalid.
    JobParams,
    /// 1001: no job with that id.
    JobNotFound,
    /// 1002: job creation failed.
    CreateJobFailed,
    /// 1003: the job is not in a state that allows the operation.
    JobStatus,
    /// 2000: task parameters or state.
    Task,
    /// 2001: task not found.
    TaskNotFound,
    /// 3000: the site runs standalone (no site info).
    SiteStandalone,
    /// 4000: provider or component.
    Provider,
    /// 5000: a signed request whose timestamp is too old (client authentication).
    Expired,
    /// 5001: an invalid parameter; `data` names the fields.
    InvalidParameter,
    /// 5002: a signed request names an app id this node does not know.
    NoFoundAppId,
    /// 5003: the request's signature does not verify.
    VerifyFailed,
    /// 5004: the app may not call this endpoint (no role grants it).
    AuthenticationFailed,
    /// 5005: a party or app lacks the permission (site permissions: component, dataset).
    NoPermission,
    /// 5006: a permission grant or delete that cannot be applied.
    PermissionOperate,
    /// 5007: no such file.
    NoFile,
    /// 6000: server exception (a bug or an unexpected failure).
    ServerError,
    /// 7001: table not found.
    TableNotFound,
    /// 7002: table exists already.
    TableExists,
    /// 8001: file parsing or content error.
    FileError,
    /// 104: an error at another party or on the way to it (FATE's FEDERATED_ERROR).
    Federated,
}

impl RetCode {
    pub fn code(self) -> i32 {
        match self {
            RetCode::Success => 0,
            RetCode::JobParams => 1000,
            RetCode::JobNotFound => 1001,
            RetCode::CreateJobFailed => 1002,
            RetCode::JobStatus => 1003,
            RetCode::Task => 2000,
            RetCode::TaskNotFound => 2001,
            RetCode::SiteStandalone => 3000,
            RetCode::Provider => 4000,
            RetCode::Expired => 5000,
            RetCode::InvalidParameter => 5001,
            RetCode::NoFoundAppId => 5002,
            RetCode::VerifyFailed => 5003,
            RetCode::AuthenticationFailed => 5004,
            RetCode::NoPermission => 5005,
            RetCode::PermissionOperate => 5006,
            RetCode::NoFile => 5007,
            RetCode::ServerError => 6000,
            RetCode::TableNotFound => 7001,
            RetCode::TableExists => 7002,
            RetCode::FileError => 8001,
            RetCode::Federated => 104,
        }
    }
}

impl Serialize for RetCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(self.code())
    }
}
