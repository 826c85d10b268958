import java.time.Duration;
import java.util.Properties;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * A producer with the stock client's telemetry (KIP-714, `enable.metrics.push` on by
 * default) that prints its client instance id, as the broker assigned it, then produces one
 * record every 100 ms for SECONDS seconds and closes.
 *
 * Usage: TelemetryProducer BOOTSTRAP TOPIC CLIENT_ID SECONDS
 * Prints `INSTANCE <uuid>` first (flushed), then `SENT n` at the end.
 */
public class TelemetryProducer {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(ProducerConfig.CLIENT_ID_CONFIG, args[2]);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        long seconds = Long.parseLong(args[3]);
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            System.out.println("INSTANCE " + producer.clientInstanceId(Duration.ofSeconds(30)));
            System.out.flush();
            long end = System.currentTimeMillis() + seconds * 1000;
            int sent = 0;
            while (System.currentTimeMillis() < end) {
                producer.send(new ProducerRecord<>(args[1], "key-" + sent, "value-" + sent)).get();
                sent++;
                Thread.sleep(100);
            }
            System.out.println("SENT " + sent);
        }
    }
}
