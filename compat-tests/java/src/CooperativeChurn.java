import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.CommitFailedException;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Ten consumers with the CooperativeStickyAssignor join a group one by one and then leave
 * one by one (the last stays) while a producer writes RECORDS records. Every record must be
 * consumed, and the group's committed offsets (watched through the Admin API) must never
 * go backwards. Prints "OK" and exits 0 on success.
 *
 * Usage: CooperativeChurn BOOTSTRAP TOPIC RECORDS
 */
public class CooperativeChurn {
    static final String GROUP = "coop-churn";
    static final Set<String> consumed = ConcurrentHashMap.newKeySet();
    static final AtomicReference<String> failure = new AtomicReference<>();

    static class Member implements Runnable {
        final String bootstrap;
        final String topic;
        final AtomicBoolean running = new AtomicBoolean(true);
        final Thread thread = new Thread(this);

        Member(String bootstrap, String topic) {
            this.bootstrap = bootstrap;
            this.topic = topic;
        }

        public void run() {
            Properties c = new Properties();
            c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            c.put(ConsumerConfig.GROUP_ID_CONFIG, GROUP);
            c.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, CooperativeStickyAssignor.class.getName());
            c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            c.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
            c.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
            c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
                consumer.subscribe(List.of(topic));
                while (running.get()) {
                    var records = consumer.poll(Duration.ofMillis(200));
                    for (ConsumerRecord<String, String> r : records) {
                        consumed.add(r.value());
                    }
                    if (!records.isEmpty()) {
                        try {
                            consumer.commitSync();
                        } catch (RebalanceInProgressException | CommitFailedException e) {
                            // Normal while the group rebalances: the next poll completes the
                            // rebalance and a later commit covers these records.
                        }
                    }
                }
            } catch (Exception e) {
                failure.compareAndSet(null, "member failed: " + e);
            }
        }
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int total = Integer.parseInt(args[2]);

        Thread producerThread = new Thread(() -> {
            Properties p = new Properties();
            p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
                for (int i = 0; i < total; i++) {
                    producer.send(new ProducerRecord<>(topic, "k" + i, "v" + i));
                    if (i % 500 == 0) {
                        Thread.sleep(100);
                    }
                }
                producer.flush();
            } catch (Exception e) {
                failure.compareAndSet(null, "producer failed: " + e);
            }
        });
        producerThread.start();

        AtomicBoolean watching = new AtomicBoolean(true);
        Thread watcher = new Thread(() -> {
            Properties a = new Properties();
            a.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            Map<TopicPartition, Long> highest = new HashMap<>();
            try (Admin admin = Admin.create(a)) {
                while (watching.get()) {
                    Map<TopicPartition, OffsetAndMetadata> offsets =
                        admin.listConsumerGroupOffsets(GROUP).partitionsToOffsetAndMetadata().get();
                    for (var e : offsets.entrySet()) {
                        long offset = e.getValue().offset();
                        Long before = highest.put(e.getKey(), offset);
                        if (before != null && offset < before) {
                            failure.compareAndSet(null, "committed offset of " + e.getKey() + " went back from " + before + " to " + offset);
                        }
                    }
                    Thread.sleep(200);
                }
            } catch (Exception e) {
                failure.compareAndSet(null, "watcher failed: " + e);
            }
        });
        watcher.start();

        List<Member> members = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            Member m = new Member(bootstrap, topic);
            members.add(m);
            m.thread.start();
            Thread.sleep(1500);
        }
        for (int i = members.size() - 1; i > 0; i--) {
            Member m = members.get(i);
            m.running.set(false);
            m.thread.join(60_000);
            Thread.sleep(1000);
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
        if (failure.get() != null) {
            System.out.println("FAIL " + failure.get());
            System.exit(1);
        }
        if (consumed.size() != total) {
            System.out.println("FAIL consumed " + consumed.size() + " of " + total);
            System.exit(1);
        }
        System.out.println("OK " + total);
    }
}
