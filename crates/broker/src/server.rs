//! Listening sockets and the accept loop.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::broker::Broker;
use crate::connection;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot resolve listener {host}:{port}: {reason}")]
    Resolve { host: String, port: u16, reason: String },
    #[error("cannot listen on {address}: {reason}")]
    Bind { address: SocketAddr, reason: String },
}

/// Binds every configured listener. A host name is bound on each address it resolves to
/// (so `localhost` serves both 127.0.0.1 and ::1); an empty host binds all interfaces.
pub async fn bind(broker: &Broker) -> Result<Vec<TcpListener>, ServeError> {
    let mut listeners = Vec::new();
    let mut bound: Vec<SocketAddr> = Vec::new();
    for listener in &broker.config.listeners {
        let host = if listener.host.is_empty() { "0.0.0.0" } else { listener.host.as_str() };
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, listener.port))
            .await
            .map_err(|e| ServeError::Resolve { host: host.to_string(), port: listener.port, reason: e.to_string() })?
            .collect();
        let count = addresses.len();
        for address in addresses {
            if bound.contains(&address) {
                continue;
            }
            match TcpListener::bind(address).await {
                Ok(socket) => {
                    tracing::info!(%address, listener = %listener.name, "listening");
                    bound.push(address);
                    listeners.push(socket);
                }
                // A host with IPv6 disabled still resolves localhost to ::1; serving the
                // other addresses is enough unless nothing could be bound.
                Err(e) if count > 1 => {
                    tracing::warn!(%address, error = %e, "cannot listen on one address of the listener")
                }
                Err(e) => return Err(ServeError::Bind { address, reason: e.to_string() }),
            }
        }
    }
    if listeners.is_empty() {
        let address: SocketAddr = ([0, 0, 0, 0], 0).into();
        return Err(ServeError::Bind { address, reason: "no listener address could be bound".into() });
    }
    Ok(listeners)
}

/// Accepts connections on every listener until `shutdown` turns true.
pub async fn run(broker: Arc<Broker>, listeners: Vec<TcpListener>, shutdown: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(broker.config.max_connections));
    let mut tasks = Vec::new();
    for listener in listeners {
        let broker = broker.clone();
        let permits = permits.clone();
        let mut shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = shutdown.changed() => break,
                };
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Usually EMFILE: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, max_connections = broker.config.max_connections, "refusing connection: max.connections reached");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let broker = broker.clone();
                tokio::spawn(async move {
                    connection::serve(broker, stream, peer).await;
                    drop(permit);
                });
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}
