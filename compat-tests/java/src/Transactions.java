import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Transactional producers and read_committed consumers with the stock Java client.
 *
 * Usage:
 *   Transactions alternate BOOTSTRAP TOPIC TXNS   commit even, abort odd transactions; check both isolation levels
 *   Transactions fence BOOTSTRAP TOPIC            a second producer with the same transactional id fences the first
 *   Transactions timeout BOOTSTRAP TOPIC          an abandoned transaction is aborted by the broker's timeout
 *   Transactions copy BOOTSTRAP IN OUT GROUP TXNID TOTAL
 *                                                 consume-transform-produce with sendOffsetsToTransaction until
 *                                                 the group's committed position reaches TOTAL; prints progress
 *
 * Prints OK on success; exits non-zero with the reason otherwise.
 */
public class Transactions {
    static Properties producerProps(String bootstrap, String transactionalId) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        return p;
    }

    static KafkaConsumer<String, String> consumer(String bootstrap, String isolation, String group) {
        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        if (group != null) {
            c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "500");
            // A restarted copier takes over its killed predecessor's place at once (KIP-345)
            // instead of waiting for the session to expire.
            c.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, group + "-instance");
            c.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "6000");
        }
        return new KafkaConsumer<>(c);
    }

    /** Reads partition 0 of TOPIC from the start until `want` records arrived or `waitMs` passed. */
    static List<String> readAll(String bootstrap, String topic, String isolation, int want, long waitMs) {
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(bootstrap, isolation, null)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            c.assign(Collections.singletonList(tp));
            c.seekToBeginning(Collections.singletonList(tp));
            long deadline = System.currentTimeMillis() + waitMs;
            while (values.size() < want && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    values.add(r.value());
                }
            }
            // Anything beyond `want` would be a leak: poll once more.
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                values.add(r.value());
            }
        }
        return values;
    }

    static void fail(String why) {
        System.out.println("FAIL " + why);
        System.exit(1);
    }

    static void alternate(String bootstrap, String topic, int txns) throws Exception {
        int perTxn = 10;
        List<String> committed = new ArrayList<>();
        List<String> all = new ArrayList<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps(bootstrap, "alternate-" + topic))) {
            producer.initTransactions();
            for (int t = 0; t < txns; t++) {
                producer.beginTransaction();
                for (int i = 0; i < perTxn; i++) {
                    String value = "t" + t + "-" + i;
                    producer.send(new ProducerRecord<>(topic, 0, null, value));
                    all.add(value);
                    if (t % 2 == 0) committed.add(value);
                }
                // Flush first so the aborted records really reach the log (an abort drops
                // batches not yet sent): read_uncommitted must then see them.
                producer.flush();
                if (t % 2 == 0) producer.commitTransaction(); else producer.abortTransaction();
            }
        }
        List<String> readCommitted = readAll(bootstrap, topic, "read_committed", committed.size(), 30_000);
        if (!readCommitted.equals(committed)) {
            fail("read_committed saw " + readCommitted.size() + " records, expected " + committed.size()
                + "; first difference near " + firstDifference(readCommitted, committed));
        }
        List<String> readUncommitted = readAll(bootstrap, topic, "read_uncommitted", all.size(), 30_000);
        if (!readUncommitted.equals(all)) {
            fail("read_uncommitted saw " + readUncommitted.size() + " records, expected " + all.size());
        }
        System.out.println("OK committed=" + committed.size() + " all=" + all.size());
    }

    static int firstDifference(List<String> a, List<String> b) {
        int i = 0;
        while (i < a.size() && i < b.size() && a.get(i).equals(b.get(i))) i++;
        return i;
    }

    static void fence(String bootstrap, String topic) throws Exception {
        String id = "fence-" + topic;
        KafkaProducer<String, String> first = new KafkaProducer<>(producerProps(bootstrap, id));
        first.initTransactions();
        first.beginTransaction();
        first.send(new ProducerRecord<>(topic, 0, null, "zombie")).get();
        try (KafkaProducer<String, String> second = new KafkaProducer<>(producerProps(bootstrap, id))) {
            second.initTransactions();
            second.beginTransaction();
            second.send(new ProducerRecord<>(topic, 0, null, "winner")).get();
            boolean fenced = false;
            try {
                first.send(new ProducerRecord<>(topic, 0, null, "zombie-2")).get();
                first.commitTransaction();
            } catch (ProducerFencedException | InvalidProducerEpochException e) {
                fenced = true;
            } catch (ExecutionException | KafkaException e) {
                Throwable cause = e instanceof ExecutionException ? e.getCause() : e;
                fenced = cause instanceof ProducerFencedException || cause instanceof InvalidProducerEpochException
                    || (cause != null && cause.getCause() instanceof ProducerFencedException);
                if (!fenced) throw e;
            }
            try { first.close(Duration.ofSeconds(5)); } catch (Exception ignored) { }
            if (!fenced) fail("the first producer committed after being fenced");
            second.commitTransaction();
        }
        List<String> seen = readAll(bootstrap, topic, "read_committed", 1, 20_000);
        if (!seen.equals(List.of("winner"))) fail("read_committed saw " + seen);
        System.out.println("OK fenced");
    }

    static void timeout(String bootstrap, String topic) throws Exception {
        Properties abandonedProps = producerProps(bootstrap, "abandoned-" + topic);
        abandonedProps.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "3000");
        KafkaProducer<String, String> abandoned = new KafkaProducer<>(abandonedProps);
        abandoned.initTransactions();
        abandoned.beginTransaction();
        for (int i = 0; i < 5; i++) abandoned.send(new ProducerRecord<>(topic, 0, null, "abandoned-" + i));
        abandoned.flush();
        long started = System.currentTimeMillis();
        try (KafkaProducer<String, String> other = new KafkaProducer<>(producerProps(bootstrap, "other-" + topic))) {
            other.initTransactions();
            other.beginTransaction();
            for (int i = 0; i < 5; i++) other.send(new ProducerRecord<>(topic, 0, null, "committed-" + i));
            other.commitTransaction();
        }
        // The committed records sit behind the abandoned transaction: visible only once the
        // broker aborts it.
        List<String> seen = readAll(bootstrap, topic, "read_committed", 5, 30_000);
        long waited = System.currentTimeMillis() - started;
        List<String> expected = new ArrayList<>();
        for (int i = 0; i < 5; i++) expected.add("committed-" + i);
        if (!seen.equals(expected)) fail("read_committed saw " + seen + " after " + waited + " ms");
        boolean fenced = false;
        try {
            abandoned.commitTransaction();
        } catch (KafkaException e) {
            fenced = true;
        }
        try { abandoned.close(Duration.ofSeconds(5)); } catch (Exception ignored) { }
        if (!fenced) fail("the timed-out transaction could still be committed");
        System.out.println("OK aborted after " + waited + " ms");
    }

    static void copy(String bootstrap, String in, String out, String group, String txnId, long total) throws Exception {
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, "read_committed", group);
             KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps(bootstrap, txnId))) {
            producer.initTransactions();
            consumer.subscribe(Collections.singletonList(in));
            while (true) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(500));
                if (!records.isEmpty()) {
                    producer.beginTransaction();
                    Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                    for (ConsumerRecord<String, String> r : records) {
                        producer.send(new ProducerRecord<>(out, r.partition(), r.key(), r.value()));
                        offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    }
                    producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
                    producer.commitTransaction();
                }
                // The position starts at the group's committed offset, so a restarted copier
                // also knows when an earlier run already finished the input.
                if (!consumer.assignment().isEmpty()) {
                    long position = Long.MAX_VALUE;
                    for (TopicPartition tp : consumer.assignment()) position = Math.min(position, consumer.position(tp));
                    System.out.println("progress " + position);
                    System.out.flush();
                    if (position >= total) break;
                }
            }
        }
        System.out.println("OK copied");
    }

    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "alternate": alternate(args[1], args[2], Integer.parseInt(args[3])); break;
            case "fence": fence(args[1], args[2]); break;
            case "timeout": timeout(args[1], args[2]); break;
            case "copy": copy(args[1], args[2], args[3], args[4], args[5], Long.parseLong(args[6])); break;
            default: fail("unknown mode " + args[0]);
        }
    }
}
