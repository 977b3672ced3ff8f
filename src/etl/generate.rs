//! `reviews-api generate`: a synthetic dataset in exactly the original CSV format.

use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// Number of products (the real dataset has 1000011)
    #[arg(long, default_value_t = 1_000_011)]
    pub products: u32,
    /// Seed of the pseudo-random generator: the same seed writes the same files
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory to write reviews.csv, reviews_photos.csv, characteristics.csv and
    /// characteristic_reviews.csv into (created if missing)
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(_args: &GenerateArgs) -> anyhow::Result<()> {
    anyhow::bail!("generate is not implemented yet")
}
