//! `reviews-api verify`: the DBA's check that the precomputed meta and the stored first pages
//! equal what the raw tables say, recomputed from scratch by sql/verify.sql (one pass of hash
//! joins over the whole dataset) and sql/verify_pages.sql (window functions over the visible
//! reviews).

use crate::config::Settings;
use crate::db;

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// How many differing products to print
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i64).range(0..))]
    pub show: i64,
}

/// A product whose meta, or one of whose stored first pages, differs, with the document each side
/// would serve (for a page: its sort and the stored page as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub product_id: i32,
    pub expected: String,
    pub actual: String,
}

/// The first `show` differences and how many there are in all: meta first, then the stored first
/// pages, each by product.
pub async fn differences(url: &str, show: i64) -> anyhow::Result<(Vec<Difference>, i64)> {
    let client = db::connect(url).await?;
    // The recomputation hashes every visible review and characteristic value; give it the
    // memory to do that without spilling, and no time limit. Nothing here asks for parallel
    // workers: the one query runs as the planner plans it.
    client
        .batch_execute("SET work_mem = '1GB'; SET statement_timeout = 0;")
        .await?;
    let mut found = Vec::new();
    let mut total = 0;
    for statement in [db::sql::VERIFY, db::sql::VERIFY_PAGES] {
        let rows = client.query(statement, &[&show]).await?;
        total += rows.first().map_or(0, |r| r.get::<_, i64>(3));
        found.extend(rows.iter().map(|r| Difference {
            product_id: r.get(0),
            expected: r.get(1),
            actual: r.get(2),
        }));
    }
    found.truncate(usize::try_from(show).unwrap_or(0));
    Ok((found, total))
}

pub async fn run(settings: &Settings, args: &VerifyArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let (found, total) = differences(&settings.database.url, args.show).await?;
    for d in &found {
        println!(
            "product {}\n  expected {}\n  actual   {}",
            d.product_id, d.expected, d.actual
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    if total > 0 {
        anyhow::bail!(
            "{total} meta documents or stored first pages differ from the raw tables ({elapsed:.1} s)"
        );
    }
    println!("meta and stored first pages of every product match the raw tables ({elapsed:.1} s)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        verify: VerifyArgs,
    }

    #[test]
    fn show_takes_no_negative_count() {
        assert_eq!(Cli::parse_from(["verify"]).verify.show, 10);
        assert_eq!(Cli::parse_from(["verify", "--show", "0"]).verify.show, 0);
        assert!(Cli::try_parse_from(["verify", "--show=-1"]).is_err());
    }
}
