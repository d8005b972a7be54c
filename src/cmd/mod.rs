//! One module per subcommand.

pub mod apply;
pub mod build;
pub mod check;
pub mod gc;
pub mod graph;
pub mod plan;
pub mod refresh;
pub mod rollback;
pub mod show;
pub mod state;
pub mod why;

use clap::Args;
use hl_engine::{Error, Layer, Selector};

/// Selection flags shared by the commands that take them.
#[derive(Debug, Args, Default)]
pub struct SelectArgs {
    /// Only these nodes (an address or a glob such as 'compose:*@SATURN'); repeatable.
    #[arg(long = "target", short = 't', value_name = "ADDR|GLOB")]
    pub targets: Vec<String>,
    /// Only nodes on this host, or on hosts with this tag ('@docker'); repeatable.
    #[arg(long = "on", value_name = "HOST|@TAG")]
    pub on: Vec<String>,
    /// Only this layer (L0-L4); repeatable. Strict: dependencies in other layers are left out.
    #[arg(long = "layer", value_name = "L")]
    pub layers: Vec<Layer>,
}

impl SelectArgs {
    /// The checked selector.
    pub fn selector(&self) -> Result<Selector, Error> {
        Selector::new(&self.targets, &self.on, &self.layers)
    }
}
