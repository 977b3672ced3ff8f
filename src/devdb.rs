//! A private PostgreSQL cluster in a folder: the machine's own `initdb` and `pg_ctl`, a free port
//! (or a given one), trust authentication on 127.0.0.1. The one implementation of it: `demo`
//! starts one when no database answers, the tests start theirs (and the Citus nodes), and
//! `reviews-api devdb start|stop|status` gives it to bench/run and deploy/local.
//!
//! It is driven through `pg_ctl` rather than by owning a `postgres` child process: `pg_ctl start
//! -w` returns once the server accepts connections, the server survives a Ctrl-C at the terminal
//! (pg_ctl puts it in its own session) so it can still be stopped cleanly afterwards, and a server
//! left running by a killed earlier run is found through its `postmaster.pid` and reused.
//!
//! `initdb` and `pg_ctl` refuse to run as root. When we are root, every PostgreSQL command runs
//! as the `postgres` system user (`runuser`, else `su`), which then owns the cluster folder.

use anyhow::Context;
use std::ffi::OsString;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Who runs the PostgreSQL programs when we are root.
const PG_USER: &str = "postgres";

/// `pg_ctl start` attempts: a free port can be taken by someone else between our probe and
/// PostgreSQL's bind, so a failed start is retried on a fresh port.
const START_ATTEMPTS: usize = 3;

