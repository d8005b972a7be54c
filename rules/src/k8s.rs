//! Placeholder: being written.

use hl_engine::{Artifact, Error, Layer, Node, RealizeCtx, Rule};

use crate::Ctx;

/// The rule of `k8s` nodes.
pub struct K8sRule;

impl Rule for K8sRule {
    fn kind(&self) -> &'static str {
        "k8s"
    }
    fn version(&self) -> u32 {
        1
    }
    fn layer(&self) -> Layer {
        Layer::L4
    }
    fn realize(&self, _node: &Node, _ctx: &RealizeCtx<'_>) -> Result<Artifact, Error> {
        Ok(Artifact::default())
    }
}

/// Discovers the nodes of this kind.
pub fn discover(_ctx: &Ctx) -> Result<Vec<Node>, Error> {
    Ok(Vec::new())
}
