//! The `faultline` command: `serve` runs the service, `check` validates a rules directory,
//! `test` runs rule tests, `new` scaffolds a plugin, `query` asks a running server, `backup`
//! copies its database.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use faultline::config::Config;

/// mimalloc rather than glibc's malloc: see the workspace's Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "faultline",
    version,
    about = "Fault handling with Wasm detection, localization and recovery rules"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// Server configuration file (TOML); every setting has a default.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Rules directory [default: rules].
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Data directory: database and compile cache [default: data].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Listen address [default: 127.0.0.1:9797].
        #[arg(long)]
        listen: Option<String>,
        /// Extra folder to look for plugin components in (repeatable).
        #[arg(long = "plugins")]
        plugins: Vec<PathBuf>,
    },
    /// Run rule unit tests (input series, expected alerts) against the real plugins.
    Test {
        /// Test files (`*_test.toml`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Extra folder to look for plugin components in (repeatable).
        #[arg(long = "plugins")]
        plugins: Vec<PathBuf>,
    },
    /// Create a plugin crate with a unit test and a rule file.
    New {
        /// The world: detector, localizer or recovery.
        world: String,
        /// The plugin's name (lowercase, dashes).
        name: String,
        /// Where to create it [default: ./NAME].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The faultline-sdk folder [default: the one this binary was built from].
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Print the series a selector matches on a running server, with their values.
    Query {
        /// A series selector, e.g. 'node_load1{job="node"}' (add [5m] for raw samples).
        selector: String,
        /// The server's URL.
        #[arg(long, default_value = "http://127.0.0.1:9797")]
        server: String,
        /// Evaluation time: Unix seconds or RFC 3339 [default: now].
        #[arg(long)]
        time: Option<String>,
    },
    /// Copy the database of a (running) server's data directory to a new file: an online
    /// backup. Restore: stop the server, put the copy in place of DATA/faultline.db (and
    /// remove faultline.db-wal, faultline.db-shm and external-alerts.*.journal), start it.
    Backup {
        /// Where to write the copy (must not exist).
        path: PathBuf,
        /// The server's configuration file, for its data_dir.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory [default: data_dir of --config, or data].
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Validate a rules directory: every file, rule, receiver and plugin.
    Check {
        /// Rules directory [default: rules].
        dir: Option<PathBuf>,
        /// Extra folder to look for plugin components in (repeatable).
        #[arg(long = "plugins")]
        plugins: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve {
            config,
            rules,
            data,
            listen,
            plugins,
        } => {
            let mut cfg = match config.map(|p| Config::load(&p)).transpose() {
                Ok(c) => c.unwrap_or_default(),
                Err(e) => return fail(e),
            };
            cfg.rules_dir = rules.unwrap_or(cfg.rules_dir);
            cfg.data_dir = data.unwrap_or(cfg.data_dir);
            cfg.listen = listen.unwrap_or(cfg.listen);
            cfg.plugin_dirs.extend(plugins);
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => return fail(e),
            };
            match rt.block_on(faultline::server::serve(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Command::Test { files, plugins } => {
            if faultline::cli::test::run(&files, &plugins) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::New {
            world,
            name,
            dir,
            sdk,
        } => {
            let Some(sdk) = sdk.or_else(faultline::cli::new::default_sdk) else {
                return fail("cannot find faultline-sdk: give its folder with --sdk");
            };
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let faultline = match std::env::current_exe() {
                Ok(p) => p,
                Err(e) => return fail(format!("cannot tell where this faultline is: {e}")),
            };
            match faultline::cli::new::create(&world, &name, &dir, &sdk, &faultline) {
                Ok(files) => {
                    for f in files {
                        println!("created {}", f.display());
                    }
                    println!("\nnext: cd {} && make test", dir.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Query {
            selector,
            server,
            time,
        } => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return fail(e),
            };
            match rt.block_on(faultline::cli::query::run(
                &server,
                &selector,
                time.as_deref(),
            )) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Backup { path, config, data } => {
            let cfg = match config.map(|p| Config::load(&p)).transpose() {
                Ok(c) => c.unwrap_or_default(),
                Err(e) => return fail(e),
            };
            let data = data.unwrap_or(cfg.data_dir);
            match faultline::cli::backup::run(&data, &path) {
                Ok(bytes) => {
                    println!(
                        "backed up {} to {} ({bytes} bytes)",
                        faultline::db::file(&data).display(),
                        path.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Check { dir, plugins } => {
            let cfg = Config {
                rules_dir: dir.unwrap_or_else(|| "rules".into()),
                plugin_dirs: plugins,
                ..Config::default()
            };
            let runtime = match faultline::runtime::Runtime::with_data_dir(None) {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            match faultline::cli::check::check(&cfg, &runtime) {
                Ok(set) => {
                    if let Some(warning) = set.unrouted() {
                        eprintln!("warning: {warning}");
                    }
                    println!(
                        "{}: {} groups, {} rules, {} receivers: all valid",
                        cfg.rules_dir.display(),
                        set.groups.len(),
                        set.rules().count(),
                        set.receivers.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    for e in &errors.0 {
                        eprintln!("{e}");
                    }
                    eprintln!("{} error(s) in {}", errors.0.len(), cfg.rules_dir.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("faultline: {e}");
    ExitCode::FAILURE
}