/// `reviews-api devdb`: the private cluster from the command line, for bench/run, deploy/local
/// and anyone who wants a throwaway PostgreSQL.
#[derive(Debug, clap::Args)]
pub struct DevdbArgs {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Initialise (the first time) and start the cluster kept in DIR, or find it running; prints
    /// its URL (postgres://postgres@127.0.0.1:PORT) on standard output
    Start {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        options: StartOptions,
    },
    /// Stop the cluster kept in DIR; returns once its server has exited
    Stop {
        #[arg(long)]
        dir: PathBuf,
        /// pg_ctl's immediate mode (a crash, for drills) instead of fast
        #[arg(long)]
        immediate: bool,
    },
    /// Whether the cluster kept in DIR runs: `running PORT PID` (exit 0) or `stopped` (exit 3)
    Status {
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Runs `reviews-api devdb ...`; the exit code of `status` says whether it runs.
pub fn run(args: &DevdbArgs) -> anyhow::Result<std::process::ExitCode> {
    match &args.action {
        Action::Start { dir, options } => {
            let cluster = DevCluster::start_with(dir, options)?;
            println!("postgres://postgres@127.0.0.1:{}", cluster.port);
            cluster.detach();
        }
        Action::Stop { dir, immediate } => {
            let mode = if *immediate { "immediate" } else { "fast" };
            if !DevCluster::stop_dir(dir, mode)? {
                log::info!("no server runs in {}", dir.display());
            }
        }
        Action::Status { dir } => match DevCluster::status(dir)? {
            Some((port, pid)) => println!("running {port} {pid}"),
            None => {
                println!("stopped");
                return Ok(std::process::ExitCode::from(3));
            }
        },
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// A running private cluster. [`DevCluster::stop`] stops it; dropping it stops it too, as a safety
/// net for early returns (a release build aborts on panic, so do not rely on Drop alone).
pub struct DevCluster {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`: the maintenance database of the cluster.
    pub url: String,
    pub port: u16,
    /// The cluster folder: `data/`, `log`, `sock/`.
    dir: PathBuf,
    pg_ctl: PathBuf,
    runner: Runner,
    stopped: bool,
}

/// How `devdb start` makes and starts a cluster (`reviews-api devdb start --help`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StartOptions {
    /// The port to listen on (default: its port of the last start if free, else a free one)
    #[arg(long)]
    pub port: Option<u16>,
    /// A server setting NAME=VALUE (repeatable), kept in DIR/data/devdb.conf with the port; a
    /// start without any keeps those of the last start
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
    pub settings: Vec<(String, String)>,
    /// On first start, make the cluster a streaming replica of the server at this URL
    /// (pg_basebackup -R) instead of a new one (initdb)
    #[arg(long, value_name = "URL")]
    pub replica_of: Option<String>,
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return Err(format!("{name:?} is not a setting name"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// The file of `data/` that each start rewrites (port, addresses, the `--set` settings), included
/// from postgresql.conf: what a cluster runs with is readable in one place.
const CONF: &str = "devdb.conf";

impl DevCluster {
    /// Starts (initialising it the first time) the cluster kept in `dir`: the data in `dir/data`,
    /// the server log in `dir/log`, the Unix socket in `dir/sock`. Reuses a server that an earlier
    /// run left running there.
    pub fn start(dir: &Path) -> anyhow::Result<DevCluster> {
        DevCluster::start_with(dir, &StartOptions::default())
    }

    /// [`DevCluster::start`] with a port, server settings, or as a replica (see [`StartOptions`]).
    pub fn start_with(dir: &Path, options: &StartOptions) -> anyhow::Result<DevCluster> {
        let bin = find_pg_bin_dir().ok_or_else(|| anyhow::anyhow!(install_hint()))?;
        let runner = Runner::detect()?;

        std::fs::create_dir_all(dir.join("sock"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        runner.take_ownership(&dir)?;

        let data = dir.join("data");
        if !data.join("PG_VERSION").exists() {
            match &options.replica_of {
                None => initdb(&runner, &bin, &dir)?,
                Some(primary) => basebackup(&runner, &bin, &dir, primary)?,
            }
            let conf = data.join("postgresql.conf");
            let text = std::fs::read_to_string(&conf)
                .with_context(|| format!("cannot read {}", conf.display()))?;
            let include = format!("include_if_exists = '{CONF}'");
            if !text.contains(&include) {
                std::fs::write(&conf, format!("{text}\n# reviews-api devdb\n{include}\n"))?;
            }
        }

        let mut cluster = DevCluster {
            url: String::new(),
            port: 0,
            dir,
            pg_ctl: bin.join("pg_ctl"),
            runner,
            // Nothing to stop until a server runs: a failed start must not try to stop one.
            stopped: true,
        };
        cluster.port = match cluster.running_port()? {
            Some(port) => {
                log::warn!("reusing the private PostgreSQL left running on port {port}");
                port
            }
            None => cluster.start_server(options)?,
        };
        cluster.stopped = false;
        cluster.url = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
        Ok(cluster)
    }

    /// The port and postmaster PID of the server running on `dir`, if one is.
    pub fn status(dir: &Path) -> anyhow::Result<Option<(u16, u32)>> {
        let bin = find_pg_bin_dir().ok_or_else(|| anyhow::anyhow!(install_hint()))?;
        let cluster = DevCluster {
            url: String::new(),
            port: 0,
            dir: dir.to_path_buf(),
            pg_ctl: bin.join("pg_ctl"),
            runner: Runner::detect()?,
            stopped: true,
        };
        Ok(match cluster.running_port()? {
            Some(port) => Some((port, cluster.running_pid()?)),
            None => None,
        })
    }

    /// Stops the server running on `dir`, if any (`mode`: pg_ctl's fast or immediate), and
    /// returns once it has exited.
    pub fn stop_dir(dir: &Path, mode: &str) -> anyhow::Result<bool> {
        let bin = find_pg_bin_dir().ok_or_else(|| anyhow::anyhow!(install_hint()))?;
        let mut cluster = DevCluster {
            url: String::new(),
            port: 0,
            dir: dir.to_path_buf(),
            pg_ctl: bin.join("pg_ctl"),
            runner: Runner::detect()?,
            stopped: false,
        };
        cluster.stop_mode(mode)
    }

    /// Leaves the server running when this handle goes (`devdb start`, whose server outlives it).
    pub fn detach(mut self) {
        self.stopped = true;
    }

    /// Stops the server (`pg_ctl stop -m fast`: open sessions are cut, nothing is lost). Does
    /// nothing when it is already stopped, by us or by another handle on the same folder.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.stop_mode("fast").map(|_| ())
    }

    /// Whether it was running. pg_ctl returns once the server is gone (it waits for the
    /// postmaster to remove its PID file, the last thing it does).
    fn stop_mode(&mut self, mode: &str) -> anyhow::Result<bool> {
        if self.stopped {
            return Ok(false);
        }
        self.stopped = true;
        let Some(port) = self.running_port()? else {
            return Ok(false);
        };
        checked(
            self.pg_ctl(
                "stop",
                &[
                    "-m".into(),
                    mode.into(),
                    "-w".into(),
                    "-t".into(),
                    "60".into(),
                ],
            ),
            "pg_ctl stop",
        )?;
        log::info!("stopped the private PostgreSQL on port {port}");
        Ok(true)
    }

    /// `pg_ctl ACTION -D <data> ARGS...`, as the cluster's owner, in the cluster folder.
    fn pg_ctl(&self, action: &str, args: &[OsString]) -> Command {
        let mut all: Vec<OsString> = vec![action.into(), "-D".into(), self.data().into()];
        all.extend_from_slice(args);
        self.runner.command(&self.pg_ctl, &all, &self.dir)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The port of a server already running on this data folder, if any.
    fn running_port(&self) -> anyhow::Result<Option<u16>> {
        let out = output(self.pg_ctl("status", &[]), "pg_ctl status")?;
        if !out.status.success() {
            return Ok(None);
        }
        self.pid_file_line(3).map(Some)
    }

    fn running_pid(&self) -> anyhow::Result<u32> {
        self.pid_file_line(0)
    }

    /// postmaster.pid: pid, data folder, start time, port, ... (one value a line).
    fn pid_file_line<T: std::str::FromStr>(&self, line: usize) -> anyhow::Result<T> {
        let pid_file = self.data().join("postmaster.pid");
        std::fs::read_to_string(&pid_file)?
            .lines()
            .nth(line)
            .and_then(|line| line.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no line {line} in {}", pid_file.display()))
    }

    /// Writes devdb.conf (port, addresses, settings) and starts the server on it. A port chosen
    /// here (not given) may be taken by someone else before PostgreSQL binds it: then another.
    fn start_server(&self, options: &StartOptions) -> anyhow::Result<u16> {
        let log = self.dir.join("log");
        let socket_dir = self.dir.join("sock");
        // A Unix socket path is limited to about 100 bytes: in a deep folder, go without the
        // socket (we only use TCP).
        let socket = if socket_dir.as_os_str().len() <= 88 {
            socket_dir.to_string_lossy().replace('\'', "''")
        } else {
            String::new()
        };
        let previous = self.configured_port().filter(|p| !port_answers(*p));
        // A start without --set keeps the settings of the last start.
        let previous_settings: String = std::fs::read_to_string(self.data().join(CONF))
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                !l.starts_with('#')
                    && !["port", "listen_addresses", "unix_socket_directories"]
                        .iter()
                        .any(|own| l.starts_with(&format!("{own} =")))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = match options.port.or(previous) {
                Some(port) if last_error.is_none() => port,
                _ => free_port()?,
            };
            let mut conf = format!(
                "# Written by `reviews-api devdb start` at every start.\nport = {port}\n\
                 listen_addresses = '127.0.0.1'\nunix_socket_directories = '{socket}'\n"
            );
            if options.settings.is_empty() {
                conf.push_str(&previous_settings);
            }
            for (name, value) in &options.settings {
                conf.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
            }
            let path = self.data().join(CONF);
            std::fs::write(&path, conf)
                .with_context(|| format!("cannot write {}", path.display()))?;
            self.runner.give(&path)?;
            let args = [
                "-l".into(),
                log.clone().into(),
                "-w".into(),
                "-t".into(),
                "120".into(),
            ];
            match checked(self.pg_ctl("start", &args), "pg_ctl start") {
                Ok(_) => {
                    log::info!(
                        "started a private PostgreSQL on 127.0.0.1:{port} ({})",
                        self.dir.display()
                    );
                    return Ok(port);
                }
                Err(e) if options.port.is_some() => {
                    last_error = Some(e);
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        let error = last_error.expect("at least one attempt");
        Err(error.context(format!(
            "could not start PostgreSQL in {}; the end of its log {}:\n{}",
            self.dir.display(),
            log.display(),
            tail(&log, 15)
        )))
    }

    /// The port of devdb.conf, written by the last start.
    fn configured_port(&self) -> Option<u16> {
        std::fs::read_to_string(self.data().join(CONF))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("port = ")?.trim().parse().ok())
    }
}

fn initdb(runner: &Runner, bin: &Path, dir: &Path) -> anyhow::Result<()> {
    let data = dir.join("data");
    log::info!(
        "initialising a private PostgreSQL cluster in {}",
        data.display()
    );
    // --locale=C: the service never sorts text, and C exists on every machine, whereas an
    // inherited LANG naming a locale that is not installed makes initdb fail.
    let args = [
        "-D".into(),
        data.into_os_string(),
        "-U".into(),
        "postgres".into(),
        "--auth=trust".into(),
        "-E".into(),
        "UTF8".into(),
        "--locale=C".into(),
        "--no-instructions".into(),
    ];
    checked(runner.command(&bin.join("initdb"), &args, dir), "initdb")?;
    Ok(())
}

/// A physical copy of the primary at `primary` (a postgres:// URL of its host and port), set up
/// to start as its streaming replica (-R: standby.signal and primary_conninfo).
fn basebackup(runner: &Runner, bin: &Path, dir: &Path, primary: &str) -> anyhow::Result<()> {
    let config: tokio_postgres::Config = primary
        .parse()
        .with_context(|| format!("--replica-of {primary:?} is not a PostgreSQL URL"))?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    log::info!(
        "copying the primary at {host}:{port} into {}",
        dir.display()
    );
    let args = [
        "-h".into(),
        host.into(),
        "-p".into(),
        port.to_string().into(),
        "-U".into(),
        config.get_user().unwrap_or("postgres").into(),
        "-D".into(),
        dir.join("data").into_os_string(),
        "-R".into(),
        "-X".into(),
        "stream".into(),
        "-c".into(),
        "fast".into(),
    ];
    checked(
        runner.command(&bin.join("pg_basebackup"), &args, dir),
        "pg_basebackup",
    )?;
    Ok(())
}

/// Whether something accepts connections on 127.0.0.1:`port`.
fn port_answers(port: u16) -> bool {
    let address = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_millis(200)).is_ok()
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            log::error!(
                "could not stop the private PostgreSQL on port {}: {e:#}",
                self.port
            );
        }
    }
}

/// The first folder holding both `initdb` and `pg_ctl` (one installation, so they match): the
/// PATH, then the usual install folders, newest version first.
pub fn find_pg_bin_dir() -> Option<PathBuf> {
    // Resolved: a link on the PATH (/usr/local/bin/initdb) leads to the installation's folder,
    // which also holds pg_basebackup.
    let on_path = which::which_all("initdb")
        .into_iter()
        .flatten()
        .filter_map(|initdb| initdb.canonicalize().ok()?.parent().map(Path::to_path_buf));
    on_path
        .chain(install_dirs())
        .find(|dir| has_program(dir, "initdb") && has_program(dir, "pg_ctl"))
}

/// What to install, for the error that ends `demo` when there is no PostgreSQL at all.
pub fn install_hint() -> String {
    "no PostgreSQL server answers and no PostgreSQL is installed here (looked for initdb and \
     pg_ctl on the PATH, in /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin, /usr/local/pgsql/bin, \
     /opt/homebrew/opt/postgresql*/bin and /usr/local/opt/postgresql*/bin).\n\
     Install PostgreSQL, then run the demo again:\n  \
       Debian/Ubuntu:  sudo apt-get install postgresql\n  \
       macOS:          brew install postgresql@16\n  \
       Fedora/RHEL:    sudo dnf install postgresql-server\n  \
       Arch:           sudo pacman -S postgresql\n\
     or point DATABASE_URL at a server you can use, e.g. \
     DATABASE_URL=postgres://user:password@host:5432/reviews"
        .to_string()
}

/// Where PostgreSQL installs itself outside the PATH.
fn install_dirs() -> Vec<PathBuf> {
    let mut dirs = versioned("/usr/lib/postgresql", "", "bin");
    dirs.extend(versioned("/usr", "pgsql-", "bin"));
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    dirs.extend(versioned("/opt/homebrew/opt", "postgresql", "bin"));
    dirs.extend(versioned("/usr/local/opt", "postgresql", "bin"));
    dirs
}

/// `parent/<prefix...>/sub` for each entry of `parent` named `prefix...`, highest version first
/// (`postgresql@16` before `postgresql@9.6`, `15` before `9`).
fn versioned(parent: &str, prefix: &str, sub: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u32>, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(prefix)?;
            Some((version_key(rest), entry.path().join(sub)))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, path)| path).collect()
}

fn version_key(name: &str) -> Vec<u32> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter_map(|part| part.parse().ok())
        .collect()
}

/// Whether `dir` holds an executable `name`.
fn has_program(dir: &Path, name: &str) -> bool {
    which::which_in(name, Some(dir), dir).is_ok()
}

/// A port nobody listens on right now. The listener is released before PostgreSQL binds it, so
/// another process may take it in between: callers retry.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// How the PostgreSQL programs are started: as ourselves, or, when we are root, as `postgres`.
#[derive(Debug, Clone)]
enum Runner {
    Direct,
    Runuser(PathBuf),
    Su(PathBuf),
}

impl Runner {
    fn detect() -> anyhow::Result<Runner> {
        // SAFETY: geteuid takes nothing, cannot fail and touches no memory of ours.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(Runner::Direct);
        }
        anyhow::ensure!(
            user_id(PG_USER, "-u").is_some(),
            "PostgreSQL refuses to run as root and there is no `{PG_USER}` user to run it as: run \
             the demo as an ordinary user, create the user (useradd --system {PG_USER}), or set \
             DATABASE_URL to a server you can use"
        );
        if let Some(runuser) = find_program("runuser") {
            Ok(Runner::Runuser(runuser))
        } else if let Some(su) = find_program("su") {
            Ok(Runner::Su(su))
        } else {
            anyhow::bail!("running as root, but neither runuser nor su is found to run PostgreSQL as `{PG_USER}`")
        }
    }

    fn command(&self, program: &Path, args: &[OsString], cwd: &Path) -> Command {
        let mut command = match self {
            Runner::Direct => {
                let mut c = Command::new(program);
                c.args(args);
                c
            }
            Runner::Runuser(runuser) => {
                let mut c = Command::new(runuser);
                c.args(["-u", PG_USER, "--"]).arg(program).args(args);
                c
            }
            Runner::Su(su) => {
                let line = std::iter::once(program.as_os_str())
                    .chain(args.iter().map(OsString::as_os_str))
                    .map(|arg| shell_quote(&arg.to_string_lossy()))
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut c = Command::new(su);
                c.args([PG_USER, "-s", "/bin/sh", "-c"]).arg(line);
                c
            }
        };
        // The PostgreSQL programs resolve their own paths and fail when the working directory is
        // unreadable to them (root's home, for `postgres`): run them in the cluster folder.
        command.current_dir(cwd);
        command
    }

    /// When we run as `postgres`, makes `dir` (and what an earlier run as another user left in
    /// it) belong to `postgres`, and checks that `postgres` can reach it at all.
    fn take_ownership(&self, dir: &Path) -> anyhow::Result<()> {
        if matches!(self, Runner::Direct) {
            return Ok(());
        }
        let uid = user_id(PG_USER, "-u").context("no postgres user")?;
        let gid = user_id(PG_USER, "-g").context("no postgres group")?;
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata(dir)?.uid() != uid {
            chown_tree(dir, uid, gid)
                .with_context(|| format!("cannot give {} to the {PG_USER} user", dir.display()))?;
        }
        let args = ["-w".into(), dir.as_os_str().to_owned()];
        let reachable = output(
            self.command(Path::new("test"), &args, Path::new("/")),
            "test -w",
        )?;
        anyhow::ensure!(
            reachable.status.success(),
            "the {PG_USER} user cannot write to {}: a folder above it is closed to other users. \
             Run the demo from a checkout elsewhere (e.g. under /srv or /tmp), or set DATABASE_URL",
            dir.display()
        );
        Ok(())
    }
}

impl Runner {
    /// A file we wrote into the cluster folder, given to the user the server runs as.
    fn give(&self, path: &Path) -> anyhow::Result<()> {
        if matches!(self, Runner::Direct) {
            return Ok(());
        }
        let uid = user_id(PG_USER, "-u").context("no postgres user")?;
        let gid = user_id(PG_USER, "-g").context("no postgres group")?;
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .with_context(|| format!("cannot give {} to {PG_USER}", path.display()))
    }
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// `id -u USER` / `id -g USER`. The `id` program rather than libc's getpwnam_r: it asks NSS like
/// every tool does (users that are not in /etc/passwd too), without unsafe buffer handling here.
fn user_id(user: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, user]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// A program on the PATH, or in the sbin folders that a non-login root shell may lack.
fn find_program(name: &str) -> Option<PathBuf> {
    which::which(name)
        .or_else(|_| which::which_in(name, Some("/usr/sbin:/sbin:/usr/bin:/bin"), "/"))
        .ok()
}

fn output(mut command: Command, what: &str) -> anyhow::Result<Output> {
    command
        .output()
        .with_context(|| format!("cannot run {what} ({:?})", command.get_program()))
}

/// Runs `command`; a non-zero exit is an error carrying the command's own output.
fn checked(command: Command, what: &str) -> anyhow::Result<Output> {
    let out = output(command, what)?;
    anyhow::ensure!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(out)
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `s` as one /bin/sh word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_versions_sort_first() {
        let mut names = ["9.6", "15", "@16", "", "@9.6", "10"]
            .map(version_key)
            .to_vec();
        names.sort_by(|a, b| b.cmp(a));
        assert_eq!(names[0], vec![16]);
        assert_eq!(names[1], vec![15]);
        assert_eq!(names[2], vec![10]);
        assert_eq!(names.last().unwrap(), &Vec::<u32>::new());
    }

    #[test]
    fn shell_quote_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
