//! `reviews-api demo`: the newcomer's one command. Finds a database (or starts a private one),
//! creates and fills it with a generated dataset when it is empty, and serves.
//!
//! Which database: a URL the user gave (DATABASE_URL, REVIEWS__DATABASE__URL or a config file) is
//! used as it is, and an unusable one is an error: the user asked for that server. The default URL
//! is only a guess, so when nothing usable answers there the demo starts its own cluster in
//! `.demo-pg/` of the working directory (the checkout) and stops it on the way out, whether the
//! server stops on Ctrl-C / SIGTERM or the demo fails half way.
//!
//! The demo never overwrites data: it loads only into a database with no reviews and no
//! characteristics, so a second run (or a database that already holds the real dataset) starts
//! serving at once.

use crate::config::Settings;
use crate::db::url::{dbname_of, describe, with_dbname, with_default_dbname};
use crate::devdb::DevCluster;
use crate::etl::{generate, load};
use crate::{db, startup};
use anyhow::Context;
use std::future::Future;
use std::path::Path;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Products in the generated demo dataset, loaded when the database is empty
    #[arg(long, default_value_t = 10_000)]
    pub products: u32,
}

/// Long enough for a loaded server on this machine, short enough that a newcomer without one
/// hardly waits before the private cluster starts.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// A fixed seed: every newcomer sees the same demo data, so instructions can quote it.
const DEMO_SEED: u64 = 1;

/// Demo-only statements: they run once per `demo`, never per request, so they are not in `sql/`.
const IS_EMPTY: &str =
    "SELECT NOT EXISTS (SELECT 1 FROM reviews) AND NOT EXISTS (SELECT 1 FROM characteristics)";
/// A product that has a visible review, so the printed URLs show something.
const SAMPLE_PRODUCT: &str =
    "SELECT product_id FROM reviews WHERE NOT reported ORDER BY id LIMIT 1";

pub async fn run(mut settings: Settings, args: DemoArgs) -> anyhow::Result<()> {
    let checkout = std::env::current_dir().context("cannot read the working directory")?;
    let configured = with_default_dbname(&settings.database.url)?;

    let mut cluster = None;
    settings.database.url = match (probe(&configured).await, url_source(&settings)) {
        (Probe::Ready | Probe::Missing, _) => {
            log::info!("using the PostgreSQL at {}", describe(&configured));
            configured
        }
        (Probe::Silent(e) | Probe::Refused(e), Some(source)) => {
            anyhow::bail!(
                "{source} points at {}, which cannot be used: {e}",
                describe(&configured)
            )
        }
        (probed, None) => {
            match probed {
                Probe::Refused(e) => log::warn!(
                    "the PostgreSQL at {} refuses us ({e}); starting a private one instead (set \
                     DATABASE_URL to use that server)",
                    describe(&configured)
                ),
                _ => log::info!(
                    "no PostgreSQL answers at {}: starting a private one in .demo-pg/",
                    describe(&configured)
                ),
            }
            let started = DevCluster::start(&checkout.join(".demo-pg"))?;
            let url = with_dbname(&started.url, &dbname_of(&configured)?);
            cluster = Some(started);
            url
        }
    };

    let data_dir = checkout.join(".demo-data");
    let result = match until_signalled(prepare(&settings, &args, &data_dir)).await {
        Ok(product) => serve(settings, product).await,
        Err(e) => Err(e),
    };
    if let Some(mut cluster) = cluster {
        if let Err(e) = cluster.stop() {
            log::error!("could not stop the private PostgreSQL: {e:#}");
        }
    }
    result
}

/// Creates the database if needed, applies the schema and loads the demo dataset if the database
/// is empty. Returns a product id worth showing.
async fn prepare(settings: &Settings, args: &DemoArgs, data_dir: &Path) -> anyhow::Result<i32> {
    let url = &settings.database.url;
    if create_database_if_missing(url).await? {
        log::info!("created the database {}", describe(url));
    }
    let client = db::connect(url).await?;
    db::migrate(&client).await?;
    load_if_empty(&client, settings, args.products, data_dir).await?;
    let sample = client.query_opt(SAMPLE_PRODUCT, &[]).await?;
    Ok(sample.map_or(1, |row| row.get(0)))
}

async fn serve(settings: Settings, product: i32) -> anyhow::Result<()> {
    let host = browsable_host(&settings.server.host);
    let listen = format!("{}:{}", settings.server.host, settings.server.port);
    let app = startup::Application::build(settings)
        .await
        .with_context(|| format!("cannot serve on {listen} (PORT chooses another port)"))?;
    let base = format!("http://{host}:{}", app.port());
    println!("\nThe Ratings & Reviews API is serving on {base}. Try:");
    for url in try_urls(&base, product) {
        println!("  {url}");
    }
    println!("Stop it with Ctrl-C.\n");
    app.run_until_stopped().await
}

/// The URLs printed for a newcomer: the list in each order, meta, the older route forms, health.
pub fn try_urls(base: &str, product: i32) -> Vec<String> {
    [
        format!("/reviews?product_id={product}&sort=relevant"),
        format!("/reviews?product_id={product}&sort=newest&count=3"),
        format!("/reviews?product_id={product}&sort=helpful&page=2&count=2"),
        format!("/reviews/meta?product_id={product}"),
        format!("/reviews/{product}/list?sort=newest"),
        format!("/reviews/{product}/meta"),
        "/health".to_string(),
    ]
    .into_iter()
    .map(|path| format!("{base}{path}"))
    .collect()
}

