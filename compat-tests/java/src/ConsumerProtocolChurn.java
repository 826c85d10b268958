import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.CommitFailedException;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.errors.StaleMemberEpochException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * KIP-848: consumers with group.protocol=consumer (server-side assignment) join a group one
 * by one and then leave one by one (the first stays) while a producer writes RECORDS records
 * to a topic of PARTITIONS partitions.
 *
 * Checked:
 * - a partition is never owned by two members at once (ownership is tracked from the
 *   rebalance listener: a member must revoke before another is given the partition);
 * - with every member in, the Admin client (ConsumerGroupDescribe) shows a group of type
 *   CONSUMER, Stable, whose members share all partitions exactly once;
 * - every record is consumed and the committed offsets (watched through the Admin API)
 *   never go backwards.
 * Prints "OK" and exits 0 on success.
 *
 * Usage: ConsumerProtocolChurn BOOTSTRAP TOPIC RECORDS MEMBERS PARTITIONS GROUP
 */
public class ConsumerProtocolChurn {
    static final Set<String> consumed = ConcurrentHashMap.newKeySet();
    static final Map<TopicPartition, Integer> owners = new HashMap<>();
    static final AtomicReference<String> failure = new AtomicReference<>();

    static void fail(String why) {
        failure.compareAndSet(null, why);
    }

    static class Member implements Runnable, ConsumerRebalanceListener {
        final int id;
        final String bootstrap;
        final String topic;
        final String group;
        final AtomicBoolean running = new AtomicBoolean(true);
        final Thread thread = new Thread(this);

        Member(int id, String bootstrap, String topic, String group) {
            this.id = id;
            this.bootstrap = bootstrap;
            this.topic = topic;
            this.group = group;
        }

        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            synchronized (owners) {
                for (TopicPartition tp : partitions) {
                    Integer before = owners.put(tp, id);
                    if (before != null && before != id) {
                        fail(tp + " given to member " + id + " while member " + before + " still owned it");
                    }
                }
            }
        }

        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            release(partitions);
        }

        public void onPartitionsLost(Collection<TopicPartition> partitions) {
            release(partitions);
        }

        void release(Collection<TopicPartition> partitions) {
            synchronized (owners) {
                for (TopicPartition tp : partitions) {
                    owners.remove(tp, id);
                }
            }
        }

        public void run() {
            Properties c = new Properties();
            c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            c.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
            c.put(ConsumerConfig.CLIENT_ID_CONFIG, "member-" + id);
            c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
                consumer.subscribe(List.of(topic), this);
                while (running.get()) {
                    var records = consumer.poll(Duration.ofMillis(200));
                    for (ConsumerRecord<String, String> r : records) {
                        consumed.add(r.value());
                    }
                    if (!records.isEmpty()) {
                        try {
                            consumer.commitSync();
                        } catch (RebalanceInProgressException | CommitFailedException | StaleMemberEpochException e) {
                            // The member epoch moved on during a reconciliation: a later
                            // commit covers these records.
                        }
                    }
                }
            } catch (Exception e) {
                fail("member " + id + " failed: " + e);
            }
        }
    }

    /** Waits until the group is Stable with `members` members sharing all partitions once. */
    static ConsumerGroupDescription awaitBalanced(Admin admin, String group, int members, int partitions) throws Exception {
        long deadline = System.currentTimeMillis() + 60_000;
        String last = "";
        while (System.currentTimeMillis() < deadline && failure.get() == null) {
            ConsumerGroupDescription d;
            try {
                d = admin.describeConsumerGroups(List.of(group)).all().get().get(group);
            } catch (ExecutionException e) {
                // The first member's heartbeat creates the group.
                if (!(e.getCause() instanceof GroupIdNotFoundException)) {
                    throw e;
                }
                last = "not found yet";
                Thread.sleep(200);
                continue;
            }
            Set<TopicPartition> seen = new HashSet<>();
            int total = 0;
            for (MemberDescription m : d.members()) {
                seen.addAll(m.assignment().topicPartitions());
                total += m.assignment().topicPartitions().size();
            }
            last = d.groupState() + " members=" + d.members().size() + " assigned=" + total + " distinct=" + seen.size();
            if (d.groupState() == GroupState.STABLE && d.members().size() == members && total == partitions
                    && seen.size() == partitions) {
                if (d.type() != GroupType.CONSUMER) {
                    fail("group type is " + d.type() + ", not CONSUMER");
                }
                return d;
            }
            Thread.sleep(200);
        }
        fail("group never balanced over " + members + " members: " + last);
        return null;
    }

    public static void main(String[] args) {
        try {
            run(args);
        } catch (Throwable e) {
            // Member threads are not daemons: exit explicitly so a failure is reported at once.
            System.out.println("FAIL " + e);
            e.printStackTrace();
            System.exit(1);
        }
        System.exit(0);
    }

    static void run(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int total = Integer.parseInt(args[2]);
        int count = Integer.parseInt(args[3]);
        int partitions = Integer.parseInt(args[4]);
        String group = args[5];

        Thread producerThread = new Thread(() -> {
            Properties p = new Properties();
            p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
                for (int i = 0; i < total; i++) {
                    producer.send(new ProducerRecord<>(topic, "k" + i, "v" + i));
                    if (i % 200 == 0) {
                        Thread.sleep(50);
                    }
                }
                producer.flush();
            } catch (Exception e) {
                fail("producer failed: " + e);
            }
        });
        producerThread.start();

        Properties a = new Properties();
        a.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(a)) {
            AtomicBoolean watching = new AtomicBoolean(true);
            Thread watcher = new Thread(() -> {
                Map<TopicPartition, Long> highest = new HashMap<>();
                try {
                    while (watching.get()) {
                        Map<TopicPartition, OffsetAndMetadata> offsets =
                            admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
                        for (var e : offsets.entrySet()) {
                            long offset = e.getValue().offset();
                            Long before = highest.put(e.getKey(), offset);
                            if (before != null && offset < before) {
                                fail("committed offset of " + e.getKey() + " went back from " + before + " to " + offset);
                            }
                        }
                        Thread.sleep(200);
                    }
                } catch (Exception e) {
                    fail("watcher failed: " + e);
                }
            });
            watcher.start();

            List<Member> members = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                Member m = new Member(i, bootstrap, topic, group);
                members.add(m);
                m.thread.start();
                awaitBalanced(admin, group, i + 1, partitions);
            }
            System.out.println("BALANCED " + count);
            for (int i = members.size() - 1; i > 0; i--) {
                Member m = members.get(i);
                m.running.set(false);
                m.thread.join(60_000);
                awaitBalanced(admin, group, i, partitions);
            }
            producerThread.join(120_000);
            long deadline = System.currentTimeMillis() + 90_000;
            while (consumed.size() < total && System.currentTimeMillis() < deadline && failure.get() == null) {
                Thread.sleep(200);
            }
            members.get(0).running.set(false);
            members.get(0).thread.join(60_000);
            Thread.sleep(500);
            watching.set(false);
            watcher.join(30_000);
        }
        if (failure.get() != null) {
            throw new AssertionError(failure.get());
        }
        if (consumed.size() != total) {
            throw new AssertionError("consumed " + consumed.size() + " of " + total);
        }
        System.out.println("OK " + total);
    }
}
