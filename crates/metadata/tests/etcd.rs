//! The etcd metadata store against a real `etcd` server (Debian's `etcd-server`) on
//! loopback, started and stopped by each test.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rivulet_metadata::{
    BrokerRegistration, EtcdLocation, EtcdMetadataStore, MetadataError, MetadataStore, NewTopic, PartitionState,
};

/// An etcd process on two free loopback ports; killed (by its pid) when dropped.
struct Etcd {
    child: Child,
    client_port: u16,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

impl Etcd {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (client_port, peer_port) = (free_port(), free_port());
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let child = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("`etcd` must be installed (Debian etcd-server; `make deps-etcd`)");
        let etcd = Etcd { child, client_port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", client_port)).is_err() {
            assert!(Instant::now() < deadline, "etcd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        etcd
    }

    fn location(&self, root: &str) -> EtcdLocation {
        EtcdLocation::parse(&format!("etcd://127.0.0.1:{}/{root}", self.client_port)).expect("location")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn new_topic(name: &str, partitions: i32) -> NewTopic {
    NewTopic {
        name: name.into(),
        partitions,
        replication_factor: 3,
        configs: Default::default(),
        internal: false,
        assignment: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_share_topics_and_never_collide_on_ids() {
    let etcd = Etcd::start();
    let a = EtcdMetadataStore::connect(&etcd.location("c1")).await.unwrap();
    let b = EtcdMetadataStore::connect(&etcd.location("c1")).await.unwrap();
    assert_eq!(a.cluster_id().await.unwrap(), b.cluster_id().await.unwrap());

    // Racing creates of one topic: exactly one wins.
    let (ra, rb) = tokio::join!(a.create_topic(new_topic("orders", 6)), b.create_topic(new_topic("orders", 6)));
    assert_eq!(ra.is_ok() as u8 + rb.is_ok() as u8, 1);
    assert!(matches!(ra.err().or(rb.err()), Some(MetadataError::TopicExists(_))));
    let (x, y) = tokio::join!(a.create_topic(new_topic("x", 4)), b.create_topic(new_topic("y", 4)));
    let (x, y) = (x.unwrap(), y.unwrap());
    let grown = a.add_partitions("x", 6, vec![]).await.unwrap();
    let mut log_ids: Vec<u64> = grown.partitions.iter().chain(&y.partitions).map(|p| p.log_id).collect();
    log_ids.extend(
        b.topics().await.unwrap().iter().find(|t| t.name == "orders").unwrap().partitions.iter().map(|p| p.log_id),
    );
    let count = log_ids.len();
    log_ids.sort_unstable();
    log_ids.dedup();
    assert_eq!(log_ids.len(), count, "log ids are unique across brokers");
    assert_eq!(grown.topic_id, x.topic_id);
    assert_eq!(b.topics().await.unwrap().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["orders", "x", "y"]);
    assert!(matches!(b.add_partitions("x", 6, vec![]).await, Err(MetadataError::PartitionsNotIncreased { .. })));
    b.delete_topic("y").await.unwrap();
    assert!(matches!(a.delete_topic("y").await, Err(MetadataError::UnknownTopic(_))));

    // Producer ids from both brokers, concurrently, spanning several blocks: no repeats.
    let (ids_a, ids_b) = tokio::join!(
        async {
            let mut ids = Vec::new();
            for _ in 0..1_500 {
                ids.push(a.allocate_producer_id().await.unwrap());
            }
            ids
        },
        async {
            let mut ids = Vec::new();
            for _ in 0..1_500 {
                ids.push(b.allocate_producer_id().await.unwrap());
            }
            ids
        }
    );
    let mut all: Vec<i64> = ids_a.into_iter().chain(ids_b).collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 3_000);

    // Another root is another cluster.
    let other = EtcdMetadataStore::connect(&etcd.location("c2")).await.unwrap();
    assert!(other.topics().await.unwrap().is_empty());
    assert_ne!(other.cluster_id().await.unwrap(), a.cluster_id().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_and_the_controller_follow_their_leases() {
    let etcd = Etcd::start();
    let store = EtcdMetadataStore::connect(&etcd.location("leases")).await.unwrap();
    let ttl = Duration::from_secs(2);
    let broker =
        |node_id| BrokerRegistration { node_id, host: "127.0.0.1".into(), port: 9000 + node_id as u16, rack: None };

    let one = store.register_broker(&broker(1), ttl).await.unwrap();
    let _two = store.register_broker(&broker(2), ttl).await.unwrap();
    assert!(matches!(store.register_broker(&broker(1), ttl).await, Err(MetadataError::NodeExists(1))));
    // Kept alive well past its TTL.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(store.live_brokers().await.unwrap(), vec![broker(1), broker(2)]);

    let (epoch, controller) = store.try_become_controller(1, ttl).await.unwrap().expect("first is elected");
    assert_eq!(epoch, 1);
    assert!(store.try_become_controller(2, ttl).await.unwrap().is_none());
    assert_eq!(store.controller().await.unwrap(), Some(1));

    // Broker 1 stops renewing (as if killed): its registration and its controllership
    // expire, and broker 2 takes over with a higher epoch.
    drop(one);
    drop(controller);
    let deadline = Instant::now() + Duration::from_secs(15);
    let (epoch, _controller) = loop {
        if let Some(elected) = store.try_become_controller(2, ttl).await.unwrap() {
            break elected;
        }
        assert!(Instant::now() < deadline, "controller lease never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(epoch, 2);
    assert_eq!(store.controller().await.unwrap(), Some(2));
    assert_eq!(store.live_brokers().await.unwrap(), vec![broker(2)]);
    // Node id 1 can register again once its old lease is gone.
    store.register_broker(&broker(1), ttl).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_controller_cannot_write_partition_states() {
    let etcd = Etcd::start();
    let store = EtcdMetadataStore::connect(&etcd.location("fence")).await.unwrap();
    let ttl = Duration::from_secs(5);
    store.create_topic(NewTopic { assignment: vec![vec![1, 2, 3]], ..new_topic("t", 1) }).await.unwrap();
    let snapshot = store.snapshot().await.unwrap();
    let initial = snapshot.states.get(&("t".to_string(), 0)).expect("initial state written with the topic").clone();
    assert_eq!(initial.state, PartitionState { leader: 1, leader_epoch: 0, isr: vec![1, 2, 3], controller_epoch: 0 });
    assert_eq!(snapshot.topics[0].partitions[0].replicas, vec![1, 2, 3]);

    let (_, a) = store.try_become_controller(1, ttl).await.unwrap().expect("first controller");
    let moved = PartitionState { leader: 2, leader_epoch: 1, isr: vec![2, 3], controller_epoch: a.epoch };
    let revision = store
        .update_partition_state("t", 0, initial.revision, &moved, Some(&a))
        .await
        .unwrap()
        .expect("the controller writes");
    // A write based on a stale revision is refused.
    assert!(store.update_partition_state("t", 0, initial.revision, &moved, Some(&a)).await.unwrap().is_none());

    // The controller key goes (as when its lease expires) and another broker is elected:
    // the old controller's writes now fail, the new one's succeed.
    let mut raw = etcd_client::Client::connect([format!("http://127.0.0.1:{}", etcd.client_port)], None).await.unwrap();
    raw.delete("/fence/controller", None).await.unwrap();
    let (epoch, b) = store.try_become_controller(2, ttl).await.unwrap().expect("second controller");
    assert_eq!(epoch, 2);
    let next = PartitionState { leader: 3, leader_epoch: 2, isr: vec![3], controller_epoch: a.epoch };
    assert!(
        store.update_partition_state("t", 0, revision, &next, Some(&a)).await.unwrap().is_none(),
        "a deposed controller wrote a partition state"
    );
    let next = PartitionState { controller_epoch: b.epoch, ..next };
    assert!(store.update_partition_state("t", 0, revision, &next, Some(&b)).await.unwrap().is_some());
    let seen = store.snapshot().await.unwrap();
    assert_eq!(seen.states[&("t".to_string(), 0)].state, next);
    assert_eq!((seen.controller, seen.controller_epoch), (Some(2), 2));

    // Deleting the topic removes its partition states too.
    store.delete_topic("t").await.unwrap();
    assert!(store.snapshot().await.unwrap().states.is_empty());
}
