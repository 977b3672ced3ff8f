//! `reviews-api load DIR`: the four dataset CSV files into the served tables.

use crate::config::Settings;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Directory holding reviews.csv, reviews_photos.csv, characteristics.csv and
    /// characteristic_reviews.csv
    pub dir: PathBuf,
    /// Where to write the rejected rows, with their file, line number and reason
    /// (default: load.rejects in the configuration)
    #[arg(long)]
    pub rejects: Option<PathBuf>,
}

/// Rows loaded and rejected for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    pub file: &'static str,
    pub loaded: u64,
    pub rejected: u64,
}

#[derive(Debug, Clone)]
pub struct LoadReport {
    pub files: Vec<FileReport>,
    pub rejects_path: PathBuf,
}

pub async fn run(_settings: &Settings, _args: &LoadArgs) -> anyhow::Result<LoadReport> {
    anyhow::bail!("load is not implemented yet")
}
