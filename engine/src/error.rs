//! The engine's errors. Each names the address or file it concerns, has a class that picks the
//! exit code, and may carry an origin (file:line:col) and a hint that the CLI renders with the
//! offending line.

use std::path::PathBuf;

use crate::address::{Address, Layer};
use crate::node::Origin;

/// Who has to act on an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The repo or the command line is wrong: the user fixes it.
    User,
    /// The machine is missing something (a tool, a permission, a variable).
    Environment,
    /// A bug in hl.
    Internal,
}

/// Everything that stops the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A problem in a repo file, with where it was written and how to fix it.
    #[error("{message}")]
    Repo {
        /// What is wrong, lowercase.
        message: String,
        /// Where.
        origin: Option<Origin>,
        /// How to fix it.
        help: Option<String>,
    },
    /// A secret in plaintext where only a SOPS file may be. Rendered without quoting the
    /// offending line, so the secret never reaches a terminal or a CI log.
    #[error("{message}")]
    Secret {
        /// What is wrong (never the value).
        message: String,
        /// Where.
        origin: Option<Origin>,
        /// How to fix it.
        help: Option<String>,
    },
    /// A dependency names no node.
    #[error("{from} depends on unknown node `{to}`")]
    UnknownDependency {
        /// The node with the reference.
        from: Address,
        /// What it named.
        to: Address,
        /// Where the reference is written.
        origin: Option<Origin>,
        /// The closest known address.
        suggestion: Option<Address>,
    },
    /// Two nodes share an address.
    #[error("duplicate address {address}: declared in {first} and in {second}")]
    Duplicate {
        /// The address.
        address: Address,
        /// The first declaration.
        first: Origin,
        /// The second declaration.
        second: Origin,
    },
    /// The dependencies loop.
    #[error("dependency cycle: {}", cycle.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" -> "))]
    Cycle {
        /// The nodes of the cycle, the first repeated at the end.
        cycle: Vec<Address>,
        /// Where the first edge of the cycle is written.
        origin: Option<Origin>,
    },
    /// A lower layer depends on a higher one.
    #[error("layer inversion: {from} ({from_layer}) depends on {to} ({to_layer}); a layer may only depend on the layers below it")]
    LayerInversion {
        /// The dependent.
        from: Address,
        /// Its layer.
        from_layer: Layer,
        /// The dependency.
        to: Address,
        /// Its layer.
        to_layer: Layer,
        /// Where the edge is written.
        origin: Option<Origin>,
    },
    /// A filesystem call failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What hl was doing.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The environment is not the one the inventory names.
    #[error("{message}")]
    Environment {
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: Option<String>,
    },
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] hl_cache::CacheError),
    /// An error in one of two compared revisions.
    #[error("in {side}: {source}")]
    OnSide {
        /// Which side, as the user named it ("origin/main (1a2b3c4d5e6f)").
        side: String,
        /// The error.
        source: Box<Error>,
    },
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A repo error at an origin with a hint.
    pub fn repo(message: impl Into<String>, origin: Option<Origin>, help: Option<String>) -> Error {
        Error::Repo {
            message: message.into(),
            origin,
            help,
        }
    }

    /// A plaintext secret at an origin.
    pub fn secret(
        message: impl Into<String>,
        origin: Option<Origin>,
        help: Option<String>,
    ) -> Error {
        Error::Secret {
            message: message.into(),
            origin,
            help,
        }
    }

    /// Whether the offending line may be quoted back to the user.
    pub fn quotable(&self) -> bool {
        // A revision's file is not the work tree's: its line cannot be read back from disk.
        !matches!(self, Error::Secret { .. } | Error::OnSide { .. })
    }

    /// Places an unlocated repo error at `origin`, the reference that led to it (errors from
    /// [`crate::FileSet`] know the file, not which reference led there); `note` says so in the
    /// message too.
    pub fn placed(self, origin: &Origin, note: bool) -> Error {
        match self {
            Error::Repo {
                message,
                origin: None,
                help,
            } => Error::Repo {
                message: if note {
                    format!("{message} (referenced at {origin})")
                } else {
                    message
                },
                origin: Some(origin.clone()),
                help,
            },
            e => e,
        }
    }

    /// Says which compared revision an error comes from.
    pub fn on_side(self, side: &str) -> Error {
        Error::OnSide {
            side: side.to_string(),
            source: Box::new(self),
        }
    }

    /// An i/o error with context.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Where the error was written in the repo, if anywhere.
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            Error::Repo { origin, .. }
            | Error::Secret { origin, .. }
            | Error::UnknownDependency { origin, .. }
            | Error::Cycle { origin, .. }
            | Error::LayerInversion { origin, .. } => origin.as_ref(),
            Error::Duplicate { second, .. } => Some(second),
            Error::OnSide { source, .. } => source.origin(),
            _ => None,
        }
    }

    /// How to fix it.
    pub fn help(&self) -> Option<String> {
        match self {
            Error::Repo { help, .. }
            | Error::Secret { help, .. }
            | Error::Environment { help, .. } => help.clone(),
            Error::UnknownDependency { suggestion, .. } => {
                suggestion.as_ref().map(|s| format!("did you mean `{s}`?"))
            }
            Error::Duplicate { .. } => Some("give each node its own name or host".into()),
            Error::Cycle { .. } => Some("remove one of the dependencies above".into()),
            Error::LayerInversion { .. } => {
                Some("reverse the dependency, or move the node to the right layer".into())
            }
            Error::Internal(_) => {
                Some("this is a bug in hl: please report it with the command you ran".into())
            }
            _ => None,
        }
    }

    /// Who has to act.
    pub fn class(&self) -> Class {
        match self {
            Error::OnSide { source, .. } => source.class(),
            Error::Io { .. } | Error::Environment { .. } | Error::Cache(_) => Class::Environment,
            Error::Internal(_) => Class::Internal,
            _ => Class::User,
        }
    }
}
