//! Placeholder: being written.

use hl_engine::{Artifact, Error, Layer, Node, RealizeCtx, Rule};

use crate::Ctx;

/// The rule of `talos` nodes.
pub struct TalosRule;

impl Rule for TalosRule {
    fn kind(&self) -> &'static str {
        "talos"
    }
    fn version(&self) -> u32 {
        1
    }
    fn layer(&self) -> Layer {
        Layer::L3
    }
    fn realize(&self, _node: &Node, _ctx: &RealizeCtx<'_>) -> Result<Artifact, Error> {
        Ok(Artifact::default())
    }
}

/// Discovers the nodes of this kind.
pub fn discover(_ctx: &Ctx) -> Result<Vec<Node>, Error> {
    Ok(Vec::new())
}
