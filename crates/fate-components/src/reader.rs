//! `reader` (fate-spec §4.7): makes a stored table the task's `output_data`, without copying it.

use crate::{artifact, param};
use fate_runtime::{Component, ComponentError, Ctx};
use fate_types::Role;
use fate_types::component::{ArtifactKind, ComponentSpec};

pub struct Reader;

impl Component for Reader {
    fn spec(&self) -> ComponentSpec {
        ComponentSpec {
            name: "reader".into(),
            legacy_modules: vec!["Reader".into()],
            description: "reads a stored table as the task's output data".into(),
            roles: vec![Role::Guest, Role::Host],
            params: vec![
                param("namespace", true, None, "table namespace"),
                param("name", true, None, "table name"),
            ],
            inputs: vec![],
            outputs: vec![artifact("output_data", ArtifactKind::Data, false, &[])],
        }
    }

    fn run(&self, ctx: &Ctx) -> Result<(), ComponentError> {
        let namespace: String = ctx.param("namespace")?;
        let name: String = ctx.param("name")?;
        let info = ctx
            .catalog
            .table(&namespace, &name)
            .map_err(ComponentError::Failed)?
            .ok_or_else(|| {
                ComponentError::Failed(format!(
                    "table {namespace}.{name} not found at {}",
                    ctx.local
                ))
            })?;
        ctx.output_existing("output_data", &namespace, &name, &info);
        ctx.info(format!(
            "read table {namespace}.{name}: {} rows",
            info.count
        ));
        Ok(())
    }
}
