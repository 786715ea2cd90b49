//! The static pages: rendered with askama from `templates/` ([`render`]) and published to
//! the bucket CloudFront serves, writing and invalidating only what changed ([`publish`]).

pub mod publish;
pub mod render;

pub use publish::{Published, Publisher};
pub use render::{PageState, Site};
