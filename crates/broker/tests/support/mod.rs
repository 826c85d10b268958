//! An in-process broker for integration tests: a real [`Broker`] on RocksDB in a temp
//! directory, serving a free loopback port from the test's own tokio runtime, as
//! `rivulet`'s `main` runs it. Tests talk to it over the socket with
//! [`AsyncClient`], so they exercise the whole request path (framing, decoding, dispatch,
//! handlers, storage) without depending on any handler's Rust signature.
//!
//! This lives in the broker crate's `tests/` rather than in `rivulet-test-support`: that
//! crate must not depend on the broker, or the broker's own tests could not use it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use rivulet_broker::{server, Broker, BrokerConfig};
use rivulet_test_support::{free_port, AsyncClient};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running broker; stopped (accept loops ended, WAL flushed) when dropped.
pub struct InProcessBroker {
    pub broker: Arc<Broker>,
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    serving: Option<JoinHandle<()>>,
    // Dropped last: RocksDB lives in it.
    _dir: tempfile::TempDir,
}

impl InProcessBroker {
    /// Starts a broker with `settings` (Kafka `server.properties` keys) on top of the
    /// defaults. Must be called from a multi-threaded runtime, as the broker runs on one.
    pub async fn start(settings: &[(&str, &str)]) -> Self {
        // Another process may take the probed port before the broker binds it.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = free_port();
            let mut props: BTreeMap<String, String> = BTreeMap::from([
                ("listeners".to_string(), format!("PLAINTEXT://127.0.0.1:{port}")),
                ("log.dirs".to_string(), dir.path().display().to_string()),
            ]);
            props.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            let (config, unknown) = BrokerConfig::from_properties(props).expect("a valid configuration");
            assert!(unknown.is_empty(), "unknown settings {unknown:?}");
            let broker = Broker::open(config).await.expect("the broker opens");
            let listeners = match server::bind(&broker).await {
                Ok(listeners) => listeners,
                Err(_) => {
                    broker.shutdown();
                    continue;
                }
            };
            broker.start_background_tasks();
            let (shutdown, receiver) = watch::channel(false);
            let serving = tokio::spawn(server::run(broker.clone(), listeners, receiver));
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            return InProcessBroker { broker, addr, shutdown, serving: Some(serving), _dir: dir };
        }
        panic!("the broker could not bind any of 5 ports");
    }

    pub async fn client(&self) -> AsyncClient {
        AsyncClient::connect(self.addr).await
    }

    /// Stops accepting, waits for the accept loops to end and flushes the WAL.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(serving) = self.serving.take() {
            let _ = serving.await;
        }
    }
}

impl Drop for InProcessBroker {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.broker.shutdown();
    }
}
