//! `kind = "folder"`: the keys only a drop folder takes.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{HumanDuration, DEFAULT_MAX_SIZE};

/// What happens to a dropped file once ingested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterIngest {
    /// Move it to `processed/`.
    #[default]
    Move,
    /// Leave it where it is (its hash stops it being ingested twice).
    Keep,
    /// Delete it.
    Delete,
}

/// A folder source's own keys. Any other key is refused when the config is read, so a
/// key meant for an HTTP source (`every`, `url`) cannot pass silently.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderConfig {
    /// The directory to watch.
    pub path: PathBuf,
    /// What to do with a file after ingesting it.
    #[serde(default)]
    pub after: AfterIngest,
    /// Largest file accepted, in bytes.
    #[serde(default = "default_max_size")]
    pub max_file_size: u64,
    /// How long size and mtime must stay unchanged before a file is read.
    #[serde(default = "default_settle")]
    pub settle: HumanDuration,
}

fn default_max_size() -> u64 {
    DEFAULT_MAX_SIZE
}

fn default_settle() -> HumanDuration {
    HumanDuration(Duration::from_millis(500))
}
