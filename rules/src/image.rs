//! Placeholder: being written.

use hl_engine::{Artifact, Error, Layer, Node, RealizeCtx, Rule};

use crate::Ctx;

/// The rule of `image` nodes.
pub struct ImageRule;

impl Rule for ImageRule {
    fn kind(&self) -> &'static str {
        "image"
    }
    fn version(&self) -> u32 {
        1
    }
    fn layer(&self) -> Layer {
        Layer::L1
    }
    fn realize(&self, _node: &Node, _ctx: &RealizeCtx<'_>) -> Result<Artifact, Error> {
        Ok(Artifact::default())
    }
}

/// Discovers the nodes of this kind.
pub fn discover(_ctx: &Ctx) -> Result<Vec<Node>, Error> {
    Ok(Vec::new())
}
