//! The `reviews-api` command line: one binary, one subcommand per job (docs/api.md, "Operating").

use crate::config::Settings;
use crate::etl::{generate, load};
use crate::{db, demo, devdb, startup, verify};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "reviews-api",
    version,
    about = "Ratings & Reviews API served from PostgreSQL"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the schema if missing and serve HTTP
    Serve,
    /// Apply the schema in sql/ (idempotent)
    Migrate,
    /// Load the dataset CSV files from DIR (see docs/dataset.md), replacing the served data atomically
    Load(load::LoadArgs),
    /// Write a synthetic dataset in exactly the original CSV format
    Generate(generate::GenerateArgs),
    /// Find or start a database, load a demo dataset if it is empty, and serve
    Demo(demo::DemoArgs),
    /// Recompute every product's meta from the raw tables and compare it with the precomputed
    /// meta; exits non-zero when any differ
    Verify(verify::VerifyArgs),
    /// A private PostgreSQL cluster in a folder (start, stop, status), as demo, the tests,
    /// bench/run and deploy/local use it
    Devdb(devdb::DevdbArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // generate and devdb need neither configuration nor a runtime.
    match &cli.command {
        Command::Generate(args) => return generate::run(args).map(|()| ExitCode::SUCCESS),
        Command::Devdb(args) => return devdb::run(args),
        _ => {}
    }
    let settings = Settings::load()?;
    actix_web::rt::System::new()
        .block_on(async move {
            match cli.command {
                Command::Serve => {
                    let app = startup::Application::build(settings).await?;
                    app.run_until_stopped().await
                }
                Command::Migrate => {
                    let client = db::connect(&settings.database.url).await?;
                    let topology = db::migrate(&client).await?;
                    println!("schema applied ({topology:?})");
                    Ok(())
                }
                Command::Load(args) => load::run(&settings, &args).await.map(|_| ()),
                Command::Demo(args) => demo::run(settings, args).await,
                Command::Verify(args) => verify::run(&settings, &args).await,
                Command::Generate(_) | Command::Devdb(_) => unreachable!("handled above"),
            }
        })
        .map(|()| ExitCode::SUCCESS)
}
