import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * An idempotent acks=all producer that reports every acknowledgement, for checking that
 * nothing a cluster acknowledged is lost, reordered or duplicated across broker kills.
 *
 * Usage: ClusterProducer BOOTSTRAP TOPIC COUNT [RECORDS_PER_SECOND]
 *
 * Sends the values "0" .. "COUNT-1" with a null key; value i goes to partition
 * i % partitions (chosen explicitly, so every partition sees an increasing sequence).
 * RECORDS_PER_SECOND (default 0 = unlimited) paces the sends so a run lasts long enough
 * for a test to disturb the cluster while it is producing.
 *
 * Prints one line per acknowledged record, `ACK <partition> <offset> <value>`, and per
 * failed record `ERR <value> <exception>` (a failure does not stop the run), then
 * `DONE acked=<n> errors=<n>` once flushed and closed, and exits 0.
 */
public class ClusterProducer {
    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: ClusterProducer BOOTSTRAP TOPIC COUNT [RECORDS_PER_SECOND]");
            System.exit(2);
        }
        String bootstrap = args[0];
        String topic = args[1];
        long count = Long.parseLong(args[2]);
        long rate = args.length > 3 ? Long.parseLong(args[3]) : 0;

        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "120000");
        p.put(ProducerConfig.RETRIES_CONFIG, Integer.toString(Integer.MAX_VALUE));
        p.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, "5");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");

        PrintStream out = new PrintStream(new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 1 << 16), false);
        AtomicLong acked = new AtomicLong();
        AtomicLong errors = new AtomicLong();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            int partitions = producer.partitionsFor(topic).size();
            long started = System.nanoTime();
            for (long i = 0; i < count; i++) {
                if (rate > 0 && i % 100 == 0) {
                    long dueNanos = i * 1_000_000_000L / rate;
                    long aheadMs = (dueNanos - (System.nanoTime() - started)) / 1_000_000;
                    if (aheadMs > 0) {
                        Thread.sleep(aheadMs);
                    }
                }
                String value = Long.toString(i);
                int partition = (int) (i % partitions);
                try {
                    producer.send(new ProducerRecord<>(topic, partition, null, value), (metadata, exception) -> {
                        synchronized (out) {
                            if (exception == null) {
                                acked.incrementAndGet();
                                out.println("ACK " + metadata.partition() + " " + metadata.offset() + " " + value);
                            } else {
                                errors.incrementAndGet();
                                out.println("ERR " + value + " " + exception);
                            }
                        }
                    });
                } catch (Exception e) {
                    // send() itself failed (e.g. metadata unavailable for max.block.ms).
                    synchronized (out) {
                        errors.incrementAndGet();
                        out.println("ERR " + value + " " + e);
                    }
                }
            }
            producer.flush();
        }
        synchronized (out) {
            out.println("DONE acked=" + acked.get() + " errors=" + errors.get());
            out.flush();
        }
        System.exit(0);
    }
}
