//! detour's brain, free of I/O: the seed's command language ([`lang`]), the model it builds
//! ([`model`]), the immutable epoch-numbered [`Snapshot`] the workers read, the predictors
//! that pick a member per redirect ([`predictor`]) and the redirect renderer ([`url`]).
#![forbid(unsafe_code)]

mod apply;
pub mod carry;
pub mod commands;
pub mod error;
pub mod lang;
pub mod model;
mod parse;
pub mod predictor;
pub mod snapshot;
pub mod source;
pub mod tls;
pub mod url;
mod write;

pub use carry::Carry;
pub use error::Error;
pub use lang::State;
pub use model::{load, Model};
pub use snapshot::{Action, Snapshot};
pub use source::load_bytes;
