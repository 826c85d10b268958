//! The etcd metadata store against a real `etcd` server (Debian's `etcd-server`) on
//! loopback, started and stopped by each test.

use std::time::{Duration, Instant};

use rivulet_metadata::{
    AclBinding, AclOperation, BrokerRegistration, EtcdCredentials, EtcdLocation, EtcdMetadataStore, MetadataError,
    MetadataStore, NewTopic, PartitionState, PatternType, PermissionType, QuotaEntity, QuotaName, ResourceType,
    ScramChange, ScramCredential,
};
use rivulet_test_support::Etcd;

/// Long enough for any transient hiccup of a loaded machine; the start-up tests pass shorter ones.
const TIMEOUT: Duration = Duration::from_secs(18);

fn location(etcd: &Etcd, root: &str) -> EtcdLocation {
    EtcdLocation::parse(&etcd.url(root)).expect("location")
}

/// Starts `etcd` (again) off the async workers, which keep serving the calls waiting for it.
async fn restart(mut etcd: Etcd) -> Etcd {
    tokio::task::spawn_blocking(move || {
        etcd.restart();
        etcd
    })
    .await
    .expect("etcd restart task")
}

async fn connect(etcd: &Etcd, root: &str) -> EtcdMetadataStore {
    EtcdMetadataStore::connect(&location(etcd, root), TIMEOUT).await.expect("connect")
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
    let a = connect(&etcd, "c1").await;
    let b = connect(&etcd, "c1").await;
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
    // A config change by one broker is what the other reads; partitions are untouched.
    let configs: std::collections::BTreeMap<String, String> =
        [("retention.bytes".to_string(), "1048576".to_string())].into_iter().collect();
    let altered = a.set_topic_configs("x", configs.clone()).await.unwrap();
    assert_eq!(altered.partitions, grown.partitions);
    let seen = b.topics().await.unwrap().into_iter().find(|t| t.name == "x").unwrap();
    assert_eq!(seen.configs, configs);
    assert!(matches!(b.set_topic_configs("nope", configs.clone()).await, Err(MetadataError::UnknownTopic(_))));
    // Dynamic broker configs: the cluster default and per broker, removed by an empty map.
    a.set_broker_configs("", configs.clone()).await.unwrap();
    a.set_broker_configs("3", configs.clone()).await.unwrap();
    b.set_broker_configs("3", Default::default()).await.unwrap();
    let seen = b.broker_configs().await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[""], configs);
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
    let other = connect(&etcd, "c2").await;
    assert!(other.topics().await.unwrap().is_empty());
    assert_ne!(other.cluster_id().await.unwrap(), a.cluster_id().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_and_the_controller_follow_their_leases() {
    let etcd = Etcd::start();
    let store = connect(&etcd, "leases").await;
    let ttl = Duration::from_secs(2);
    let broker = |node_id| BrokerRegistration {
        node_id,
        host: "127.0.0.1".into(),
        port: 9000 + node_id as u16,
        rack: None,
        listeners: vec![],
    };

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
    let store = connect(&etcd, "fence").await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_waits_for_an_etcd_that_starts_late() {
    let etcd = Etcd::unstarted();
    let at = location(&etcd, "late");
    let connecting = tokio::spawn(async move { EtcdMetadataStore::connect(&at, TIMEOUT).await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!connecting.is_finished(), "connect gave up while etcd was still down");
    let etcd = restart(etcd).await;
    let store = connecting.await.unwrap().expect("connected once etcd came up");
    assert!(!store.cluster_id().await.unwrap().is_empty());
    let lease = store
        .register_broker(
            &BrokerRegistration { node_id: 1, host: "127.0.0.1".into(), port: 9092, rack: None, listeners: vec![] },
            TIMEOUT,
        )
        .await
        .unwrap();
    assert!(lease.is_alive());
    assert_eq!(store.live_brokers().await.unwrap().len(), 1);
    drop(etcd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_that_never_comes_up_fails_after_the_timeout_naming_it() {
    let etcd = Etcd::unstarted();
    let timeout = Duration::from_millis(1500);
    let started = Instant::now();
    let outcome = EtcdMetadataStore::connect(&location(&etcd, "never"), timeout).await;
    let waited = started.elapsed();
    match outcome {
        Err(e @ MetadataError::Unreachable { .. }) => {
            let message = e.to_string();
            assert!(message.contains(&format!("127.0.0.1:{}", etcd.client_port)), "{message}");
            assert!(message.contains("metadata.store.connection.timeout.ms"), "{message}");
        }
        Err(other) => panic!("expected Unreachable, got {other}"),
        Ok(_) => panic!("connected to an etcd that is not running"),
    }
    assert!(waited >= timeout, "gave up after {waited:?}, before the {timeout:?} timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_made_while_etcd_restarts_complete_once_it_is_back() {
    let mut etcd = Etcd::start();
    let store = std::sync::Arc::new(connect(&etcd, "restart").await);
    store.create_topic(new_topic("before", 2)).await.unwrap();
    etcd.stop();
    let creating = {
        let store = store.clone();
        tokio::spawn(async move { store.create_topic(new_topic("during", 3)).await })
    };
    let deleting = {
        let store = store.clone();
        tokio::spawn(async move { store.delete_topic("before").await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let etcd = restart(etcd).await;
    let created = creating.await.unwrap().expect("created after etcd came back");
    assert_eq!(created.partitions.len(), 3);
    deleting.await.unwrap().expect("deleted after etcd came back");
    let names: Vec<String> = store.topics().await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["during"]);
    // Exactly one copy of the topic, with the id the call returned.
    assert_eq!(store.topics().await.unwrap()[0].topic_id, created.topic_id);
    drop(etcd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_changes_through_two_brokers_at_once_are_both_kept() {
    let etcd = Etcd::start();
    let a = connect(&etcd, "scram").await;
    let b = connect(&etcd, "scram").await;
    let credential = |n: u8| ScramCredential {
        salt: vec![n; 16],
        stored_key: vec![n; 32],
        server_key: vec![n; 32],
        iterations: 4096,
    };
    let upsert =
        |mechanism: &str, n: u8| ScramChange::Upsert { mechanism: mechanism.to_string(), credential: credential(n) };
    // Each user gets one mechanism through each broker at the same moment: a plain
    // read-modify-write would keep only one of the two for some users.
    for i in 0..20 {
        let user = format!("user-{i}");
        let (ra, rb) = tokio::join!(
            a.alter_user_scram_credentials(&user, upsert("SCRAM-SHA-256", 1)),
            b.alter_user_scram_credentials(&user, upsert("SCRAM-SHA-512", 2)),
        );
        assert!(ra.unwrap() && rb.unwrap());
    }
    let users = b.scram_users().await.unwrap();
    assert_eq!(users.len(), 20);
    for (user, credentials) in &users {
        assert_eq!(credentials.keys().collect::<Vec<_>>(), ["SCRAM-SHA-256", "SCRAM-SHA-512"], "{user}");
        assert_eq!(credentials["SCRAM-SHA-512"].salt, vec![2; 16]);
    }
    // Deleting what is not there changes nothing; deleting the last credential removes the user.
    let delete = |mechanism: &str| ScramChange::Delete { mechanism: mechanism.to_string() };
    assert!(!a.alter_user_scram_credentials("nobody", delete("SCRAM-SHA-256")).await.unwrap());
    assert!(a.alter_user_scram_credentials("user-0", delete("SCRAM-SHA-256")).await.unwrap());
    assert!(b.alter_user_scram_credentials("user-0", delete("SCRAM-SHA-512")).await.unwrap());
    assert!(!a.alter_user_scram_credentials("user-0", delete("SCRAM-SHA-512")).await.unwrap());
    assert!(!b.scram_users().await.unwrap().contains_key("user-0"));
}

#[tokio::test]
async fn acls_written_through_one_broker_are_in_the_others_snapshot() {
    let etcd = Etcd::start();
    let a = connect(&etcd, "acls").await;
    let b = connect(&etcd, "acls").await;
    let acl = |name: &str, principal: &str, operation: AclOperation| AclBinding {
        resource_type: ResourceType::Topic,
        // A '/' in a name must not break the key layout.
        resource_name: name.to_string(),
        pattern_type: PatternType::Prefixed,
        principal: principal.to_string(),
        host: "*".to_string(),
        operation,
        permission_type: PermissionType::Allow,
    };
    let read = acl("orders/eu-", "User:alice", AclOperation::Read);
    let write = acl("orders/eu-", "User:bob", AclOperation::Write);
    // Both brokers add at the same moment, one of them twice: each binding is stored once.
    let (both, one) = ([read.clone(), write.clone()], [read.clone()]);
    let (ra, rb) = tokio::join!(a.create_acls(&both), b.create_acls(&one));
    ra.unwrap();
    rb.unwrap();
    assert_eq!(b.acls().await.unwrap(), vec![read.clone(), write.clone()]);
    assert_eq!(b.snapshot().await.unwrap().acls, vec![read.clone(), write.clone()]);
    a.delete_acls(&[read.clone(), acl("absent", "User:x", AclOperation::Read)]).await.unwrap();
    assert_eq!(b.snapshot().await.unwrap().acls, vec![write]);
    // Another root is another cluster.
    assert!(connect(&etcd, "other").await.acls().await.unwrap().is_empty());
}

#[tokio::test]
async fn client_quota_changes_through_two_brokers_at_once_are_both_kept() {
    let etcd = Etcd::start();
    let a = connect(&etcd, "quotas").await;
    let b = connect(&etcd, "quotas").await;
    let entity = |user: &str| QuotaEntity {
        user: Some(QuotaName::Named(user.to_string())),
        client_id: Some(QuotaName::Default),
        ip: None,
    };
    for i in 0..10 {
        let user = entity(&format!("user/{i}"));
        let (produce, fetch) =
            ([("producer_byte_rate".to_string(), Some(1024.0))], [("consumer_byte_rate".to_string(), Some(2048.0))]);
        let (ra, rb) = tokio::join!(a.alter_client_quotas(&user, &produce), b.alter_client_quotas(&user, &fetch));
        ra.unwrap();
        rb.unwrap();
    }
    let quotas = b.snapshot().await.unwrap().quotas;
    assert_eq!(quotas.len(), 10);
    for (entity, values) in &quotas {
        assert_eq!(values.len(), 2, "{entity:?}: {values:?}");
    }
    // Removing every value removes the entity.
    let user = entity("user/0");
    let remove = [("producer_byte_rate".to_string(), None), ("consumer_byte_rate".to_string(), None)];
    a.alter_client_quotas(&user, &remove).await.unwrap();
    assert!(!b.client_quotas().await.unwrap().iter().any(|(e, _)| *e == user));
    assert_eq!(b.client_quotas().await.unwrap().len(), 9);
}

#[tokio::test]
async fn an_etcd_with_authentication_serves_only_the_configured_user() {
    let etcd = Etcd::start();
    let endpoint = location(&etcd, "auth").endpoints;
    // As an operator would with `etcdctl user add root; etcdctl auth enable`.
    let mut admin = etcd_client::Client::connect(&endpoint, None).await.expect("etcd admin client");
    admin.user_add("root", "root-secret", None).await.expect("user add");
    admin.user_grant_role("root", "root").await.expect("grant root");
    admin.auth_enable().await.expect("auth enable");

    let with = |user: &str, password: &str| {
        let mut at = location(&etcd, "auth");
        at.credentials = Some(EtcdCredentials { user: user.to_string(), password: password.to_string() });
        at
    };
    let store = EtcdMetadataStore::connect(&with("root", "root-secret"), TIMEOUT).await.expect("authenticated store");
    store.create_topic(new_topic("secured", 1)).await.expect("a write as root");
    assert_eq!(store.topics().await.unwrap().len(), 1);

    // Refused, not retried until the timeout: a wrong password and no user at all.
    let started = Instant::now();
    let wrong = EtcdMetadataStore::connect(&with("root", "wrong"), TIMEOUT).await;
    let error = wrong.err().expect("a wrong password is refused").to_string();
    assert!(error.contains("authentication failed"), "{error}");
    let anonymous = EtcdMetadataStore::connect(&location(&etcd, "auth"), TIMEOUT).await;
    let error = anonymous.err().expect("no user is refused").to_string();
    assert!(error.contains("user name") || error.contains("permission denied"), "{error}");
    assert!(started.elapsed() < TIMEOUT, "refusals must not wait for the connection timeout");
}
