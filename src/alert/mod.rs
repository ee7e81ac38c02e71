//! Keyword alerts: rules compiled to one matcher, the outbox delivery worker, and the
//! notifiers it delivers through.

pub mod rules;

pub use rules::{RuleError, RuleSet};
