//! fate-components: FATE's components, each a [`fate_runtime::Component`] with FATE's name,
//! roles, parameters and defaults (fate-spec §4).
//!
//! Architecture invariant: components see only `fate_runtime::Ctx`; they never name a concrete
//! computing, federation or storage backend, and they do no IO besides what `Ctx` gives them
//! (upload reads the file it is given, as FATE's upload task does).

use fate_runtime::Registry;
use fate_types::Role;
use fate_types::component::{ArtifactKind, ArtifactSpec, ParamSpec};
use std::sync::Arc;

pub mod coordinated_lr;
pub mod evaluation;
pub mod hetero_secureboost;
pub mod psi;
pub mod reader;
pub mod secure_add;
pub mod toy;
pub mod upload;

/// Every component this build provides.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register(Arc::new(toy::ToyExample));
    r.register(Arc::new(secure_add::SecureAddExample));
    r.register(Arc::new(upload::Upload));
    r.register(Arc::new(reader::Reader));
    r.register(Arc::new(evaluation::Evaluation));
    r.register(Arc::new(coordinated_lr::CoordinatedLr));
    r.register(Arc::new(psi::Psi));
    r.register(Arc::new(hetero_secureboost::HeteroSecureBoost));
    r
}

pub(crate) fn param(
    name: &str,
    required: bool,
    default: Option<serde_json::Value>,
    description: &str,
) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        required,
        default,
        description: description.into(),
    }
}

pub(crate) fn artifact(
    key: &str,
    kind: ArtifactKind,
    optional: bool,
    roles: &[Role],
) -> ArtifactSpec {
    ArtifactSpec {
        key: key.into(),
        kind,
        optional,
        multi: false,
        roles: roles.to_vec(),
    }
}