/// True when the database holds no reviews and no characteristics: the only case where the demo
/// loads, so it never replaces anyone's data. Expects the schema to be applied.
pub async fn needs_demo_data(client: &tokio_postgres::Client) -> anyhow::Result<bool> {
    Ok(client.query_one(IS_EMPTY, &[]).await?.get(0))
}

/// Generates `products` products into `data_dir` and loads them, if the database is empty.
/// Returns whether it loaded.
pub async fn load_if_empty(
    client: &tokio_postgres::Client,
    settings: &Settings,
    products: u32,
    data_dir: &Path,
) -> anyhow::Result<bool> {
    if !needs_demo_data(client).await? {
        log::info!("the database already holds data: serving it as it is");
        return Ok(false);
    }
    log::info!(
        "the database is empty: generating {products} demo products into {} and loading them",
        data_dir.display()
    );
    let generate_args = generate::GenerateArgs {
        products,
        seed: DEMO_SEED,
        out: Some(data_dir.to_path_buf()),
        list_files: false,
    };
    // generate writes files synchronously: off the runtime thread, so Ctrl-C is still heard.
    tokio::task::spawn_blocking(move || generate::run(&generate_args))
        .await?
        .context("generating the demo dataset")?;
    let load_args = load::LoadArgs {
        dir: data_dir.to_path_buf(),
        rejects: Some(data_dir.join("load-rejects.csv")),
    };
    load::run(settings, &load_args)
        .await
        .context("loading the demo dataset")?;
    Ok(true)
}

/// Creates the database `url` names, through the `postgres` maintenance database of the same
/// server, when it does not exist. Returns whether it created it.
pub async fn create_database_if_missing(url: &str) -> anyhow::Result<bool> {
    match probe(url).await {
        Probe::Ready => Ok(false),
        Probe::Silent(e) | Probe::Refused(e) => {
            Err(anyhow::Error::new(e).context(format!("cannot connect to {}", describe(url))))
        }
        Probe::Missing => {
            let name = dbname_of(url)?;
            let maintenance = with_dbname(url, "postgres");
            let admin = db::connect(&maintenance)
                .await
                .with_context(|| format!("cannot connect to {}", describe(&maintenance)))?;
            match admin
                .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
                .await
            {
                Ok(()) => Ok(true),
                // Another process created it between our probe and now: that is what we wanted.
                Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => Ok(false),
                Err(e) => Err(anyhow::Error::new(e)
                    .context(format!("cannot create the database {}", describe(url)))),
            }
        }
    }
}

/// What a connection attempt says about a server.
enum Probe {
    /// Connected.
    Ready,
    /// The server answers but the database does not exist (we can create it).
    Missing,
    /// Nothing answers (refused, timed out, not PostgreSQL).
    Silent(tokio_postgres::Error),
    /// The server answers but turns us away (authentication, too many connections...).
    Refused(tokio_postgres::Error),
}

async fn probe(url: &str) -> Probe {
    let mut config: tokio_postgres::Config = match url.parse() {
        Ok(config) => config,
        Err(e) => return Probe::Silent(e),
    };
    config.connect_timeout(PROBE_TIMEOUT);
    match config.connect(NoTls).await {
        Ok((client, connection)) => {
            // Dropping the client while the connection runs says goodbye properly, so the server
            // does not log an unexpected disconnection.
            let connection = tokio::spawn(connection);
            drop(client);
            let _ = connection.await;
            Probe::Ready
        }
        Err(e) => match e.code() {
            Some(code) if *code == SqlState::INVALID_CATALOG_NAME => Probe::Missing,
            Some(_) => Probe::Refused(e),
            None => Probe::Silent(e),
        },
    }
}

/// Where an explicitly chosen database URL came from, or None for the compiled-in default.
fn url_source(settings: &Settings) -> Option<&'static str> {
    if std::env::var_os("DATABASE_URL").is_some() {
        Some("DATABASE_URL")
    } else if std::env::var_os("REVIEWS__DATABASE__URL").is_some() {
        Some("REVIEWS__DATABASE__URL")
    } else if settings.database.url != Settings::defaults().database.url {
        Some("database.url in config/")
    } else {
        None
    }
}

/// Runs `work` unless SIGINT or SIGTERM comes first. Only for the set-up: once the HTTP server
/// runs, it handles both signals itself and returns normally.
async fn until_signalled<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
        _ = terminate.recv() => anyhow::bail!("terminated"),
    }
}

/// The host to print in URLs: a wildcard bind address is not something to type in a browser.
fn browsable_host(host: &str) -> String {
    match host {
        "0.0.0.0" | "" => "127.0.0.1".to_string(),
        "::" | "[::]" => "[::1]".to_string(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_string(),
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_urls_cover_each_sort_meta_older_forms_and_health() {
        let urls = try_urls("http://127.0.0.1:3000", 7).join("\n");
        for needle in [
            "sort=relevant",
            "sort=newest",
            "sort=helpful",
            "/reviews/meta?product_id=7",
            "/reviews/7/list",
            "/reviews/7/meta",
            "http://127.0.0.1:3000/health",
        ] {
            assert!(urls.contains(needle), "{needle} missing from\n{urls}");
        }
    }

    #[test]
    fn wildcard_hosts_print_as_loopback() {
        assert_eq!(browsable_host("0.0.0.0"), "127.0.0.1");
        assert_eq!(browsable_host("::"), "[::1]");
        assert_eq!(browsable_host("localhost"), "localhost");
    }
}
