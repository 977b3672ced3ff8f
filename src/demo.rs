//! `reviews-api demo`: the newcomer's one command.

use crate::config::Settings;

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Products in the generated demo dataset, loaded when the database is empty
    #[arg(long, default_value_t = 10_000)]
    pub products: u32,
}

pub async fn run(_settings: Settings, _args: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("demo is not implemented yet")
}
