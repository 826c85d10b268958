//! `rivulet`: start one Kafka-compatible broker.
//!
//! Configuration uses Apache Kafka's `server.properties` names, from a file and
//! `--override key=value` flags (later wins), as `kafka-server-start.sh` takes them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser;
use rivulet_broker::{server, Broker, BrokerConfig};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "rivulet", version, about = "A Kafka-wire-compatible broker")]
struct Cli {
    /// A Kafka `server.properties` file.
    #[arg(value_name = "SERVER_PROPERTIES")]
    config: Option<PathBuf>,
    /// Override one property, e.g. `--override listeners=PLAINTEXT://:9092`.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

fn load_config(cli: &Cli) -> anyhow::Result<BrokerConfig> {
    let mut props: BTreeMap<String, String> = match &cli.config {
        Some(path) => BrokerConfig::read_properties(path)?,
        None => BTreeMap::new(),
    };
    for item in &cli.overrides {
        let Some((key, value)) = item.split_once('=') else {
            bail!("--override expects KEY=VALUE, got '{item}'");
        };
        props.insert(key.trim().to_string(), value.trim().to_string());
    }
    let (config, unknown) = BrokerConfig::from_properties(props)?;
    for key in unknown {
        tracing::warn!(%key, "unknown configuration key ignored");
    }
    Ok(config)
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match start(&cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole cause chain, so the reason is the last thing logged.
            tracing::error!("rivulet stopped: {}", cause_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each said once: the library errors repeat their
/// source in their own message (so they read well alone), which `{:#}` would print again.
fn cause_chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

fn start(cli: &Cli) -> anyhow::Result<()> {
    let config = load_config(cli).context("invalid configuration")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(run(config))
}

async fn run(config: BrokerConfig) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let node_id = config.node_id;
    let broker = Broker::open(config).await.context("opening the broker")?;
    broker.start_background_tasks();
    let listeners = server::bind(&broker).await?;
    if let Some(address) = &broker.config.metrics_listener {
        let metrics_listener = tokio::net::TcpListener::bind(address.as_str())
            .await
            .with_context(|| format!("binding /metrics on {address}"))?;
        tracing::info!(%address, "serving Prometheus metrics at /metrics");
        tokio::spawn(rivulet_broker::metrics::serve(metrics_listener, std::sync::Arc::downgrade(&broker)));
    }
    if let Some(address) = &broker.config.console_listener {
        let console_listener = tokio::net::TcpListener::bind(address.as_str())
            .await
            .with_context(|| format!("binding the web console (rivulet.console.listener) on {address}"))?;
        let bound = console_listener.local_addr().map_or_else(|_| address.clone(), |a| a.to_string());
        tracing::info!(address = %bound, "serving the web console");
        tokio::spawn(rivulet_broker::console::serve(console_listener, std::sync::Arc::downgrade(&broker)));
    }
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let serving = tokio::spawn(server::run(broker.clone(), listeners, shutdown_rx));
    tracing::info!(node_id, startup_ms = started.elapsed().as_millis() as u64, "rivulet started");

    wait_for_signal().await;
    tracing::info!("shutting down");
    let _ = shutdown_tx.send(true);
    let _ = serving.await;
    broker.shutdown();
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
