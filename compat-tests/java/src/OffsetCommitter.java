import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Many offset commits by one group with the stock Java consumer, for checking that
 * `__consumer_offsets` stays small once compacted.
 *
 * Usage: OffsetCommitter BOOTSTRAP GROUP TOPIC PARTITIONS FROM TO [SYNC_EVERY]
 *
 * A consumer in GROUP with manual assignment (no rebalance, no membership) of the
 * PARTITIONS partitions of TOPIC commits, for each i in FROM .. TO-1, offset i of partition
 * i % PARTITIONS: one OffsetCommit request per i, with commitAsync, and every SYNC_EVERY-th
 * (default 1000) with commitSync, which also bounds how many commits are outstanding. The
 * last one is a commitSync, so at exit the group's committed offset of partition p is the
 * last i < TO with i % PARTITIONS == p.
 *
 * Prints `OK commits=<n> ms=<elapsed> per_second=<rate>`; exits non-zero with the reason if a
 * commit fails.
 */
public class OffsetCommitter {
    static void fail(String why) {
        System.out.println("FAIL " + why);
        System.exit(1);
    }

    public static void main(String[] args) {
        if (args.length < 6) {
            System.err.println("usage: OffsetCommitter BOOTSTRAP GROUP TOPIC PARTITIONS FROM TO [SYNC_EVERY]");
            System.exit(2);
        }
        String bootstrap = args[0];
        String group = args[1];
        String topic = args[2];
        int partitions = Integer.parseInt(args[3]);
        long from = Long.parseLong(args[4]);
        long to = Long.parseLong(args[5]);
        long syncEvery = args.length > 6 ? Long.parseLong(args[6]) : 1000;

        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());

        AtomicLong failed = new AtomicLong();
        AtomicReference<Exception> firstFailure = new AtomicReference<>();
        long started = System.nanoTime();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(c)) {
            List<TopicPartition> assigned = new ArrayList<>();
            for (int p = 0; p < partitions; p++) assigned.add(new TopicPartition(topic, p));
            consumer.assign(assigned);
            for (long i = from; i < to; i++) {
                Map<TopicPartition, OffsetAndMetadata> offsets =
                    Collections.singletonMap(assigned.get((int) (i % partitions)), new OffsetAndMetadata(i));
                if ((i - from) % syncEvery == syncEvery - 1 || i == to - 1) {
                    consumer.commitSync(offsets);
                    if (failed.get() > 0) fail(failed.get() + " async commits failed, first: " + firstFailure.get());
                } else {
                    consumer.commitAsync(offsets, (committed, exception) -> {
                        if (exception != null) {
                            failed.incrementAndGet();
                            firstFailure.compareAndSet(null, exception);
                        }
                    });
                }
            }
        } catch (Exception e) {
            fail(e.toString());
        }
        // Closing waits for the outstanding async commits and runs their callbacks.
        if (failed.get() > 0) fail(failed.get() + " async commits failed, first: " + firstFailure.get());
        long ms = (System.nanoTime() - started) / 1_000_000;
        long commits = to - from;
        System.out.println("OK commits=" + commits + " ms=" + ms + " per_second=" + (commits * 1000 / Math.max(ms, 1)));
        System.exit(0);
    }
}
