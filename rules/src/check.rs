//! Placeholder: being written.

use hl_engine::{Artifact, Error, Layer, Node, RealizeCtx, Rule};

use crate::Ctx;

/// The rule of `check` nodes.
pub struct CheckRule;

impl Rule for CheckRule {
    fn kind(&self) -> &'static str {
        "check"
    }
    fn version(&self) -> u32 {
        1
    }
    fn layer(&self) -> Layer {
        Layer::L0
    }
    fn realize(&self, _node: &Node, _ctx: &RealizeCtx<'_>) -> Result<Artifact, Error> {
        Ok(Artifact::default())
    }
}

/// Discovers the nodes of this kind.
pub fn discover(_ctx: &Ctx) -> Result<Vec<Node>, Error> {
    Ok(Vec::new())
}

/// Derives the check nodes the other nodes need.
pub fn derive(_ctx: &Ctx, _registry: &hl_engine::Registry, _nodes: &mut [Node]) -> Result<Vec<Node>, Error> {
    Ok(Vec::new())
}
