import java.io.BufferedOutputStream;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Writes the history of a compacted topic with the stock Java producer, so a test can check
 * what the cleaner keeps.
 *
 * Usage: CompactedProducer BOOTSTRAP TOPIC KEYS ROUNDS TOMBSTONES ABORT_FROM ABORT_TO
 *
 * To partition 0 of TOPIC, with an idempotent acks=all producer: ROUNDS values of each of the
 * keys key-0000 .. key-(KEYS-1) (round r of key k is "key-k-vr"), then a tombstone (null
 * value) for each of the first TOMBSTONES keys; then, with a transactional producer, an
 * aborted transaction rewriting keys ABORT_FROM .. ABORT_TO-1 with "aborted"; then one record
 * sentinel=1 (the newest batch, which the cleaner never cleans). Prints `WRITTEN acked=<n>`
 * once all that is acknowledged, then sends one record per line `KEY VALUE` read from stdin
 * with the same producer until stdin closes (so a test can write more later without starting
 * another JVM).
 *
 * Prints one line per acknowledged non-transactional record, `<offset> <key> <value>` (a null
 * value as `<null>`), in the order the acknowledgements arrive, and `OK acked=<n>` once the
 * last is flushed. Exits non-zero with the reason if any record or the transaction fails.
 */
public class CompactedProducer {
    static PrintStream out = new PrintStream(new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 1 << 16), false);
    static AtomicLong acked = new AtomicLong();
    static AtomicReference<Exception> failure = new AtomicReference<>();

    static Properties producerProps(String bootstrap) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.LINGER_MS_CONFIG, "20");
        return p;
    }

    static KafkaProducer<String, String> idempotent(String bootstrap) {
        Properties p = producerProps(bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        return new KafkaProducer<>(p);
    }

    /** Sends KEY=VALUE to partition 0 and prints its offset once acknowledged. */
    static void send(KafkaProducer<String, String> producer, String topic, String key, String value) {
        producer.send(new ProducerRecord<>(topic, 0, key, value), (metadata, exception) -> {
            if (exception != null) {
                failure.compareAndSet(null, exception);
                return;
            }
            synchronized (out) {
                acked.incrementAndGet();
                out.println(metadata.offset() + " " + key + " " + (value == null ? "<null>" : value));
            }
        });
    }

    static void fail(String why) {
        synchronized (out) {
            out.println("FAIL " + why);
            out.flush();
        }
        System.exit(1);
    }

    /** Flushes PRODUCER and fails if any acknowledged send failed. */
    static void flushed(KafkaProducer<String, String> producer) {
        producer.flush();
        Exception e = failure.get();
        if (e != null) fail("a record was not acknowledged: " + e);
    }

    static String key(int k) {
        return String.format("key-%04d", k);
    }

    static void run(String bootstrap, String topic, int keys, int rounds, int tombstones, int abortFrom, int abortTo)
            throws Exception {
        try (KafkaProducer<String, String> producer = idempotent(bootstrap)) {
            for (int r = 0; r < rounds; r++) {
                for (int k = 0; k < keys; k++) send(producer, topic, key(k), key(k) + "-v" + r);
            }
            for (int k = 0; k < tombstones; k++) send(producer, topic, key(k), null);
            flushed(producer);

            // Never visible to read_committed, and never what compaction keeps for a key.
            Properties t = producerProps(bootstrap);
            t.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "compaction-abort-" + topic);
            try (KafkaProducer<String, String> txn = new KafkaProducer<>(t)) {
                txn.initTransactions();
                txn.beginTransaction();
                for (int k = abortFrom; k < abortTo; k++) txn.send(new ProducerRecord<>(topic, 0, key(k), "aborted"));
                // Flush first so the aborted records really reach the log (an abort drops
                // batches not yet sent).
                txn.flush();
                txn.abortTransaction();
            }

            send(producer, topic, "sentinel", "1");
            flushed(producer);
            synchronized (out) {
                out.println("WRITTEN acked=" + acked.get());
                out.flush();
            }

            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            for (String line; (line = in.readLine()) != null; ) {
                String[] kv = line.split(" ", 2);
                if (kv.length == 2) send(producer, topic, kv[0], kv[1]);
            }
            flushed(producer);
        }
    }

    public static void main(String[] args) {
        if (args.length < 7) {
            System.err.println("usage: CompactedProducer BOOTSTRAP TOPIC KEYS ROUNDS TOMBSTONES ABORT_FROM ABORT_TO");
            System.exit(2);
        }
        try {
            run(args[0], args[1], Integer.parseInt(args[2]), Integer.parseInt(args[3]), Integer.parseInt(args[4]),
                Integer.parseInt(args[5]), Integer.parseInt(args[6]));
        } catch (Exception e) {
            fail(e.toString());
        }
        synchronized (out) {
            out.println("OK acked=" + acked.get());
            out.flush();
        }
        System.exit(0);
    }
}
